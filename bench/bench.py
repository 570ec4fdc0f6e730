#!/usr/bin/env python3
"""nftraft benchmark, with a local 3-node etcd cluster as the named peer.

Prints, for nftraft and etcd side by side with the ratio nftraft/etcd:
committed writes/s and p50/p99 latency of one write (nftraft: POST
/increment; etcd: a v3 put through its HTTP/JSON gateway) at concurrency 1,
16 and 64 (wrk); time from kill -9 of the leader to the first committed
write (median of --failover-runs); RSS of an idle node. Writes the figures
to bench/results.json. Not part of the test run: `./run.sh bench`."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "integration"))
import cluster as fx  # noqa: E402


def wrk(url, script, conns, duration, extra_args=()):
    threads = max(1, min(conns, 2))
    out = subprocess.run(
        ["wrk", "-c", str(conns), "-t", str(threads), "-d", "%ds" % duration,
         "--latency", "-s", script, url] + list(extra_args),
        capture_output=True, text=True, timeout=duration + 60).stdout
    lat = {}
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+)(us|ms|s)\s*$" % pct, out, re.M)
        if m:
            v = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            lat[pct] = v
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    return {"requests": total, "errors": errors, "p50_ms": lat.get("50"),
            "p99_ms": lat.get("99"), "raw": out}


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def post(url, body, timeout=2):
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except Exception:
        return 0, None


# ---------------- nftraft ----------------

def bench_nftraft(levels, duration, failover_runs):
    res = {"throughput": {}, "failover_s": [], "idle_rss_kb": None}
    c = fx.Cluster(3)
    try:
        c.up()
        leader = c.leader()
        time.sleep(1)
        res["idle_rss_kb"] = rss_kb(c.pid(leader))
        script = os.path.join(HERE, "increment.lua")
        for conns in levels:
            before = fx.http("GET", c.url(1) + "/counter")[1]["value"]
            # Spread the load over all nodes? wrk takes one URL: hit the
            # leader (followers forward; measured separately below).
            r = wrk(c.url(leader) + "/increment", script, conns, duration)
            after = fx.http("GET", c.url(1) + "/counter")[1]["value"]
            r["committed"] = after - before
            r["committed_per_s"] = (after - before) / duration
            ok = r["requests"] - r["errors"]
            if r["committed"] < ok:
                raise fx.TestFailure("counter advanced %d < %d acknowledged"
                                     % (r["committed"], ok))
            res["throughput"][conns] = r
        # Through a follower (forwarding), at the middle level.
        f = next(i for i in range(1, 4) if i != leader)
        r = wrk(c.url(f) + "/increment", script, levels[len(levels) // 2], duration)
        res["via_follower"] = {"conns": levels[len(levels) // 2],
                               "per_s": (r["requests"] - r["errors"]) / duration,
                               "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}
        for _ in range(failover_runs):
            leader = c.leader()
            others = [i for i in range(1, 4) if i != leader]
            t0 = time.time()
            c.kill9(leader)
            k = 0
            while True:
                st, _, _ = c.increment(others[k % 2], timeout=2)
                if st == 200:
                    break
                k += 1
                time.sleep(0.005)
            res["failover_s"].append(time.time() - t0)
            c.start_node(leader)
            time.sleep(1)
    finally:
        c.down()
        shutil.rmtree(c.dir, ignore_errors=True)
    return res


# ---------------- etcd (the peer) ----------------

def etcd_cluster(tmp):
    base = fx.free_base_port(3)
    names = ["e1", "e2", "e3"]
    peers = ",".join("%s=http://127.0.0.1:%d" % (n, base + 100 + i)
                     for i, n in enumerate(names))
    procs = []
    for i, n in enumerate(names):
        d = os.path.join(tmp, n)
        args = ["etcd", "--name", n, "--data-dir", d,
                "--listen-client-urls", "http://127.0.0.1:%d" % (base + i),
                "--advertise-client-urls", "http://127.0.0.1:%d" % (base + i),
                "--listen-peer-urls", "http://127.0.0.1:%d" % (base + 100 + i),
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % (base + 100 + i),
                "--initial-cluster", peers, "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench"]
        log = open(os.path.join(tmp, n + ".log"), "w")
        procs.append((args, subprocess.Popen(args, stdout=log, stderr=log,
                                             start_new_session=True), log))
    urls = ["http://127.0.0.1:%d" % (base + i) for i in range(3)]
    return procs, urls


def etcd_leader(urls, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for i, u in enumerate(urls):
            st, j = post(u + "/v3/maintenance/status", "{}", timeout=1)
            if st == 200 and j.get("leader") and j["leader"] == j["header"]["member_id"]:
                return i
        time.sleep(0.1)
    raise fx.TestFailure("etcd elected no leader")


def bench_etcd(levels, duration, failover_runs):
    if shutil.which("etcd") is None:
        print("etcd not found: `apt-get install etcd-server` to run the peer",
              file=sys.stderr)
        return None
    tmp = tempfile.mkdtemp(prefix="nftraft-bench-etcd-")
    procs, urls = etcd_cluster(tmp)
    res = {"throughput": {}, "failover_s": [], "idle_rss_kb": None}
    try:
        leader = etcd_leader(urls)
        time.sleep(1)
        res["idle_rss_kb"] = rss_kb(procs[leader][1].pid)
        script = os.path.join(HERE, "etcd_put.lua")
        for conns in levels:
            r = wrk(urls[leader] + "/v3/kv/put", script, conns, duration)
            r["committed_per_s"] = (r["requests"] - r["errors"]) / duration
            res["throughput"][conns] = r
        for _ in range(failover_runs):
            leader = etcd_leader(urls)
            others = [i for i in range(3) if i != leader]
            t0 = time.time()
            os.kill(procs[leader][1].pid, signal.SIGKILL)
            procs[leader][1].wait()
            k = 0
            while True:
                st, _ = post(urls[others[k % 2]] + "/v3/kv/put",
                             '{"key": "YmVuY2g=", "value": "Mg=="}', timeout=2)
                if st == 200:
                    break
                k += 1
                time.sleep(0.005)
            res["failover_s"].append(time.time() - t0)
            args, _, log = procs[leader]
            args = [a if a != "new" else "existing" for a in args]
            procs[leader] = (args, subprocess.Popen(args, stdout=log, stderr=log,
                                                    start_new_session=True), log)
            time.sleep(2)
    finally:
        for _, p, _ in procs:
            p.terminate()
        for _, p, _ in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def fmt(v, unit=""):
    return "-" if v is None else ("%.2f%s" % (v, unit) if isinstance(v, float) else "%s%s" % (v, unit))


def ratio(a, b):
    return "-" if not a or not b else "%.2fx" % (a / b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per load level")
    ap.add_argument("--levels", default="1,16,64", help="concurrency levels")
    ap.add_argument("--failover-runs", type=int, default=3)
    ap.add_argument("--no-etcd", action="store_true", help="skip the peer")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    n = bench_nftraft(levels, a.duration, a.failover_runs)
    e = None if a.no_etcd else bench_etcd(levels, a.duration, a.failover_runs)
    print("\nnftraft vs etcd %s (3 local nodes each, this machine: %d cores)"
          % ("3.4" if e else "(skipped)", os.cpu_count()))
    print("%-28s %14s %14s %10s" % ("figure", "nftraft", "etcd", "ratio"))
    rows = []
    for conns in levels:
        nt = n["throughput"][conns]
        et = e["throughput"][conns] if e else {}
        rows.append(("writes/s @%d" % conns, nt["committed_per_s"], et.get("committed_per_s"), True))
        rows.append(("p50 ms @%d" % conns, nt["p50_ms"], et.get("p50_ms"), False))
        rows.append(("p99 ms @%d" % conns, nt["p99_ms"], et.get("p99_ms"), False))
    nf = statistics.median(n["failover_s"]) if n["failover_s"] else None
    ef = statistics.median(e["failover_s"]) if e and e["failover_s"] else None
    rows.append(("failover s (median)", nf, ef, False))
    rows.append(("idle RSS KiB", n["idle_rss_kb"], e["idle_rss_kb"] if e else None, False))
    for name, nv, ev, _ in rows:
        print("%-28s %14s %14s %10s" % (name, fmt(nv), fmt(ev), ratio(nv, ev)))
    vf = n.get("via_follower")
    if vf:
        print("nftraft via a follower @%d: %.0f writes/s, p50 %.2f ms, p99 %.2f ms"
              % (vf["conns"], vf["per_s"], vf["p50_ms"] or 0, vf["p99_ms"] or 0))
    for r in (n, e):
        if r:
            for t in r["throughput"].values():
                t.pop("raw", None)
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump({"nftraft": n, "etcd": e, "duration_s": a.duration}, f, indent=2)
    print("figures written to bench/results.json")


if __name__ == "__main__":
    main()
