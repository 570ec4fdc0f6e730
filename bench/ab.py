#!/usr/bin/env python3
"""A/B of two or more nftraft builds on a shared machine: the builds and
(with --etcd) etcd run alternately, round after round, so that load from
other jobs falls on all of them alike; prints every round and the per-round
ratios, which stay meaningful where absolute figures swing by 2x.

Usage: python3 bench/ab.py --build old=/path/to/build --build new=build
         [--rounds 3] [--duration 6] [--levels 1,16,64] [--etcd]
Each --build names a directory holding nftraft and nftraftd. Per round and
build: bench.py's nftraft run (leader at each level, then a follower at the
middle level; no failover). Not part of the test run."""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

fx = bench.fx


def use_build(path):
    fx.NFTRAFT = os.path.join(path, "nftraft")
    fx.NFTRAFTD = os.path.join(path, "nftraftd")
    for f in (fx.NFTRAFT, fx.NFTRAFTD):
        if not os.access(f, os.X_OK):
            sys.exit("ab: %s is not an executable" % f)


def cells(r, levels):
    out = {}
    for c in levels:
        t = r["throughput"][c]
        out[c] = (t["committed_per_s"], t["p50_ms"], t["p99_ms"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="append", required=True,
                    help="NAME=DIR (repeat; at least one)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--etcd", action="store_true", help="etcd in every round")
    ap.add_argument("--json", help="write all rounds to this file")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    builds = []
    for b in a.build:
        name, sep, path = b.partition("=")
        if not sep or not name or not path:
            sys.exit("ab: --build wants NAME=DIR, got %r" % b)
        builds.append((name, os.path.abspath(path)))
    names = [n for n, _ in builds] + (["etcd"] if a.etcd else [])
    allres = []
    for rnd in range(a.rounds):
        # Alternate the order too, so no build always runs first.
        order = builds if rnd % 2 == 0 else list(reversed(builds))
        row = {}
        for name, path in order:
            use_build(path)
            r = bench.bench_nftraft(levels, a.duration, 0)
            row[name] = {"cells": cells(r, levels), "via": r.get("via_follower")}
        if a.etcd:
            e = bench.bench_etcd(levels, a.duration, 0)
            if e:
                row["etcd"] = {"cells": cells(e, levels), "via": None}
        allres.append(row)
        print("round %d" % rnd)
        for name in names:
            if name not in row:
                continue
            cs = row[name]["cells"]
            line = "  %-6s" % name + "".join(
                " | @%d %6.0f/s p50 %6.2f p99 %6.2f" % ((c,) + cs[c]) for c in levels)
            v = row[name]["via"]
            if v:
                line += " | via follower @%d %5.0f/s p99 %6.2f" % (
                    v["conns"], v["per_s"], v["p99_ms"] or 0)
            print(line, flush=True)
        ref = "etcd" if "etcd" in row else builds[0][0]
        for name in names:
            if name == ref or name not in row:
                continue
            cs, rs = row[name]["cells"], row[ref]["cells"]
            print("  %-6s vs %-4s" % (name, ref) + "".join(
                " | @%d w/s %.2fx p99 %.2fx" % (
                    c, cs[c][0] / rs[c][0] if rs[c][0] else 0,
                    cs[c][2] / rs[c][2] if rs[c][2] else 0) for c in levels),
                flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(allres, f, indent=1)


if __name__ == "__main__":
    main()
