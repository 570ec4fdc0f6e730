#!/usr/bin/env python3
"""`nftraft kms-auth` against a real anvil with the project's KMS factory and
NFT: allowed/denied answers with dstack's exact reasons, schema failures,
no caching, finality confirmations, chain id check, fail-closed when the
RPC is gone; reasons of any length, with NUL bytes and invalid UTF-8 through
a test app (contracts/test/ReasonApp.sol) answered byte for byte as
auth-eth-bun (viem) answers them; a long gatewayAppId; EIP-55 addresses in
GET /; and --mock as auth-mock (zod's 400 bodies, reasons, MOCK_*)."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

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


def raw_post(url, body, ctype="application/json"):
    """(status, content type, raw body bytes) of a POST."""
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def js(obj):
    """JSON.stringify(obj) for the dicts/lists/strings/bools used here."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


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
    # An app deployed with no_instance_id boots with instanceId "" (zero):
    # never registrable, so never allowed (docs/deploy.md).
    st, j, _ = ask(url, boot(instanceId=""))
    check(j == {"isAllowed": False, "reason": "Instance not registered with NFT", "gatewayAppId": ""},
          "no_instance_id: %s" % j)
    r = subprocess.run([os.path.join(BIN, "cast"), "send", "--rpc-url", S["rpc"], "--private-key", S["k1"],
                        S["nft"], "registerInstance(bytes32,uint256)", "0x" + "00" * 32, "1"],
                       capture_output=True, text=True, timeout=60)
    out = r.stderr + r.stdout
    # (cast send may exit 0 on a revert: look for the reason.)
    check("execution reverted: Invalid instance id" in out,
          "registering the zero instance id must revert: rc=%s %s" % (r.returncode, out[-300:]))
    st, j, _ = ask(url, boot(), "kms")
    check(st == 200 and j["isAllowed"] is False and j["reason"] == "Aggregated MR not allowed",
          "kms route: %s" % j)
    st, j, _ = http("GET", url + "/")
    impl = cast("to-check-sum-address", S["nft_impl"])
    check(st == 200 and j == {"status": "ok", "kmsContractAddr": S["kms"], "ethRpcUrl": S["rpc"],
                              "gatewayAppId": "", "chainId": 31337, "appAuthImplementation": impl,
                              "appImplementation": impl}, "GET /: %s" % j)
    check(impl != impl.lower(), "the implementation address should carry an EIP-55 checksum")


def test_schema_failures_are_400_with_dstacks_body():
    url = S["url"]
    for body in (boot(mrAggregated="0x" + "ab" * 33), boot(mrAggregated="not-hex"),
                 boot(appId="ab" * 21), boot(tcbStatus="x" * 129),
                 boot(advisoryIds=["a"] * 129), boot(advisoryIds=[1]),
                 boot(tcbStatus="\u00e9" * 129), json.dumps({"appId": S["nft"]}), "[]", "null"):
        st, j, _ = ask(url, body)
        check(st == 400 and j == INVALID, "bad body %r -> %s %s" % (body[:60], st, j))
    # hono: no JSON Content-Type means the body is {}; unparsable JSON is a
    # text/plain 400; zod counts UTF-16 units (128 x U+00E9 is 256 bytes).
    check(raw_post(url + "/bootAuth/app", boot(), None)[0::2] == (400, js(INVALID)), "no content type")
    check(raw_post(url + "/bootAuth/app", boot(), "Application/JSON")[0::2] == (400, js(INVALID)),
          "content type is case-sensitive in hono")
    st, body, _ = http("GET", url + "/bootAuth/app")
    check((st, body) == (404, "404 Not Found"), "hono's 404 for another method: %s %r" % (st, body))
    st, ct, raw = raw_post(url + "/bootAuth/app", "not json")
    check((st, raw) == (400, b"Malformed JSON in request body") and ct.startswith("text/plain"),
          "malformed: %s %s %r" % (st, ct, raw))
    # JSON.parse takes what jansson alone would not: a lone surrogate, a
    # number beyond the double range in a field zod ignores.
    body = boot(tcbStatus="UpToDate", advisoryIds=["x\ud800"])[:-1] + ',"extra":1e400}'
    check("\\ud800" in body, "the body must carry the escape")
    st, j, _ = ask(url, body)
    check(st == 200 and j["isAllowed"] is True, "JSON.parse values: %s %s" % (st, j))
    st, j, _ = ask(url, boot(tcbStatus="\u00e9" * 128, advisoryIds=["\u00e9" * 256]))
    check(st == 200 and j["isAllowed"] is True, "128 UTF-16 units: %s %s" % (st, j))


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
    # Start-up refusals (auth-eth-bun's parseNonNegativeInteger; viem's
    # strict isAddress): a clear message, exit 1.
    bad_sum = cast("to-check-sum-address", S["kms"])
    bad_sum = bad_sum[:-1] + (bad_sum[-1].lower() if bad_sum[-1].isupper() else bad_sum[-1].upper())
    for env, word in (({"ETH_CHAIN_ID": "031337"}, "ETH_CHAIN_ID"),
                      ({"ETH_CHAIN_ID": "9007199254740992"}, "ETH_CHAIN_ID"),
                      ({"ETH_FINALITY_CONFIRMATIONS": "-1"}, "ETH_FINALITY_CONFIRMATIONS"),
                      ({"KMS_CONTRACT_ADDR": bad_sum if bad_sum[-1].isalpha() else "0X" + S["kms"][2:]},
                       "KMS_CONTRACT_ADDR")):
        r = subprocess.run([NFTRAFT, "kms-auth", "--port", str(free_port())],
                           env={**os.environ, "ETH_RPC_URL": S["rpc"], "KMS_CONTRACT_ADDR": S["kms"], **env},
                           capture_output=True, text=True, timeout=10)
        check(r.returncode == 1 and word in r.stderr, "%s: rc %s %s" % (env, r.returncode, r.stderr))
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


