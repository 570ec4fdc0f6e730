#!/usr/bin/env python3
"""The PostgreSQL pathway (issue 17) end to end: real nftraftd --pg nodes
(`nftraft up --pg`), each supervising a real PostgreSQL 15, written to
through integration/pgwire.py (plain SQL over TCP, as psql would).

Static cluster (3 nodes):
  bootstrap     one primary (the raft leader's), 2 streaming standbys, the
                primary's synchronous_standby_names = ANY 1 of the two,
                /status.pg and `nftraft pg status` agree;
  latency       commit p50/p99 of sequential INSERTs through the cluster's
                primary vs a lone PostgreSQL (same client, same machine);
  failover      4 writers INSERT unique ids through whatever node /status
                says is the primary; kill -9 of the leader's nftraftd AND
                every process under it (its postgres); time from the kill to
                the first acknowledged write on the new primary; every
                acknowledged id on the new primary;
  rewind        the killed node restarted: it rejoins as a standby of the
                new primary (rewound), every acknowledged id on all three;
  hang          the leader's nftraftd and its postgres SIGSTOPped (a hung
                node): a new primary takes writes; after SIGCONT the old
                primary acknowledges no write sent to it, every
                acknowledged id is on the new primary, the old node rejoins;
  hang-node     only the leader's nftraftd SIGSTOPped: its postgres keeps
                taking writes it cannot get acknowledged (diverging); after
                SIGCONT it rewinds and holds exactly the new primary's rows;
  diverged-restart  only the leader's nftraftd SIGSTOPped, its postgres
                takes writes nobody acknowledges (its WAL runs past the new
                primary's switch point), then node and postgres kill -9ed
                and restarted: it must rewind BEFORE it follows the new
                primary (never start as its standby on the diverged WAL:
                its walreceiver's flush would acknowledge commits its
                startup process cannot replay), then hold exactly the new
                primary's rows;
  re-clone      a standby stopped, its D/pg wiped, restarted: it clones
                from the primary and streams, every acknowledged id on it;
  clone-waiting  a standby wiped and restarted (it clones) while the
                other standby's postgres is SIGSTOPped: the commits that
                waited for a synchronous standby during the copy are
                acknowledged once it streams and must be visible on it
                within 5 s, with no later write;
  broken        a standby stopped, its PGDATA made unusable (pg_control
                removed) with the marker of an interrupted rewind
                (D/pg/rewind-incomplete), writes it misses, then kill -9 of
                the primary's node and postgres and the broken node
                restarted: whichever of the two is raft leader, the healthy
                standby is promoted (the broken node never starts
                PostgreSQL on that data, /status.pg "broken", lsn 0/0, and
                does not block the failover), then the broken node
                re-clones from it; every acknowledged id on both.
Chain cluster (`--chain anvil`, 3 nodes):
  transfer      a standby's NFT transferred away: it leaves raft, its name
                leaves synchronous_standby_names, its walsender is gone and
                its replication role cannot log in.
Writes whose outcome the client cannot know (timeout, reset, a cancelled
synchronous wait) are counted as unknown, never as failed; a write that
failed (refused, ERROR) must not be found anywhere.
Prints (figure) lines. Exits 77 when nftraftd has no --pg or PostgreSQL 15
is missing. --only NAMES (comma list of the names above) runs a subset."""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (NFTRAFT, NFTRAFTD, Cluster, TestFailure, address_of, check, cli,  # noqa: E402
                     dev_key, finish, free_base_port, free_port, gone, run_one, wait_for)
import pglocal  # noqa: E402
import pgwire  # noqa: E402

C = None          # the static cluster
CC = None         # the chain cluster
FIGS = {}
ACKED = {}        # id -> node that acknowledged it (every scenario's writes)
UNKNOWN = set()   # ids whose outcome is unknown
FAILED = set()    # ids whose write certainly failed
TABLE = "pgtest_rows"


def figure(name, value, unit="s", extra=""):
    FIGS[name] = value
    print("  (figure) %s: %.3f %s%s" % (name, value, unit, extra), flush=True)


# ------------------------------------------------------------ node helpers

def pg_of(c, i, timeout=1):
    s = c.status(i, timeout=timeout)
    return (s or {}).get("pg")


def cmd_arg(c, i, flag):
    args = c.cmdline(i)
    for k, a in enumerate(args):
        if a == flag and k + 1 < len(args):
            return args[k + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def pg_addr(c, i):
    """(host, port) of node i's PostgreSQL, from its --pg-listen flag."""
    listen = cmd_arg(c, i, "--pg-listen")
    check(listen, "node %d runs without --pg-listen: %s" % (i, c.cmdline(i)))
    host, _, port = listen.rpartition(":")
    return host, int(port)


def password(c):
    path = cmd_arg(c, 1, "--pg-password-file")
    check(path, "node 1 runs without --pg-password-file")
    with open(path) as f:
        return f.read().strip()


def connect(c, i, timeout=3.0):
    host, port = pg_addr(c, i)
    return pgwire.connect(host, port, "nftraft", c.pg_password, timeout=timeout,
                          connect_timeout=1.0, application_name="pgtest")


def sql(c, i, q, timeout=5.0):
    with connect(c, i, timeout) as conn:
        return conn.query(q)


def proc_children():
    """pid -> [child pids] of every process (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(d))
    return kids


def descendants(pid):
    kids, out, todo = proc_children(), [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    return not gone(pid)


def postgres_pids(c, i):
    """Node i's postgres processes (those under its nftraftd)."""
    out = []
    for p in descendants(c.pid(i)):
        try:
            with open("/proc/%d/comm" % p) as f:
                if f.read().strip() in ("postgres", "postmaster"):
                    out.append(p)
        except OSError:
            pass
    return out


def kill_node_and_postgres(c, i):
    """SIGKILL node i's nftraftd and every process under it (its postgres
    and backends) at once; returns when all are gone."""
    pids = [c.pid(i)] + descendants(c.pid(i))
    check(len(pids) > 1, "node %d has no postgres under it" % i)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pids[0], 0)
    except ChildProcessError:
        pass
    wait_for("node %d's processes to die" % i, lambda: not any(alive(p) for p in pids), 10, 0.02)
    return pids


