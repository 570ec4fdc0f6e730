#!/usr/bin/env python3
"""nftraft endurance bench: millions of increments at full speed with a small
retention, to show that latency, memory and on-disk state stay flat.

A local 3-node cluster (release build) with --log-retention and
--key-retention small; wrk hits the leader with a unique Idempotency-Key per
request, one wrk run per interval (default 60 s), until --total increments
have committed (default 5,000,000) or --max-minutes passed. Per interval it
prints and records: committed writes/s, p50/p99 ms, RSS of each node, each
node's state.db (+ -wal) size, the newest raft snapshot's size and the
longest snapshot the leader took in the interval (its serialization, on
raft's loop in raft 0.22). Writes bench/endurance.tsv and, with gnuplot,
bench/endurance.png. Not part of the test run: `./run.sh bench --endurance`."""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "integration"))
import cluster as fx  # noqa: E402
from bench import wrk, rss_kb  # noqa: E402


def size_kb(paths):
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    return total // 1024


def snapshot_kb(node_dir):
    snaps = [p for p in glob.glob(os.path.join(node_dir, "snapshot-*"))
             if not p.endswith(".meta")]
    if not snaps:
        return 0
    return size_kb([max(snaps, key=os.path.getmtime)])


SNAP_RE = re.compile(r"snapshot taken last_applied=(\d+) bytes=(\d+) rows=(\d+) "
                     r"keys=(\d+) write_ms=([\d.]+)")


def snapshots_since(log_path, offset):
    """(new offset, [(write_ms, bytes, rows, keys)...]) from a node log."""
    out = []
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
            offset += len(data)
    except OSError:
        return offset, out
    for m in SNAP_RE.finditer(data.decode(errors="replace")):
        out.append((float(m.group(5)), int(m.group(2)), int(m.group(3)),
                    int(m.group(4))))
    return offset, out


def counter(c):
    for i in range(1, c.n + 1):
        st, j, _ = fx.http("GET", c.url(i) + "/counter", timeout=5)
        if st == 200:
            return j["value"]
    return None


COLS = ["minute", "total", "writes_s", "p50_ms", "p99_ms", "rss1_kb",
        "rss2_kb", "rss3_kb", "db1_kb", "db2_kb", "db3_kb", "snap_kb",
        "snap_ms_max", "snaps", "snap_rows", "snap_keys"]


def plot(tsv, png):
    if shutil.which("gnuplot") is None:
        print("gnuplot not found: no plot", file=sys.stderr)
        return
    gp = """
set terminal pngcairo size 1100,1300
set output '%(png)s'
set multiplot layout 4,1 title 'nftraft endurance (per interval)'
set key outside right
set grid
set xlabel 'minute'
set ylabel 'writes/s'
set yrange [0:*]
plot '%(tsv)s' using 1:3 with linespoints title 'writes/s'
set ylabel 'ms'
plot '%(tsv)s' using 1:4 with linespoints title 'p50', '' using 1:5 with linespoints title 'p99', '' using 1:13 with linespoints title 'snapshot ms (max)'
set ylabel 'MiB'
plot '%(tsv)s' using 1:($6/1024) with linespoints title 'RSS node1', '' using 1:($7/1024) with linespoints title 'RSS node2', '' using 1:($8/1024) with linespoints title 'RSS node3'
plot '%(tsv)s' using 1:($9/1024) with linespoints title 'state.db+wal node1', '' using 1:($10/1024) with linespoints title 'node2', '' using 1:($11/1024) with linespoints title 'node3', '' using 1:($12/1024) with linespoints title 'raft snapshot'
unset multiplot
""" % {"png": png, "tsv": tsv}
    subprocess.run(["gnuplot"], input=gp, text=True, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total", type=int, default=5000000,
                    help="stop once this many increments committed")
    ap.add_argument("--max-minutes", type=float, default=60)
    ap.add_argument("--interval", type=int, default=60, help="seconds")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--log-retention", type=int, default=1000)
    ap.add_argument("--key-retention", type=int, default=10000)
    ap.add_argument("--snapshot-threshold", type=int, default=None)
    ap.add_argument("--out", default=HERE, help="directory for .tsv/.png")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    extra = ["--log-retention", str(a.log_retention),
             "--key-retention", str(a.key_retention)]
    if a.snapshot_threshold:
        extra += ["--snapshot-threshold", str(a.snapshot_threshold)]
    tsv = os.path.join(a.out, "endurance.tsv")
    png = os.path.join(a.out, "endurance.png")
    c = fx.Cluster(3, extra=extra)
    rows = []
    try:
        c.up()
        leader = c.leader()
        script = os.path.join(HERE, "increment_keyed.lua")
        offsets = {i: 0 for i in range(1, 4)}
        start = counter(c) or 0
        t_start = time.time()
        print("endurance: 3 nodes, %s, %d connections, %d s intervals, "
              "target %d increments" % (" ".join(extra), a.conns, a.interval,
                                        a.total), flush=True)
        print("\t".join(COLS), flush=True)
        with open(tsv, "w") as out:
            out.write("# " + "\t".join(COLS) + "\n")
            minute = 0
            total = 0
            while total < a.total and time.time() - t_start < a.max_minutes * 60:
                minute += 1
                leader = c.leader(timeout=30)
                before = counter(c)
                t0 = time.time()
                cmd_args = ["--", "%d%d" % (int(t_start), minute)]
                r = wrk(c.url(leader) + "/increment", script, a.conns,
                        a.interval, extra_args=cmd_args)
                elapsed = time.time() - t0
                after = counter(c)
                total = after - start
                snaps = []
                for i in range(1, 4):
                    offsets[i], s = snapshots_since(
                        os.path.join(c.node_dir(i), "node.log"), offsets[i])
                    if i == leader:
                        snaps = s
                row = [minute, total,
                       round((after - before) / elapsed, 1),
                       r["p50_ms"], r["p99_ms"]]
                row += [rss_kb(c.pid(i)) for i in range(1, 4)]
                row += [size_kb([os.path.join(c.node_dir(i), "state.db"),
                                 os.path.join(c.node_dir(i), "state.db-wal")])
                        for i in range(1, 4)]
                row += [snapshot_kb(c.node_dir(leader)),
                        max((s[0] for s in snaps), default=0), len(snaps),
                        max((s[2] for s in snaps), default=0),
                        max((s[3] for s in snaps), default=0)]
                rows.append(row)
                line = "\t".join(str(x) for x in row)
                out.write(line + "\n")
                out.flush()
                print(line, flush=True)
        c.check_logs_clean()
    finally:
        c.down()
        shutil.rmtree(c.dir, ignore_errors=True)
    plot(tsv, png)
    print("table: %s\nplot: %s" % (tsv, png))


if __name__ == "__main__":
    main()