def zod_required(fields):
    return [{"code": "invalid_type", "expected": "string", "received": "undefined", "path": [f],
             "message": "Required"} for f in fields]


def zod_body(issues):
    return js({"success": False, "error": {"issues": issues, "name": "ZodError"}})


REQUIRED = ["mrAggregated", "osImageHash", "appId", "composeHash", "instanceId", "deviceId"]
MOCK_GW = "0xmockgateway1234567890123456789012345678"


def test_mock_matches_auth_mock():
    dev = "11" * 32
    p, url = start_auth({"MOCK_POLICY": "allowlist-device",
                         "MOCK_ALLOWED_DEVICE_IDS": " %s ,0x22," % dev.upper()}, mock=True)
    try:
        st, _, raw = raw_post(url + "/bootAuth/app", boot(deviceId="0X" + dev))
        check((st, raw) == (200, js({"isAllowed": True, "reason": "mock policy: device 0X%s allowed" % dev,
                                     "gatewayAppId": MOCK_GW})), "allowlisted: %s %r" % (st, raw))
        # auth-mock keeps a 0x prefix in the list: "0x22" never matches.
        st, _, raw = raw_post(url + "/bootAuth/kms", boot(deviceId="0x22"))
        check(raw == js({"isAllowed": False, "reason": "mock policy: device 0x22 not in allowlist",
                         "gatewayAppId": ""}), "not allowlisted: %r" % raw)
        # zod: every issue, in schema order, with auth-mock's 400 body.
        body = json.dumps({"mrAggregated": 1, "appId": True, "composeHash": None, "instanceId": [],
                           "deviceId": {}, "tcbStatus": None, "advisoryIds": [1, "a", False],
                           "mrSystem": 5})
        want = [{"code": "invalid_type", "expected": "string", "received": r, "path": [f],
                 "message": "Expected string, received %s" % r} if r else zod_required([f])[0]
                for f, r in (("mrAggregated", "number"), ("osImageHash", None), ("appId", "boolean"),
                             ("composeHash", "null"), ("instanceId", "array"), ("deviceId", "object"),
                             ("tcbStatus", "null"))]
        want += [{"code": "invalid_type", "expected": "string", "received": r, "path": ["advisoryIds", i],
                  "message": "Expected string, received %s" % r} for i, r in ((0, "number"), (2, "boolean"))]
        want += [{"code": "invalid_type", "expected": "string", "received": "number", "path": ["mrSystem"],
                  "message": "Expected string, received number"}]
        st, ct, raw = raw_post(url + "/bootAuth/app", body)
        check((st, raw) == (400, zod_body(want)), "zod issues: %s %r" % (st, raw))
        check(raw_post(url + "/bootAuth/app", boot(), None)[0::2] == (400, zod_body(zod_required(REQUIRED))),
              "no content type: the body is {}")
        st, ct, raw = raw_post(url + "/bootAuth/app", "[]")
        check(raw == zod_body([{"code": "invalid_type", "expected": "object", "received": "array", "path": [],
                                "message": "Expected object, received array"}]), "array body: %r" % raw)
        st, ct, raw = raw_post(url + "/bootAuth/app", "{")
        check((st, raw) == (400, b"Malformed JSON in request body"), "malformed: %r" % raw)
        st, j, _ = http("GET", url + "/")
        check(j == {"status": "ok", "kmsContractAddr": S["kms"], "ethRpcUrl": S["rpc"], "gatewayAppId": MOCK_GW,
                    "chainId": 1337, "appAuthImplementation": "0xmockapp9876543210987654321098765432109",
                    "appImplementation": "0xmockapp9876543210987654321098765432109",
                    "note": "this is a mock backend - all authentications will succeed"}, "mock GET /: %s" % j)
    finally:
        stop(p)
    # An unknown policy falls back to allow-all (with a warning); MOCK_CHAIN_ID
    # is parseInt'd; KMS_CONTRACT_ADDR and ETH_RPC_URL unset get the defaults.
    env = {"MOCK_POLICY": "bogus", "MOCK_CHAIN_ID": " 0x1F", "MOCK_GATEWAY_APP_ID": "gw",
           "KMS_CONTRACT_ADDR": "", "ETH_RPC_URL": ""}
    p, url = start_auth(env, mock=True)
    try:
        st, _, raw = raw_post(url + "/bootAuth/kms", boot())
        check(raw == js({"isAllowed": True, "reason": "mock KMS always allowed", "gatewayAppId": "gw"}),
              "bogus policy: %r" % raw)
        st, j, _ = http("GET", url + "/")
        check(j["chainId"] == 31 and j["kmsContractAddr"] == "0xmockcontract1234567890123456789012345678"
              and j["ethRpcUrl"] == "", "mock GET / defaults: %s" % j)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
        check('unknown MOCK_POLICY "bogus", falling back to allow-all' in err, "no warning: %s" % err[-300:])
    p, url = start_auth({"MOCK_POLICY": "deny-kms", "MOCK_CHAIN_ID": "x"}, mock=True)
    try:
        check(raw_post(url + "/bootAuth/app", boot())[2] ==
              js({"isAllowed": True, "reason": "mock app allowed (deny-kms policy)", "gatewayAppId": MOCK_GW}),
              "deny-kms app route")
        check(raw_post(url + "/bootAuth/kms", boot())[2] ==
              js({"isAllowed": False, "reason": "mock policy: deny-kms", "gatewayAppId": ""}),
              "deny-kms kms route")
        check(http("GET", url + "/")[1]["chainId"] is None, "parseInt('x') is NaN: null")
    finally:
        stop(p)
    r = subprocess.run([NFTRAFT, "kms-auth", "--mock"], env=dict(os.environ, NODE_ENV="production"),
                       capture_output=True, text=True, timeout=10)
    check(r.returncode != 0 and "production" in r.stderr, "mock under NODE_ENV=production")