def signal_node_and_postgres(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def sync_names(text):
    """'ANY 1 (node2, "node3")' -> (1, {'node2', 'node3'}); None otherwise."""
    m = re.match(r'^\s*ANY\s+(\d+)\s*\((.*)\)\s*$', text or "", re.I)
    if not m:
        return None
    return int(m.group(1)), {x.strip().strip('"') for x in m.group(2).split(",") if x.strip()}


class Monitor:
    """Polls every node's /status (50 ms) on a thread; primary() is the
    node that says it is the raft leader with a primary PostgreSQL."""

    def __init__(self, c):
        self.c, self.st, self.stop_ev = c, {}, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.is_set():
            for i in range(1, self.c.n + 1):
                self.st[i] = self.c.status(i, timeout=0.3)
            self.stop_ev.wait(0.05)

    def primary(self):
        best = None
        for i, s in list(self.st.items()):
            if s and s.get("role") == "leader" and (s.get("pg") or {}).get("role") == "primary":
                if best is None or s["term"] > self.st[best]["term"]:
                    best = i
        return best

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(5)


class Writers:
    """`n` writer threads, each INSERTing unique ids (writer << 32 | seq)
    through the node the monitor names as primary (a new connection after
    any failure). Every write's outcome is recorded: acked (id -> node,
    time), failed, unknown. `avoid` (a set of node ids) keeps them away from
    nodes the test is hanging."""

    def __init__(self, c, mon, n=4, tag=0):
        self.c, self.mon, self.n, self.tag = c, mon, n, tag
        self.acked, self.failed, self.unknown = {}, set(), set()
        self.ack_log = []  # (time, node, id)
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.avoid = set()
        self.ts = [threading.Thread(target=self.run, args=(w,), daemon=True) for w in range(n)]

    def run(self, w):
        seq, conn, node = 0, None, None
        while not self.stop_ev.is_set():
            p = self.mon.primary()
            if p is None or p in self.avoid:
                time.sleep(0.02)
                continue
            if conn is None or node != p:
                if conn is not None:
                    conn.close()
                try:
                    conn, node = connect(self.c, p, timeout=3.0), p
                except pgwire.PgConnectError:
                    conn = None
                    time.sleep(0.05)
                    continue
            seq += 1
            rid = ((self.tag * 16 + w) << 32) | seq
            kind, _ = pgwire.outcome(lambda: conn.query(
                "INSERT INTO %s (id, w) VALUES (%d, %d)" % (TABLE, rid, w)))
            now = time.time()
            with self.lock:
                if kind == "ok":
                    self.acked[rid] = (node, now)
                    self.ack_log.append((now, node, rid))
                elif kind == "failed":
                    self.failed.add(rid)
                else:
                    self.unknown.add(rid)
            if kind != "ok":
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.ts:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.ts:
            t.join(10)
        ACKED.update({k: v[0] for k, v in self.acked.items()})
        UNKNOWN.update(self.unknown)
        FAILED.update(self.failed)

    def first_ack_after(self, t, nodes):
        with self.lock:
            return next((a for a in sorted(self.ack_log) if a[0] > t and a[1] in nodes), None)

    def summary(self):
        return "%d acknowledged, %d failed, %d unknown" % (len(self.acked), len(self.failed),
                                                          len(self.unknown))


def insert_row(conn_of, rid, w, node, timeout):
    """INSERT row rid on the connection conn_of() returns (to node) and
    record the outcome in ACKED / FAILED / UNKNOWN; returns it."""
    try:
        conn = conn_of()
        kind, _ = pgwire.outcome(lambda: conn.query(
            "INSERT INTO %s (id, w) VALUES (%d, %d)" % (TABLE, rid, w), timeout=timeout))
    except pgwire.PgConnectError:
        kind = "failed"
    if kind == "ok":
        ACKED[rid] = node
    else:
        (FAILED if kind == "failed" else UNKNOWN).add(rid)
    return kind


def probe_first_write(c, mon, avoid, tag, deadline=30):
    """A fresh client that routes by /status (the Monitor): it INSERTs
    through whichever node is named primary (not in `avoid`) until one
    write is acknowledged; returns that time. The Writers' figure is bounded
    below by their query timeout while they wait on a hung primary."""
    end, seq = time.time() + deadline, 0
    while time.time() < end:
        p = mon.primary()
        if p is None or p in avoid:
            time.sleep(0.01)
            continue
        seq += 1
        conns = []

        def conn_of():  # a fresh connection each try, closed after it
            conns.append(connect(c, p, timeout=1.0))
            return conns[-1]
        try:
            kind = insert_row(conn_of, (tag << 32) | seq, -5, p, 2.0)
        finally:
            for x in conns:
                x.close()
        if kind == "ok":
            return time.time()
        time.sleep(0.01)
    raise TestFailure("no write acknowledged by a new primary within %ds" % deadline)


def ids_on(c, i):
    r = sql(c, i, "SELECT id FROM %s" % TABLE, timeout=10)
    return {int(x[0]) for x in r.rows}


def check_rows(c, nodes, what, timeout=30):
    """Every acknowledged id (all scenarios so far) on each of `nodes`
    (standbys replay: waits up to `timeout`); no failed write anywhere.
    Returns how many unknown writes each node holds."""
    want = set(ACKED)
    held = {}
    for i in nodes:
        last = [None]

        def complete():
            try:
                have = ids_on(c, i)
            except pgwire.PgWireError as e:
                last[0] = str(e)
                return False
            last[0] = have
            return want <= have
        try:
            wait_for("node %d to hold all %d acknowledged ids" % (i, len(want)), complete, timeout, 0.25)
        except TestFailure:
            have = last[0]
            if isinstance(have, set):
                lost = sorted(want - have)
                raise TestFailure("%s: %d acknowledged ids missing on node %d (e.g. %s; acked by %s)"
                                  % (what, len(lost), i, [hex(x) for x in lost[:5]],
                                     [ACKED[x] for x in lost[:5]]))
            raise TestFailure("%s: cannot read node %d: %s" % (what, i, have))
        have = last[0]
        bad = FAILED & have
        check(not bad, "%s: writes that failed are on node %d: %s" % (what, i, [hex(x) for x in sorted(bad)[:5]]))
        held[i] = len(UNKNOWN & have)
    return held


def wait_cluster_pg(c, n_standbys, timeout=60, exclude=()):
    """A leader whose pg is primary and n_standbys other nodes streaming
    from it on its timeline; returns (leader, {node: pg status})."""
    def ready():
        lead = None
        pgs = {}
        for i in range(1, c.n + 1):
            if i in exclude:
                continue
            s = c.status(i, timeout=1)
            if not s:
                continue
            pgs[i] = s.get("pg") or {}
            if s.get("role") == "leader" and s.get("ready") and pgs[i].get("role") == "primary":
                lead = i
        if lead is None:
            return None
        tl = pgs[lead].get("timeline")
        up = [i for i, p in pgs.items() if i != lead and p.get("role") == "standby"
              and p.get("streaming") and p.get("timeline") == tl]
        return (lead, pgs) if len(up) >= n_standbys else None
    return wait_for("a primary with %d streaming standbys" % n_standbys, ready, timeout, 0.1)


def standby_of(c, i, primary, tl=None):
    p = pg_of(c, i)
    return bool(p and p.get("role") == "standby" and p.get("streaming") and
                (tl is None or p.get("timeline") == tl) and
                str(pg_addr(c, primary)[1]) in str(p.get("upstream", "")))


def replication_rows(c, primary):
    r = sql(c, primary, "SELECT application_name, state, sync_state FROM pg_stat_replication")
    return {row[0]: (row[1], row[2]) for row in r.rows}


def up_pg_cluster(extra_up=(), chain="none", nodes=3):
    pgbase = free_base_port(nodes)
    c = Cluster(nodes, chain=chain, extra=["--pg", "--pg-base-port", str(pgbase)] + list(extra_up))
    # mkdtemp made it 0700: postgres (another OS user when root) must reach
    # node<i>/pg below it (nftraftd refuses to start otherwise, saying so)
    os.chmod(c.dir, 0o711)
    t0 = time.time()
    out = c.up()
    c.pg_password = password(c)
    lead, pgs = wait_cluster_pg(c, nodes - 1, timeout=90)
    return c, out, time.time() - t0, lead, pgs


# ------------------------------------------------------------ static cluster

def test_bootstrap():
    global C
    C, out, took, lead, pgs = up_pg_cluster()
    print("  " + out.strip().replace("\n", "\n  "))
    figure("bootstrap: nftraft up --pg (3 nodes) -> primary + 2 streaming standbys", took)
    host, port = pg_addr(C, lead)
    check("primary on port %d" % port in out and "port=%d " % port in out,
          "`nftraft up --pg` names the primary's port %d (and psql's line uses it):\n%s" % (port, out))
    p = pgs[lead]
    for k in ("role", "host", "port", "timeline", "lsn", "replay_lag_ms", "sync_state",
              "streaming", "upstream", "record"):
        check(k in p, "node %d /status.pg has no %r: %s" % (lead, k, p))
    check(p["port"] == port and p["timeline"] >= 1 and re.match(r"^[0-9A-F]+/[0-9A-F]+$", p["lsn"]),
          "leader's /status.pg: %s" % p)
    rec = p["record"]
    s = C.status(lead)
    check(rec["primary"] == s["id"] and rec["term"] <= s["term"] and rec["timeline"] == p["timeline"],
          "the raft record names the leader (id %d term %d) as primary: %s" % (s["id"], s["term"], rec))
    others = [i for i in range(1, 4) if i != lead]
    ids = {i: C.status(i)["id"] for i in range(1, 4)}
    for i in others:
        q = pgs[i]
        check(q["role"] == "standby" and q["streaming"] and q["record"]["primary"] == ids[lead],
              "node %d /status.pg: %s" % (i, q))
    # The primary's own view: sync names, two quorum walsenders.
    with connect(C, lead) as conn:
        names = sync_names(conn.query("SHOW synchronous_standby_names").scalar())
        check(names == (1, {"node%d" % ids[i] for i in others}),
              "synchronous_standby_names is ANY 1 of the two standbys: %s" % (names,))
        check(conn.query("SELECT pg_is_in_recovery()").scalar() == "f", "the primary is not in recovery")
        conn.query("CREATE TABLE %s (id bigint PRIMARY KEY, w int, at timestamptz DEFAULT now())" % TABLE)
    wait_for("both standbys in pg_stat_replication as quorum", lambda: all(
        replication_rows(C, lead).get("node%d" % ids[i], ("", ""))[1] == "quorum"
        and replication_rows(C, lead)["node%d" % ids[i]][0] == "streaming" for i in others), 20)
    for i in others:
        check(sql(C, i, "SELECT pg_is_in_recovery()").scalar() == "t", "node %d is in recovery" % i)
        e = None
        try:
            sql(C, i, "INSERT INTO %s (id) VALUES (0)" % TABLE)
        except pgwire.PgServerError as x:
            e = x
        check(e is not None and e.sqlstate == "25006", "a standby refuses writes (read-only): %r" % e)
    r = subprocess.run([NFTRAFT, "pg", "status", "--dir", C.dir], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode == 0, "nftraft pg status: %s%s" % (r.stdout, r.stderr))
    lines = [l for l in r.stdout.split("\n") if l.strip()]
    for i in range(1, 4):
        port_i = str(pg_addr(C, i)[1])
        check(any(port_i in l for l in lines), "nftraft pg status names node %d's port %s:\n%s"
              % (i, port_i, r.stdout))
    check(sum("primary" in l for l in lines) >= 1 and sum("standby" in l for l in lines) >= 2,
          "nftraft pg status shows a primary and two standbys:\n%s" % r.stdout)
    r = subprocess.run([NFTRAFT, "pg", "status", "--node", C.url(lead)], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode == 0 and str(port) in r.stdout and "primary" in r.stdout,
          "nftraft pg status --node (the leader): %s%s" % (r.stdout, r.stderr))
    print("  primary node %d (port %d), standbys %s" % (lead, port, others))


def commit_latencies(conn, n, base):
    lat = []
    for k in range(n):
        t0 = time.perf_counter()
        conn.query("INSERT INTO lat (id) VALUES (%d)" % (base + k))
        lat.append((time.perf_counter() - t0) * 1000.0)
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def test_latency():
    n = 400
    lead, _ = wait_cluster_pg(C, 2)
    with connect(C, lead) as conn:
        conn.query("CREATE TABLE lat (id bigint PRIMARY KEY)")
        commit_latencies(conn, 20, 10**9)  # warm up
        p50, p99 = commit_latencies(conn, n, 0)
        conn.query("DROP TABLE lat")
    lone = pglocal.LonePostgres()
    try:
        lone.initdb().start()
        with lone.connect() as conn:
            conn.query("CREATE TABLE lat (id bigint PRIMARY KEY)")
            commit_latencies(conn, 20, 10**9)
            l50, l99 = commit_latencies(conn, n, 0)
    finally:
        lone.destroy()
    figure("commit p50 through the cluster (primary + ANY 1 of 2 sync standbys)", p50, "ms")
    figure("commit p99 through the cluster", p99, "ms")
    figure("commit p50 on a lone PostgreSQL (same client)", l50, "ms")
    figure("commit p99 on a lone PostgreSQL", l99, "ms")
    # a synchronous commit waits for a standby's flush: it cannot be faster
    # than a local one by much (noise), and must not take seconds
    check(p50 < 200, "cluster commit p50 %.1f ms" % p50)


S = {}


def test_failover():
    """kill -9 of the leader's node and postgres under 4 writers."""
    old, _ = wait_cluster_pg(C, 2)
    old_tl = pg_of(C, old)["timeline"]
    with Monitor(C) as mon, Writers(C, mon, 4, tag=1) as w:
        wait_for("writes through node %d" % old, lambda: len(w.acked) >= 50, 20, 0.05)
        t_kill = time.time()
        kill_node_and_postgres(C, old)
        first = wait_for("an acknowledged write on a new primary",
                         lambda: w.first_ack_after(t_kill, set(range(1, 4)) - {old}), 30, 0.01)
        failover = first[0] - t_kill
        time.sleep(2)
    new, pgs = wait_cluster_pg(C, 1, exclude=(old,))
    check(new != old, "a new primary")
    check(pgs[new]["timeline"] > old_tl, "the new primary's timeline %s > %s" % (pgs[new]["timeline"], old_tl))
    figure("failover: kill -9 of leader node+postgres -> first acknowledged write on the new primary",
           failover, extra=" (%s)" % w.summary())
    check(len(w.acked) > 100, "writes flowed: %s" % w.summary())
    check_rows(C, [new], "after failover (new primary)")
    S["old"], S["new"] = old, new


def test_rewind():
    """The killed old primary restarts: it rejoins as a standby (rewound)."""
    old, new = S["old"], S["new"]
    tl = pg_of(C, new)["timeline"]
    t0 = time.time()
    C.start_node(old)
    wait_for("node %d streaming from node %d on timeline %d" % (old, new, tl),
             lambda: standby_of(C, old, new, tl), 60, 0.05)
    figure("rejoin: old primary restarted -> streaming from the new primary", time.time() - t0)
    held = check_rows(C, [1, 2, 3], "after rejoin (all three)")
    print("  every acknowledged id (%d) on all three; unknown writes (%d) present per node: %s"
          % (len(ACKED), len(UNKNOWN), held))
    log = C.log(old).lower()
    print("  node %d log mentions: %s" % (old, ", ".join(w for w in ("rewind", "clone", "re-point", "follow")
                                                          if w in log) or "none of rewind/clone/follow"))
    _, pgs = wait_cluster_pg(C, 2)


def test_hang():
    """SIGSTOP of the leader's nftraftd and its postgres (a hung node)."""
    old, _ = wait_cluster_pg(C, 2)
    probe = connect(C, old, timeout=2.0)
    with Monitor(C) as mon, Writers(C, mon, 4, tag=2) as w:
        wait_for("writes through node %d" % old, lambda: len(w.acked) >= 50, 20, 0.05)
        pids = [C.pid(old)] + descendants(C.pid(old))
        w.avoid.add(old)
        t_stop = time.time()
        signal_node_and_postgres(pids, signal.SIGSTOP)
        try:
            t_probe = probe_first_write(C, mon, {old}, 254)
            figure("hang: SIGSTOP of leader node+postgres -> first acknowledged write on the new "
                   "primary (a client routing by /status)", t_probe - t_stop)
            first = wait_for("an acknowledged write on a new primary",
                             lambda: w.first_ack_after(t_stop, set(range(1, 4)) - {old}), 30, 0.01)
            print("  the writers (blocked on the hung primary until their 3 s query timeout) "
                  "wrote again after %.3f s" % (first[0] - t_stop))
            time.sleep(1)
        finally:
            t_cont = time.time()
            signal_node_and_postgres(pids, signal.SIGCONT)
        rejoined = []

        def watch():  # when the resumed node streams from the new primary
            while time.time() < t_cont + 60 and not rejoined:
                p = mon.primary()
                if p is not None and p != old and standby_of(C, old, p):
                    rejoined.append(time.time())
                time.sleep(0.05)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # Writes sent to the old primary after it resumed: none may be
        # acknowledged (its standbys detached before the promotion).
        late, outcomes = [], {"ok": 0, "failed": 0, "unknown": 0}
        deadline = time.time() + 3
        seq = 0
        while time.time() < deadline:
            seq += 1
            rid = (3 << 32 | 15 << 36) | seq
            kind, _ = pgwire.outcome(lambda: (probe if not probe.closed else connect(C, old, timeout=1.0))
                                     .query("INSERT INTO %s (id, w) VALUES (%d, -1)" % (TABLE, rid),
                                            timeout=1.0))
            outcomes[kind] += 1
            if kind == "ok":
                late.append(rid)
            elif kind == "failed":
                FAILED.add(rid)
            else:
                UNKNOWN.add(rid)
            time.sleep(0.05)
        time.sleep(1)
        watcher.join(61)
    probe.close()
    check(not late, "the old primary acknowledged %d writes after it resumed (first %s)"
          % (len(late), [hex(x) for x in late[:3]]))
    # Writes the writers sent it before the stop may be acknowledged
    # during the SIGSTOP (signals reach the processes one by one) or after
    # SIGCONT (a standby's flush report waiting in its socket): they must
    # be on the new primary like every other acknowledged write.
    during = sum(1 for a in w.ack_log if a[1] == old and t_stop < a[0] <= t_cont)
    after = sum(1 for a in w.ack_log if a[1] == old and a[0] > t_cont)
    print("  writes sent to the resumed old primary: %s; acknowledgments from it of writes sent "
          "before the stop: %d while stopping/stopped, %d after SIGCONT" % (outcomes, during, after))
    new, _ = wait_cluster_pg(C, 1, exclude=(old,))
    check(new != old, "a new primary")
    check_rows(C, [new], "after the hang (new primary)")
    check(rejoined, "the hung node %d never streamed from the new primary within 60 s" % old)
    figure("hang: SIGCONT -> resumed old primary streaming from the new primary", rejoined[0] - t_cont)
    check_rows(C, [1, 2, 3], "after the hang (all three)")


def test_hang_node_only():
    """SIGSTOP of the leader's nftraftd only: its postgres keeps running and
    takes writes it can no longer get acknowledged (its standbys detach on
    the fence record), so its WAL diverges. After SIGCONT it must fence
    that primary, rewind and stream from the new one, holding exactly the
    new primary's rows (none of its own unreplicated ones)."""
    old, _ = wait_cluster_pg(C, 2)
    stop_side = threading.Event()
    side = {"ok": [], "unknown": [], "failed": []}

    def side_writer():  # straight to the old primary's port, all along
        seq, conn = 0, None
        while not stop_side.is_set():
            seq += 1
            rid = (250 << 32) | seq  # no Writers id (tag * 16 + w < 250)
            t = time.time()
            try:
                if conn is None or conn.closed:
                    conn = connect(C, old, timeout=1.0)
                kind, why = pgwire.outcome(lambda: conn.query(
                    "INSERT INTO %s (id, w) VALUES (%d, -2)" % (TABLE, rid), timeout=1.0))
            except pgwire.PgConnectError as e:
                kind, why = "failed", e
            side[kind].append((t, time.time(), rid))
            side.setdefault("why", {})[rid] = str(why)[:150]
            if kind != "ok":
                time.sleep(0.05)
    with Monitor(C) as mon, Writers(C, mon, 3, tag=5) as w:
        wait_for("writes through node %d" % old, lambda: len(w.acked) >= 50, 20, 0.05)
        sw = threading.Thread(target=side_writer, daemon=True)
        sw.start()
        w.avoid.add(old)
        t_stop = time.time()
        os.kill(C.pid(old), signal.SIGSTOP)
        try:
            first = wait_for("an acknowledged write on a new primary",
                             lambda: w.first_ack_after(t_stop, set(range(1, 4)) - {old}), 30, 0.01)
            time.sleep(1.5)  # the old postgres keeps taking (unacknowledgeable) writes
        finally:
            t_cont = time.time()
            os.kill(C.pid(old), signal.SIGCONT)
        time.sleep(1)
        stop_side.set()
        sw.join(10)
    figure("hang of nftraftd only -> first acknowledged write on the new primary", first[0] - t_stop)
    late = [r for t0, t1, r in side["ok"] if t0 > first[0]]
    check(not late, "the old primary acknowledged %d writes sent after the new primary took one"
          % len(late))
    for t0, t1, r in side["ok"]:
        ACKED[r] = old
    UNKNOWN.update(r for _, _, r in side["unknown"])
    FAILED.update(r for _, _, r in side["failed"])
    print("  first failures: %s" % [side["why"][r] for _, _, r in side["failed"][:3]])
    print("  writes straight to the old primary: %d acknowledged (all sent before the new primary's "
          "first acknowledgment), %d unknown, %d failed"
          % (len(side["ok"]), len(side["unknown"]), len(side["failed"])))
    new, _ = wait_cluster_pg(C, 1, exclude=(old,))
    wait_for("node %d streaming from the new primary %d" % (old, new), lambda: standby_of(C, old, new), 60, 0.1)
    figure("hang of nftraftd only: SIGCONT -> old primary streaming from the new one", time.time() - t_cont)
    check_rows(C, [1, 2, 3], "after the nftraftd-only hang (all three)")
    with connect(C, new) as conn:
        conn.query("INSERT INTO %s (id, w) VALUES (%d, -3)" % (TABLE, (251 << 32) | 1))
    # the old node holds exactly the new primary's rows (no diverged local commit)
    wait_for("node %d's rows equal the primary's" % old, lambda: ids_on(C, old) == ids_on(C, new), 20, 0.25)


def test_diverged_restart():
    """The old primary's WAL diverged, then it is killed and restarted: a
    PGDATA that was a primary's rewinds before following (bug 6)."""
    old, _ = wait_cluster_pg(C, 2)
    stop_side = threading.Event()

    def side_writer():  # unacknowledgeable writes straight to the old primary
        seq, conn = 0, [None]

        def conn_of():
            if conn[0] is None or conn[0].closed:
                conn[0] = connect(C, old, timeout=1.0)
            return conn[0]
        while not stop_side.is_set():
            seq += 1
            if insert_row(conn_of, (252 << 32) | seq, -4, old, 1.0) != "ok":
                time.sleep(0.05)
    with Monitor(C) as mon, Writers(C, mon, 2, tag=6) as w:
        wait_for("writes through node %d" % old, lambda: len(w.acked) >= 30, 20, 0.05)
        sw = threading.Thread(target=side_writer, daemon=True)
        sw.start()
        w.avoid.add(old)
        t_stop = time.time()
        os.kill(C.pid(old), signal.SIGSTOP)
        wait_for("an acknowledged write on a new primary",
                 lambda: w.first_ack_after(t_stop, set(range(1, 4)) - {old}), 30, 0.01)
        time.sleep(1.5)  # the old postgres keeps writing WAL nobody acknowledges
        stop_side.set()
        sw.join(10)
        kill_node_and_postgres(C, old)
    new, _ = wait_cluster_pg(C, 1, exclude=(old,))
    tl = pg_of(C, new)["timeline"]
    before = len(C.log(old))
    t0 = time.time()
    C.start_node(old)
    wait_for("node %d streaming from node %d on timeline %d" % (old, new, tl),
             lambda: standby_of(C, old, new, tl), 60, 0.1)
    figure("diverged old primary restarted -> rewound and streaming", time.time() - t0)
    log = C.log(old)[before:]
    rw = log.find("rewind from node")
    fol = log.find("start as a standby following")
    check(rw >= 0 and (fol < 0 or rw < fol),
          "node %d followed the new primary before rewinding its diverged WAL:\n%s"
          % (old, "\n".join(l for l in log.split("\n") if "sub=pg" in l)[:3000]))
    check_rows(C, [1, 2, 3], "after the diverged restart (all three)")
    with connect(C, new) as conn:
        conn.query("INSERT INTO %s (id, w) VALUES (%d, -3)" % (TABLE, (253 << 32) | 1))
    wait_for("node %d's rows equal the primary's" % old, lambda: ids_on(C, old) == ids_on(C, new), 20, 0.25)


def test_reclone():
    """A standby stopped, its D/pg wiped, restarted: it clones."""
    lead, _ = wait_cluster_pg(C, 2)
    victim = next(i for i in range(1, 4) if i != lead)
    pid = C.pid(victim)
    os.kill(pid, signal.SIGTERM)
    wait_for("node %d to stop" % victim, lambda: not alive(pid) and not postgres_pids_left(C, victim), 30, 0.05)
    pgdir = os.path.join(C.node_dir(victim), "pg")
    check(os.path.isdir(pgdir), "node %d has %s" % (victim, pgdir))
    # Writes while it is away (the primary still has one sync standby).
    with Monitor(C) as mon, Writers(C, mon, 2, tag=4) as w:
        wait_for("writes while node %d is down" % victim, lambda: len(w.acked) >= 30, 20, 0.05)
    shutil.rmtree(pgdir)
    t0 = time.time()
    C.start_node(victim)
    wait_for("node %d cloned and streaming" % victim, lambda: standby_of(C, victim, lead), 90, 0.1)
    figure("re-clone: node with an empty D/pg restarted -> streaming", time.time() - t0)
    check_rows(C, [victim], "after the re-clone")
    check(os.path.isdir(os.path.join(pgdir, "data")), "PGDATA recreated in %s" % pgdir)


def test_clone_waiting():
    """Commits waiting for a synchronous standby while a standby is cloned
    (the other standby's postgres SIGSTOPped): once the clone streams, they
    are acknowledged and must be visible on it at once, without a later
    write. PostgreSQL alone shows them only after the primary logs a later
    xid completion or a running-xacts snapshot (bgwriter: every 15 s),
    although the clone's replay lsn already equals the primary's (Jepsen pg
    seeds 790348, 1009: "node 2 lacks 2 rows" right after its re-clone)."""
    lead, _ = wait_cluster_pg(C, 2)
    a, b = [i for i in range(1, 4) if i != lead]
    pid = C.pid(b)
    os.kill(pid, signal.SIGTERM)
    wait_for("node %d to stop" % b, lambda: not alive(pid) and not postgres_pids_left(C, b), 30, 0.05)
    shutil.rmtree(os.path.join(C.node_dir(b), "pg"))
    stopped = postgres_pids(C, a)
    signal_node_and_postgres(stopped, signal.SIGSTOP)
    ids = [(15 << 32) | k for k in range(1, 5)]
    res = {}

    def insert(rid):
        res[rid] = pgwire.outcome(lambda: sql(C, lead, "INSERT INTO %s (id, w) VALUES (%d, 0)"
                                              % (TABLE, rid), timeout=90))[0]
    ts = [threading.Thread(target=insert, args=(rid,), daemon=True) for rid in ids]
    try:
        for t in ts:
            t.start()
        wait_for("%d commits waiting for a synchronous standby" % len(ids), lambda: int(sql(
            C, lead, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
        ).rows[0][0]) >= len(ids), 20, 0.1)
        t0 = time.time()
        C.start_node(b)
        for t in ts:
            t.join(90)
    finally:
        signal_node_and_postgres(stopped, signal.SIGCONT)
    check(all(res.get(r) == "ok" for r in ids), "the waiting commits were acknowledged: %s" % res)
    t_ack = time.time()
    figure("re-clone while commits wait for a standby -> acknowledged", t_ack - t0)
    for r in ids:
        ACKED[r] = lead
    seen = [None]

    def visible():
        seen[0] = ids_on(C, b) & set(ids)
        return len(seen[0]) == len(ids)
    try:
        wait_for("the acknowledged commits visible on the clone", visible, 5, 0.1)
    except TestFailure:
        raise TestFailure("node %d (cloned while they waited) shows %d of the %d acknowledged "
                          "rows %.1f s after they were acknowledged (its /status.pg: %s)"
                          % (b, len(seen[0] or ()), len(ids), time.time() - t_ack, pg_of(C, b)))
    figure("acknowledged -> visible on the clone", time.time() - t_ack)
    wait_cluster_pg(C, 2)


def test_broken():
    """A broken node (interrupted rewind) must not block a failover."""
    lead, _ = wait_cluster_pg(C, 2)
    victim = next(i for i in range(1, 4) if i != lead)
    other = next(i for i in range(1, 4) if i not in (lead, victim))
    pid = C.pid(victim)
    os.kill(pid, signal.SIGTERM)
    wait_for("node %d to stop" % victim, lambda: not alive(pid) and not postgres_pids_left(C, victim), 30, 0.05)
    pgdir = os.path.join(C.node_dir(victim), "pg")
    # What an interrupted pg_rewind leaves: the marker, a PGDATA that
    # cannot become consistent (here: no pg_control at all).
    with open(os.path.join(pgdir, "rewind-incomplete"), "w") as f:
        f.write("rewind\n")
    os.unlink(os.path.join(pgdir, "data", "global", "pg_control"))
    with Monitor(C) as mon, Writers(C, mon, 2, tag=7) as w:
        wait_for("writes node %d misses" % victim, lambda: len(w.acked) >= 30, 20, 0.05)
    t0 = time.time()
    kill_node_and_postgres(C, lead)
    C.start_node(victim)

    def broken_seen():
        p = pg_of(C, victim)
        return p if p and p.get("broken") is True and p.get("lsn") == "0/0" else None
    try:
        wait_for("node %d reports broken with lsn 0/0" % victim, broken_seen, 20, 0.05)
        saw_broken = True
    except TestFailure:
        saw_broken = False  # it may have re-cloned already (fast)
    new, _ = wait_cluster_pg(C, 1, timeout=60, exclude=(lead,))
    took = time.time() - t0
    check(new == other, "the healthy standby (node %d) is the new primary, not %s" % (other, new))
    wait_for("node %d re-cloned and streaming from node %d" % (victim, other),
             lambda: standby_of(C, victim, other), 90, 0.1)
    figure("broken node + kill -9 of the primary -> new primary (healthy standby)", took)
    figure("broken node + kill -9 of the primary -> broken node streaming again", time.time() - t0)
    check(not (pg_of(C, victim) or {}).get("broken"), "node %d no longer broken" % victim)
    check(not os.path.exists(os.path.join(pgdir, "rewind-incomplete")), "the marker is gone after the re-clone")
    check_rows(C, [other, victim], "after the broken node's re-clone")
    log = C.log(victim)
    check("rewind-incomplete exists" in log, "node %d logged its marker" % victim)
    check("re-clone from node %d" % other in log, "node %d re-cloned from node %d" % (victim, other))
    print("  node %d (broken) %s; new primary node %d; node %d was raft leader of the failover: %s"
          % (victim, "reported broken, lsn 0/0" if saw_broken else "re-cloned before a read",
             other, victim, "transfer to node %d" % other in log))
    C.start_node(lead)
    wait_cluster_pg(C, 2, timeout=90)


def postgres_pids_left(c, i):
    data = os.path.join(c.node_dir(i), "pg", "data", "postmaster.pid")
    try:
        with open(data) as f:
            pid = int(f.readline())
    except (OSError, ValueError):
        return False
    return alive(pid)


def test_static_down():
    global C
    C.down()
    C.check_logs_clean()
    finish(C, 0, remove=not os.environ.get("KEEP_DIRS"))
    if os.environ.get("KEEP_DIRS"):
        print("  kept %s" % C.dir)
    C = None


# ------------------------------------------------------------ chain cluster

def test_chain_transfer():
    """A standby's NFT transferred away: dropped from replication."""
    global CC
    CC, out, took, lead, pgs = up_pg_cluster(["--anvil-port", str(free_port())],
                                             chain="anvil")
    figure("chain bootstrap: nftraft up --chain anvil --pg -> primary + 2 streaming standbys", took)
    rpc, nft = CC.chain_env()
    ids = {i: CC.status(i)["id"] for i in range(1, 4)}
    with connect(CC, lead) as conn:
        conn.query("CREATE TABLE %s (id bigint PRIMARY KEY, w int, at timestamptz DEFAULT now())" % TABLE)
    victim = next(i for i in range(1, 4) if i != lead)
    keep = next(i for i in range(1, 4) if i not in (lead, victim))
    app = "node%d" % ids[victim]
    check(app in replication_rows(CC, lead), "node %d (%s) replicates before: %s"
          % (victim, app, replication_rows(CC, lead)))
    buyer = address_of(dev_key(30))
    t0 = time.time()
    cli(["transfer", "--token", str(victim), "--to", buyer], dev_key(victim), rpc, nft)

    def dropped():
        lead_now = CC.leader(timeout=5)
        with connect(CC, lead_now) as conn:
            names = sync_names(conn.query("SHOW synchronous_standby_names").scalar())
            repl = {r[0] for r in conn.query("SELECT application_name FROM pg_stat_replication").rows}
            login = conn.query("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'nftraft_%d'"
                               % ids[victim]).scalar()
        return (names is not None and "node%d" % ids[victim] not in names[1] and app not in repl
                and login in (None, "f"), lead_now, names, repl, login)
    res = wait_for("node %d dropped from replication" % victim,
                   lambda: (lambda r: r if r[0] else None)(dropped()), 60, 0.25)
    figure("chain: standby's NFT transferred -> dropped from replication", time.time() - t0)
    _, lead_now, names, repl, login = res
    check(names == (1, {"node%d" % ids[keep]}) or lead_now == keep,
          "synchronous_standby_names names only the remaining member: %s" % (names,))
    time.sleep(3)  # it does not come back
    check(app not in replication_rows(CC, lead_now), "node %d's walsender came back" % victim)
    with connect(CC, lead_now) as conn:  # writes still commit (ANY 1 of the one left)
        kind, r = pgwire.outcome(lambda: conn.query("INSERT INTO %s (id) VALUES (1)" % TABLE, timeout=5))
        check(kind == "ok", "a write after the removal: %s %r" % (kind, r))
    print("  token %d transferred; sync names now %s, walsenders %s, nftraft_%d can log in: %s"
          % (victim, names, sorted(repl), ids[victim], login))
    # Checked last, so the replication checks above run either way.
    check("primary on port %d" % pg_addr(CC, lead)[1] in out,
          "`nftraft up --chain anvil --pg` names the primary's port %d (bootstrap took %.0f s):\n%s"
          % (pg_addr(CC, lead)[1], took, out))


def test_chain_down():
    global CC
    CC.down()
    CC.check_logs_clean()
    finish(CC, 0, remove=not os.environ.get("KEEP_DIRS"))
    CC = None


def run_chained(tests):
    """Run the tests in order; after a failure in the static cluster's
    chain, its later scenarios are not run (they would only fail on its
    state), the chain cluster's still are. 'N passed, N failed'; exit code."""
    out, broken = [], False
    for t in tests:
        static = t not in (test_chain_transfer, test_chain_down)
        if static and broken:
            print("not run %s (an earlier scenario failed)" % t.__name__, flush=True)
            continue
        r = run_one(t)
        out.append(r)
        if r == "fail" and static:
            broken = True
        if r == "fail" and t is test_chain_transfer:
            break
    passed, failed = out.count("ok"), out.count("fail")
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


ALL = {"bootstrap": [test_bootstrap], "latency": [test_latency], "failover": [test_failover],
       "rewind": [test_rewind], "hang": [test_hang], "hang-node": [test_hang_node_only],
       "diverged-restart": [test_diverged_restart],
       "re-clone": [test_reclone], "clone-waiting": [test_clone_waiting],
       "broken": [test_broken],
       "transfer": [test_chain_transfer, test_chain_down]}


def main():
    why = pglocal.pg_available()
    if why is None:
        if not os.access(NFTRAFTD, os.X_OK):
            print("FAIL: no %s (build first)" % NFTRAFTD)
            return 1
        r = subprocess.run([NFTRAFTD, "--help"], capture_output=True, text=True)
        if "--pg-listen" not in r.stdout + r.stderr:
            why = "%s has no --pg" % NFTRAFTD
    if why:
        print("skip: %s" % why)
        return 77
    names = list(ALL)
    if "--only" in sys.argv:
        names = sys.argv[sys.argv.index("--only") + 1].split(",")
        unknown = [n for n in names if n not in ALL]
        if unknown:
            print("unknown scenario(s) %s; known: %s" % (unknown, ", ".join(ALL)))
            return 2
    static = [n for n in names if n != "transfer"]
    tests = []
    if static:
        # failover/rewind/hang/re-clone need the bootstrap; rewind needs failover
        if "rewind" in static and "failover" not in static:
            static.insert(static.index("rewind"), "failover")
        if "bootstrap" not in static:
            static.insert(0, "bootstrap")
        tests += [t for n in ALL if n in static for t in ALL[n]] + [test_static_down]
    if "transfer" in names:
        tests += ALL["transfer"]
    t0 = time.time()
    code = 1
    try:
        code = run_chained(tests)
    finally:
        for c in (C, CC):
            if c is not None:
                c.down()
                finish(c, 1)
    print("test_pg: %.0f s" % (time.time() - t0))
    return code


if __name__ == "__main__":
    sys.exit(main())
