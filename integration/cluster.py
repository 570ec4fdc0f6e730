"""Shared fixtures for the integration tests: temp dirs, free ports, a local
cluster started with `nftraft up --detach`, HTTP helpers, node kill/restart,
and log checks (sanitizer reports, clean exits)."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("NFTRAFT_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "build")
NFTRAFT = os.path.join(BUILD, "nftraft")
NFTRAFTD = os.path.join(BUILD, "nftraftd")
ROOT = os.environ.get("NFTRAFT_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "contracts", "node_modules", ".bin")
CAST, ANVIL = os.path.join(BIN, "cast"), os.path.join(BIN, "anvil")
MNEMONIC = "test test test test test test test test test test test junk"


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


PG_BIN = os.environ.get("NFTRAFT_PG_BIN", "/usr/lib/postgresql/15/bin")


def pg_free_base(start):
    """The first of 3 consecutive free ports from start (by tens), for
    `nftraft up --pg --pg-base-port`."""
    for base in range(start, 39000, 10):
        if all(port_free(base + i) for i in range(3)):
            return base
    raise SystemExit("no free PostgreSQL ports")


def psql(port, password, sql, timeout=10):
    """(exit code, stdout) of one `psql -Atc` as role nftraft against
    127.0.0.1:port; (-1, "") when it did not finish within timeout."""
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="2")
    try:
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-Atqc", sql,
                            "host=127.0.0.1 port=%d user=nftraft dbname=postgres" % port],
                           capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, ""
    return r.returncode, r.stdout.strip()


# Ports this process handed out: free when chosen, but nothing listens on
# them until a cluster or anvil starts, so later choices must avoid them.
_HANDED_OUT = set()


def free_base_port(n):
    """A base port P with P..P+n-1 and P+100..P+100+n-1 free (and not
    handed out before by this process)."""
    for _ in range(200):
        p = random.randrange(20000, 29000)
        ports = [p + i for i in range(n)] + [p + 100 + i for i in range(n)]
        if not _HANDED_OUT.intersection(ports) and all(port_free(q) for q in ports):
            _HANDED_OUT.update(ports)
            return p
    raise TestFailure("no free port range found")


def free_port():
    """One free port not handed out before by this process (an anvil's)."""
    for _ in range(200):
        p = random.randrange(20000, 29000)
        if p not in _HANDED_OUT and port_free(p):
            _HANDED_OUT.add(p)
            return p
    raise TestFailure("no free port found")


def gone(pid):
    """Whether process pid has exited with all its threads. A zombie
    thread-group leader ('Z' in /proc/PID/stat) is not enough: the other
    threads of a killed process may still be exiting, holding its file
    descriptors (a data dir's lock, a listening port) for a while."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        if stat[stat.rindex(")") + 2] != "Z":
            return False
        return len(os.listdir("/proc/%d/task" % pid)) <= 1
    except (OSError, ValueError):
        return True


def wait_for(what, fn, timeout, step=0.2):
    """fn()'s first true value, asked every `step` seconds; TestFailure
    after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise TestFailure("timed out after %ds waiting for %s" % (timeout, what))


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, parsed JSON or text, headers); status 0 = no answer."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status, hdrs = r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, dict(e.headers)
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, None, {}
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode(errors="replace"), hdrs