def test_reasons_and_gateway_as_viem_decodes():
    """Reasons through a test app, answered byte for byte as auth-eth-bun."""
    out = subprocess.run([os.path.join(BIN, "forge"), "create", "test/ReasonApp.sol:ReasonApp",
                          "--rpc-url", S["rpc"], "--private-key", S["k0"], "--broadcast", "--json"],
                         cwd=os.path.join(ROOT, "contracts"), capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, "forge create ReasonApp: %s" % out.stderr[-300:])
    app = json.loads(out.stdout[out.stdout.index("{"):])["deployedTo"]
    send(S["k0"], S["kms"], "registerApp(address)", app)
    p, url = start_auth()
    try:
        for allowed, raw, rep, want in (
                (True, b"x", 2000, "x" * 2000),                 # far above the old 1 KiB
                (False, b"\x00\x00ab\x00c", 1, "ab\x00c"),       # viem trims leading NULs only
                (False, b"\x00", 1, "\x00"),                    # ... keeping one byte
                (False, b"a\xffb\xe2\x82", 1, "a\ufffdb\ufffd"),  # WHATWG replacement
                (False, b"\xed\xa0\x80", 1, "\ufffd" * 3),       # an encoded surrogate
                (False, b"\xf0\x9f\x9a\x80\xc0\xaf", 1, "\U0001F680\ufffd\ufffd"),
                (True, b"\xef\xbb\xbfhi", 1, "hi"),              # TextDecoder drops a BOM
                (True, b"y", 65536, "y" * 65536)):               # exactly the cap
            send(S["k0"], app, "set(bool,bytes,uint256)", "true" if allowed else "false",
                 "0x" + raw.hex(), str(rep))
            st, ct, body = raw_post(url + "/bootAuth/app", boot(appId=app))
            check(st == 200 and body == js({"isAllowed": allowed, "reason": want, "gatewayAppId": ""}),
                  "reason %r x%d: %s %r" % (raw, rep, st, body[:120]))
        send(S["k0"], app, "set(bool,bytes,uint256)", "true", "0x79", "65537")
        check(ask(url, boot(appId=app))[1] == UNAVAILABLE, "above the cap: fail closed")
        gw = "g" * 3000
        send(S["k0"], S["kms"], "setGatewayAppId(string)", gw)
        send(S["k0"], app, "set(bool,bytes,uint256)", "true", "0x6f6b", "1")
        st, ct, body = raw_post(url + "/bootAuth/app", boot(appId=app))
        check(body == js({"isAllowed": True, "reason": "ok", "gatewayAppId": gw}), "long gateway: %r" % body[:80])
        check(http("GET", url + "/")[1]["gatewayAppId"] == gw, "long gateway in GET /")
        send(S["k0"], S["kms"], "setGatewayAppId(string)", "")
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    check("65537 bytes is above the 65536-byte cap" in err, "no log line for the cap: %s" % err[-400:])
    check(p.returncode == 0, "kms-auth exit code %s" % p.returncode)


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
                    test_wrong_chain_id_fails_closed, test_reasons_and_gateway_as_viem_decodes,
                    test_mock_matches_auth_mock, test_anvil_gone_fails_closed])
    finally:
        if S.get("auth"):
            S["auth"].kill()
        if S.get("anvil"):
            kill_anvil()


if __name__ == "__main__":
    sys.exit(main())
