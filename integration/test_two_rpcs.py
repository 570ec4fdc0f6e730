#!/usr/bin/env python3
"""Two RPC endpoints that must agree (issue 11, "chain trust": `--rpc-url`
given twice). Real anvil, real raft over TCP, real HTTP: three tokens owned
by one address, two integration/rpc_proxy.py proxies in front of the same
anvil, and `nftraft up --rpc-url A --rpc-url2 B` (every node gets both).

  honest     both endpoints answer the same: the cluster forms (3 voters),
             writes work, no disagreement is counted;
  drop       B omits token 3 from activeNodes(): no node adopts that view
             (rpc_disagreements grows in /status and /metrics, a warning
             says what differed), token 3 stays a member and a voter, writes
             keep working;
  leader     B names another token as the contract's leader in
             clusterState(): the same;
  converge   B honest again: the counters stop growing, the views agree.

Every acknowledged write (unique Idempotency-Key) is looked up in /log at
the end. Exits 77 (skipped) when anvil is not installed.
"""
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (ANVIL, BIN, CAST, Cluster, check, http, run,  # noqa: E402
                     single_owner_chain, wait_for)
from rpc_proxy import LyingRpc, selector_of  # noqa: E402

S = {}


def chain(c, i):
    st, j, _ = http("GET", c.url(i) + "/status", timeout=2)
    return (j or {}).get("chain") or {} if st == 200 and isinstance(j, dict) else {}


def voters(c, i):
    st, j, _ = http("GET", c.url(i) + "/members", timeout=2)
    if st != 200 or not isinstance(j, dict):
        return set()
    return {x["id"] >> 32 for x in j.get("raft", []) if x["role"] == "voter"}


def members(c, i):
    st, j, _ = http("GET", c.url(i) + "/members", timeout=2)
    if st != 200 or not isinstance(j, dict):
        return None
    return {(x["token_id"], x.get("leaving", False)) for x in j.get("members", [])}


def disagreements(c):
    return {i: chain(c, i).get("rpc_disagreements", -1) for i in (1, 2, 3)}


def metric(c, i):
    st, text, _ = http("GET", c.url(i) + "/metrics", timeout=2)
    for line in (text if isinstance(text, str) else "").splitlines():
        if line.startswith("nftraft_chain_rpc_disagreements_total "):
            return int(line.split()[1])
    return -1


class Writer:
    """Keyed increments through every node in turn on a thread."""

    def __init__(self, c):
        self.c, self.acked, self.refused, self.stop = c, [], 0, False
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        k = 0
        while not self.stop:
            node = 1 + k % 3
            st, j, _ = self.c.increment(node, key="two-%d-%f" % (k, time.time()), timeout=5)
            if st == 200:
                self.acked.append((time.time(), j["value"], j["index"]))
            else:
                self.refused += 1
            time.sleep(0.03)
            k += 1

    def acked_since(self, t):
        return sum(1 for a in self.acked if a[0] >= t)


def test_up_with_two_honest_rpcs():
    d = tempfile.mkdtemp(prefix="nftraft-2rpc-")
    rpc, nft, keyf, _ = single_owner_chain(d, 70, lambda p: S.__setitem__("anvil", p))
    a = LyingRpc(rpc, selector_of(CAST, "activeNodes()")).start()
    b = LyingRpc(rpc, selector_of(CAST, "activeNodes()"),
                 state_selector=selector_of(CAST, "clusterState()")).start()
    S["a"], S["b"] = a, b
    c = Cluster(3, chain="anvil", extra=["--rpc-url", a.url + "/v2/0123456789abcdefXYZ", "--rpc-url2",
                                         "http://user:pw@127.0.0.1:%d/" % b.port, "--contract", nft,
                                         "--wallet-key", keyf, "--chain-confirmations", "2",
                                         "--log-retention", "0"])
    S["c"] = c
    c.up()
    leader = c.leader(timeout=30)
    wait_for("3 raft voters", lambda: voters(c, leader) == {1, 2, 3}, 30)
    wait_for("every node to see the contract's leader", lambda: all(
        (chain(c, i).get("leader") or {}).get("token_id") for i in (1, 2, 3)), 40)
    for i in (1, 2, 3):
        ch = chain(c, i)
        check(ch.get("connected"), "node %d reads the chain: %s" % (i, ch))
        check("0123456789abcdefXYZ" not in ch.get("rpc_url", "") and "pw" not in ch.get("rpc_url2", "") and
              ch.get("rpc_url2", "").startswith("http://") and "127.0.0.1:%d" % b.port in ch["rpc_url2"],
              "node %d shows both URLs redacted: %s %s" % (i, ch.get("rpc_url"), ch.get("rpc_url2")))
    check(all(v == 0 for v in disagreements(c).values()),
          "two honest endpoints never disagree: %s" % disagreements(c))
    st, j, _ = c.increment(leader, key="two-first")
    check(st == 200, "an increment: %s %s" % (st, j))
    check(a.calls > 0 and b.calls > 0, "both endpoints are read: %d, %d calls" % (a.calls, b.calls))
    print("  cluster of 3 on two honest endpoints (%d and %d calls), leader %d, rpc_url2 shown as %s" %
          (a.calls, b.calls, leader, chain(c, 1)["rpc_url2"]))