class Cluster:
    """A local cluster in a temp dir, driven through the nftraft CLI."""

    def __init__(self, nodes=3, extra=(), chain="none"):
        self.n = nodes
        self.chain = chain
        self.dir = tempfile.mkdtemp(prefix="nftraft-it-")
        self.base = free_base_port(nodes)
        self.extra = list(extra)
        self.urls = ["http://127.0.0.1:%d" % (self.base + i) for i in range(nodes)]

    def up(self):
        cmd = [NFTRAFT, "up", "--nodes", str(self.n), "--chain", self.chain,
               "--base-port", str(self.base), "--dir", self.dir, "--detach"] + self.extra
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise TestFailure("nftraft up failed: %s%s" % (r.stdout, r.stderr))
        return r.stdout

    def down(self):
        subprocess.run([NFTRAFT, "down", "--dir", self.dir],
                       capture_output=True, text=True, timeout=60)

    def url(self, node_id):
        return self.urls[node_id - 1]

    def node_dir(self, node_id):
        return os.path.join(self.dir, "node%d" % node_id)

    def log(self, node_id):
        try:
            with open(os.path.join(self.node_dir(node_id), "node.log")) as f:
                return f.read()
        except OSError:
            return ""

    def pid(self, node_id):
        with open(os.path.join(self.dir, "nodes")) as f:
            for line in f:
                i, _, pid = line.split()
                if int(i) == node_id:
                    return int(pid)
        raise TestFailure("no pid for node %d" % node_id)

    def set_pid(self, node_id, pid):
        path = os.path.join(self.dir, "nodes")
        lines = open(path).read().split("\n")
        out = []
        for line in lines:
            if line.strip():
                i, url, old = line.split()
                if int(i) == node_id:
                    old = str(pid)
                out.append("%s %s %s" % (i, url, old))
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")

    def cmdline(self, node_id):
        with open(os.path.join(self.node_dir(node_id), "cmdline")) as f:
            return [l for l in f.read().split("\n") if l]

    def status(self, node_id, timeout=2):
        st, j, _ = http("GET", self.url(node_id) + "/status", timeout=timeout)
        return j if st == 200 else None

    def leader(self, timeout=15, exclude=()):
        """Wait until some node reports itself a ready leader; its id."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i in range(1, self.n + 1):
                if i in exclude:
                    continue
                s = self.status(i, timeout=1)
                if s and s.get("role") == "leader" and s.get("ready"):
                    return i
            time.sleep(0.05)
        raise TestFailure("no leader within %ds" % timeout)

    def kill9(self, node_id):
        os.kill(self.pid(node_id), signal.SIGKILL)
        try:
            os.waitpid(self.pid(node_id), 0)
        except ChildProcessError:
            pass
        time.sleep(0.1)

    def start_node(self, node_id, wait=True):
        """Restart a node with the flags `up` gave it; returns the Popen."""
        args = self.cmdline(node_id)
        before = len(self.log(node_id))
        logf = open(os.path.join(self.node_dir(node_id), "node.log"), "a")
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=logf,
                             start_new_session=True)
        self.set_pid(node_id, p.pid)
        if wait:
            deadline = time.time() + 15
            while time.time() < deadline:
                if self.status(node_id, timeout=1):
                    return p
                if p.poll() is not None:  # what this start wrote, not older runs'
                    raise TestFailure("node %d exited on restart (status %d):\n%s" %
                                      (node_id, p.returncode, self.log(node_id)[before:][-2500:]))
                time.sleep(0.05)
            raise TestFailure("node %d did not come back; its log since the restart:\n%s"
                              % (node_id, self.log(node_id)[before:][-2500:]))
        return p

    def increment(self, node_id, by=None, key=None, timeout=10):
        body = json.dumps({"by": by}) if by is not None else ""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        return http("POST", self.url(node_id) + "/increment", body, headers,
                    timeout=timeout)

    def full_log(self, node_id):
        entries, frm = [], 1
        while True:
            st, j, _ = http("GET", "%s/log?from=%d&limit=1000" % (self.url(node_id), frm))
            check(st == 200, "GET /log on node %d: %s %s" % (node_id, st, j))
            entries += j["entries"]
            if not j["entries"]:
                return entries
            frm = j["next"]

    def check_logs_clean(self):
        """No sanitizer report or crash in any node log."""
        bad = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
               "runtime error:", "Assertion", "Aborted")
        for i in range(1, self.n + 1):
            text = self.log(i)
            for b in bad:
                check(b not in text, "node %d log contains %r:\n%s" %
                      (i, b, text[-4000:]))

    def dump_logs(self):
        for i in range(1, self.n + 1):
            sys.stderr.write("---- node %d log (tail) ----\n%s\n" %
                             (i, self.log(i)[-3000:]))

    def chain_env(self):
        """(RPC URL, contract address) of a chain-mode cluster, as `nftraft
        up` wrote them to DIR/chain.env."""
        with open(os.path.join(self.dir, "chain.env")) as f:
            env = f.read()
        return env.split("RPC=")[1].split()[0], env.split("NFT=")[1].split()[0]


def finish(c, code, remove=True):
    """A test script's end: after a failure the tails of the node logs and
    the cluster dir kept (named); after a pass the dir removed (when
    `remove`). c may be None (the cluster never made). Returns code."""
    if c is None:
        return code
    if code != 0:
        c.dump_logs()
        print("cluster dir kept: %s" % c.dir)
    elif remove:
        subprocess.run(["rm", "-rf", c.dir])
    return code


class Writer:
    """Continuous increments, each with its own Idempotency-Key
    (TAG-k-time), through the given nodes in turn on a thread: every
    acknowledgment is recorded as (time, value, index). After an
    acknowledged write it waits `pause` seconds (0: the next at once),
    after a refused or failed one 0.05 s."""

    def __init__(self, c, nodes, tag="w", pause=0.0):
        self.c, self.nodes, self.tag, self.pause = c, list(nodes), tag, pause
        self.acked, self.refused, self.stop = [], 0, False
        self.t0 = None
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        k = 0
        while not self.stop:
            node = self.nodes[k % len(self.nodes)]
            st, j, _ = self.c.increment(node, key="%s-%d-%f" % (self.tag, k, time.time()), timeout=5)
            if st == 200:
                self.acked.append((time.time(), j["value"], j["index"]))
                if self.pause:
                    time.sleep(self.pause)
            else:
                self.refused += 1
                time.sleep(0.05)
            k += 1

    def __enter__(self):
        self.t0 = time.time()
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.t.join(30)

    def longest_gap(self, from_start=True):
        """The longest time without an acknowledgment: from the start (or,
        with from_start False, from the first acknowledgment) on."""
        ts = ([self.t0] if from_start else []) + [a[0] for a in self.acked]
        return max((b - a for a, b in zip(ts, ts[1:])), default=0.0)


def run_one(t, skip=()):
    """Run one test function and print its outcome: "ok", "skip" (it raised
    one of the `skip` exception classes: an expected failure) or "fail"."""
    t0 = time.time()
    try:
        t()
        print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        return "ok"
    except skip as e:
        print("SKIP %s: expected failure: %s" % (t.__name__, e), flush=True)
        return "skip"
    except Exception as e:  # report every failure, keep going
        print("FAIL %s: %s" % (t.__name__, e), flush=True)
        return "fail"


def run(tests):
    """Run test functions in order; print 'N passed, N failed'; exit code."""
    outcomes = [run_one(t) for t in tests]
    passed, failed = outcomes.count("ok"), outcomes.count("fail")
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def dev_key(i):
    """anvil's dev account i (the test mnemonic): its private key."""
    return subprocess.run([CAST, "wallet", "private-key", "--mnemonic", MNEMONIC,
                           "--mnemonic-index", str(i)], capture_output=True, text=True,
                          check=True).stdout.strip()


