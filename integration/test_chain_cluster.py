#!/usr/bin/env python3
"""Chain mode end to end on a real anvil (issue 4): `nftraft up --chain
anvil` (deploy, mint, register, keys); increments through every node; the
contract's view in /status and /members; the leader made unresponsive to
HTTP while its raft keeps running: followers vote no-confidence, the
contract elects a new leader, raft transfers to it, increments continue
(timed); raft's port refuses peers that do not prove they hold an active
token owner's key; the chain paused: increments continue and /status says why, then
it recovers (a node restarted during the outage starts from its cached
contract view); an instance deactivated on chain leaves raft; idle RPC rate."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (NFTRAFT, Cluster, Writer, check, finish,  # noqa: E402
                     free_port, http, run, wait_for)

ROOT = os.environ.get("NFTRAFT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAST = os.path.join(ROOT, "contracts", "node_modules", ".bin", "cast")
C = None
FIG = {}


def chain_status(i):
    s = C.status(i, timeout=3)
    return s and s.get("chain")


def increments(n, nodes=(1, 2, 3)):
    done = 0
    deadline = time.time() + 60
    while done < n:
        check(time.time() < deadline, "increments stalled")
        node = nodes[done % len(nodes)]
        st, j, _ = C.increment(node, key="k-%d-%f" % (done, time.time()), timeout=6)
        if st == 200:
            done += 1
        else:
            time.sleep(0.1)


def test_up_on_anvil_and_increment_everywhere():
    global C
    C = Cluster(3, chain="anvil", extra=["--anvil-port", str(free_port()),
                                         "--enable-fault-switch", "--spare", "1"])
    print(C.up().strip())
    leader = C.leader()
    wait_for("the on-chain leader to be the raft leader",
             lambda: (chain_status(leader) or {}).get("leader", {}).get("token_id") == leader, 20)
    # Each node reads the contract once per --chain-poll: wait for all views.
    wait_for("every node's chain view to show the on-chain leader", lambda: all(
        (chain_status(i) or {}).get("leader", {}).get("token_id") == leader for i in (1, 2, 3)), 10)
    increments(30)
    for i in (1, 2, 3):
        st, j, _ = http("GET", C.url(i) + "/counter")
        check(st == 200 and j["value"] == 30, "node %d counter %s" % (i, j))
        cs = chain_status(i)
        check(cs["connected"] and cs["chain_id"] == 31337 and cs["active_members"] == 3 and
              cs["required_votes"] == 2, "node %d chain view %s" % (i, cs))
    r = subprocess.run([NFTRAFT, "status", "--dir", C.dir], capture_output=True, text=True, timeout=30)
    rows = [l for l in r.stdout.splitlines() if l.startswith("http://")]
    check(r.returncode == 0 and len(rows) >= 3 and all("leader=%d votes=0/2" % leader in l for l in rows[:3]),
          "nftraft status shows the contract's leader: %s" % r.stdout)
    st, m, _ = http("GET", C.url(2) + "/members")
    check(m["source"] == "contract" and len(m["members"]) == 3, "/members from the contract: %s" % m)
    check(sum(1 for x in m["members"] if x["role"] == "leader") == 1, "one leader in /members")
    # Idle RPC rate (no polling storm): calls over 5 s on a follower.
    f = [i for i in (1, 2, 3) if i != leader][0]
    a = chain_status(f)["rpc_calls"]
    time.sleep(5)
    FIG["idle_rpc_per_s"] = (chain_status(f)["rpc_calls"] - a) / 5
    print("  (figure) chain RPC calls per second per node at idle: %.1f" % FIG["idle_rpc_per_s"])


def keccak(data):
    out = subprocess.run([CAST, "keccak", "0x" + data.hex()], capture_output=True, text=True, check=True)
    return bytes.fromhex(out.stdout.strip()[2:])


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return b


def rid(token, via=1):
    """Token's raft id as the contract registers it: token << 32 | epoch."""
    m = http("GET", C.url(via) + "/members")[1]
    return next((x["raft_id"] for x in m["members"] if x["token_id"] == token), None)


