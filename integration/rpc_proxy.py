"""A lying JSON-RPC proxy for the chain-trust tests (issue 11 (f)).

The nodes use it as their --rpc-url; it forwards every request to a real
anvil (urllib) and, on the test's command, lies in one of three ways:

  lag(k)          eth_blockNumber answers head - k (a lagging RPC)
  rewind(k)       eth_blockNumber answers k blocks below the highest number
                  it answered before (an RPC going back in time, e.g. a
                  load balancer switching to a node that is behind)
  drop(tokens, n) the next n activeNodes() answers omit the given tokens
                  (the ABI answer is re-encoded without them)
  leader(t, n)    the next n clusterState() answers name token t as the
                  leader (needs state_selector, clusterState()'s selector)

Standard library only. Import it (LyingRpc) or run it alone:
  python3 integration/rpc_proxy.py --upstream http://127.0.0.1:8545 --port P
"""
import argparse
import json
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def abi_drop_nodes(hexdata, drop):
    """activeNodes() returns (NodeInfo[]): word 0 is the offset of the
    array, then its length, then one offset per element (relative to the
    word after the length), then each element's tuple (tokenId first).
    Returns the same answer without the elements whose tokenId is in drop,
    and the number dropped."""
    d = bytes.fromhex(hexdata[2:] if hexdata.startswith("0x") else hexdata)
    word = lambda off: int.from_bytes(d[off:off + 32], "big")  # noqa: E731
    arr = word(0)
    n = word(arr)
    base = arr + 32
    offs = [word(base + 32 * i) for i in range(n)]
    ends = offs[1:] + [len(d) - base]
    elems = [d[base + a:base + b] for a, b in zip(offs, ends)]
    keep = [e for e in elems if int.from_bytes(e[:32], "big") not in drop]
    out = bytearray((32).to_bytes(32, "big") + len(keep).to_bytes(32, "big"))
    pos = 32 * len(keep)
    for e in keep:
        out += pos.to_bytes(32, "big")
        pos += len(e)
    for e in keep:
        out += e
    return "0x" + out.hex(), n - len(keep)


class LyingRpc:
    """The proxy on 127.0.0.1:port (0: any free port), on a thread."""

    def __init__(self, upstream, selector, port=0, state_selector=None):
        self.upstream = upstream
        self.selector = selector.lower()  # activeNodes()'s 4-byte selector
        self.state_selector = (state_selector or "").lower() or None  # clusterState()'s
        self.leader_token, self.leader_left = None, 0
        self.lock = threading.Lock()
        self.lag = 0
        self.rewind = None
        self.drop, self.drop_left = set(), 0
        self.highest = None
        self.events = []  # what the proxy lied about, for the report
        self.calls = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                out = proxy.handle(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def set_lag(self, k):
        with self.lock:
            self.lag, self.rewind = k, None

    def set_rewind(self, k):
        with self.lock:
            self.rewind, self.lag = k, 0

    def set_drop(self, tokens, answers):
        with self.lock:
            self.drop, self.drop_left = set(tokens), answers

    def set_leader(self, token, answers):
        with self.lock:
            self.leader_token, self.leader_left = token, answers

    def honest(self):
        with self.lock:
            self.lag, self.rewind, self.drop, self.drop_left = 0, None, set(), 0
            self.leader_token, self.leader_left = None, 0

    def forward(self, body):
        req = urllib.request.Request(self.upstream, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def handle(self, body):
        with self.lock:
            self.calls += 1
        try:
            req = json.loads(body)
            raw = self.forward(body)
        except (ValueError, OSError) as e:
            return json.dumps({"jsonrpc": "2.0", "id": None,
                               "error": {"code": -32603, "message": "proxy: %s" % e}}).encode()
        if not isinstance(req, dict):
            return raw
        method = req.get("method")
        try:
            resp = json.loads(raw)
        except ValueError:
            return raw
        if "result" not in resp:
            return raw
        with self.lock:
            if method == "eth_blockNumber":
                head = int(resp["result"], 16)
                if self.rewind is not None:
                    top = self.highest if self.highest is not None else head
                    ans = max(0, top - self.rewind)
                    self.events.append("eth_blockNumber %d answered as %d (rewound)" % (head, ans))
                else:
                    ans = max(0, head - self.lag)
                    if self.lag:
                        self.events.append("eth_blockNumber %d answered as %d (lag %d)" %
                                           (head, ans, self.lag))
                    if self.highest is None or ans > self.highest:
                        self.highest = ans
                resp["result"] = hex(ans)
                return json.dumps(resp).encode()
            if (method == "eth_call" and self.leader_left > 0 and self.state_selector and
                    str(req["params"][0].get("data", req["params"][0].get("input", ""))).lower()
                    .startswith(self.state_selector)):
                h = resp["result"][2:]
                # word 1 of (address leader, uint256 leaderToken, ...)
                resp["result"] = "0x" + h[:64] + "%064x" % self.leader_token + h[128:]
                self.leader_left -= 1
                self.events.append("clusterState() at %s answered with leader token %d" %
                                   (req["params"][1], self.leader_token))
                return json.dumps(resp).encode()
            if (method == "eth_call" and self.drop_left > 0 and
                    str(req["params"][0].get("data", req["params"][0].get("input", ""))).lower()
                    .startswith(self.selector)):
                resp["result"], k = abi_drop_nodes(resp["result"], self.drop)
                self.drop_left -= 1
                self.events.append("activeNodes() at %s answered without tokens %s (%d dropped)" %
                                   (req["params"][1], sorted(self.drop), k))
                return json.dumps(resp).encode()
        return raw


def selector_of(cast, signature):
    out = subprocess.run([cast, "sig", signature], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cast", default="cast")
    ap.add_argument("--lag", type=int, default=0)
    a = ap.parse_args()
    p = LyingRpc(a.upstream, selector_of(a.cast, "activeNodes()"), a.port)
    p.set_lag(a.lag)
    print("lying RPC proxy on %s -> %s (lag %d)" % (p.url, a.upstream, a.lag), flush=True)
    p.server.serve_forever()


if __name__ == "__main__":
    main()
