#!/usr/bin/env python3
"""Issue 13 integration test: a leader proposes the writes of one loop
iteration to raft together (raft_apply_batch, scripts/raft-patches/0009);
every write must still get its own entry's answer. 48 clients on kept-alive
connections (32 on the leader, 16 through a follower) each send increments
with a `by` of their own; then the answers, sorted by index, must have
distinct indexes and values that are exactly the running sum of the `by`s,
the counter must equal the total on every node, and the op log must hold
each answer's index with its value."""
from http.client import HTTPConnection
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, TestFailure, check, finish, http, run  # noqa

C = Cluster(3)
CLIENTS_LEADER, CLIENTS_FOLLOWER, PER_CLIENT = 32, 16, 25


def client(url, by, out, errors):
    host, port = url[len("http://"):].rsplit(":", 1)
    conn = HTTPConnection(host, int(port), timeout=20)
    body = json.dumps({"by": by})
    try:
        for _ in range(PER_CLIENT):
            conn.request("POST", "/increment", body,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            raw = r.read()
            if r.status != 200:
                errors.append("%d %s" % (r.status, raw[:200]))
                return
            j = json.loads(raw)
            out.append((j["index"], j["value"], by))
    except Exception as e:  # reported by the test
        errors.append(repr(e))
    finally:
        conn.close()


def test_concurrent_writes_get_their_own_entry():
    print(C.up().strip())
    leader = C.leader()
    follower = next(i for i in range(1, 4) if i != leader)
    answers, errors, threads = [], [], []
    for k in range(CLIENTS_LEADER + CLIENTS_FOLLOWER):
        node = leader if k < CLIENTS_LEADER else follower
        # Distinct powers-of-two-free values so a wrong answer cannot match.
        by = 1000 + 7 * k
        threads.append(threading.Thread(
            target=client, args=(C.url(node), by, answers, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "write failed: %s" % errors[:3])
    n = (CLIENTS_LEADER + CLIENTS_FOLLOWER) * PER_CLIENT
    check(len(answers) == n, "%d answers, expected %d" % (len(answers), n))
    answers.sort()
    idx = [a[0] for a in answers]
    check(len(set(idx)) == n, "%d distinct indexes for %d answers"
          % (len(set(idx)), n))
    running = 0
    for index, value, by in answers:
        running += by
        if value != running:
            raise TestFailure("index %d answered %d, expected %d (by %d)"
                              % (index, value, running, by))
    deadline = time.time() + 15
    vals = []
    while time.time() < deadline:
        vals = [(http("GET", C.url(i) + "/counter?stale=1", timeout=2)[1]
                 or {}).get("value") for i in range(1, 4)]
        if vals == [running] * 3:
            break
        time.sleep(0.05)
    check(vals == [running] * 3, "counters %s, expected %d" % (vals, running))
    log = {e["index"]: e for e in C.full_log(leader)}
    for index, value, by in answers:
        e = log.get(index)
        check(e is not None and e.get("value") == value and e.get("by") == by,
              "op log at %d: %s, answered value %d by %d"
              % (index, e, value, by))
    C.check_logs_clean()
    print("  (figure) %d concurrent writes, indexes %d..%d" % (n, idx[0], idx[-1]))


def main():
    try:
        return run([test_concurrent_writes_get_their_own_entry])
    finally:
        C.down()


if __name__ == "__main__":
    sys.exit(finish(C, main()))