def raft_dial(node, claim, key=None, junk=False, silent=False):
    """Open a raft connection to `node` as raft_uv_tcp does (its preamble),
    then answer nftraft's challenge: with a signature by `key` (hex), junk,
    or nothing at all. Returns the verdict byte (b"" when closed)."""
    nft = C.chain_env()[1]
    want = rid(node)
    s = socket.create_connection(("127.0.0.1", C.base + 100 + node - 1), timeout=15)
    try:
        addr = b"127.0.0.1:1\0"
        addr += b"\0" * (-len(addr) % 8)
        s.sendall(struct.pack("<QQQ", 1, claim, len(addr)) + addr)
        ch = recv_exact(s, 48)
        check(len(ch) == 48 and ch[:8] == b"nftraft1", "no nftraft challenge: %r" % ch)
        nonce, acceptor = ch[8:40], struct.unpack(">Q", ch[40:48])[0]
        check(acceptor == want, "challenge names raft id %d, not %d" % (acceptor, want))
        if silent:
            t0 = time.time()
            rest = s.recv(1)
            return rest, time.time() - t0
        if junk:
            sig = b"\x01" * 65
        else:
            domain = keccak((31337).to_bytes(32, "big") + bytes.fromhex(nft[2:]))
            digest = keccak(b"nftraft raft handshake v1" + domain + acceptor.to_bytes(8, "big") +
                            claim.to_bytes(8, "big") + nonce)
            out = subprocess.run([CAST, "wallet", "sign", "--no-hash", "0x" + digest.hex(), "--private-key", key],
                                 capture_output=True, text=True, check=True).stdout.strip()
            sig = bytes.fromhex(out[2:])
            sig = sig[:64] + bytes([sig[64] - 27 if sig[64] >= 27 else sig[64]])
        s.sendall(sig)
        return recv_exact(s, 1)
    finally:
        s.close()


def test_raft_port_refuses_impostors():
    """Chain mode: raft speaks only to a peer proving it holds the node key
    registered for the active token it claims as its raft id."""
    key = {i: open(os.path.join(C.dir, "node%d" % i, "wallet.key")).read().strip() for i in (1, 2, 3)}
    target = 1
    r2 = rid(2)
    check(r2 >> 32 == 2 and r2 & 0xffffffff >= 1, "token 2's raft id is token << 32 | epoch: %d" % r2)
    check(raft_dial(target, r2, key[2]) == b"\x01", "token 2's node key claiming its raft id is accepted")
    # The owner's key stays cold: it mints and registers, it does not speak raft.
    for claim, k, junk, why in ((r2, dev_key(2), False, "token 2's owner key (not its node key)"),
                                (r2, None, True, "junk signature"),
                                (r2, dev_key(9), False, "a key owning no token"),
                                (r2, key[3], False, "token 3's key claiming token 2"),
                                (r2 - 1, key[2], False, "token 2's key claiming a stale epoch"),
                                (2, key[2], False, "the bare token (raft ids before epochs)"),
                                (7 << 32 | 1, key[2], False, "a token that does not exist")):
        check(raft_dial(target, claim, k, junk) == b"\x00", "%s was not refused" % why)
    verdict, waited = raft_dial(target, r2, silent=True)
    check(verdict == b"" and 4 < waited < 9, "a silent peer is dropped after the 5 s handshake limit "
          "(%r after %.1f s)" % (verdict, waited))
    log = C.log(target)
    for needle in ("is not the node key of token 2", "token 7 is not an active registered member",
                   "but token 2 is registered in epoch", "handshake timed out"):
        check(needle in log, "node %d log does not say %r" % (target, needle))
    check(log.count("refused raft connection") >= 4, "refusals are logged")
    st, metrics, _ = http("GET", C.url(target) + "/metrics")
    refused = [l for l in metrics.splitlines() if l.startswith("nftraft_raft_connections_refused_total ")]
    check(refused and int(refused[0].split()[1]) >= 4, "/metrics counts the refusals: %s" % refused)
    increments(5)  # the cluster did not notice


def test_unresponsive_leader_is_voted_out():
    old = C.leader()
    others = [i for i in (1, 2, 3) if i != old]
    t0 = time.time()
    st, j, _ = http("POST", C.url(old) + "/fault", '{"http_stall": true}')
    check(st == 200, "fault switch: %s %s" % (st, j))
    k = 0
    while True:
        check(time.time() - t0 < 30, "no increment by a new leader within 30 s")
        st, j, _ = C.increment(others[k % 2], timeout=3)
        if st == 200 and j["leader"] >> 32 != old:
            break
        k += 1
        time.sleep(0.05)
    FIG["vote_out_s"] = time.time() - t0
    print("  (figure) leader stops answering HTTP -> first increment committed by the "
          "new leader: %.2f s" % FIG["vote_out_s"])
    new = j["leader"] >> 32
    cs = chain_status(new)
    check(cs["leader"]["token_id"] == new, "the contract names the new leader: %s" % cs)
    increments(10, nodes=others)
    http("POST", C.url(old) + "/fault", '{"http_stall": false}')
    wait_for("the old leader to answer again", lambda: C.status(old), 10)
    increments(5)


