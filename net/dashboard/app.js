/* nftraft dashboard: polls /status and /metrics of every member (each node
 * answers its GET endpoints with Access-Control-Allow-Origin: *), /members
 * and /log of this node (or any live one), once a second; no libraries. */
'use strict';
const POLL_MS = 1000, TIMEOUT_MS = 900, KEEP = 60, LOG_ROWS = 8;
const $ = (id) => document.getElementById(id);
const S = {
  self: null,        /* this node's /status */
  nodes: new Map(),  /* token id -> {token, url, status, ok, err, rtt, ...} */
  members: null, source: '', logNext: 0, log: [], wps: [], p99: [],
};

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {}))
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const k of kids)
    if (k !== null && k !== undefined)
      e.append(k instanceof Node ? k : String(k));
  return e;
}

async function get(url, asText) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), TIMEOUT_MS);
  try {
    const r = await fetch(url, {signal: ac.signal, cache: 'no-store'});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    return asText ? await r.text() : await r.json();
  } finally {
    clearTimeout(t);
  }
}

function parseMetrics(text) {
  const m = {buckets: []};
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp), v = Number(line.slice(sp + 1));
    const b = /^nftraft_increment_duration_seconds_bucket\{le="([^"]+)"\}$/.exec(key);
    if (b) m.buckets.push([b[1] === '+Inf' ? Infinity : Number(b[1]), v]);
    else m[key] = v;
  }
  return m;
}

/* Cumulative bucket counts gained between two scrapes. */
function bucketDelta(prev, cur) {
  return cur.buckets.map((b, i) => [b[0], b[1] - (prev.buckets[i] ? prev.buckets[i][1] : 0)]);
}

/* histogram_quantile over cumulative buckets (linear within a bucket). */
function quantile(q, d) {
  const total = d.length ? d[d.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lo = 0, below = 0;
  for (const [le, c] of d) {
    if (c >= rank) {
      if (le === Infinity) return lo;
      return lo + (le - lo) * (c > below ? (rank - below) / (c - below) : 1);
    }
    lo = le; below = c;
  }
  return lo;
}

function push(arr, v) {
  arr.push(v);
  if (arr.length > KEEP) arr.shift();
}

function nodeFor(token, url) {
  let n = S.nodes.get(token);
  if (!n) {
    n = {token, url, status: null, ok: false, err: 'not polled yet', rtt: 0,
         busy: false, metrics: null, at: 0, wps: [], p99: [], delta: null};
    S.nodes.set(token, n);
  }
  /* this node is reached through the page's own origin (tunnels, proxies) */
  n.url = S.self && token === S.self.token_id ? location.origin : url || n.url;
  return n;
}

async function pollNode(n) {
  if (n.busy) return;
  n.busy = true;
  const t0 = performance.now();
  try {
    const [st, mt] = await Promise.all([get(n.url + '/status'), get(n.url + '/metrics', true)]);
    n.rtt = performance.now() - t0;
    n.status = st; n.ok = true; n.err = '';
    const m = parseMetrics(mt), now = Date.now();
    if (n.metrics && m.nftraft_increments_total >= n.metrics.nftraft_increments_total) {
      const dt = (now - n.at) / 1000;
      n.delta = bucketDelta(n.metrics, m);
      push(n.wps, (m.nftraft_increments_total - n.metrics.nftraft_increments_total) / dt);
      push(n.p99, quantile(0.99, n.delta));
    } else {
      n.delta = null;
    }
    n.metrics = m; n.at = now;
  } catch (e) {
    n.ok = false; n.delta = null;
    n.err = e.name === 'AbortError' ? 'timeout' : 'unreachable';
    push(n.wps, null); push(n.p99, null);
  } finally {
    n.busy = false;
  }
}

/* A live node to ask for cluster-wide things: this one first. */
function liveUrls() {
  const out = [location.origin];
  for (const n of S.nodes.values()) if (n.ok && n.url !== location.origin) out.push(n.url);
  return out;
}

async function firstOf(path) {
  for (const u of liveUrls()) {
    try { return [await get(u + path), u]; } catch (e) { /* next */ }
  }
  return [null, null];
}

async function pollMembers() {
  const [m] = await firstOf('/members');
  if (!m) return;
  S.members = m;
  S.source = m.source + (m.block ? ' · block ' + m.block : '');
  for (const x of m.members) nodeFor(x.token_id, x.url);
}

async function pollLog() {
  const from = S.logNext || Math.max(1, (S.self ? S.self.applied_index : 1) - 500);
  const [j, u] = await firstOf('/log?from=' + from + '&limit=1000');
  if (!j) return;
  S.logFrom = u;
  S.log = S.log.concat(j.entries).slice(-LOG_ROWS);
  S.logNext = j.next;
}

async function tick() {
  if (!S.self) {
    try { S.self = await get('/status'); } catch (e) { $('self').textContent = 'this node does not answer'; return; }
  }
  await pollMembers();
  if (S.nodes.size === 0) nodeFor(S.self.token_id, location.origin);
  await Promise.all([...S.nodes.values()].map(pollNode).concat(pollLog()));
  const me = S.nodes.get(S.self.token_id);
  if (me && me.ok) S.self = me.status;
  aggregate();
  render();
}

/* Cluster-wide writes/s and p99 from the nodes polled this round. */
function aggregate() {
  let wps = 0, any = false, merged = null;
  for (const n of S.nodes.values()) {
    if (!n.ok || !n.delta) continue;
    any = true;
    wps += n.wps[n.wps.length - 1] || 0;
    merged = merged ? merged.map((b, i) => [b[0], b[1] + (n.delta[i] ? n.delta[i][1] : 0)]) : n.delta;
  }
  push(S.wps, any ? wps : null);
  push(S.p99, merged ? quantile(0.99, merged) : null);
}

function spark(svg, data, cls) {
  const vals = data.filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...vals);
  let d = '', pen = false;
  data.forEach((v, i) => {
    if (v === null || v === undefined) { pen = false; return; }
    const x = (i + KEEP - data.length) * 120 / (KEEP - 1), y = 27 - (v / max) * 25;
    d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
    pen = true;
  });
  svg.replaceChildren();
  if (cls) svg.classList.add(cls);
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', d);
  svg.append(p);
}

