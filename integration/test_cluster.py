#!/usr/bin/env python3
"""Issue 2 integration test: a real 3-node cluster (real processes, raft over
TCP, SQLite files, HTTP) driven through the nftraft CLI: replication through
every node, idempotency, kill -9 failover, catch-up by snapshot, identical
logs, bad input (HTTP and raft preambles), a held data dir, corrupt files, clean shutdown."""
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (Cluster, NFTRAFTD, TestFailure, check, finish, http, run)  # noqa

INT64_MAX = 2**63 - 1
C = Cluster(3, extra=["--snapshot-threshold", "64", "--snapshot-trailing", "8"])
FIGURES = {}


def wait_converged(expect_value, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        vals = []
        for i in range(1, C.n + 1):
            st, j, _ = http("GET", C.url(i) + "/counter?stale=1", timeout=2)
            vals.append(j["value"] if st == 200 else None)
        if all(v == expect_value for v in vals):
            return
        time.sleep(0.05)
    raise TestFailure("nodes did not converge on %d: %s" % (expect_value, vals))


def test_up_and_replicate_100():
    print(C.up().strip())
    C.leader()
    values, errors = [], []
    lock = threading.Lock()

    def worker(w):
        for k in range(w, 100, 10):
            node = k % 3 + 1
            st, j, _ = C.increment(node)
            with lock:
                if st == 200:
                    values.append(j["value"])
                else:
                    errors.append((node, st, j))

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, "increments failed: %s" % errors[:5])
    check(sorted(values) == list(range(1, 101)),
          "values are not exactly 1..100: %s" % sorted(values)[:20])
    for i in range(1, 4):  # linearizable read through every node
        st, j, _ = http("GET", C.url(i) + "/counter")
        check(st == 200 and j["value"] == 100, "node %d counter: %s %s" % (i, st, j))
    wait_converged(100)


def test_members_name_raft_roles():
    """GET /members (static mode) on every node: the three bootstrap servers,
    the leader as "leader" and the other two voters as "follower" (asked
    again if an election moved the leader meanwhile)."""
    for i in range(1, C.n + 1):
        deadline = time.time() + 10
        while True:
            lead = C.leader()
            st, j, _ = http("GET", C.url(i) + "/members")
            check(st == 200 and j.get("source") == "static",
                  "node %d /members: %s %s" % (i, st, j))
            roles = {m["token_id"]: m["role"] for m in j["members"]}
            want = {k: "leader" if k == lead else "follower" for k in (1, 2, 3)}
            if roles == want or time.time() > deadline:
                break
            time.sleep(0.1)
        check(roles == want, "node %d /members roles %s, want %s" % (i, roles, want))


def test_idempotency_across_nodes():
    st, first, _ = C.increment(1, by=3, key="retry-key-1")
    check(st == 200, "first keyed increment: %s %s" % (st, first))
    st, again, _ = C.increment(3, by=3, key="retry-key-1")
    check(st == 200 and again.get("duplicate") is True,
          "retry on another node: %s %s" % (st, again))
    check(again["value"] == first["value"] and again["index"] == first["index"],
          "retry answered %s, first was %s" % (again, first))
    st, j, _ = http("GET", C.url(2) + "/counter")
    check(j["value"] == 103, "counter after a retried +3 is %s, want 103" % j)