def test_chain_paused_raft_keeps_serving():
    pid = int(open(os.path.join(C.dir, "anvil.pid")).read())
    os.killpg(pid, signal.SIGSTOP)
    try:
        time.sleep(4)
        before = http("GET", C.url(1) + "/counter")[1]["value"]
        increments(10)
        after = http("GET", C.url(2) + "/counter")[1]["value"]
        check(after == before + 10, "increments while the chain is paused")
        cs = wait_for("/status to report the chain error",
                      lambda: (lambda c: c if c and not c["connected"] and c["error"] else None)(chain_status(1)), 15)
        print("  chain paused: /status.chain.error = %r" % cs["error"])
    finally:
        os.killpg(pid, signal.SIGCONT)
    wait_for("the chain to be reachable again", lambda: (chain_status(1) or {}).get("connected"), 20)


def dev_key(i):
    return subprocess.run(
        [CAST, "wallet", "private-key",
         "--mnemonic", "test test test test test test test test test test test junk",
         "--mnemonic-index", str(i)], capture_output=True, text=True).stdout.strip()


def test_chain_killed_for_20s_then_recovers():
    rpc, nft = C.chain_env()
    pid = int(open(os.path.join(C.dir, "anvil.pid")).read())
    os.killpg(pid, signal.SIGTERM)  # anvil writes DIR/anvil-state.json
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.killpg(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    t0 = time.time()
    before = http("GET", C.url(1) + "/counter")[1]["value"]
    done = 0
    # A follower crashes and restarts while the chain is gone: it starts from
    # the contract view cached in its data dir and serves again.
    rn = [i for i in (1, 2, 3) if i != C.leader()][0]
    C.kill9(rn)
    C.start_node(rn)
    cs = chain_status(rn)
    check(cs and not cs["connected"] and "cached view" in (cs["error"] or ""),
          "restarted node %d says it runs on the cached view: %s" % (rn, cs))
    check("starting from the cached contract view" in C.log(rn), "node %d log explains the start" % rn)
    while time.time() - t0 < 20:  # 20 s without a chain: raft serves
        increments(1)
        done += 1
        time.sleep(0.2)
    for i in (1, 2, 3):
        wait_for("node %d to apply every increment" % i, lambda: http("GET", C.url(i) + "/counter?stale=1")[1]
                 ["value"] == before + done, 10)
    check(http("GET", C.url(3) + "/counter")[1]["value"] == before + done, "increments without the chain")
    cs = chain_status(1)
    check(not cs["connected"] and cs["error"], "/status reports the chain down: %s" % cs)
    port = rpc.rsplit(":", 1)[1]
    anvil = subprocess.Popen([os.path.join(ROOT, "contracts", "node_modules", ".bin", "anvil"), "--host",
                              "127.0.0.1", "--port", port, "--block-time", "1", "--state",
                              os.path.join(C.dir, "anvil-state.json")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(C.dir, "anvil.pid"), "w") as f:
        f.write("%d\n" % anvil.pid)
    cs = wait_for("the chain to be reachable again with its state", lambda: (lambda c: c if c and c["connected"]
                  and c["active_members"] == 3 else None)(chain_status(1)), 30)
    print("  chain back after a 20 s outage at block %d, leader token %d" % (cs["block"], cs["leader"]["token_id"]))
    wait_for("the restarted node %d to reach the chain" % rn, lambda: (chain_status(rn) or {}).get("connected"), 30)
    increments(5)


def test_fourth_instance_registered_while_running_joins():
    rpc, nft = C.chain_env()
    key4 = open(os.path.join(C.dir, "node4", "wallet.key")).read().strip()
    addr4 = subprocess.run([CAST, "wallet",
                            "address", "--private-key", key4], capture_output=True, text=True).stdout.strip()
    # Registered with its endpoints: the other nodes have no address book
    # (up started them without --peers) and find node 4 from the contract.
    url4 = "http://127.0.0.1:%d" % (C.base + 3)
    reg = ["register", "--instance-id", "node4", "--token", "4", "--node-key", addr4,
           "--raft-endpoint", "127.0.0.1:%d" % (C.base + 103), "--http-endpoint", url4]
    for args, key in ((["mint", "--to", addr4, "--name", "node4"], dev_key(0)), (reg, key4)):
        r = subprocess.run([NFTRAFT, *args, "--rpc-url", rpc, "--contract", nft], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, NFTRAFT_WALLET_KEY=key))
        check(r.returncode == 0, "%s: %s" % (args[0], r.stderr))
    args = [l for l in open(os.path.join(C.dir, "node4", "cmdline")).read().split("\n") if l]
    check("--join" in args and "--peers" not in args, "the spare slot starts with --join, no address book")
    check(all("--peers" not in C.cmdline(i) for i in (1, 2, 3)), "chain-mode nodes start without --peers")
    log = open(os.path.join(C.dir, "node4", "node.log"), "a")
    FIG["node4"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    if len(C.urls) == 3:
        C.urls.append(url4)  # later tests may address node 4 as C.url(4)
    leader = C.leader()
    m = wait_for("node 4 to become a raft voter", lambda: (lambda m: m if any(
        x["token_id"] == 4 and x["role"] == "follower" for x in m["members"]) else None)(
        http("GET", C.url(leader) + "/members")[1]), 30)
    check(len(m["members"]) == 4 and any(x["id"] >> 32 == 4 and x["role"] == "voter" for x in m["raft"]),
          "four members, token 4 a raft voter: %s" % m)
    before = http("GET", C.url(1) + "/counter")[1]["value"]
    st, j, _ = http("POST", url4 + "/increment", "", {"Content-Type": "application/json"}, timeout=10)
    check(st == 200 and j["value"] == before + 1, "an increment through node 4: %s %s" % (st, j))
    wait_for("node 4 to apply it", lambda: (lambda s: s if s and s["value"] == before + 1 else None)(
        http("GET", url4 + "/status")[1]), 10)


def test_deactivated_instance_leaves_raft():
    leader = C.leader()
    victim = [i for i in (1, 2, 3) if i != leader][-1]
    victim_rid = rid(victim)
    FIG["deactivated"] = (victim, victim_rid)
    env = dict(os.environ, NFTRAFT_WALLET_KEY=dev_key(0))  # the contract owner
    rpc, nft = C.chain_env()
    r = subprocess.run([NFTRAFT, "deactivate", "--rpc-url", rpc, "--contract", nft, "--token", str(victim)],
                       capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0, "deactivate: %s" % r.stderr)
    wait_for("the contract view without token %d" % victim, lambda: all(
        x["token_id"] != victim for x in http("GET", C.url(leader) + "/members")[1]["members"]), 20)
    wait_for("raft's configuration to drop token %d" % victim, lambda: all(
        x["id"] >> 32 != victim for x in http("GET", C.url(C.leader()) + "/members")[1]["raft"]), 20)
    increments(10, nodes=[i for i in (1, 2, 3) if i != victim])
    # The victim refuses once its own chain view has the deactivation (it
    # polls the chain itself; until then it forwards like any node).
    wait_for("node %d's own view to make it unwritable" % victim,
             lambda: (C.status(victim) or {}).get("writable_error"), 20)
    st, j, _ = C.increment(victim, timeout=5)
    check(st in (403, 503), "the deactivated node refuses writes: %s %s" % (st, j))
    # Revocation reaches the raft connections it already had: the leader
    # (which the victim, a follower, was answering) closed the victim's
    # established stream when its member view changed.
    wait_for("the leader to close token %d's raft connection" % victim,
             lambda: "(raft id %d): no longer authorized" % victim_rid in C.log(leader), 10)


def test_reactivated_instance_restarts_as_new_server():
    """The deactivated instance is registered again by its token's owner:
    a new epoch, so a new raft id. The running node cannot change its raft
    id in process: it stops, re-executes itself (same pid), moves its old
    state aside and joins as the new server; the old id stays removed."""
    victim, old_rid = FIG["deactivated"]
    pid = C.pid(victim)
    node_key = subprocess.run([CAST, "wallet", "address", "--private-key",
                               open(os.path.join(C.dir, "node%d" % victim, "wallet.key")).read().strip()],
                              capture_output=True, text=True, check=True).stdout.strip()
    rpc, nft = C.chain_env()
    r = subprocess.run([NFTRAFT, "register", "--rpc-url", rpc, "--contract", nft, "--instance-id",
                        "node%d" % victim, "--token", str(victim), "--node-key", node_key,
                        "--raft-endpoint", "127.0.0.1:%d" % (C.base + 100 + victim - 1),
                        "--http-endpoint", C.url(victim)], capture_output=True, text=True,
                       env=dict(os.environ, NFTRAFT_WALLET_KEY=dev_key(victim)), timeout=60)
    check(r.returncode == 0, "register again: %s%s" % (r.stdout, r.stderr))
    t0 = time.time()
    new_rid = wait_for("a new epoch for token %d" % victim, lambda: (lambda x: x if x not in (None, old_rid) else None)(
        rid(victim, via=C.leader())), 20)
    check(new_rid >> 32 == victim and new_rid > old_rid, "raft id %d after %d" % (new_rid, old_rid))
    wait_for("node %d to come back as raft id %d" % (victim, new_rid),
             lambda: (C.status(victim) or {}).get("id") == new_rid, 30)
    wait_for("raft id %d a voter, %d gone" % (new_rid, old_rid), lambda: (lambda ids: (
        new_rid, "voter") in ids and not any(i == old_rid for i, _ in ids))(
        {(x["id"], x["role"]) for x in http("GET", C.url(C.leader()) + "/members")[1]["raft"]}), 30)
    FIG["reactivated"] = time.time() - t0
    print("  (figure) instance re-registered (new epoch) -> restarted and raft voter: %.2f s" % FIG["reactivated"])
    check(C.pid(victim) == pid and os.path.exists("/proc/%d" % pid), "re-executed in place (pid %d)" % pid)
    log = C.log(victim)
    for needle in ("a new registration is a new raft server", "re-executing",
                   "its old state is kept in", "belonged to raft id %d" % old_rid):
        check(needle in log, "node %d log does not say %r" % (victim, needle))
    check(any(n.startswith("old-%d-" % old_rid) for n in os.listdir(os.path.join(C.dir, "node%d" % victim))),
          "the old state was moved aside")
    st, j, _ = C.increment(victim, timeout=10)
    check(st == 200, "an increment through the re-registered node: %s %s" % (st, j))


def test_leader_deactivated_hands_over_under_load():
    """The raft leader's own token is deactivated while writes flow: it
    stops serving writes, hands leadership to a caught-up member, the new
    leader removes it, and no acknowledged increment is lost."""
    leader = C.leader()
    others = [i for i in (1, 2, 3, 4) if i != leader and
              any(x["token_id"] == i for x in http("GET", C.url(leader) + "/members")[1]["members"])]
    check(len(others) >= 2, "two other active members: %s" % others)
    env = dict(os.environ, NFTRAFT_WALLET_KEY=dev_key(0))
    rpc, nft = C.chain_env()
    with Writer(C, others) as w:
        time.sleep(1.5)
        r = subprocess.run([NFTRAFT, "deactivate", "--rpc-url", rpc, "--contract", nft,
                            "--token", str(leader)], capture_output=True, text=True, env=env, timeout=60)
        check(r.returncode == 0, "deactivate: %s" % r.stderr)
        new = wait_for("a new raft leader", lambda: next(
            (i for i in others if (C.status(i) or {}).get("role") == "leader"), None), 20)
        wait_for("raft's configuration to drop token %d" % leader, lambda: all(
            x["id"] >> 32 != leader for x in http("GET", C.url(new) + "/members")[1]["raft"]), 20)
        time.sleep(1.5)
    check(len(w.acked) > 20, "writes were acknowledged throughout: %d" % len(w.acked))
    FIG["leader deactivated: longest gap between acknowledged writes"] = w.longest_gap(from_start=False)
    print("  (figure) leader's token deactivated under load: longest gap between "
          "acknowledged writes %.2f s, %d writes acknowledged" % (w.longest_gap(from_start=False), len(w.acked)))
    log = {e["index"]: e["value"] for e in C.full_log(new)}
    lost = [(v, i) for _, v, i in w.acked if log.get(i) != v]
    check(not lost, "acknowledged increments missing from the log: %s" % lost[:5])
    st, j, _ = C.increment(leader, timeout=5)
    check(st in (403, 503), "the old leader refuses writes: %s %s" % (st, j))


def test_clean_shutdown():
    C.down()
    C.check_logs_clean()
    check(subprocess.run(["pgrep", "-f", "anvil.*%s" % C.dir]).returncode != 0, "anvil stopped")


def main():
    try:
        return run([test_up_on_anvil_and_increment_everywhere, test_raft_port_refuses_impostors,
                    test_unresponsive_leader_is_voted_out,
                    test_chain_paused_raft_keeps_serving, test_chain_killed_for_20s_then_recovers,
                    test_fourth_instance_registered_while_running_joins,
                    test_deactivated_instance_leaves_raft,
                    test_reactivated_instance_restarts_as_new_server,
                    test_leader_deactivated_hands_over_under_load,
                    test_clean_shutdown])
    finally:
        if C is not None:
            C.down()
        if "node4" in FIG and FIG["node4"].poll() is None:
            FIG["node4"].kill()


if __name__ == "__main__":
    sys.exit(finish(C, main(), remove=False))