function sparkSvg(data, cls) {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 120 28');
  s.setAttribute('preserveAspectRatio', 'none');
  s.classList.add('spark');
  spark(s, data, cls);
  return s;
}

function ms(s) {
  return s === null || s === undefined ? '–' : s < 0.001 ? (s * 1e6).toFixed(0) + ' µs'
    : s < 1 ? (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + ' ms' : s.toFixed(2) + ' s';
}
const rate = (v) => (v === null || v === undefined ? '–' : v < 10 ? v.toFixed(1) : v.toFixed(0));
const last = (a) => (a.length ? a[a.length - 1] : null);
const short = (a) => (a && a.length > 14 ? a.slice(0, 8) + '…' + a.slice(-4) : a || '–');

function nameOf(token) {
  const n = S.nodes.get(token);
  const m = S.members && S.members.members.find((x) => x.token_id === token);
  return (m && m.instance_id) || (n && n.status && n.status.instance_id) || 'token ' + token;
}

/* The freshest chain view among live nodes (highest block). */
function chainView() {
  let best = null;
  for (const n of S.nodes.values())
    if (n.ok && n.status.chain && n.status.chain.connected && (!best || n.status.chain.block > best.block))
      best = n.status.chain;
  if (!best) for (const n of S.nodes.values()) if (n.ok && n.status.chain) best = n.status.chain;
  return best;
}

function render() {
  const self = S.self, live = [...S.nodes.values()].filter((n) => n.ok);
  $('self').textContent = 'this node: ' + self.instance_id + ' (token ' + self.token_id + ', ' + self.role + ')';
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString([], {hour12: false}) + ' · ' + live.length + '/' + S.nodes.size + ' nodes answer';

  /* raft leader: the live node that says so with the highest term */
  let leader = null;
  for (const n of live)
    if (n.status.role === 'leader' && (!leader || n.status.term > leader.status.term)) leader = n;
  const rl = $('raft-leader');
  rl.textContent = leader ? nameOf(leader.token) + ' · ' + leader.token : 'none (electing)';
  rl.dataset.token = leader ? leader.token : 0;
  $('raft-term').textContent = leader ? 'term ' + leader.status.term + (leader.status.ready ? '' : ' · not ready') : '';

  const c = chainView(), ct = $('chain-tile'), cl = $('chain-leader'), chip = $('chain');
  if (c) {
    const tok = c.leader.token_id;
    cl.textContent = tok ? nameOf(tok) + ' · ' + tok : 'none';
    cl.dataset.token = tok;
    const agree = leader && tok === leader.token;
    ct.classList.toggle('bad', !agree);
    $('agree').textContent = agree ? 'agrees with raft' : leader ? 'raft and contract disagree' : 'no raft leader';
    $('agree').dataset.agree = agree ? 1 : 0;
    $('votes').textContent = c.votes_against_leader + ' / ' + c.required_votes;
    $('votes-bar').style.width = Math.min(100, 100 * c.votes_against_leader / Math.max(1, c.required_votes)) + '%';
    const left = c.lease_expiry - Date.now() / 1000;
    $('lease').textContent = !c.lease_expiry ? '–' : left >= 0 ? left.toFixed(0) + ' s' : 'expired';
    $('chain-term').textContent = 'contract term ' + c.term + ' · ' + c.active_members + ' active';
    chip.textContent = (c.connected ? 'chain ' + c.chain_id + ' · block ' + c.block : 'chain unreachable: ' + (c.error || '?')) +
      ' · ' + short(c.contract);
    chip.title = 'RPC ' + c.rpc_url + '\ncontract ' + c.contract;
    chip.className = 'pill ' + (c.connected ? 'ok' : 'bad');
  } else {
    cl.textContent = 'no chain'; cl.dataset.token = 0;
    ct.classList.remove('bad');
    $('agree').textContent = 'static membership';
    chip.textContent = 'no chain (static membership)'; chip.className = 'pill';
  }
  const vs = leader ? leader.status : self;
  $('value').textContent = vs.value;
  $('index').textContent = 'commit ' + vs.commit_index + ' · applied ' + vs.applied_index;
  $('wps').textContent = rate(last(S.wps));
  $('p99').textContent = ms(last(S.p99));
  spark($('wps-spark'), S.wps);
  spark($('p99-spark'), S.p99, 'p');
  $('fwd').textContent = self.role === 'leader' ? 'this node is the leader: writes commit here'
    : '⇢ writes through this node are forwarded to the leader' + (leader ? ' (' + nameOf(leader.token) + ')' : '');
  renderNodes();
  renderMembers();
  renderLog();
}

function renderNodes() {
  const box = $('nodes'), cards = [];
  for (const n of [...S.nodes.values()].sort((a, b) => a.token - b.token)) {
    const st = n.status, ok = n.ok, role = ok ? st.role : 'down';
    const ch = ok && st.chain;
    const m = n.metrics || {};
    const card = el('article', {class: 'node', 'data-token': n.token, 'data-role': role, 'data-ok': ok ? 1 : 0},
      el('div', {class: 'top'}, el('span', {class: 'name'}, nameOf(n.token)),
        el('span', {class: 'role ' + role}, role), el('span', {class: 'url', title: n.url}, n.url.replace(/^https?:\/\//, ''))),
      el('dl', null,
        el('dt', null, 'token'), el('dd', null, n.token + (S.self && n.token === S.self.token_id ? ' (this node)' : '')),
        el('dt', null, 'health'), el('dd', {class: ok ? (st.ready || role !== 'leader' ? 'good' : 'warn') : 'badtxt'},
          ok ? 'answers in ' + n.rtt.toFixed(0) + ' ms' + (st.writable_error ? ' · refuses writes' : '') : n.err),
        el('dt', null, 'term'), el('dd', null, ok ? st.term : '–'),
        el('dt', null, 'commit/applied'), el('dd', null, ok ? st.commit_index + ' / ' + st.applied_index : '–'),
        el('dt', null, 'value'), el('dd', null, ok ? st.value : '–'),
        el('dt', null, 'sees leader'), el('dd', null, ok && st.leader ? st.leader.token_id : '–'),
        el('dt', null, 'chain'), el('dd', {class: ch ? (ch.connected ? '' : 'badtxt') : ''},
          !ok ? '–' : !ch ? 'none' : ch.connected ? 'block ' + ch.block + ' · leader ' + ch.leader.token_id +
            ' · votes ' + ch.votes_against_leader + '/' + ch.required_votes : 'unreachable'),
        el('dt', null, 'forwarded'), el('dd', null, m.nftraft_forwarded_total !== undefined ? m.nftraft_forwarded_total : '–')),
      el('div', {class: 'sparks'},
        el('div', null, 'writes/s ' + rate(last(n.wps)), sparkSvg(n.wps)),
        el('div', null, 'p99 ' + ms(last(n.p99)), sparkSvg(n.p99, 'p'))));
    cards.push(card);
  }
  box.replaceChildren(...cards);
}

function renderMembers() {
  const tb = $('members').tBodies[0];
  if (!S.members) return;
  $('members-src').textContent = '(' + S.source + ')';
  const raft = new Map((S.members.raft || []).map((r) => [r.id, r.address]));
  tb.replaceChildren(...S.members.members.map((x) => el('tr', {'data-token': x.token_id},
    el('td', null, x.token_id),
    el('td', {title: x.instance_id_hex || ''}, x.instance_id),
    el('td', {title: x.owner || ''}, short(x.owner)),
    el('td', null, (x.url || '–') + (raft.get(x.raft_id || x.token_id) || x.raft_address ? ' · raft ' + (raft.get(x.raft_id || x.token_id) || x.raft_address) : '')),
    el('td', null, x.active ? 'yes' : 'no'),
    el('td', null, x.role))));
}

function renderLog() {
  $('log-src').textContent = S.logFrom ? '(from ' + S.logFrom.replace(/^https?:\/\//, '') + ')' : '';
  if (!S.log.length) {
    $('log').tBodies[0].replaceChildren(el('tr', null, el('td', {colspan: 6, class: 'muted'}, 'no increments yet')));
    return;
  }
  $('log').tBodies[0].replaceChildren(...S.log.slice().reverse().map((e) => el('tr', null,
    el('td', null, e.index), el('td', null, e.term), el('td', null, '+' + e.by),
    el('td', null, e.value), el('td', null, nameOf(e.node)),
    el('td', null, new Date(e.time).toLocaleTimeString([], {hour12: false})))));
}

async function increment() {
  const b = $('inc'), out = $('inc-result');
  b.disabled = true;
  out.className = ''; out.textContent = '…';
  const key = 'dash-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
  try {
    const r = await fetch('/increment', {method: 'POST', body: '{"by": 1}',
      headers: {'Content-Type': 'application/json', 'Idempotency-Key': key}});
    const j = await r.json();
    if (!r.ok) throw new Error('HTTP ' + r.status + ': ' + j.error + (j.outcome ? ' (outcome ' + j.outcome + ')' : ''));
    const fwd = S.self && j.leader !== S.self.id;
    out.dataset.forwarded = fwd ? 1 : 0;
    out.dataset.value = j.value;
    out.textContent = new Date().toLocaleTimeString([], {hour12: false}) + ' · value ' + j.value +
      ' at index ' + j.index + (fwd
      ? ' · forwarded through this node to leader ' + nameOf(j.leader) : ' · committed by this node as leader');
  } catch (e) {
    out.className = 'err';
    out.textContent = String(e.message || e);
  } finally {
    b.disabled = false;
  }
}

$('inc').addEventListener('click', increment);
let running = false;
async function loop() {
  if (running) return;
  running = true;
  try { await tick(); } finally { running = false; }
}
loop();
setInterval(loop, POLL_MS);
