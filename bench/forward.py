#!/usr/bin/env python3
"""Forwarded vs direct writes: a 3-node cluster, wrk POST /increment against
the leader and against a follower (which forwards to the leader), back to
back at each concurrency level, repeated --rounds times.

Usage: python3 bench/forward.py [--duration 4] [--levels 1,16,64] [--rounds 2]
Prints writes/s, p50 and p99 of both and the ratio direct/forwarded
(issue 13 asks for <= 1.5x) and the CPU microseconds each node spent per
write: on a loaded 2-core machine writes/s swing by 2x between runs, CPU
per write much less."""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

fx = bench.fx


def cpu_s(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        col = f.read().rsplit(")", 1)[1].split()
    return (int(col[11]) + int(col[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(c, node, script, conns, duration, extra):
    """wrk against node; adds per_s and the CPU microseconds per write that
    each node spent (the figure that stays put on a loaded machine)."""
    pids = {i: c.pid(i) for i in range(1, 4)}
    before = {i: cpu_s(p) for i, p in pids.items()}
    r = bench.wrk(c.url(node) + "/increment", script, conns, duration, extra)
    ok = r["requests"] - r["errors"]
    r["per_s"] = ok / duration
    r["cpu_us"] = {i: (cpu_s(p) - before[i]) * 1e6 / max(ok, 1)
                   for i, p in pids.items()}
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keyed", action="store_true",
                    help="direct writes carry a unique Idempotency-Key too")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    script = os.path.join(HERE, "increment.lua")
    kscript = os.path.join(HERE, "increment_keyed.lua")
    c = fx.Cluster(3)
    res = {}
    try:
        c.up()
        leader = c.leader()
        f = next(i for i in range(1, 4) if i != leader)
        time.sleep(1)
        for rnd in range(a.rounds):
            for conns in levels:
                d = run_wrk(c, leader, kscript if a.keyed else script, conns,
                            a.duration,
                            ["--", "d%d-%d" % (rnd, conns)] if a.keyed else [])
                fw = run_wrk(c, f, script, conns, a.duration, [])
                for name, r in (("direct", d), ("forwarded", fw)):
                    res.setdefault((conns, name), []).append(r)
                print("round %d @%d: direct %.0f/s p50 %.2f p99 %.2f | "
                      "forwarded %.0f/s p50 %.2f p99 %.2f | ratio %.2fx"
                      % (rnd, conns, d["per_s"], d["p50_ms"] or 0,
                         d["p99_ms"] or 0, fw["per_s"], fw["p50_ms"] or 0,
                         fw["p99_ms"] or 0,
                         d["per_s"] / fw["per_s"] if fw["per_s"] else 0),
                      flush=True)
                for name, r in (("direct", d), ("forwarded", fw)):
                    print("    %-9s CPU us/write: leader %.0f, follower %d "
                          "%.0f, other follower %.0f" % (
                              name, r["cpu_us"][leader], f, r["cpu_us"][f],
                              r["cpu_us"][6 - leader - f]), flush=True)
    finally:
        c.down()
    print("\n%-6s %-10s %10s %9s %9s %s" % ("conns", "path", "writes/s",
                                            "p50 ms", "p99 ms", "spread/s"))
    for conns in levels:
        for name in ("direct", "forwarded"):
            rs = res[(conns, name)]
            ps = [r["per_s"] for r in rs]
            print("%-6d %-10s %10.0f %9.2f %9.2f %s" % (
                conns, name, statistics.median(ps),
                statistics.median(r["p50_ms"] or 0 for r in rs),
                statistics.median(r["p99_ms"] or 0 for r in rs),
                "/".join("%.0f" % p for p in ps)))
        d = statistics.median(r["per_s"] for r in res[(conns, "direct")])
        fw = statistics.median(r["per_s"] for r in res[(conns, "forwarded")])
        print("%-6d ratio direct/forwarded %.2fx" % (conns, d / fw if fw else 0))


if __name__ == "__main__":
    main()