def lie(what, start, stop_lying):
    """B lies (start()), for about 8 polls of each node, under write load:
    the lie is counted and logged, no membership change, writes flow."""
    c, b = S["c"], S["b"]
    logpos = {i: len(c.log(i)) for i in (1, 2, 3)}
    before = disagreements(c)
    views = {i: members(c, i) for i in (1, 2, 3)}
    check(all(v == {(1, False), (2, False), (3, False)} for v in views.values()),
          "every node's view lists 1, 2, 3: %s" % views)
    w = S["w"]
    t0 = time.time()
    start()
    seen_voters, seen_views = set(), set()
    while time.time() - t0 < 8:
        ld = c.leader(timeout=10)
        seen_voters.add(tuple(sorted(voters(c, ld))))
        for i in (1, 2, 3):
            v = members(c, i)
            if v is not None:
                seen_views.add(tuple(sorted(v)))
        time.sleep(0.3)
    after = disagreements(c)
    stop_lying()
    grew = {i: after[i] - before[i] for i in (1, 2, 3)}
    print("  (%s) B lied %d times; rpc_disagreements per node grew by %s" %
          (what, len(b.events), grew))
    check(all(g >= 3 for g in grew.values()), "(%s) every node counted the disagreement: %s" % (what, grew))
    check(all(metric(c, i) >= after[i] for i in (1, 2, 3)),
          "(%s) /metrics nftraft_chain_rpc_disagreements_total follows /status" % what)
    check(seen_voters == {(1, 2, 3)}, "(%s) raft voters stayed 1, 2, 3: %s" % (what, seen_voters))
    check(seen_views == {((1, False), (2, False), (3, False))},
          "(%s) no node adopted the lying view: %s" % (what, seen_views))
    check(w.acked_since(t0) > 20, "(%s) writes kept working: %d acknowledged" % (what, w.acked_since(t0)))
    for i in (1, 2, 3):
        tail = c.log(i)[logpos[i]:]
        warn = [ln for ln in tail.splitlines() if "the two RPC endpoints disagree" in ln]
        check(warn, "(%s) node %d logs the disagreement" % (what, i))
        check(len(warn) <= 3, "(%s) node %d logs it once per streak, not per poll: %d lines" %
              (what, i, len(warn)))
        check(not any(k in tail for k in ("raft remove", "no longer authorized", "missing from the members")),
              "(%s) node %d changed nothing:\n%s" % (what, i, tail[-2000:]))
    print("      node 1: %s" % [ln for ln in c.log(1)[logpos[1]:].splitlines()
                                 if "disagree" in ln][0].strip()[:260])


def test_one_endpoint_drops_a_member():
    c = S["c"]
    S["w"] = Writer(c)
    S["w"].t.start()
    S["t_load"] = time.time()
    lie("drop", lambda: S["b"].set_drop([3], 10 ** 6), S["b"].honest)


def test_one_endpoint_names_another_leader():
    c = S["c"]
    time.sleep(3)  # honest polls in between: a new streak, logged again
    cur = (chain(c, 1).get("leader") or {}).get("token_id")
    other = 1 if cur != 1 else 2
    lie("leader", lambda: S["b"].set_leader(other, 10 ** 6), S["b"].honest)


def test_honest_again_converges():
    c = S["c"]
    time.sleep(3)
    before = disagreements(c)
    t0 = time.time()
    time.sleep(5)
    after = disagreements(c)
    check(before == after, "no disagreement once B is honest: %s -> %s" % (before, after))
    blocks = {i: chain(c, i).get("block", 0) for i in (1, 2, 3)}
    time.sleep(2)
    check(all(chain(c, i).get("block", 0) > blocks[i] for i in (1, 2, 3)),
          "every node adopts new views again: %s" % blocks)
    check(voters(c, c.leader()) == {1, 2, 3}, "3 voters")
    for i in (1, 2, 3):
        check("the two RPC endpoints agree again" in c.log(i), "node %d logs the end of the streak" % i)
    w = S["w"]
    check(w.acked_since(t0) > 20, "writes work: %d" % w.acked_since(t0))
    w.stop = True
    w.t.join(30)
    vals = [v for _, v, _ in w.acked]
    check(len(set(vals)) == len(vals), "acknowledged values are unique")
    log = {e["index"]: e["value"] for e in c.full_log(c.leader())}
    lost = [(v, i) for _, v, i in w.acked if log.get(i) != v]
    check(not lost, "acknowledged increments missing from the log: %s" % lost[:5])
    ts = [S["t_load"]] + [a[0] for a in w.acked]
    gap = max(b - a for a, b in zip(ts, ts[1:]))
    print("  (figure) two RPCs, one lying: longest gap between acknowledged writes %.2f s "
          "(%d acknowledged, %d refused/failed, all found in /log)" % (gap, len(w.acked), w.refused))


def test_down():
    c = S.pop("c")
    c.down()
    c.check_logs_clean()


def cleanup():
    if "w" in S:
        S["w"].stop = True
    if "c" in S:
        S["c"].dump_logs()
        print("cluster dir kept: %s" % S["c"].dir)
        S.pop("c").down()
    for k in ("a", "b"):
        if k in S:
            S.pop(k).close()
    a = S.pop("anvil", None)
    if a is not None and a.poll() is None:
        os.killpg(a.pid, signal.SIGTERM)
        a.wait(20)


def main():
    if not (os.access(ANVIL, os.X_OK) and os.access(CAST, os.X_OK)):
        print("skip: no anvil/cast in %s (npm ci in contracts/)" % BIN)
        return 77
    try:
        return run([test_up_with_two_honest_rpcs, test_one_endpoint_drops_a_member,
                    test_one_endpoint_names_another_leader, test_honest_again_converges, test_down])
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
