#!/usr/bin/env python3
"""Jepsen-style fault runner: `./run.sh jepsen [flags]` (see --help).

Starts an nftraftd cluster with every node in its own network namespace
(topo.py), runs concurrent clients (increments with a unique `by` each, and
linearizable reads) while nemeses (nemesis.py) inject faults, heals, reads
every node's op log, checks the history exactly (checker.py) and writes
DIR/history.jsonl, DIR/results.json and DIR/report.html (report.py).
With --workload pg every node also runs --pg: clients INSERT unique rows
through pgwire into the primary PostgreSQL and the check (pgcheck.py) is
that every acknowledged row is on every node at the end (unknown outcomes
reported as such); nemeses pg-kill and pg-partition target the primary.
Exit 0: valid; 1: anomalies found; 2: could not run (not root, no build,
bad flags, cluster never came up). Every namespace is removed on exit,
Ctrl-C and error."""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # integration/: pgwire.py
import checker  # noqa: E402
import pgcheck  # noqa: E402
import nemesis as nem  # noqa: E402
import topo as topomod  # noqa: E402

HTTP_PORT, RAFT_PORT = 8080, 9000
PG_PORT, PG_TABLE = 5432, "jepsen_rows"   # --workload pg
RELAY_PORT, RELAY_MARK = 9901, 0x4a44   # delay nemesis: relay.py in each node namespace
CLIENT_TIMEOUT = 5.0
# the clock nemesis: an LD_PRELOAD wall-clock offset per node (Debian libfaketime)
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


class CannotRun(Exception):
    pass


def http(method, url, body=None, timeout=CLIENT_TIMEOUT, headers=None):
    """(kind, status, json) with kind ok (any HTTP answer), refused
    (nothing was sent: definitely not applied) or lost (timeout, reset)."""
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, st = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, st = e.read(), e.code
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionRefusedError):
            return "refused", 0, None
        return "lost", 0, None
    except (ConnectionError, socket.timeout, OSError):
        return "lost", 0, None
    try:
        return "ok", st, json.loads(raw)
    except ValueError:
        return "ok", st, None