def address_of(key):
    return subprocess.run([CAST, "wallet", "address", "--private-key", key],
                          capture_output=True, text=True, check=True).stdout.strip()


def cli(args, key, rpc, nft):
    """`nftraft ARGS --rpc-url RPC --contract NFT` with wallet key KEY; its
    stdout (TestFailure when it fails)."""
    r = subprocess.run([NFTRAFT, *args, "--rpc-url", rpc, "--contract", nft], capture_output=True,
                       text=True, timeout=90, env=dict(os.environ, NFTRAFT_WALLET_KEY=key))
    check(r.returncode == 0, "nftraft %s: %s%s" % (args[0], r.stdout, r.stderr))
    return r.stdout


def single_owner_chain(d, port_offset, keep, premine=0):
    """Start a real anvil (port free_base_port(1) + port_offset, or the next
    free one; 1 s blocks) and hand its process to keep() at once, so the
    caller can stop it even when a later step fails. Mine `premine` blocks,
    deploy the contract, mint tokens 1..3 ("node1".."node3") to one address
    (dev key 7) and register them; that key, which is also the node key, is
    written to d/owner.key. Returns (rpc url, contract address, key file,
    owner address)."""
    port = free_base_port(1) + port_offset
    while not port_free(port) or port in _HANDED_OUT:
        port += 1
    _HANDED_OUT.add(port)
    keep(subprocess.Popen([ANVIL, "--host", "127.0.0.1", "--port", str(port), "--block-time", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    rpc = "http://127.0.0.1:%d" % port
    wait_for("anvil", lambda: http("POST", rpc, '{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
                                   {"Content-Type": "application/json"})[0] == 200, 20)
    if premine:
        st, j, _ = http("POST", rpc, '{"jsonrpc":"2.0","id":1,"method":"anvil_mine","params":["%s"]}'
                        % hex(premine), {"Content-Type": "application/json"})
        check(st == 200 and "result" in j, "anvil_mine: %s %s" % (st, j))
    r = subprocess.run([os.path.join(ROOT, "contracts", "scripts", "deploy-local.sh"), rpc, dev_key(0)],
                       capture_output=True, text=True, timeout=180)
    check(r.returncode == 0 and "NFT=" in r.stdout, "deploy: %s" % r.stderr[-1000:])
    nft = r.stdout.split("NFT=")[1].split()[0]
    owner_key = dev_key(7)
    owner = address_of(owner_key)
    for i in (1, 2, 3):
        cli(["mint", "--to", owner, "--name", "node%d" % i], dev_key(0), rpc, nft)
        cli(["register", "--instance-id", "node%d" % i, "--token", str(i)], owner_key, rpc, nft)
    keyf = os.path.join(d, "owner.key")
    with open(keyf, "w") as f:
        f.write(owner_key + "\n")
    os.chmod(keyf, 0o600)
    return rpc, nft, keyf, owner
