"""Chain mode for the Jepsen runner: anvil in its own network namespace
(so the chain can be cut off from the nodes), the contracts deployed with
contracts/scripts/deploy-local.sh, one NFT minted to and registered by each
node's dev account with the `nftraft` CLI (as `nftraft up --chain anvil`
does, but over the namespace network).

Chain(run).up() -> sets .rpc, .nft and per-node wallet key files; raises
CannotRun-like RuntimeError with a clear message. node_args(i) gives the
chain flags for nftraftd; stop() ends anvil."""
import json
import os
import signal
import subprocess
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "contracts", "node_modules", ".bin")
MNEMONIC = "test test test test test test test test test test test junk"
PORT = 8545


class Chain:
    def __init__(self, topo, out, build):
        self.topo = topo
        self.out = out
        self.cli = os.path.join(build, "nftraft")
        self.proc = None
        self.rpc = None
        self.nft = None
        self.keys = []

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
                    ([self.cli, "mint", "--rpc-url", self.rpc, "--contract", self.nft,
                      "--to", addr, "--name", "node%d" % i], self.keys[0]),
                    ([self.cli, "register", "--rpc-url", self.rpc, "--contract", self.nft,
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

    def node_args(self, i):
        return ["--rpc-url", self.rpc, "--contract", self.nft, "--wallet-key",
                os.path.join(self.out, "nodes", "wallet%d.key" % i),
                "--instance-id", "node%d" % i]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:  # the npm wrapper and anvil share the process group
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