def test_bad_input_changes_nothing():
    before = http("GET", C.url(1) + "/counter")[1]["value"]
    cases = [
        ("{", 400), ('{"by": 0}', 400), ('{"by": -5}', 400),
        ('{"by": 1.5}', 400), ('{"by": "1"}', 400), ('{"by": null}', 400),
        ('{"by": 99999999999999999999}', 400), ('[1]', 400),
        ('{"by": 1, "extra": true}', 400), ("x" * 70000, 413),
    ]
    for node in (1, 2):  # a leader or a follower: same answers
        for body, want in cases:
            st, j, _ = http("POST", C.url(node) + "/increment", body,
                            {"Content-Type": "application/json"})
            check(st == want, "body %r on node %d: %s %s" % (body[:40], node, st, j))
            if want == 400:
                check(isinstance(j, dict) and "error" in j, "no JSON error: %r" % j)
    st, j, _ = http("POST", C.url(1) + "/increment", "",
                    {"Idempotency-Key": "has space"})
    check(st == 400, "bad Idempotency-Key: %s" % st)
    st, j, _ = http("GET", C.url(1) + "/nope")
    check(st == 404 and "error" in j, "unknown path: %s %s" % (st, j))
    st, j, h = http("DELETE", C.url(1) + "/counter")
    check(st == 405 and h.get("allow") == "GET", "wrong method: %s %s %s" % (st, j, h))
    st, j, _ = http("GET", C.url(1) + "/log?from=x")
    check(st == 400, "bad /log query: %s" % st)
    st, j, _ = http("GET", C.url(1) + "/counter?stale=maybe")
    check(st == 400, "bad stale: %s" % st)
    after = http("GET", C.url(3) + "/counter")[1]["value"]
    check(after == before, "bad input changed the counter %d -> %d" % (before, after))
    for i in range(1, 4):
        check(C.status(i) is not None, "node %d stopped answering" % i)


def raft_send(node, data, wait=8.0):
    """Send raw bytes to a node's raft port; return (bytes it answered,
    seconds until it closed the connection, or None if it kept it open)."""
    s = socket.create_connection(("127.0.0.1", C.base + 100 + node - 1), timeout=wait)
    t0 = time.time()
    try:
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                return got, None
            except ConnectionResetError:  # closed with our bytes unread
                return got, time.time() - t0
            if not chunk:
                return got, time.time() - t0
            got += chunk
    finally:
        s.close()


def test_bad_raft_preambles_are_refused():
    """raft_uv_tcp 0.15 would allocate any address length a peer sends and
    hand raft an address without its NUL; nftraft reads the preamble itself."""
    base = http("GET", C.url(1) + "/counter")[1]["value"]
    pre = lambda proto, id_, n: struct.pack("<QQQ", proto, id_, n)  # noqa: E731
    cases = [("wrong protocol", pre(7, 2, 16) + b"127.0.0.1:1\0\0\0\0\0", 1),
             ("address length 2^40", pre(1, 2, 1 << 40), 1),
             ("raft id 0", pre(1, 0, 16) + b"127.0.0.1:1\0\0\0\0\0", 1),
             ("address without NUL", pre(1, 2, 8) + b"AAAAAAAA", 1),
             ("a silent peer", b"", 5)]
    for what, data, within in cases:
        got, closed = raft_send(1, data)
        check(got == b"" and closed is not None and closed < within + 3,
              "%s: answered %r, closed after %s s" % (what, got, closed))
    log = C.log(1)
    for needle in ("bad raft preamble (protocol 7", "address length 1099511627776",
                   "id 0,", "address not terminated", "handshake timed out"):
        check(needle in log, "node 1 log does not say %r" % needle)
    st, j, _ = C.increment(2)
    check(st == 200 and j["value"] == base + 1, "the cluster still commits: %s %s" % (st, j))
    st, m, _ = http("GET", C.url(1) + "/metrics")
    check("nftraft_raft_connections_refused_total 4" in m, "refusals counted in /metrics")


def test_kill9_leader_failover_and_snapshot_catchup():
    old = C.leader()
    base = http("GET", C.url(old) + "/counter")[1]["value"]
    others = [i for i in range(1, 4) if i != old]
    t0 = time.time()
    C.kill9(old)
    # The first increment committed after the kill, retried with one key.
    deadline, k = time.time() + 15, 0
    while True:
        st, j, _ = C.increment(others[k % 2], key="failover-1", timeout=2)
        if st == 200:
            break
        check(time.time() < deadline, "no increment committed within 15s of kill -9")
        k += 1
        time.sleep(0.01)
    FIGURES["failover_s"] = time.time() - t0
    print("  (figure) kill -9 of the leader -> first committed increment: %.3f s"
          % FIGURES["failover_s"])
    new = C.leader(exclude=(old,))
    check(new != old, "leader did not change")
    # Enough writes while it is down that it must catch up by snapshot.
    for n in range(150):
        st, j, _ = C.increment(others[n % 2])
        check(st == 200, "increment while a node is down: %s %s" % (st, j))
    total = base + 1 + 150
    C.start_node(old)
    wait_converged(total, timeout=20)
    check("snapshot restored" in C.log(old),
          "restarted node %d did not catch up through a snapshot" % old)
    logs = [C.full_log(i) for i in range(1, 4)]
    check(logs[0] == logs[1] == logs[2],
          "GET /log differs between nodes (%d/%d/%d entries)" %
          tuple(len(l) for l in logs))
    check(logs[0][-1]["value"] == total, "last log value %s != %d" %
          (logs[0][-1]["value"], total))
    vals = [e["value"] for e in logs[0]]
    check(vals == sorted(vals) and len(set(vals)) == len(vals),
          "log values are not strictly increasing")


