#!/usr/bin/env python3
"""Issue 13 integration test: bounded state on a real 3-node cluster.
--log-retention keeps a window of the op log that GET /log answers from and
names ("first"; "truncated" when asked from below it), identical on every
node, also on a follower that caught up by snapshot; --key-retention makes
an Idempotency-Key expire after N indexes (a retry after that applies
again, a retry before is a duplicate)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, check, http, run  # noqa: E402

RET, KEYS = 40, 60
C = Cluster(3, extra=["--log-retention", str(RET), "--key-retention", str(KEYS),
                      "--snapshot-threshold", "64", "--snapshot-trailing", "8"])


def increments(n, node, key_prefix=None):
    last = None
    for k in range(n):
        key = "%s-%d" % (key_prefix, k) if key_prefix else None
        st, j, _ = C.increment(node, key=key)
        check(st == 200, "increment: %s %s" % (st, j))
        last = j
    return last


def wait_applied(index, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        sts = [C.status(i) for i in range(1, C.n + 1)]
        if all(s and s["applied_index"] >= index for s in sts):
            return
        time.sleep(0.05)
    raise AssertionError("nodes did not apply index %d" % index)


def window(node, frm=1):
    st, j, _ = http("GET", "%s/log?from=%d&limit=1000" % (C.url(node), frm))
    check(st == 200, "GET /log on node %d: %s %s" % (node, st, j))
    return j


def test_log_window_and_key_expiry():
    C.up()
    leader = C.leader()
    last = increments(150, leader, "w")
    wait_applied(last["index"])
    ws = [window(i) for i in range(1, 4)]
    for i, w in enumerate(ws, 1):
        es = w["entries"]
        check(w["first"] > 1, "node %d: no window: first=%s" % (i, w["first"]))
        check(w.get("truncated") is True, "node %d: from=1 below the window "
              "is not flagged: %s" % (i, {k: w[k] for k in w if k != "entries"}))
        check(es and es[0]["index"] == w["first"], "node %d: entries do not "
              "start at first" % i)
        check(es[-1]["index"] == last["index"] and es[-1]["value"] == last["value"],
              "node %d: window does not end at the last increment" % i)
        check(all(e["index"] > last["index"] - RET for e in es),
              "node %d: rows older than the retention: first %d, last %d"
              % (i, es[0]["index"], last["index"]))
        check(len(es) <= RET, "node %d: %d rows > retention %d" % (i, len(es), RET))
    check(ws[0]["entries"] == ws[1]["entries"] == ws[2]["entries"],
          "windows differ between nodes")
    # Inside the window: no truncation flag, paging as before.
    w = window(leader, ws[0]["first"] + 1)
    check("truncated" not in w and w["entries"][0]["index"] == ws[0]["first"] + 1,
          "from inside the window: %s" % {k: w[k] for k in w if k != "entries"})
    # Key expiry: a retry within KEYS indexes is a duplicate, after it
    # applies again.
    st, first, _ = C.increment(leader, key="expiring")
    check(st == 200 and not first.get("duplicate"), "first: %s %s" % (st, first))
    st, j, _ = C.increment(leader, key="expiring")
    check(st == 200 and j.get("duplicate") and j["index"] == first["index"],
          "retry within the window: %s" % j)
    last = increments(KEYS + 5, leader)
    st, j, _ = C.increment(leader, key="expiring")
    check(st == 200 and not j.get("duplicate") and j["index"] > last["index"],
          "retry after %d indexes was not applied again: %s" % (KEYS, j))


def test_window_after_catch_up_by_snapshot():
    leader = C.leader()
    f = next(i for i in range(1, 4) if i != leader)
    C.kill9(f)
    others = [i for i in range(1, 4) if i != f]
    last = increments(200, others[0])
    C.start_node(f)
    wait_applied(last["index"], timeout=30)
    check("snapshot restored" in C.log(f) or "restore" in C.log(f),
          "node %d did not catch up by snapshot" % f)
    ws = [window(i) for i in range(1, 4)]
    check(ws[0]["entries"] == ws[1]["entries"] == ws[2]["entries"],
          "windows differ after catch-up: first %s" % [w["first"] for w in ws])
    check(len(ws[f - 1]["entries"]) <= RET, "restored window too long")
    C.down()
    C.check_logs_clean()


if __name__ == "__main__":
    try:
        rc = run([test_log_window_and_key_expiry,
                  test_window_after_catch_up_by_snapshot])
    finally:
        C.down()
    if rc == 0:
        import shutil
        shutil.rmtree(C.dir, ignore_errors=True)
    sys.exit(rc)
