#!/usr/bin/env python3
"""The seed's chain flow through nftraft's own Ethereum client (no cast):
`nftraft deploy`, `mint`, `register`, `members`, `elect`, `vote`,
`heartbeat`, `cluster-size`, `deactivate` against a real anvil; the v2
contract paths (`register --node-key ... --raft-endpoint ... --http-endpoint`,
`set-endpoints`, votes by token from a node key, `evict`, `readmit`,
`transfer`); revert reasons, an RPC that is down, and bad flags."""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import NFTRAFT, TestFailure, check, run  # noqa: E402

ROOT = os.environ.get("NFTRAFT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "contracts", "node_modules", ".bin")
MN = "test test test test test test test test test test test junk"
S = {}


def cast(*a):
    return subprocess.run([os.path.join(BIN, "cast"), *a], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def nft(*args, key=None, expect=0):
    env = dict(os.environ, NFTRAFT_ROOT=ROOT, ETH_RPC_URL=S["rpc"])
    env.pop("NFTRAFT_WALLET_KEY", None)
    if key:
        env["NFTRAFT_WALLET_KEY"] = key
    if "nft" in S:
        env["CONTRACT_ADDRESS"] = S["nft"]
    r = subprocess.run([NFTRAFT, *args], capture_output=True, text=True, timeout=120, env=env)
    if expect is not None and r.returncode != expect:
        raise TestFailure("nftraft %s: exit %d (want %d)\n%s%s" %
                          (" ".join(args), r.returncode, expect, r.stdout, r.stderr))
    return r


def setup():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    S["rpc"] = "http://127.0.0.1:%d" % port
    S["anvil"] = subprocess.Popen([os.path.join(BIN, "anvil"), "--port", str(port), "--silent"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
    for _ in range(100):
        if cast("block-number", "--rpc-url", S["rpc"]).isdigit():
            break
        time.sleep(0.1)
    S["keys"] = [cast("wallet", "private-key", "--mnemonic", MN, "--mnemonic-index", str(i)) for i in range(4)]
    S["addrs"] = [cast("wallet", "address", "--private-key", k).lower() for k in S["keys"]]


def test_deploy_mint_register_members():
    r = nft("deploy", "--compose-hash", "0x" + "c0" * 32, key=S["keys"][0])
    m = dict(l.split("=") for l in r.stdout.split() if "=" in l)
    check("NFT" in m and "KMS" in m, "deploy printed KMS= and NFT=: %s" % r.stdout)
    S["nft"] = m["NFT"]
    for i in (1, 2, 3):
        out = nft("mint", "--to", S["addrs"][i], "--name", "node%d" % i, key=S["keys"][0]).stdout
        check(re.search(r"transaction 0x[0-9a-f]{64} mined in block \d+", out) is not None, "mint %d: %s" % (i, out))
        nft("register", "--instance-id", "node%d" % i, "--token", str(i), key=S["keys"][i])
    out = nft("members").stdout
    check(len(re.findall(r"^(\d) +1 +node\1 ", out, re.M)) == 3, "three members named node1..3, epoch 1:\n%s" % out)
    check("2 required; 3 active members" in out, "required votes and active count:\n%s" % out)
    row = members_rows(out).get(2, ("",) * 6)
    check(row[2] == S["addrs"][2] and row[3] == S["addrs"][2] and row[4:] == ("-", "-"),
          "token 2: owner listed, node key = owner, no endpoints (the seed's registerInstance):\n%s" % out)


def test_elect_vote_heartbeat():
    nft("elect", key=S["keys"][1])
    check("leader %s (token 1" % S["addrs"][1] in nft("members").stdout, "node1 leads")
    nft("heartbeat", key=S["keys"][1])
    r = nft("heartbeat", key=S["keys"][2], expect=1)
    check("reverted: Not the leader" in r.stderr, "heartbeat by a follower: %r" % r.stderr)
    nft("vote", "--target", S["addrs"][1], key=S["keys"][2])
    check("votes against the leader 1 of 2" in nft("members").stdout, "one vote counted")
    nft("vote", "--target", S["addrs"][1], "--token", "3", key=S["keys"][3])
    out = nft("members").stdout
    check("leader %s (token 2" % S["addrs"][2] in out, "two votes moved the leader to token 2:\n%s" % out)
    check("votes against the leader 0 of 2" in out, "votes reset in the new term")
    nft("cluster-size", key=S["keys"][3])


def test_history_from_logs():
    out = nft("members", "--history").stdout
    changes = re.findall(r"block +\d+ +token (\d+) +0x([0-9a-f]{40})", out)
    check([c[0] for c in changes] == ["1", "2"], "LeaderElected history via eth_getLogs:\n%s" % out)
    check(changes[1][1] == S["addrs"][2][2:], "the second leader is token 2's owner")


def test_deactivate_and_errors():
    nft("deactivate", "--token", "3", key=S["keys"][0])
    check("2 active members" in nft("members").stdout, "deactivated")
    r = nft("mint", "--to", S["addrs"][1], "--name", "x", key=S["keys"][1], expect=1)
    check("reverted: custom error 0x118cdaa7" in r.stderr, "non-owner mint revert: %r" % r.stderr)
    r = nft("register", "--instance-id", "x" * 33, "--token", "1", key=S["keys"][1], expect=2)
    r = nft("vote", "--target", "0x1234", key=S["keys"][1], expect=2)
    r = nft("mint", "--bogus", expect=2)
    r = nft("elect", expect=1)  # no key
    check("signs a transaction" in r.stderr, "missing key message: %r" % r.stderr)
    r = nft("members", "--rpc-url", "http://127.0.0.1:1", expect=1)
    check("127.0.0.1:1" in r.stderr, "unreachable RPC named: %r" % r.stderr)


def members_rows(out):
    """token -> (epoch, instance, owner, node key, raft, http) from `members`."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 7 and f[0].isdigit():
            rows[int(f[0])] = tuple(f[1:])
    return rows


def test_v2_register_node_evict_readmit_transfer():
    r = nft("deploy", key=S["keys"][0])
    v2 = dict(l.split("=") for l in r.stdout.split() if "=" in l)["NFT"]
    saved, S["nft"] = S["nft"], v2
    k0, k1, k2, k3 = S["keys"]
    a0, a1, a2, a3 = S["addrs"]
    ep = ("--raft-endpoint", "127.0.0.1:7001", "--http-endpoint", "http://127.0.0.1:8001")
    try:
        nft("mint", "--to", a1, "--name", "one", key=k0)
        nft("mint", "--to", a2, "--name", "two", key=k0)
        # token 1: its own node key (account 3), endpoints
        nft("register", "--token", "1", "--instance-id", "node1", "--node-key", a3, *ep, key=k1)
        # token 2: a non-printable instance id stays hex
        raw = "0x01ff" + "00" * 30
        nft("register", "--token", "2", "--instance-id", raw, "--node-key", a2,
            "--raft-endpoint", "127.0.0.1:7002", "--http-endpoint", "http://127.0.0.1:8002", key=k2)
        out = nft("members").stdout
        rows = members_rows(out)
        check(rows.get(1) == ("1", "node1", a1, a3, "127.0.0.1:7001", "http://127.0.0.1:8001"),
              "token 1: epoch, name, owner, node key, endpoints:\n%s" % out)
        check(rows.get(2, ("",) * 6)[1] == raw, "non-printable instance id in hex:\n%s" % out)
        # the node key acts for its token: endpoints, election, heartbeat, vote by token
        nft("set-endpoints", "--token", "1", "--raft-endpoint", "10.0.0.1:7", "--http-endpoint",
            "http://10.0.0.1:8", key=k3)
        check(members_rows(nft("members").stdout)[1][4] == "10.0.0.1:7", "endpoints set by the node key")
        nft("elect", "--token", "1", key=k3)
        nft("heartbeat", key=k3)
        check("leader %s (token 1" % a1 in nft("members").stdout, "elected by the node key")
        nft("vote", "--token", "2", "--leader-token", "1", key=k2)
        check("votes against the leader 1 of 2" in nft("members").stdout, "vote by token counted")
        nft("vote", "--token", "2", "--leader-token", "1", "--clear", key=k2)
        check("votes against the leader 0 of 2" in nft("members").stdout, "vote by token cleared")
        # bad input: a clear revert reason, exit 1, nothing changed
        before = nft("members").stdout
        for args, k, reason in (
                (("register", "--token", "2", "--instance-id", "node1", "--node-key", a2, *ep), k2,
                 "Instance registered to another token"),
                (("register", "--token", "1", "--instance-id", "node9", "--node-key", a3, *ep), k2,
                 "Must own NFT"),
                (("register", "--token", "1", "--instance-id", "node1", "--node-key", "0x" + "00" * 20, *ep),
                 k1, "Invalid node key"),
                (("set-endpoints", "--token", "1", "--raft-endpoint", "x:1", "--http-endpoint", "http://x"), k2,
                 "Not the token's owner or node key"),
                (("vote", "--token", "1", "--leader-token", "2"), k3, "Not the current leader"),
                (("readmit", "--token", "1"), k0, "Not evicted"),
                (("evict", "--token", "1"), k1, "custom error 0x118cdaa7")):
            r = nft(*args, key=k, expect=1)
            check("nftraft %s: reverted: %s" % (args[0], reason) in r.stderr,
                  "%s: want reason %r, got %r" % (" ".join(args[:3]), reason, r.stderr))
        check(nft("members").stdout == before, "the reverts changed nothing")
        # usage errors (exit 2): checked before anything is sent
        for args in (("register", "--token", "1", "--instance-id", "node1", "--node-key", a3,
                      "--raft-endpoint", "h" * 257, "--http-endpoint", "http://x"),
                     ("register", "--token", "1", "--instance-id", "node1", "--node-key", "0x12", *ep),
                     ("register", "--token", "1", "--instance-id", "node1", "--raft-endpoint", "h:1"),
                     ("evict",), ("transfer", "--token", "1"), ("vote", "--leader-token", "1")):
            r = nft(*args, key=k1, expect=2)
            check(r.stderr.startswith("nftraft %s: " % args[0]), "usage error named: %r" % r.stderr)
        # eviction: the holder cannot come back until readmit
        nft("evict", "--token", "1", key=k0)
        rows = members_rows(nft("members").stdout)
        check(1 not in rows and 2 in rows, "evicted token 1 is no member: %s" % rows)
        check("leader 0x" + "00" * 20 in nft("members").stdout, "the evicted leader is cleared")
        r = nft("register", "--token", "1", "--instance-id", "node1", "--node-key", a3, *ep, key=k1, expect=1)
        check("reverted: Token evicted" in r.stderr, "re-register while evicted: %r" % r.stderr)
        r = nft("register", "--token", "1", "--instance-id", "node1", key=k1, expect=1)
        check("reverted: Token evicted" in r.stderr, "seed form too: %r" % r.stderr)
        nft("readmit", "--token", "1", key=k0)
        nft("register", "--token", "1", "--instance-id", "node1", "--node-key", a3, *ep, key=k1)
        check(members_rows(nft("members").stdout)[1][0] == "2", "re-admitted: a new epoch")
        # transfer: the owner's key moves the token; the instance is revoked
        nft("transfer", "--token", "1", "--to", a0, key=k1)
        check(cast("call", v2, "ownerOf(uint256)(address)", "1", "--rpc-url", S["rpc"]).lower() == a0,
              "token 1 now owned by account 0")
        check(1 not in members_rows(nft("members").stdout), "transfer revoked token 1's instance")
        r = nft("transfer", "--token", "1", "--to", a1, key=k1, expect=1)
        check("nftraft transfer: reverted: " in r.stderr, "transfer by a former owner: %r" % r.stderr)
        r = nft("transfer", "--token", "1", "--to", a1, expect=1)
        check("signs a transaction" in r.stderr, "transfer without a key: %r" % r.stderr)
    finally:
        S["nft"] = saved


def test_up_on_an_existing_chain():
    import tempfile
    from cluster import free_base_port, http
    r = nft("deploy", key=S["keys"][0])
    nft2 = dict(l.split("=") for l in r.stdout.split() if "=" in l)["NFT"]
    saved, S["nft"] = S["nft"], nft2
    try:
        for i in (1, 2):  # one wallet owns both tokens
            nft("mint", "--to", S["addrs"][0], "--name", "n%d" % i, key=S["keys"][0])
            nft("register", "--instance-id", "node%d" % i, "--token", str(i), key=S["keys"][0])
    finally:
        S["nft"] = saved
    d = tempfile.mkdtemp(prefix="nftraft-ext-")
    keyf = os.path.join(d, "owner.key")
    with open(keyf, "w") as f:
        f.write(S["keys"][0])
    base = free_base_port(2)
    up = subprocess.run([NFTRAFT, "up", "--nodes", "2", "--rpc-url", S["rpc"], "--contract", nft2,
                         "--wallet-key", keyf, "--base-port", str(base), "--dir", os.path.join(d, "c"),
                         "--detach"], capture_output=True, text=True, timeout=120)
    try:
        check(up.returncode == 0 and "existing chain" in up.stdout, "up: %s%s" % (up.stdout, up.stderr))
        url = "http://127.0.0.1:%d" % base
        deadline = time.time() + 20
        while True:
            st, j, _ = http("GET", url + "/status")
            if st == 200 and j["chain"] and j["chain"]["leader"]["token_id"] in (1, 2):
                break
            check(time.time() < deadline, "no on-chain leader: %s" % j)
            time.sleep(0.3)
        st, j, _ = http("POST", url + "/increment", "", {"Content-Type": "application/json"})
        check(st == 200 and j["value"] == 1, "increment: %s %s" % (st, j))
    finally:
        subprocess.run([NFTRAFT, "down", "--dir", os.path.join(d, "c")], capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", d])


class Hostile(__import__("http.server").server.BaseHTTPRequestHandler):
    """A JSON-RPC server that answers every call in one bad way."""
    mode = "garbage"

    def log_message(self, *a):
        pass

    def do_POST(self):
        import json as J
        req = J.loads(self.rfile.read(int(self.headers["Content-Length"])))
        m = Hostile.mode
        if m == "hang":
            time.sleep(30)
            return
        body = {"garbage": b"{not json",
                "wrong-id": J.dumps({"jsonrpc": "2.0", "id": 999, "result": "0x1"}).encode(),
                "wrong-type": J.dumps({"jsonrpc": "2.0", "id": req["id"], "result": 12}).encode(),
                "short-data": J.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x" + "00" * 31}).encode(),
                "huge-array": J.dumps({"jsonrpc": "2.0", "id": req["id"],
                                       "result": "0x" + "00" * 31 + "60" + "00" * 31 + "01" + "00" * 31 + "ff" * 1}).encode(),
                "big-body": b" " * (5 << 20),
                }[m]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass


def test_malformed_rpc_answers():
    import http.server
    import threading
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        for mode, needle in (("garbage", "malformed"), ("wrong-id", "malformed"),
                             ("wrong-type", "malformed"), ("short-data", "malformed"),
                             ("huge-array", "malformed"), ("big-body", "too large"),
                             ("hang", "timed out")):
            Hostile.mode = mode
            t0 = time.time()
            r = nft("members", "--rpc-url", url, expect=None)
            check(r.returncode == 1 and needle in r.stderr.lower(),
                  "%s: exit %d, %r" % (mode, r.returncode, r.stderr[-200:]))
            check(time.time() - t0 < 45, "%s took too long" % mode)
    finally:
        srv.shutdown()


def test_node_with_chain_down_and_a_bad_cached_view():
    """nftraftd with its chain unreachable starts only from a good cached
    view (DATA_DIR/chain-view.json); anything else: exit 1, the file named."""
    import tempfile
    from cluster import NFTRAFTD
    d = tempfile.mkdtemp(prefix="nftraft-cache-")
    keyf = os.path.join(d, "key")
    with open(keyf, "w") as f:
        f.write(S["keys"][1])
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % s.getsockname()[1]  # bound, not listening: refused
    args = [NFTRAFTD, "--data-dir", d, "--http", "127.0.0.1:1", "--raft", "127.0.0.1:2",
            "--rpc-url", dead, "--contract", S["nft"], "--instance-id", "node1", "--wallet-key", keyf,
            "--peers", "1=127.0.0.1:2=http://127.0.0.1:1"]
    view = os.path.join(d, "chain-view.json")
    cases = [(None, "no usable"),
             ("{not json", "no usable"),
             ('{"version":1,"chain_id":31337,"contract":"0x%s","members":[]}' % ("11" * 20),
              "is for contract 0x1111"),
             ('{"version":2,"chain_id":31337,"contract":"%s","members":[]}' % S["nft"], "is malformed"),
             ('{"version":1,"chain_id":31337,"contract":"%s","members":[{"token":1,"instance":"0x12",'
              '"owner":"0x%s"}]}' % (S["nft"], "22" * 20), "member 0 is malformed")]
    try:
        for text, needle in cases:
            if text is None:
                if os.path.exists(view):
                    os.unlink(view)
            else:
                with open(view, "w") as f:
                    f.write(text)
            r = subprocess.run(args, capture_output=True, text=True, timeout=60)
            check(r.returncode == 1 and needle in r.stderr and "chain-view.json" in r.stderr,
                  "cached view %r: exit %d, %r" % (text and text[:40], r.returncode, r.stderr[-400:]))
    finally:
        s.close()
        subprocess.run(["rm", "-rf", d])


def main():
    try:
        setup()
        return run([test_deploy_mint_register_members, test_elect_vote_heartbeat,
                    test_history_from_logs, test_deactivate_and_errors,
                    test_v2_register_node_evict_readmit_transfer,
                    test_up_on_an_existing_chain,
                    test_node_with_chain_down_and_a_bad_cached_view,
                    test_malformed_rpc_answers])
    finally:
        if "anvil" in S:
            os.killpg(S["anvil"].pid, 9)
            S["anvil"].wait()


if __name__ == "__main__":
    sys.exit(main())