def test_overflow_is_rejected():
    v = http("GET", C.url(1) + "/counter")[1]["value"]
    st, j, _ = C.increment(2, by=INT64_MAX - v)
    check(st == 200 and j["value"] == INT64_MAX, "fill to INT64_MAX: %s %s" % (st, j))
    st, j, _ = C.increment(3, by=1)
    check(st == 422 and j.get("outcome") == "failed", "overflow: %s %s" % (st, j))
    st, j, _ = http("GET", C.url(1) + "/counter")
    check(j["value"] == INT64_MAX, "counter moved after a rejected overflow: %s" % j)


def test_data_dir_held_by_another_node():
    args = C.cmdline(1)
    args[args.index("--http") + 1] = "127.0.0.1:%d" % (C.base + 50)
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    check(r.returncode != 0, "second nftraftd on a held data dir exited 0")
    check("in use" in r.stderr, "no clear message: %r" % r.stderr[-300:])
    check(C.status(1) is not None, "node 1 stopped serving")


def test_clean_shutdown():
    C.down()
    for i in range(1, 4):
        log = C.log(i)
        check(log.rstrip().endswith("stopped exit=0") or "stopped exit=0" in log.splitlines()[-1],
              "node %d did not stop cleanly:\n%s" % (i, log[-1500:]))
    C.check_logs_clean()


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def start_expect_failure(node, needle):
    r = subprocess.run(C.cmdline(node), capture_output=True, text=True, timeout=20)
    check(r.returncode != 0, "node %d started on a corrupt file" % node)
    check(needle in r.stderr, "error does not name %s: %r" % (needle, r.stderr[-400:]))
    return r.stderr


def test_corrupt_state_file_is_reported_not_reset():
    db = os.path.join(C.node_dir(3), "state.db")
    # Fold the WAL in first so the damage hits the pages in use.
    subprocess.run(["sqlite3", db, "PRAGMA wal_checkpoint(TRUNCATE);"],
                   capture_output=True)
    saved = open(db, "rb").read()
    with open(db, "r+b") as f:
        f.seek(4096)
        f.write(b"\x5a" * 4096)
    h = sha(db)
    start_expect_failure(3, db)
    check(sha(db) == h, "the corrupt state file was modified")
    with open(db, "wb") as f:
        f.write(saved)


def test_corrupt_raft_segment_is_reported_not_reset():
    d = C.node_dir(2)
    segs = sorted(f for f in os.listdir(d) if re.fullmatch(r"\d{16}-\d{16}", f))
    check(segs, "no closed raft segment in %s: %s" % (d, os.listdir(d)))
    seg = os.path.join(d, segs[-1])
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * 16)
    h = sha(seg)
    start_expect_failure(2, segs[-1])
    check(sha(seg) == h, "the corrupt segment was modified")


def main():
    tests = [test_up_and_replicate_100, test_members_name_raft_roles,
             test_idempotency_across_nodes,
             test_bad_input_changes_nothing, test_bad_raft_preambles_are_refused,
             test_kill9_leader_failover_and_snapshot_catchup,
             test_overflow_is_rejected, test_data_dir_held_by_another_node,
             test_clean_shutdown, test_corrupt_state_file_is_reported_not_reset,
             test_corrupt_raft_segment_is_reported_not_reset]
    try:
        return run(tests)
    finally:
        C.down()


if __name__ == "__main__":
    sys.exit(finish(C, main()))