class Run:
    def __init__(self, args):
        self.a = args
        self.n = args.nodes
        self.node_ids = list(range(1, self.n + 1))
        # chain mode: anvil's host, and a spare node's for the member-add
        # nemesis (it joins and leaves; the checker reads only nodes 1..n)
        self.topo = topomod.Topology(self.n, extra=["anvil", "spare"]
                                     if args.chain == "anvil" else [])
        self.procs = {}
        self.expect_dead = set()
        self.lock = threading.Lock()
        self.hist = []
        self.status = {}        # node -> last /status (or None)
        self.next_op = 0
        self.next_by = 0
        self.t0 = None
        self.stop_ev = threading.Event()
        self.chain = None
        self.binary = args.binary
        self.relays = {}        # node -> relay.py Popen (delay nemesis)
        self.delay_range = args.delay_ms
        self.peer_ports = (RAFT_PORT, HTTP_PORT)
        self.relay_port, self.relay_mark = RELAY_PORT, RELAY_MARK
        # the NFT nemeses' state (nemesis.py): the tokens one holds, the
        # restarts deferred while a token is revoked, when the last one
        # stopped; the member-add nemesis's spare node
        self.nft_busy = set()
        self.nft_restart = set()
        self.nft_stopped = 0.0
        self.spare_token = None
        self.spare_starts = 0
        self.spare_proc = None
        self.faketime = False   # set by execute() when the clock nemesis runs
        self.pg = args.workload == "pg"
        self.pg_password = None
        self.next_row = 0
        self.pg_partial = None  # node -> rows, read after a failed convergence

    # ---- history ----
    def now(self):
        return time.time() - self.t0

    def record(self, rec):
        with self.lock:
            self.hist.append(rec)

    # ---- nodes ----
    def url(self, i):
        return "http://%s:%d" % (self.topo.ip(i), HTTP_PORT)

    def data_dir(self, i):
        """nodes/n<i>; a replaced instance (nemesis instance-replace) starts
        from an empty one, nodes/n<i>-r<k>, and so does a node under a
        token minted after nft-burn, nodes/n<i>-t<token>."""
        inst = self.chain.instance(i) if self.chain else "node%d" % i
        suffix = inst[len("node%d" % i):]
        if self.chain and self.chain.token(i) != i:  # re-minted after nft-burn
            suffix += "-t%d" % self.chain.token(i)
        return os.path.join(self.a.out, "nodes", "n%d%s" % (i, suffix))

    def node_args(self, i):
        peers = ",".join("%d=%s:%d=http://%s:%d" % (j, self.topo.ip(j), RAFT_PORT,
                                                    self.topo.ip(j), HTTP_PORT)
                         for j in self.node_ids)
        return ["ip", "netns", "exec", self.topo.ns(i)] + self.clock_env(i) + [
                self.binary, "--data-dir", self.data_dir(i),
                "--http", "%s:%d" % (self.topo.ip(i), HTTP_PORT),
                "--raft", "%s:%d" % (self.topo.ip(i), RAFT_PORT),
                "--peers", peers, "--id", str(i), "--bind-outgoing",
                "--enable-fault-switch", "--forward-timeout", "2000",
                "--apply-timeout", "3000", "--snapshot-threshold", "512",
                "--snapshot-trailing", "64",
                # the checker needs every entry and every key, not a window
                "--log-retention", "0", "--key-retention", "0"] + (
                    self.chain.node_args(i) if self.chain
                                                else ["--cluster-secret-file", self.secret()]) + (
                    ["--pg", "--pg-listen", "%s:%d" % (self.topo.ip(i), PG_PORT),
                     "--pg-password-file", self.pg_password_file()] if self.pg else [])

    def pg_password_file(self):
        """--workload pg: the nftraft role's password, one per run (0600)."""
        path = self.random_file("pg.password", 16)
        with open(path) as f:
            self.pg_password = f.read().strip()
        return path

    def clock_file(self, i):
        return os.path.join(self.a.out, "nodes", "n%d.faketime" % i)

    def clock_env(self, i):
        """With the clock nemesis: `env` running the node under libfaketime,
        its wall clock offset by the contents of clock_file(i) ("+0" = real
        time, re-read at most every second); CLOCK_MONOTONIC stays real, as
        after an NTP step. Without it: nothing, the node runs unchanged."""
        if not self.faketime:
            return []
        path = self.clock_file(i)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("+0\n")
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        return ["env", "LD_PRELOAD=" + FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE=" + path,
                "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1",
                "ASAN_OPTIONS=" + asan]

    def secret(self):
        """Static mode's raft handshake secret, one per run (mode 0600)."""
        return self.random_file("cluster.secret", 32)

    def random_file(self, name, nbytes):
        """nodes/NAME: nbytes random bytes as hex and a newline, written
        once per run (mode 0600); its path."""
        path = os.path.join(self.a.out, "nodes", name)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, (os.urandom(nbytes).hex() + "\n").encode())
            os.close(fd)
        return path

    def restart(self, i):
        # A chain-mode node refuses to start while its token is revoked (it
        # exits 1: "not an active registered instance"); an operator starts
        # it again once the token is registered again, and so does the NFT
        # nemesis that revoked it (nemesis.nft_release).
        if i in self.nft_busy:
            self.nft_restart.add(i)
            return
        # Already running (an NFT nemesis restarted a node the kill nemesis
        # had stopped): a second process would only find the data dir locked.
        if i in self.procs and self.procs[i].poll() is None:
            self.expect_dead.discard(i)
            return
        os.makedirs(self.data_dir(i), exist_ok=True)
        logf = open(os.path.join(self.a.out, "nodes", "n%d.log" % i), "a")
        self.procs[i] = subprocess.Popen(self.node_args(i), stdout=subprocess.DEVNULL,
                                         stderr=logf, start_new_session=True)
        logf.close()
        self.expect_dead.discard(i)

    def kill(self, i):
        self.expect_dead.add(i)
        p = self.procs[i]
        try:
            p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    def signal(self, i, sig):
        p = self.procs[i]
        if p.poll() is None:
            os.kill(p.pid, sig)

    def start_relay(self, i, ms, jitter, seed):
        """relay.py in node i's namespace, listening on its RELAY_PORT; returns
        once it listens. Raises RuntimeError when it does not come up."""
        self.stop_relay(i)
        logf = open(os.path.join(self.a.out, "nodes", "relay-n%d.log" % i), "a")
        p = subprocess.Popen(["ip", "netns", "exec", self.topo.ns(i), sys.executable,
                              os.path.join(HERE, "relay.py"),
                              "--listen", "%s:%d" % (self.topo.ip(i), RELAY_PORT),
                              "--mark", str(RELAY_MARK), "--delay-ms", str(ms),
                              "--jitter-ms", str(jitter), "--seed", str(seed),
                              "--parent", str(os.getpid())],
                             stdout=subprocess.PIPE, stderr=logf, text=True,
                             start_new_session=True)
        logf.close()
        self.relays[i] = p
        if p.stdout.readline().strip() != "ready":
            self.stop_relay(i)
            raise RuntimeError("delay relay for node %d did not start (see nodes/relay-n%d.log)"
                               % (i, i))

    def stop_relay(self, i):
        p = self.relays.pop(i, None)
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p.stdout.close()

    def stop_relays(self):
        for i in list(self.relays):
            self.stop_relay(i)

    def fault_switch(self, i, on):
        k, st, _ = http("POST", self.url(i) + "/fault", {"http_stall": on}, timeout=2)
        return k == "ok" and st == 200

    def leader(self):
        with self.lock:
            best = None
            for i, s in self.status.items():
                if s and s.get("role") == "leader" and (best is None or
                                                        s["term"] > self.status[best]["term"]):
                    best = i
            return best

    def pg_primary(self):
        """The node that says it is the raft leader and its PostgreSQL the
        primary (the highest term if several do), or None."""
        with self.lock:
            best = None
            for i, s in self.status.items():
                if s and s.get("role") == "leader" and s.get("pg") == "primary" and (
                        best is None or s["term"] > self.status[best]["term"]):
                    best = i
            return best

    def pg_connect(self, i, timeout=CLIENT_TIMEOUT):
        import pgwire
        return pgwire.connect(self.topo.ip(i), PG_PORT, "nftraft", self.pg_password,
                              timeout=timeout, connect_timeout=2.0, application_name="jepsen")

    # ---- threads ----
    def monitor(self, i):
        while not self.stop_ev.is_set():
            t = self.now()
            k, st, j = http("GET", self.url(i) + "/status", timeout=0.5)
            ch = None
            if k == "ok" and st == 200 and j:
                s = {"role": j.get("role"), "term": j.get("term", 0)}
                if isinstance(j.get("pg"), dict):
                    s["pg"] = j["pg"].get("role")
                role = s["role"]
                c = j.get("chain")
                if isinstance(c, dict):
                    ch = {"leader": (c.get("leader") or {}).get("token_id"),
                          "votes": c.get("votes_against_leader"), "block": c.get("block"),
                          "connected": c.get("connected")}
            else:
                s = None
                role = "down" if self.procs[i].poll() is not None else "unreachable"
            with self.lock:
                self.status[i] = s
            rec = {"kind": "status", "node": i, "time": round(t, 3), "role": role,
                   "term": s["term"] if s else None}
            if s and "pg" in s:
                rec["pg"] = s["pg"]
            if ch:
                rec["chain"] = ch
            self.record(rec)
            self.stop_ev.wait(0.25)

    def client(self, proc):
        if self.pg:
            return self.pg_client(proc)
        rnd = random.Random(self.a.seed * 1000 + proc)
        interval = self.a.concurrency / self.a.rate if self.a.rate > 0 else 0
        nxt = time.time()
        while not self.stop_ev.is_set():
            if interval:
                nxt += interval
                d = nxt - time.time()
                if d > 0 and self.stop_ev.wait(d):
                    break
            if rnd.random() < 0.3:
                if self.op(proc, rnd, "read") != "ok":
                    self.stop_ev.wait(0.05)  # no busy loop against a node that refuses
                continue
            with self.lock:
                self.next_by += 1
                by = self.next_by
            keyed = {"on": True, "off": False}.get(self.a.idempotency_keys, rnd.random() < 0.5)
            key = "jk%d-%d" % (self.a.seed, by) if keyed else None
            for attempt in range(4 if keyed else 1):
                t = self.op(proc, rnd, "inc", by, key)
                if t != "ok":
                    self.stop_ev.wait(0.05)
                if t != "info" or self.stop_ev.is_set():
                    break

    def op(self, proc, rnd, f, by=None, key=None):
        # Jepsen-style: each client process mostly talks to its own node, so a
        # node that hangs does not capture every client.
        node = (self.node_ids[proc % self.n] if rnd.random() < 0.8
                else rnd.choice(self.node_ids))
        with self.lock:
            self.next_op += 1
            oid = self.next_op
        inv = self.now()
        if f == "inc":
            k, st, j = http("POST", self.url(node) + "/increment", {"by": by},
                            headers={"Idempotency-Key": key} if key else None)
        else:
            k, st, j = http("GET", self.url(node) + "/counter")
        comp = self.now()
        rec = {"kind": "op", "id": oid, "process": proc, "f": f, "node": node,
               "invoke": round(inv, 4), "complete": round(comp, 4)}
        if f == "inc":
            rec.update(by=by, key=key)
        if k == "ok" and st == 200 and isinstance(j, dict):
            rec.update(type="ok", value=j.get("value"), index=j.get("index"))
            if j.get("duplicate"):
                rec["duplicate"] = True
        elif k == "refused" or (k == "ok" and isinstance(j, dict) and
                                j.get("outcome") == "failed"):
            rec.update(type="fail", error=(j or {}).get("error", "connection refused"),
                       status=st)
        else:
            rec.update(type="info", error=(j or {}).get("error", "no answer (%s)" % k)
                       if isinstance(j, dict) or j is None else str(j)[:100], status=st)
        self.record(rec)
        return rec["type"]

    def pg_client(self, proc):
        """--workload pg: INSERTs of unique rows through pgwire, to the node
        /status names as the primary (80%) or a random node (a standby
        refuses: a failed write). One connection, reopened after any error
        or when the target changes. Outcomes: ok (CommandComplete without a
        cancelled synchronous wait), fail (nothing reached the server, or
        ERROR), info (unknown: timeout, reset, FATAL, cancelled sync wait)."""
        import pgwire
        rnd = random.Random(self.a.seed * 1000 + proc)
        interval = self.a.concurrency / self.a.rate if self.a.rate > 0 else 0
        nxt = time.time()
        conn, cnode = None, None
        while not self.stop_ev.is_set():
            if interval:
                nxt += interval
                d = nxt - time.time()
                if d > 0 and self.stop_ev.wait(d):
                    break
            prim = self.pg_primary()
            node = prim if (prim is not None and rnd.random() < 0.8) else rnd.choice(self.node_ids)
            if conn is not None and cnode != node:
                conn.close()
                conn = None
            with self.lock:
                self.next_op += 1
                oid = self.next_op
                self.next_row += 1
                row = self.next_row
            inv = self.now()

            def insert():
                nonlocal conn, cnode
                if conn is None:
                    conn, cnode = self.pg_connect(node), node
                return conn.query("INSERT INTO %s (id, proc) VALUES (%d, %d)" % (PG_TABLE, row, proc))
            kind, res = pgwire.outcome(insert)
            comp = self.now()
            rec = {"kind": "op", "id": oid, "process": proc, "f": "insert", "node": node,
                   "row": row, "invoke": round(inv, 4), "complete": round(comp, 4),
                   "type": {"ok": "ok", "failed": "fail"}.get(kind, "info")}
            if kind != "ok":
                rec["error"] = str(res)[:200] if not isinstance(res, pgwire.Result) else \
                    "synchronous replication wait cancelled"
                if conn is not None:
                    conn.close()
                conn = None
                self.stop_ev.wait(0.05)
            self.record(rec)
        if conn is not None:
            conn.close()

    def pg_setup(self, timeout=60):
        """The rows table, created through the first primary (retried)."""
        import pgwire
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            for i in self.node_ids:
                k, st, j = http("GET", self.url(i) + "/status", timeout=1)
                if not (k == "ok" and st == 200 and j.get("role") == "leader"
                        and (j.get("pg") or {}).get("role") == "primary"):
                    continue
                try:
                    with self.pg_connect(i) as c:
                        c.query("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY, proc int)"
                                % PG_TABLE)
                    return None
                except pgwire.PgWireError as e:
                    last = "node %d: %s" % (i, e)
            time.sleep(0.2)
        return "no primary PostgreSQL took the CREATE TABLE within %ds (%s)" % (timeout, last)

    def pg_converge(self, timeout=120):
        """After healing: one primary, and every other node's PostgreSQL a
        standby that follows it: in recovery, its walreceiver streaming from
        the primary's address on the primary's timeline, its /status.pg not
        "diverged", and replayed up to the primary's WAL position (an lsn
        alone proves nothing: a standby on another history can be past it).
        Then every node's rows. (rows, None) or (None, why not)."""
        import pgwire
        deadline = time.time() + timeout
        why = "no primary"
        while time.time() < deadline:
            time.sleep(0.3)
            pgs = {}
            for i in self.node_ids:
                k, st, j = http("GET", self.url(i) + "/status", timeout=2)
                pgs[i] = (j or {}).get("pg") if k == "ok" and st == 200 else None
                if pgs[i] is not None:
                    pgs[i]["raft_role"] = j.get("role")
            prim = [i for i, p in pgs.items() if p and p.get("role") == "primary"
                    and p.get("raft_role") == "leader"]
            if len(prim) != 1:
                why = "primaries %s; nodes: %s" % (prim, {
                    i: (p["raft_role"], p.get("role"), p.get("action")) if p else None
                    for i, p in pgs.items()})
                continue
            p = prim[0]
            try:
                with self.pg_connect(p) as c:
                    r = c.query("SELECT pg_current_wal_lsn(), "
                                "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)").rows[0]
                target, tl = pgwire.lsn_int(r[0]), int(r[1], 16)
                behind = []
                for i in self.node_ids:
                    if i == p:
                        continue
                    with self.pg_connect(i) as c:
                        r = c.query("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                                    "(SELECT status FROM pg_stat_wal_receiver), "
                                    "(SELECT received_tli FROM pg_stat_wal_receiver), "
                                    "(SELECT sender_host FROM pg_stat_wal_receiver)").rows[0]
                    rec, replay, status, rtl, sender = r
                    st = pgs.get(i) or {}
                    if rec != "t":
                        behind.append((i, "not in recovery"))
                    elif status != "streaming" or sender != self.topo.ip(p):
                        behind.append((i, "walreceiver %s from %s, not streaming from the "
                                          "primary %s" % (status, sender, self.topo.ip(p))))
                    elif rtl is None or int(rtl) != tl:
                        behind.append((i, "receives timeline %s, the primary is on %d"
                                       % (rtl, tl)))
                    elif st.get("diverged"):
                        behind.append((i, "its /status.pg says diverged (%s)" % st.get("action")))
                    elif replay is None or pgwire.lsn_int(replay) < target:
                        behind.append((i, "replayed %s < the primary's %X/%X"
                                       % (replay, target >> 32, target & 0xffffffff)))
                if behind:
                    why = "not following the primary (node %d): %s" % (p, behind)
                    continue
                rows = {}
                for i in self.node_ids:
                    with self.pg_connect(i, timeout=20) as c:
                        rows[i] = {int(x[0]) for x in c.query("SELECT id FROM %s" % PG_TABLE).rows}
                return rows, None
            except pgwire.PgWireError as e:
                why = str(e)
        self.pg_partial = {}
        for i in self.node_ids:  # what can still be read (a detached standby can)
            try:
                with self.pg_connect(i, timeout=20) as c:
                    self.pg_partial[i] = {int(x[0]) for x in
                                          c.query("SELECT id FROM %s" % PG_TABLE).rows}
            except pgwire.PgWireError:
                pass
        return None, "PostgreSQL did not converge within %ds of healing: %s" % (timeout, why)

    def nemesis(self, kinds):
        rnd = random.Random(self.a.seed)
        while not self.stop_ev.wait(rnd.uniform(1.0, 3.0)):
            pick = rnd.sample(kinds, 2 if (len(kinds) > 1 and rnd.random() < 0.3) else 1)
            if len(pick) == 2 and not nem.compatible(*pick):
                pick = pick[:1]
            active = []
            for cls in pick:
                n = cls()
                try:
                    d = n.start(self, rnd)
                except Exception as e:  # logged, not fatal; undo whatever part took effect
                    d = None
                    self.record({"kind": "nemesis", "type": "error", "f": cls.name,
                                 "time": round(self.now(), 3), "value": str(e)})
                    try:
                        n.stop(self)
                    except Exception:
                        pass
                if d is not None:
                    active.append(n)
                    self.record({"kind": "nemesis", "type": "start", "f": n.name,
                                 "time": round(self.now(), 3), "value": d})
            self.stop_ev.wait(rnd.uniform(2.0, 6.0))
            for n in reversed(active):
                self.stop_nemesis(n)

    def stop_nemesis(self, n):
        try:
            d = n.stop(self)
        except Exception as e:
            d = {"error": str(e)}
        self.record({"kind": "nemesis", "type": "stop", "f": n.name,
                     "time": round(self.now(), 3), "value": d})

    # ---- phases ----
    def wait_leader(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i in self.node_ids:
                k, st, j = http("GET", self.url(i) + "/status", timeout=1)
                if k == "ok" and st == 200 and j.get("role") == "leader" and j.get("ready"):
                    return i
            time.sleep(0.1)
        return None

    def heal_all(self):
        if self.chain and self.chain.proxy:
            self.chain.proxy.lag = 0.0
        for i in self.node_ids:
            self.topo.heal(i, "jpart")
            self.topo.heal(i, "jloss")
            self.topo.heal(i, "jrpc")
            self.topo.heal(i, "jdelay")
            if self.procs[i].poll() is not None:
                self.restart(i)
            else:
                os.kill(self.procs[i].pid, signal.SIGCONT)
        time.sleep(0.5)
        self.stop_relays()
        for i in self.node_ids:
            self.fault_switch(i, False)

    def converge(self, timeout=60):
        """A linearizable read, then every node applied exactly up to it;
        None or why not. Exactly, not at least: a write still in flight when
        the clients stopped (a forwarded one whose client timed out, an old
        leader's entry) may commit after the read, and reading the nodes'
        logs while only some have applied it would look like diverging logs.
        A node ahead of the read means that happened: read again. After a
        linearizable read (the leader's barrier committed) no pending entry
        of an older leader can commit any more."""
        deadline = time.time() + timeout
        total = None
        while time.time() < deadline:
            if total is None:
                for i in self.node_ids:
                    k, st, j = http("GET", self.url(i) + "/counter", timeout=2)
                    if k == "ok" and st == 200:
                        total = j["value"]
                        break
                if total is None:
                    time.sleep(0.1)
                    continue
            vals = [http("GET", self.url(i) + "/counter?stale=1", timeout=2)
                    for i in self.node_ids]
            got = [j["value"] if k == "ok" and st == 200 else None for k, st, j in vals]
            if all(v == total for v in got):
                return None
            if any(v is not None and v > total for v in got):
                total = None  # a write committed after the read: read again
                continue
            time.sleep(0.2)
        if total is None:
            return "no linearizable read within %ds of healing" % timeout
        return "nodes did not all apply up to the final read within %ds" % timeout

    def full_log(self, i):
        entries, frm = [], 1
        while True:
            k, st, j = http("GET", "%s/log?from=%d&limit=1000" % (self.url(i), frm), timeout=5)
            if k != "ok" or st != 200:
                raise CannotRun("GET /log on node %d failed" % i)
            entries += j["entries"]
            if not j["entries"]:
                return entries
            frm = j["next"]

    def execute(self):
        a = self.a
        kinds = nem.parse(a.nemesis, a.chain != "none", a.workload)
        self.faketime = any(k.name == "clock" for k in kinds)
        if self.faketime and not os.path.exists(FAKETIME_LIB):
            raise CannotRun("the clock nemesis needs %s (apt-get install libfaketime)"
                            % FAKETIME_LIB)
        self.topo.up()
        # The namespaces' prefix, so a caller can check that exactly these
        # are gone afterwards (other runs may share the machine).
        with open(os.path.join(self.a.out, "netns-prefix"), "w") as f:
            f.write(self.topo.ns("") + "\n")
        for i in self.node_ids + self.topo.extra:
            self.topo.init_faults(i)
        if a.chain == "anvil":
            import chain as chainmod
            self.chain = chainmod.Chain(self.topo, a.out, os.path.dirname(self.binary))
            try:
                self.chain.up(self.n)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                raise CannotRun("chain setup: %s" % e)
        self.t0 = time.time()
        for i in self.node_ids:
            self.restart(i)
        if self.wait_leader(30) is None:
            raise CannotRun("the cluster elected no leader within 30 s (see %s/nodes/)" % a.out)
        if self.pg:
            why = self.pg_setup()
            if why:
                raise CannotRun(why)
        threads = [threading.Thread(target=self.monitor, args=(i,), daemon=True)
                   for i in self.node_ids]
        threads += [threading.Thread(target=self.client, args=(p,), daemon=True)
                    for p in range(a.concurrency)]
        nt = threading.Thread(target=self.nemesis, args=(kinds,), daemon=True) if kinds else None
        self.record({"kind": "run", "type": "start", "time": round(self.now(), 3)})
        for t in threads:
            t.start()
        if nt:
            nt.start()
        end = time.time() + a.time
        while time.time() < end:
            time.sleep(min(1.0, max(0.0, end - time.time())))
            if not a.quiet:
                with self.lock:
                    ops = sum(1 for r in self.hist if r["kind"] == "op")
                sys.stderr.write("\r  %3.0f/%d s  %d ops  " % (a.time - (end - time.time()),
                                                               a.time, ops))
        if not a.quiet:
            sys.stderr.write("\n")
        self.stop_ev.set()
        if nt:
            nt.join()
        for t in threads:
            t.join(CLIENT_TIMEOUT + 2)
        self.record({"kind": "run", "type": "stop", "time": round(self.now(), 3)})
        crashed = [(i, self.procs[i].returncode) for i in self.node_ids
                   if self.procs[i].poll() is not None and i not in self.expect_dead]
        self.heal_all()
        if self.pg:
            logs, why = self.pg_converge()
            return crashed, why, logs or {}
        why = self.converge()
        logs = {}
        if why is None:
            for i in self.node_ids:
                logs[i] = self.full_log(i)
        return crashed, why, logs

    def spare_args(self, token, data_dir):
        """nftraftd for the member-add nemesis's spare: a fresh data dir and
        --join; it learns its raft id from the contract, and the nodes learn
        where it is from its registered endpoints (their --peers do not
        name it)."""
        ip = self.topo.ip("spare")
        peers = ",".join("%d=%s:%d=http://%s:%d" % (j, self.topo.ip(j), RAFT_PORT,
                                                    self.topo.ip(j), HTTP_PORT)
                         for j in self.node_ids)
        return ["ip", "netns", "exec", self.topo.ns("spare"), self.binary,
                "--data-dir", data_dir, "--http", "%s:%d" % (ip, HTTP_PORT),
                "--raft", "%s:%d" % (ip, RAFT_PORT), "--peers", peers,
                "--bind-outgoing", "--join", "--forward-timeout", "2000",
                "--apply-timeout", "3000", "--snapshot-threshold", "512",
                "--snapshot-trailing", "64", "--log-retention", "0",
                "--key-retention", "0"] + self.chain.spare_args(token)

    def shutdown_nodes(self):
        spare = self.spare_proc
        if spare is not None and spare.poll() is None:
            spare.terminate()
            try:
                spare.wait(10)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait()
        for i, p in self.procs.items():
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.terminate()
                    p.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    p.kill()
                    p.wait()


def clock_faults(hist, on):
    """The clock nemesis must have really skewed a node's wall clock: a
    start whose offset a node's Date header did not show (recorded as an
    error), or a run whose starts were never observed (and not all
    unobservable), is a defect. A run where it never started is a warning
    (clock_unobserved): there was nothing to verify (CI seed 566760)."""
    if not on:
        return []
    ev = [h for h in hist if h["kind"] == "nemesis" and h["f"] == "clock"]
    out = ["clock nemesis: %s" % h["value"] for h in ev
           if h["type"] == "error" and "did not take effect" in str(h["value"])]
    starts = [h for h in ev if h["type"] == "start"]
    if starts and not any(h["value"].get("observed") for h in starts) and \
            not all(h["value"].get("unobservable") for h in starts):
        out.append("clock nemesis: no node was ever seen with its wall clock skewed")
    return out


def clock_unobserved(hist, on):
    """A warning when the clock nemesis never started, or every clock start
    hit only nodes that could not be read then (paused, partitioned from
    the runner): nothing verified it."""
    if not on:
        return []
    starts = [h for h in hist if h["kind"] == "nemesis" and h["f"] == "clock"
              and h["type"] == "start"]
    if not starts:  # the random picks never chose it
        return ["clock nemesis: never started in this run (random picks): "
                "no clock offset was tested"]
    if not any(h["value"].get("observed") for h in starts):
        return ["clock nemesis: its %d start(s) hit only nodes whose clock could not be read "
                "then (%s): the offsets were not verified in this run" %
                (len(starts), ", ".join(str(h["value"].get("unobservable")) for h in starts))]
    return []


def sanitizer_reports(out, ids):
    """(anomalies, warnings) from the node logs. AddressSanitizer and UBSan
    errors are anomalies; a LeakSanitizer report is an anomaly unless every
    leak's allocating frame is inside the raft library (its sources are
    compiled with relative "src/..." paths; ours are absolute), which is
    kept as a warning: a raft 0.22.1 leak, not this project's."""
    bad = ("ERROR: AddressSanitizer", "runtime error:", "Assertion")
    found, warn = [], []
    for i in ids:
        try:
            text = open(os.path.join(out, "nodes", "n%d.log" % i), errors="replace").read()
        except OSError:
            continue
        found += ["node %d: %s" % (i, b) for b in bad if b in text]
        for rep in text.split("ERROR: LeakSanitizer")[1:]:
            blocks = [b for b in rep.split("\n\n") if "leak of" in b]
            ours = []
            for b in blocks:
                frames = [l.split(" in ", 1)[1] for l in b.split("\n")
                          if l.strip().startswith("#") and " in " in l
                          and "interceptor" not in l and "libsanitizer" not in l]
                if not frames or not frames[0].split(" ", 1)[-1].startswith("src/"):
                    ours.append(b.strip().split("\n")[0])
            if ours:
                found.append("node %d: LeakSanitizer: %s" % (i, "; ".join(ours[:3])))
            else:
                warn.append("node %d: LeakSanitizer: %d leak(s), all allocated inside the raft "
                            "library (e.g. %s)" % (i, len(blocks), blocks[0].split("\n")[0]
                                                   if blocks else "?"))
    return found, warn


def pg_partitions(hist):
    """[(node, start, stop)] of the pg-partition nemesis (stop None: healed
    at the end)."""
    out, open_ = [], {}
    for h in hist:
        if h["kind"] == "nemesis" and h["f"] == "pg-partition":
            if h["type"] == "start":
                open_[h["f"]] = (h["value"]["primary"], h["time"])
            elif h["type"] == "stop" and h["f"] in open_:
                node, t = open_.pop(h["f"])
                out.append((node, t, h["time"]))
    out += [(node, t, None) for node, t in open_.values()]
    return out


def pg_fence_times(hist):
    """For each pg-partition: seconds from the cut to the first /status of
    the isolated node (as the clients reach it) whose PostgreSQL is no
    longer primary (fenced); None when the monitor did not see that before
    the heal, or the node was killed first (pg-kill in the same round)."""
    out = []
    for node, start, stop in pg_partitions(hist):
        t = None
        for h in hist:
            if (h["kind"] != "status" or h["node"] != node or h["time"] <= start
                    or (stop is not None and h["time"] > stop)):
                continue
            if h["role"] == "down":
                break
            if h["role"] != "unreachable" and h.get("pg") != "primary":
                t = h["time"]
                break
        out.append(round(t - start, 2) if t is not None else None)
    return out


def availability(ops, duration):
    oks = sorted(o["complete"] for o in ops if o["type"] == "ok")
    gaps, prev = [], 0.0
    for t in oks + [duration]:
        gaps.append((t - prev, prev))
        prev = max(prev, t)
    longest = max(gaps) if gaps else (duration, 0.0)
    secs = set(int(t) for t in oks)
    return {"ok_per_s": round(len(oks) / duration, 1) if duration else 0,
            "longest_unavailability_s": round(longest[0], 2),
            "longest_unavailability_from_s": round(longest[1], 2),
            "seconds_with_an_ok_op": round(len(secs) / max(1, int(duration)), 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="./run.sh jepsen", description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    ap.add_argument("--chain", choices=("none", "anvil"), default="none")
    ap.add_argument("--time", type=float, default=60, help="seconds of workload (default 60)")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--nemesis", default="all",
                    help="comma list of %s, 'all' or 'none'" % ",".join(nem.REGISTRY))
    ap.add_argument("--delay-ms", default="50-200", metavar="LO-HI",
                    help="delay nemesis: one-way delay drawn from LO-HI ms, +/- 25%% jitter "
                         "(default 50-200)")
    ap.add_argument("--rate", type=float, default=0, help="total ops/s target (0 = open loop)")
    ap.add_argument("--idempotency-keys", choices=("on", "off", "mixed"), default="mixed")
    ap.add_argument("--workload", choices=("counter", "pg"), default="counter",
                    help="counter: increments and reads (default); pg: every node runs "
                         "--pg, clients INSERT unique rows into PostgreSQL through the "
                         "primary, checked: no acknowledged row lost (pgcheck.py)")
    ap.add_argument("--out", default=None, help="output dir (default /tmp/nftraft-jepsen-SEED)")
    ap.add_argument("--binary", default=None, help=argparse.SUPPRESS)  # self-test: unsafe daemon
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        lo, _, hi = a.delay_ms.partition("-")
        rng = (float(lo), float(hi or lo))
        if not 0 <= rng[0] <= rng[1] <= 10000:
            raise ValueError
    except ValueError:
        print("jepsen: --delay-ms wants LO-HI in ms, 0 <= LO <= HI <= 10000 (got %r)"
              % a.delay_ms, file=sys.stderr)
        return 2
    a.delay_ms = rng
    if a.seed is None:
        a.seed = random.randrange(1, 10**6)
    a.out = os.path.abspath(a.out or "/tmp/nftraft-jepsen-%d" % a.seed)
    build = os.environ.get("NFTRAFT_BUILD") or os.path.join(HERE, "..", "..", "build")
    a.binary = os.path.abspath(a.binary or os.path.join(build, "nftraftd"))
    try:
        nem.parse(a.nemesis, a.chain != "none", a.workload)
    except ValueError as e:
        print("jepsen: %s" % e, file=sys.stderr)
        return 2
    why = topomod.preflight()
    if why:
        print("jepsen: cannot run: %s" % why, file=sys.stderr)
        return 2
    if not os.access(a.binary, os.X_OK):
        print("jepsen: cannot run: no daemon binary at %s (build first: ./run.sh build)"
              % a.binary, file=sys.stderr)
        return 2
    if a.workload == "pg":
        try:
            helptext = subprocess.run([a.binary, "--help"], capture_output=True, text=True,
                                      timeout=10)
            helptext = helptext.stdout + helptext.stderr
        except (OSError, subprocess.SubprocessError) as e:
            helptext = str(e)
        if "--pg-listen" not in helptext:
            print("jepsen: cannot run: %s has no --pg (--workload pg)" % a.binary, file=sys.stderr)
            return 2
    if os.path.exists(os.path.join(a.out, "nodes")):
        print("jepsen: %s already holds a run; give another --out" % a.out, file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    if a.workload == "pg":  # postgres runs as its own OS user under nodes/n<i>/pg
        os.chmod(a.out, 0o755)
        d = os.path.dirname(a.out)
        while d and d != "/":
            if os.geteuid() == 0 and not os.stat(d).st_mode & 0o001:
                print("jepsen: cannot run: %s (mode %o) is not searchable by the user postgres "
                      "runs as (--workload pg): chmod o+x it or give another --out"
                      % (d, os.stat(d).st_mode & 0o7777), file=sys.stderr)
                return 2
            d = os.path.dirname(d)
    print("jepsen: seed %d, %d nodes, %.0f s, %d clients, nemesis %s, keys %s, workload %s -> %s" %
          (a.seed, a.nodes, a.time, a.concurrency, a.nemesis, a.idempotency_keys, a.workload,
           a.out), flush=True)
    r = Run(a)
    prev = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

    def on_term(signum, frame):
        raise KeyboardInterrupt
    for s in prev:
        signal.signal(s, on_term)
    try:
        crashed, nowhy, logs = r.execute()
    except KeyboardInterrupt:
        print("jepsen: interrupted; cleaning up", file=sys.stderr)
        return 2
    except (CannotRun, topomod.TopoError) as e:
        print("jepsen: cannot run: %s" % e, file=sys.stderr)
        return 2
    finally:
        r.stop_ev.set()
        r.stop_relays()
        r.shutdown_nodes()
        if r.chain:
            r.chain.stop()
        r.topo.down()
        for s, h in prev.items():
            signal.signal(s, h)
    with open(os.path.join(a.out, "history.jsonl"), "w") as f:
        for rec in r.hist:
            f.write(json.dumps(rec) + "\n")
    for i, lg in logs.items():
        with open(os.path.join(a.out, "nodes", "n%d.%s.json" % (i, "rows" if r.pg else "oplog")),
                  "w") as f:
            json.dump(sorted(lg) if r.pg else lg, f)
    ops = [h for h in r.hist if h["kind"] == "op"]
    if nowhy is None and r.pg:
        res = pgcheck.check(ops, logs, pg_partitions(r.hist))
    elif nowhy is None:
        res = checker.check(ops, logs)
    else:
        res = {"valid": False, "counts": {"no-convergence": 1}, "log_entries": None,
               "anomalies": [{"type": "no-convergence", "msg": nowhy, "ops": [], "index": []}]}
        if r.pg and r.pg_partial is not None:
            part = pgcheck.check_unconverged(ops, r.pg_partial)
            res["unconverged"] = part
            for an in part["anomalies"]:
                res["counts"][an["type"]] = res["counts"].get(an["type"], 0) + 1
                res["anomalies"].append(an)
    extra = [("node-crashed", "node %d exited (status %s) without being killed by the "
              "nemesis; see nodes/n%d.log" % (i, rc, i)) for i, rc in crashed]
    san, warnings = sanitizer_reports(a.out, r.node_ids)
    extra += [("sanitizer", s) for s in san]
    extra += [("clock-fault", m) for m in clock_faults(r.hist, r.faketime)]
    warnings += clock_unobserved(r.hist, r.faketime)
    for typ, msg in extra:
        res["valid"] = False
        res["counts"][typ] = res["counts"].get(typ, 0) + 1
        res["anomalies"].append({"type": typ, "msg": msg, "ops": [], "index": []})
    counts = {}
    for o in ops:
        c = counts.setdefault(o["f"], {"ok": 0, "fail": 0, "info": 0})
        c[o["type"]] += 1
    results = {"valid": res["valid"], "seed": a.seed, "nodes": a.nodes, "chain": a.chain,
               "workload": a.workload, "unknown_writes": res.get("unknown"),
               "pg_unconverged": res.get("unconverged"),
               "pg_partition_fence_s": pg_fence_times(r.hist) if r.pg else None,
               "time_s": a.time, "concurrency": a.concurrency, "nemesis": a.nemesis,
               "idempotency_keys": a.idempotency_keys, "ops": len(ops), "counts": counts,
               "log_entries": res.get("log_entries"), "anomaly_counts": res["counts"],
               "anomalies": res["anomalies"], "warnings": warnings, "availability": availability(ops, a.time),
               "nemesis_events": sum(1 for h in r.hist if h["kind"] == "nemesis"
                                     and h["type"] == "start")}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    try:
        import report
        report.write(a.out, r.hist, results)
    except Exception as e:  # the verdict stands without the report
        print("jepsen: report failed: %s" % e, file=sys.stderr)
    c = counts
    if r.pg:
        u = res.get("unknown") or {"total": c.get("insert", {}).get("info", 0)}
        print("jepsen: %d inserts (ok/fail/info %s; unknown outcome: %d, of which %d present "
              "on every node, %d absent), %d rows, ok/s %.1f, longest unavailability %.1f s" %
              (len(ops), "/".join(str(c.get("insert", {}).get(k, 0)) for k in ("ok", "fail", "info")),
               u.get("total", 0), u.get("present", 0), u.get("absent", 0),
               res.get("log_entries") or 0, results["availability"]["ok_per_s"],
               results["availability"]["longest_unavailability_s"]))
        if res.get("unconverged"):
            uc = res["unconverged"]
            print("jepsen: not converged; readable nodes %s hold %d of %d acknowledged rows "
                  "(each must be on at least one)" % (uc["readable"], uc["acked_found"], uc["acked"]))
        if results["pg_partition_fence_s"]:
            print("jepsen: pg-partition: isolated primary no longer primary after %s s "
                  "(/status as the clients see it)" % results["pg_partition_fence_s"])
    else:
        print("jepsen: %d ops (inc ok/fail/info %s, read %s), %d log entries, ok/s %.1f, "
              "longest unavailability %.1f s" %
              (len(ops), "/".join(str(c.get("inc", {}).get(k, 0)) for k in ("ok", "fail", "info")),
               "/".join(str(c.get("read", {}).get(k, 0)) for k in ("ok", "fail", "info")),
               res.get("log_entries") or 0, results["availability"]["ok_per_s"],
               results["availability"]["longest_unavailability_s"]))
    for w in warnings:
        print("jepsen: warning: %s" % w)
    if res["valid"]:
        print("jepsen: VALID  (%s)" % os.path.join(a.out, "report.html"))
        return 0
    print("jepsen: INVALID: %s" % ", ".join("%s x%d" % kv for kv in res["counts"].items()))
    for an in res["anomalies"][:10]:
        print("  %s: %s (ops %s)" % (an["type"], an["msg"], an["ops"][:6]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
