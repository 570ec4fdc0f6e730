#!/usr/bin/env python3
"""CPU cost per node of one open dashboard page (issue 14), two ways, on a
real 3-node chain cluster (anvil) and Debian's headless chromium:

1. direct: each node's CPU time (utime+stime from /proc/PID/stat) over
   --seconds with the browser on about:blank, then with the dashboard open
   (served by node 1), alternated --rounds times; cost = with - without.
2. per request: node 2's CPU time for --requests rounds of the page's
   per-node poll (GET /status + GET /metrics) issued back to back, i.e. the
   CPU one poll costs; the page polls each node once a second (and node 1,
   the origin, also answers /members and /log once a second).

Usage: NFTRAFT_BUILD=build python3 bench/dashboard_cpu.py [--seconds 30]
       [--rounds 2] [--requests 2000]"""
import argparse
import os
import sys
import time
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
from cluster import Cluster, free_base_port  # noqa: E402
import browser  # noqa: E402


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu(pids, seconds):
    a = {i: ticks(p) for i, p in pids.items()}
    time.sleep(seconds)
    hz = os.sysconf("SC_CLK_TCK")
    return {i: 100.0 * (ticks(p) - a[i]) / hz / seconds for i, p in pids.items()}


def fmt(d):
    return " ".join("node%d %.2f%%" % kv for kv in sorted(d.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2000)
    o = ap.parse_args()
    c = Cluster(3, chain="anvil", extra=["--anvil-port", str(free_base_port(1) + 70)])
    c.up()
    b = None
    try:
        c.leader()
        pids = {i: c.pid(i) for i in (1, 2, 3)}
        b = browser.Browser(c.dir)
        page = c.url(1) + "/"
        size = sum(len(urllib.request.urlopen(c.url(1) + p).read()) for p in ("/", "/dashboard.js", "/dashboard.css"))
        print("page weight: %d bytes (HTML + JS + CSS)" % size)
        without, with_ = {i: 0.0 for i in pids}, {i: 0.0 for i in pids}
        for r in range(o.rounds):
            b.get("about:blank")
            time.sleep(2)
            w = cpu(pids, o.seconds)
            b.get(page)
            time.sleep(2)
            p = cpu(pids, o.seconds)
            print("round %d: without the page %s | with it %s" % (r + 1, fmt(w), fmt(p)))
            for i in pids:
                without[i] += w[i] / o.rounds
                with_[i] += p[i] / o.rounds
        b.get("about:blank")
        cost = {i: with_[i] - without[i] for i in pids}
        print("direct (%d x %.0f s each): without %s | with %s | cost %s" % (
            o.rounds, o.seconds, fmt(without), fmt(with_), fmt(cost)))
        t0, a = time.time(), ticks(pids[2])
        for _ in range(o.requests):
            for path in ("/status", "/metrics"):
                urllib.request.urlopen(c.url(2) + path, timeout=5).read()
        spent = (ticks(pids[2]) - a) / os.sysconf("SC_CLK_TCK")
        per_poll_ms = 1000.0 * spent / o.requests
        print("per request: %d polls (GET /status + /metrics) on node 2 in %.1f s wall cost %.2f s CPU: "
              "%.3f ms CPU per poll -> %.3f%% of one core at 1 poll/s" % (
                  o.requests, time.time() - t0, spent, per_poll_ms, per_poll_ms / 10.0))
    finally:
        if b is not None:
            b.quit()
        c.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
