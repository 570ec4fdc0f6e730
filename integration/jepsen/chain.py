"""Chain mode for the Jepsen runner: anvil in its own network namespace
(so the chain can be cut off from the nodes), the contracts deployed with
contracts/scripts/deploy-local.sh, one NFT minted to and registered by each
node's dev account with the `nftraft` CLI (as `nftraft up --chain anvil`
does, but over the namespace network).

Chain(run).up() -> sets .rpc, .nft and per-node wallet key files; raises
CannotRun-like RuntimeError with a clear message. node_args(i) gives the
chain flags for nftraftd; stop() ends anvil."""
import http.server
import json
import os
import threading
import signal
import subprocess
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "contracts", "node_modules", ".bin")
MNEMONIC = "test test test test test test test test test test test junk"
PORT = 8545


STALE_OK = {"eth_blockNumber", "eth_call", "eth_getLogs", "eth_chainId"}


class RpcProxy:
    """The nodes' JSON-RPC endpoint: a relay to anvil that, while lag > 0
    (the chain-lag nemesis), answers read calls (eth_blockNumber, eth_call,
    eth_getLogs) with the answer anvil gave to the same request `lag`
    seconds earlier or before: stale blocks and stale contract state, as a
    lagging RPC provider would. Transactions, nonces and receipts always
    pass through."""

    def __init__(self, bind_ip, upstream):
        self.upstream = upstream
        self.lag = 0.0
        self.lock = threading.Lock()
        self.seen = {}  # request key -> [(time, response bytes)]
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                out = proxy.answer(body)
                if out is None:
                    self.send_error(502)
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:  # the node gave up (killed, timed out): fine
                    pass
        self.server = http.server.ThreadingHTTPServer((bind_ip, 0), H)
        self.server.daemon_threads = True
        self.url = "http://%s:%d" % (bind_ip, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body):
        try:
            req = json.loads(body)
            key = json.dumps([req.get("method"), req.get("params")], sort_keys=True)
            rid = req.get("id")
        except (ValueError, AttributeError):
            key, rid, req = None, None, {}
        now = time.time()
        with self.lock:
            lag = self.lag
            if lag > 0 and key and req.get("method") in STALE_OK:
                old = [r for t, r in self.seen.get(key, []) if t <= now - lag]
                if old:
                    j = json.loads(old[-1])
                    j["id"] = rid
                    return json.dumps(j).encode()
        try:
            r = urllib.request.urlopen(urllib.request.Request(
                self.upstream, data=body, headers={"Content-Type": "application/json"}),
                timeout=10)
            out = r.read()
        except OSError:
            return None
        if key and req.get("method") in STALE_OK:
            with self.lock:
                lst = self.seen.setdefault(key, [])
                lst.append((now, out))
                while lst and lst[0][0] < now - 120:
                    lst.pop(0)
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Chain:
    def __init__(self, topo, out, build):
        self.topo = topo
        self.out = out
        self.cli_path = os.path.join(build, "nftraft")
        self.proc = None
        self.rpc = None
        self.nft = None
        self.keys = []
        self.proxy = None

    def rpc_call(self, method, params=(), timeout=3):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                           "params": list(params)}).encode()
        req = urllib.request.Request(self.rpc, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())["result"]

    def up(self, n):
        anvil = os.path.join(BIN, "anvil")
        cast = os.path.join(BIN, "cast")
        if not os.access(anvil, os.X_OK):
            raise RuntimeError("no anvil at %s (run ./scripts/install-deps.sh)" % anvil)
        ip = self.topo.ip("anvil")
        self.rpc = "http://%s:%d" % (ip, PORT)
        log = open(os.path.join(self.out, "anvil.log"), "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.topo.ns("anvil"), anvil,
                                      "--host", ip, "--port", str(PORT), "--block-time", "1"],
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.time() + 30
        while True:
            try:
                self.rpc_call("eth_blockNumber", timeout=1)
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("anvil did not start; see %s/anvil.log" % self.out)
                time.sleep(0.2)
        for i in range(n + 1):
            self.keys.append(subprocess.run(
                [cast, "wallet", "private-key", "--mnemonic", MNEMONIC,
                 "--mnemonic-index", str(i)], capture_output=True, text=True,
                check=True).stdout.strip())
        r = subprocess.run([os.path.join(ROOT, "contracts", "scripts", "deploy-local.sh"),
                            self.rpc, self.keys[0]], capture_output=True, text=True, timeout=300)
        for line in r.stdout.split("\n"):
            if line.startswith("NFT="):
                self.nft = line[4:].strip()
        if r.returncode != 0 or not self.nft:
            raise RuntimeError("contract deployment failed: %s" % r.stderr[-800:])
        for i in range(1, n + 1):
            addr = subprocess.run([cast, "wallet", "address", "--private-key", self.keys[i]],
                                  capture_output=True, text=True, check=True).stdout.strip()
            for argv, key in (
                    ([self.cli_path, "mint", "--rpc-url", self.rpc, "--contract", self.nft,
                      "--to", addr, "--name", "node%d" % i], self.keys[0]),
                    ([self.cli_path, "register", "--rpc-url", self.rpc, "--contract", self.nft,
                      "--instance-id", "node%d" % i, "--token", str(i)], self.keys[i])):
                env = dict(os.environ, NFTRAFT_WALLET_KEY=key)
                r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
                if r.returncode != 0:
                    raise RuntimeError("%s failed: %s" % (" ".join(argv[:2]), r.stderr[-500:]))
            kp = os.path.join(self.out, "nodes", "wallet%d.key" % i)
            os.makedirs(os.path.dirname(kp), exist_ok=True)
            with open(kp, "w") as f:
                f.write(self.keys[i])
            os.chmod(kp, 0o600)
        self.proxy = RpcProxy(self.topo.client_ip(), self.rpc)

    # Mnemonic index of the account that buys tokens in the nft-transfer
    # nemesis (anvil funds indices 0-9; nodes use 1..5).
    BUYER = 9

    def cli(self, args, key_index, timeout=60):
        """`nftraft ARGS --rpc-url --contract` signed by the mnemonic account
        key_index (0 is the contract owner, i is node i's token owner);
        RuntimeError with the CLI's message when it fails."""
        env = dict(os.environ, NFTRAFT_WALLET_KEY=self.key(key_index))
        r = subprocess.run([self.cli_path, *args, "--rpc-url", self.rpc, "--contract", self.nft],
                           capture_output=True, text=True, env=env, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("nftraft %s: %s" % (" ".join(args), r.stderr.strip()[-300:]))
        return r.stdout

    def key(self, i):
        while len(self.keys) <= i:
            self.keys.append(subprocess.run(
                [os.path.join(BIN, "cast"), "wallet", "private-key", "--mnemonic", MNEMONIC,
                 "--mnemonic-index", str(len(self.keys))], capture_output=True, text=True,
                check=True).stdout.strip())
        return self.keys[i]

    def address(self, i):
        return subprocess.run([os.path.join(BIN, "cast"), "wallet", "address", "--private-key",
                               self.key(i)], capture_output=True, text=True,
                              check=True).stdout.strip()

    def token(self, i):
        """Node i's current token: i, or the token minted for it after its
        last nft-burn."""
        return self.__dict__.setdefault("tokens", {}).get(i, i)

    def mint(self, to_index, name):
        """The contract owner mints a token to mnemonic account to_index;
        returns its id (the contract's totalMinted after the mint)."""
        self.cli(["mint", "--to", self.address(to_index), "--name", name], 0)
        out = subprocess.run([os.path.join(BIN, "cast"), "call", "--rpc-url", self.rpc,
                              self.nft, "totalMinted()(uint256)"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError("totalMinted(): %s" % out.stderr.strip()[-300:])
        return int(out.stdout.split()[0])

    def burn(self, token, key_index):
        """The token's owner (mnemonic account key_index) burns it: the
        contract revokes its instance. The nftraft CLI has no burn command;
        this is foundry's cast, as an owner would use it."""
        r = subprocess.run([os.path.join(BIN, "cast"), "send", "--rpc-url", self.rpc,
                            "--private-key", self.key(key_index), self.nft,
                            "burn(uint256)", str(token)],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("burn(%d): %s" % (token, r.stderr.strip()[-300:]))

    def instance(self, i):
        """Node i's current instance id: node<i>, or node<i>-r<k> after the
        k-th instance-replace."""
        k = self.__dict__.setdefault("replaced", {}).get(i, 0)
        return "node%d" % i if k == 0 else "node%d-r%d" % (i, k)

    def spare_args(self, token):
        """The chain flags of the member-add nemesis's spare (token's node,
        signing with its own node key, mnemonic index SPARE_KEY)."""
        kp = os.path.join(self.out, "nodes", "wallet-spare.key")
        if not os.path.exists(kp):
            with open(kp, "w") as f:
                f.write(self.key(self.SPARE_KEY))
            os.chmod(kp, 0o600)
        return ["--rpc-url", self.proxy.url, "--contract", self.nft, "--wallet-key", kp,
                "--instance-id", "spare%d" % token, "--allow-insecure-rpc",
                "--chain-confirmations", "0"]

    # Mnemonic indices of the spare's owner and node key (member-add).
    SPARE_OWNER = 7
    SPARE_KEY = 8

    def register(self, i, endpoints=None):
        """Node i's owner registers its instance again (a new epoch) under
        its current token. A token minted after a burn has no --peers entry
        (the runner's address book is keyed by the original tokens 1..n),
        so it is registered with its node key and endpoints, endpoints =
        (raft "ip:port", http URL), remembered for later registrations."""
        eps = self.__dict__.setdefault("endpoints", {})
        if endpoints is not None:
            eps[i] = endpoints
        args = ["register", "--instance-id", self.instance(i), "--token", str(self.token(i))]
        if i in eps:
            args += ["--node-key", self.address(i), "--raft-endpoint", eps[i][0],
                     "--http-endpoint", eps[i][1]]
        self.cli(args, i)

    def replace(self, i):
        """Node i's owner registers token i to a NEW instance id (a new
        epoch, so a new raft id); returns it."""
        self.__dict__.setdefault("replaced", {})[i] = self.replaced.get(i, 0) + 1
        self.register(i)
        return self.instance(i)

    def node_args(self, i):
        # The RPC relay sits in a namespace of this run's private network.
        return ["--rpc-url", self.proxy.url, "--contract", self.nft, "--wallet-key",
                os.path.join(self.out, "nodes", "wallet%d.key" % i),
                "--instance-id", self.instance(i), "--allow-insecure-rpc",
                "--chain-confirmations", "0"] + (
                    ["--join"] if self.instance(i) != "node%d" % i or self.token(i) != i
                    else [])

    def stop(self):
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        if self.proc and self.proc.poll() is None:
            try:  # the npm wrapper and anvil share the process group
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
