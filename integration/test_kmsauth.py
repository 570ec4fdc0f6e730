#!/usr/bin/env python3
"""`nftraft kms-auth` against a real anvil with the project's KMS factory and
NFT: allowed/denied answers with dstack's exact reasons, schema failures,
no caching, finality confirmations, chain id check, fail-closed when the
RPC is gone, and the --mock policies."""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import NFTRAFT, TestFailure, check, http, run  # noqa: E402

ROOT = os.environ.get("NFTRAFT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "contracts", "node_modules", ".bin")
MN = "test test test test test test test test test test test junk"
COMPOSE = "0x" + "c0" * 32
INSTANCE = "ab" * 20                      # 20-byte instance id, no 0x
INVALID = {"isAllowed": False, "reason": "invalid authorization request", "gatewayAppId": ""}
UNAVAILABLE = {"isAllowed": False, "gatewayAppId": "", "reason": "authorization backend unavailable"}
S = {}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cast(*args):
    r = subprocess.run([os.path.join(BIN, "cast"), *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise TestFailure("cast %s: %s" % (" ".join(args[:2]), r.stderr[-300:]))
    return r.stdout.strip()


def send(key, to, *sig_args):
    out = cast("send", "--rpc-url", S["rpc"], "--private-key", key, "--json", to, *sig_args)
    check(json.loads(out).get("status") in ("0x1", 1), "tx failed: %s" % (sig_args,))


def start_auth(extra_env=None, mock=False):
    port = free_port()
    env = dict(os.environ, ETH_RPC_URL=S["rpc"], KMS_CONTRACT_ADDR=S["kms"], PORT=str(port))
    env.update(extra_env or {})
    args = [NFTRAFT, "kms-auth"] + (["--mock"] if mock else [])
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = "http://127.0.0.1:%d" % port
    for _ in range(100):
        if http("GET", url + "/", timeout=1)[0] in (200, 500):
            return p, url
        time.sleep(0.05)
    p.kill()
    raise TestFailure("kms-auth did not start: %s" % p.stderr.read())


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        raise TestFailure("kms-auth did not stop on SIGTERM")
    check(p.returncode == 0, "kms-auth exit code %s" % p.returncode)


def boot(**over):
    b = {"mrAggregated": "00" * 32, "osImageHash": "00" * 32, "appId": S["nft"][2:],
         "composeHash": COMPOSE[2:], "instanceId": INSTANCE, "deviceId": "11" * 32,
         "tcbStatus": "UpToDate", "advisoryIds": [], "teeVariant": "dstack-tdx",
         "keyProviderInfo": "7b7d"}
    b.update(over)
    return json.dumps(b)


def ask(url, body, route="app"):
    return http("POST", url + "/bootAuth/" + route, body, {"Content-Type": "application/json"})


def setup():
    S["port"] = free_port()
    S["rpc"] = "http://127.0.0.1:%d" % S["port"]
    # .bin/anvil is a node wrapper around the real binary: own process group
    # so that killing the group stops both.
    S["anvil"] = subprocess.Popen([os.path.join(BIN, "anvil"), "--port", str(S["port"]), "--silent"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
    for _ in range(100):
        try:
            cast("block-number", "--rpc-url", S["rpc"])
            break
        except TestFailure:
            time.sleep(0.1)
    S["k0"] = cast("wallet", "private-key", "--mnemonic", MN, "--mnemonic-index", "0")
    S["k1"] = cast("wallet", "private-key", "--mnemonic", MN, "--mnemonic-index", "1")
    a1 = cast("wallet", "address", "--private-key", S["k1"])
    out = subprocess.run([os.path.join(ROOT, "contracts", "scripts", "deploy-local.sh"), S["rpc"],
                          S["k0"], COMPOSE], capture_output=True, text=True, timeout=180)
    check(out.returncode == 0, "deploy failed: %s" % out.stderr[-500:])
    for line in out.stdout.split():
        k, v = line.split("=")
        S[k.lower()] = v
    send(S["k0"], S["nft"], "mintNodeAccess(address,string)", a1, "node1")
    send(S["k1"], S["nft"], "registerInstance(bytes32,uint256)", "0x" + INSTANCE + "00" * 12, "1")


def test_allowed_and_dstack_reasons():
    p, url = start_auth()
    S["auth"], S["url"] = p, url
    st, j, _ = ask(url, boot())
    check(st == 200 and j == {"isAllowed": True, "reason": "", "gatewayAppId": ""}, "allowed: %s %s" % (st, j))
    st, j, _ = ask(url, boot(appId="0x" + "12" * 20))
    check(j["reason"] == "App not registered" and not j["isAllowed"], "unregistered app: %s" % j)
    st, j, _ = ask(url, boot(osImageHash="ff" * 32))
    check(j["reason"] == "OS image is not allowed", "os image: %s" % j)
    st, j, _ = ask(url, boot(composeHash="ee" * 32))
    check(j["reason"] == "Compose hash not allowed", "compose: %s" % j)
    st, j, _ = ask(url, boot(instanceId="0x456"))  # left-padded, unregistered
    check(j["reason"] == "Instance not registered with NFT", "instance: %s" % j)
    st, j, _ = ask(url, boot(), "kms")
    check(st == 200 and j["isAllowed"] is False and j["reason"] == "Aggregated MR not allowed",
          "kms route: %s" % j)
    st, j, _ = http("GET", url + "/")
    check(st == 200 and j["status"] == "ok" and j["chainId"] == 31337 and
          j["appImplementation"].lower() == S["nft_impl"].lower() and
          j["ethRpcUrl"] == S["rpc"] and j["kmsContractAddr"].lower() == S["kms"].lower(),
          "GET /: %s" % j)


def test_schema_failures_are_400_with_dstacks_body():
    url = S["url"]
    for body in (boot(mrAggregated="0x" + "ab" * 33), boot(mrAggregated="not-hex"),
                 boot(appId="ab" * 21), boot(tcbStatus="x" * 129),
                 boot(advisoryIds=["a"] * 129), boot(advisoryIds=[1]),
                 json.dumps({"appId": S["nft"]}), "not json", "[]"):
        st, j, _ = ask(url, body)
        check(st == 400 and j == INVALID, "bad body %r -> %s %s" % (body[:60], st, j))


def test_no_cache_and_inactive_instance():
    url = S["url"]
    check(ask(url, boot())[1]["isAllowed"] is True, "allowed before")
    send(S["k1"], S["nft"], "deactivateInstance(uint256)", "1")
    st, j, _ = ask(url, boot())
    check(j == {"isAllowed": False, "reason": "Instance marked inactive", "gatewayAppId": ""},
          "the replay must be re-evaluated: %s" % j)
    send(S["k1"], S["nft"], "registerInstance(bytes32,uint256)", "0x" + INSTANCE + "00" * 12, "1")
    check(ask(url, boot())[1]["isAllowed"] is True, "re-activated")


def test_finality_confirmations():
    head = int(cast("block-number", "--rpc-url", S["rpc"]))
    p, url = start_auth({"ETH_FINALITY_CONFIRMATIONS": str(head + 5)})
    try:
        check(ask(url, boot())[1] == UNAVAILABLE, "head < N must fail closed")
    finally:
        stop(p)
    cast("rpc", "--rpc-url", S["rpc"], "anvil_mine", "3")  # head-2 is now after re-activation
    p, url = start_auth({"ETH_FINALITY_CONFIRMATIONS": "2"})
    try:
        send(S["k1"], S["nft"], "deactivateInstance(uint256)", "1")  # at the head
        st, j, _ = ask(url, boot())
        check(j["isAllowed"] is True, "reads at head-2 must not see the deactivation yet: %s" % j)
        cast("rpc", "--rpc-url", S["rpc"], "anvil_mine", "2")
        st, j, _ = ask(url, boot())
        check(j["reason"] == "Instance marked inactive", "after 2 blocks: %s" % j)
    finally:
        stop(p)
        send(S["k1"], S["nft"], "registerInstance(bytes32,uint256)", "0x" + INSTANCE + "00" * 12, "1")


def test_wrong_chain_id_fails_closed():
    p, url = start_auth({"ETH_CHAIN_ID": "1"})
    try:
        check(ask(url, boot())[1] == UNAVAILABLE, "wrong chain must fail closed")
    finally:
        stop(p)
    p, url = start_auth({"ETH_CHAIN_ID": "31337"})
    try:
        check(ask(url, boot())[1]["isAllowed"] is True, "right chain id")
    finally:
        stop(p)


def test_mock_policies():
    p, url = start_auth({"MOCK_POLICY": "allowlist-device",
                         "MOCK_ALLOWED_DEVICE_IDS": "0x" + "11" * 32 + ", 22"}, mock=True)
    try:
        st, j, _ = ask(url, boot())
        check(j == {"isAllowed": True, "reason": "mock app always allowed", "gatewayAppId": ""}, "mock: %s" % j)
        st, j, _ = ask(url, boot(deviceId="33" * 32), "kms")
        check(j["isAllowed"] is False and j["gatewayAppId"] == "", "mock deny: %s" % j)
        st, j, _ = http("GET", url + "/")
        check(j["chainId"] == 1337 and "note" in j, "mock GET /: %s" % j)
    finally:
        stop(p)
    r = subprocess.run([NFTRAFT, "kms-auth", "--mock"], env=dict(os.environ, NODE_ENV="production"),
                       capture_output=True, text=True, timeout=10)
    check(r.returncode != 0 and "production" in r.stderr, "mock under NODE_ENV=production")


def kill_anvil():
    try:
        os.killpg(S["anvil"].pid, 9)
    except ProcessLookupError:
        pass
    S["anvil"].wait()


def test_anvil_gone_fails_closed():
    kill_anvil()
    st, j, _ = ask(S["url"], boot())
    check(st == 200 and j == UNAVAILABLE, "fail closed: %s %s" % (st, j))
    st, j, _ = http("GET", S["url"] + "/")
    check(st == 500 and j == {"status": "error", "message": "authorization backend unavailable"},
          "GET / without a chain: %s %s" % (st, j))
    stop(S["auth"])
    S["auth"] = None


def main():
    try:
        setup()
        return run([test_allowed_and_dstack_reasons, test_schema_failures_are_400_with_dstacks_body,
                    test_no_cache_and_inactive_instance, test_finality_confirmations,
                    test_wrong_chain_id_fails_closed, test_mock_policies, test_anvil_gone_fails_closed])
    finally:
        if S.get("auth"):
            S["auth"].kill()
        if S.get("anvil"):
            kill_anvil()


if __name__ == "__main__":
    sys.exit(main())
