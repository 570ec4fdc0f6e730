#!/usr/bin/env python3
"""Jepsen-style fault run: concurrent clients increment through every node
with an Idempotency-Key per operation and retry "outcome unknown" answers
with the same key; a nemesis kills the leader with SIGKILL, pauses the
leader or a follower with SIGSTOP (longer than the election timeout, so a
paused leader comes back with a stale term), and restarts nodes. The
checker then heals the cluster and verifies: every node holds the same op
log; values rise by exactly `by` at each entry; every acknowledged
increment is in the log at its index with its value (no lost
acknowledged write); every key is applied exactly once; the counter equals
the log. `--duration` sets the length (default 20 s; `./run.sh soak` runs
it for 300 s)."""
import argparse
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, TestFailure, check, free_port, http, run  # noqa: E402

ARGS = None
C = None
RESULTS = {}


def client(cid, stop, acked, stats, lock):
    seq = 0
    rnd = random.Random(cid)
    while not stop.is_set():
        seq += 1
        key = "c%d-%d" % (cid, seq)
        deadline = time.time() + 60
        while True:  # retry the same key until it is acknowledged
            node = rnd.randrange(1, C.n + 1)
            st, j, _ = C.increment(node, key=key, timeout=3)
            if st == 200:
                with lock:
                    acked[key] = (j["index"], j["value"], j.get("duplicate", False))
                break
            with lock:
                if isinstance(j, dict) and j.get("outcome") == "unknown":
                    stats["unknown"] += 1
                else:
                    stats["retries"] += 1
            if time.time() > deadline:
                with lock:
                    stats["gave_up"] += 1
                break
            time.sleep(0.02)


def nemesis(stop, log):
    rnd = random.Random(ARGS.seed)
    while not stop.wait(rnd.uniform(1.5, 3.0)):
        try:
            leader = C.leader(timeout=10)
        except TestFailure:
            log.append("no leader to fault")
            continue
        follower = rnd.choice([i for i in range(1, C.n + 1) if i != leader])
        fault = rnd.choice(["kill-leader", "pause-leader", "pause-follower", "restart-follower"])
        log.append("%.1f %s (leader %d, follower %d)" % (time.time(), fault, leader, follower))
        if fault == "kill-leader":
            C.kill9(leader)
            time.sleep(rnd.uniform(0.5, 2.0))
            C.start_node(leader)
        elif fault in ("pause-leader", "pause-follower"):
            victim = leader if fault == "pause-leader" else follower
            pid = C.pid(victim)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(rnd.uniform(0.8, 2.0))
            os.kill(pid, signal.SIGCONT)
        else:
            os.kill(C.pid(follower), signal.SIGTERM)
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    os.kill(C.pid(follower), 0)
                    time.sleep(0.05)
                except ProcessLookupError:
                    break
            C.start_node(follower)


def test_faults_keep_every_acknowledged_increment():
    global C
    # The checks below read the whole op log and every key: keep them all.
    extra = ["--snapshot-threshold", "128", "--snapshot-trailing", "32",
             "--log-retention", "0", "--key-retention", "0"]
    if ARGS.chain == "anvil":
        extra += ["--anvil-port", str(free_port())]
    C = Cluster(3, chain=ARGS.chain, extra=extra)
    C.up()
    C.leader()
    stop = threading.Event()
    acked, stats, lock, faults = {}, {"unknown": 0, "retries": 0, "gave_up": 0}, threading.Lock(), []
    clients = [threading.Thread(target=client, args=(i, stop, acked, stats, lock)) for i in range(ARGS.clients)]
    nem = threading.Thread(target=nemesis, args=(stop, faults))
    t0 = time.time()
    for t in clients:
        t.start()
    nem.start()
    time.sleep(ARGS.duration)
    stop.set()
    nem.join()
    for t in clients:
        t.join()
    elapsed = time.time() - t0
    # Heal: every node running, converged.
    for i in range(1, C.n + 1):
        if C.status(i) is None:
            C.start_node(i)
    C.leader(timeout=20)
    total = None
    deadline = time.time() + 30
    while total is None:  # a linearizable read, retried through elections
        check(time.time() < deadline, "no linearizable read after healing")
        st, j, _ = http("GET", C.url(1) + "/counter")
        if st == 200:
            total = j["value"]
        else:
            time.sleep(0.1)
    deadline = time.time() + 20
    while time.time() < deadline:
        vals = [http("GET", C.url(i) + "/counter?stale=1")[1] for i in range(1, C.n + 1)]
        if all(v and v["value"] == total for v in vals):
            break
        time.sleep(0.1)
    logs = [C.full_log(i) for i in range(1, C.n + 1)]
    print("  (figure) %d acknowledged increments in %.0f s under %d faults (%.0f/s); "
          "%d 'outcome unknown' answers resolved by retrying the same key, %d other retries"
          % (len(acked), elapsed, len(faults), len(acked) / elapsed, stats["unknown"], stats["retries"]))
    check(stats["gave_up"] == 0, "%d operations never got acknowledged" % stats["gave_up"])
    check(logs[0] == logs[1] == logs[2], "op logs differ between nodes (%s entries)" % [len(l) for l in logs])
    log = logs[0]
    prev = 0
    for e in log:
        check(e["value"] == prev + e["by"], "value jumps at index %d" % e["index"])
        prev = e["value"]
    check(prev == total, "counter %d != last log value %d" % (total, prev))
    by_index = {e["index"]: e for e in log}
    for key, (index, value, _) in acked.items():
        e = by_index.get(index)
        check(e is not None and e["value"] == value,
              "acknowledged %s (index %d, value %d) is not in the log" % (key, index, value))
    firsts = {(i, v) for (i, v, _) in acked.values()}
    check(len(firsts) == len(acked), "two keys were acknowledged with the same entry")
    check(len(log) == len(acked), "log has %d entries for %d keys: a key applied twice or lost"
          % (len(log), len(acked)))
    C.down()
    C.check_logs_clean()


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--chain", choices=("none", "anvil"), default="none",
                    help="run the cluster in chain mode on a local anvil (authenticated raft "
                         "transport, the contract as arbiter) instead of static mode")
    ARGS = ap.parse_args()
    print("  seed %d, %d clients, %.0f s, chain %s" % (ARGS.seed, ARGS.clients, ARGS.duration, ARGS.chain))
    try:
        rc = run([test_faults_keep_every_acknowledged_increment])
    finally:
        if C is not None:
            C.down()
    if rc != 0 and C is not None:
        C.dump_logs()
        print("cluster dir kept: %s" % C.dir)
    elif C is not None:
        import shutil
        shutil.rmtree(C.dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
