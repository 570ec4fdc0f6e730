#!/usr/bin/env python3
"""The operator dashboard (issue 14) in a real browser against a real 3-node
chain cluster on anvil: GET / and its files are served from the binary with
no outside references; headless chromium (driven through chromedriver's W3C
WebDriver API) shows three nodes, one raft leader and the contract's leader
as the nodes report them, live; the increment button writes through a
follower (forwarded); kill -9 of the raft leader shows up as a new leader
within seconds, the raft/contract disagreement is highlighted until the
contract follows; screenshots at laptop and phone width are saved. Also:
/members and `nftraft members` show instance names, and /status never shows
the credentials of an RPC URL (a node restarted on an RPC URL with
user:password, a key in the path and an apikey query, through a forwarding
proxy to anvil). Figure: page weight (CPU cost: bench/dashboard_cpu.py)."""
import http.server as httpserver
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import NFTRAFT, Cluster, check, finish, free_port, http, run, wait_for  # noqa: E402
import browser  # noqa: E402

C = None
B = None
S = {}
SECRETS = ("alice", "hunter2pw", "9aa3d95b3bc440fa88ea12eaa4456161", "S3cr3tApiKey")

# What the page shows, read from the DOM only.
DOM = """
const q = (s) => document.querySelector(s);
return {
  nodes: [...document.querySelectorAll('.node')].map((n) => ({token: +n.dataset.token, role: n.dataset.role,
                                                               ok: n.dataset.ok === '1'})),
  raft_leader: +(q('#raft-leader').dataset.token || 0),
  chain_leader: +(q('#chain-leader').dataset.token || 0),
  disagree: q('#chain-tile').classList.contains('bad'),
  chain: q('#chain').textContent, updated: q('#updated').textContent,
  value: q('#value').textContent, fwd: q('#fwd').textContent,
  inc: {forwarded: q('#inc-result').dataset.forwarded, value: q('#inc-result').dataset.value,
        text: q('#inc-result').textContent},
  members: [...document.querySelectorAll('#members tbody tr')].map((r) => r.children[1].textContent),
  log_values: [...document.querySelectorAll('#log tbody tr')].filter((r) => r.children.length === 6)
    .map((r) => +r.children[3].textContent),
};
"""


def chain_leader_of(i):
    s = C.status(i, timeout=3)
    return s and s.get("chain") and s["chain"]["leader"]["token_id"]


def dom():
    return B.execute(DOM)


class Load:
    """A few increments a second through every node (for the sparklines)."""

    def __init__(self):
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        k = 0
        while not self.stop.is_set():
            C.increment(1 + k % 3, timeout=3)
            k += 1
            time.sleep(0.1)

    def end(self):
        self.stop.set()
        self.t.join(10)


def test_up_and_page_served():
    global C
    C = Cluster(3, chain="anvil", extra=["--anvil-port", str(free_port())])
    print(C.up().strip())
    C.leader()
    total = 0
    for path, ctype in (("/", "text/html"), ("/dashboard.js", "text/javascript"),
                        ("/dashboard.css", "text/css")):
        with urllib.request.urlopen(C.url(2) + path, timeout=5) as r:
            body = r.read().decode()
            check(r.status == 200 and r.headers["Content-Type"].startswith(ctype),
                  "GET %s: %s %s" % (path, r.status, r.headers["Content-Type"]))
            check("default-src 'self'" in r.headers.get("Content-Security-Policy", ""), "CSP on %s" % path)
        total += len(body.encode())
        check("//cdn" not in body and "https://" not in body, "%s loads nothing from outside" % path)
    S["weight"] = total
    print("  (figure) dashboard page weight: %d bytes (HTML + JS + CSS, uncompressed)" % total)
    for path in ("/status", "/members", "/metrics", "/log"):
        st, _, h = http("GET", C.url(1) + path)
        h = {k.lower(): v for k, v in h.items()}
        check(st == 200 and h.get("access-control-allow-origin") == "*", "GET %s allows other origins: %s" % (path, h))
    st, _, h = http("POST", C.url(1) + "/increment", "", {"Content-Type": "application/json"})
    check(st == 200 and "access-control-allow-origin" not in {k.lower() for k in h},
          "POST /increment gets no CORS header: %s" % h)


def test_members_show_instance_names():
    st, m, _ = http("GET", C.url(1) + "/members")
    names = sorted(x["instance_id"] for x in m["members"])
    check(names == ["node1", "node2", "node3"], "/members names: %s" % m)
    check(all(x["instance_id_hex"].startswith("0x6e6f6465") for x in m["members"]), "hex kept: %s" % m)
    rpc, nft = C.chain_env()
    r = subprocess.run([NFTRAFT, "members", "--rpc-url", rpc, "--contract", nft], capture_output=True,
                       text=True, timeout=30)
    # columns: token, epoch, instance id, owner, node key, endpoints
    rows = [[l.split()[0], l.split()[2]] for l in r.stdout.splitlines() if l[:1].isdigit()]
    check(r.returncode == 0 and rows == [["1", "node1"], ["2", "node2"], ["3", "node3"]],
          "nftraft members prints names: %s %s" % (r.stdout, r.stderr))


def test_browser_shows_the_cluster():
    global B
    leader = C.leader()
    wait_for("the on-chain leader", lambda: chain_leader_of(leader) == leader, 30)
    S["origin"] = [i for i in (1, 2, 3) if i != leader][0]
    B = browser.Browser(C.dir)
    B.get(C.url(S["origin"]) + "/")
    d = wait_for("the page to show three answering nodes", lambda: (lambda d: d if len(d["nodes"]) == 3 and all(
        n["ok"] for n in d["nodes"]) else None)(dom()), 20)
    leaders = [n["token"] for n in d["nodes"] if n["role"] == "leader"]
    check(leaders == [leader], "one leader card, node %d: %s" % (leader, d["nodes"]))
    check(d["raft_leader"] == leader, "raft leader tile says %d, not %d" % (d["raft_leader"], leader))
    check(d["chain_leader"] == chain_leader_of(leader) == leader and not d["disagree"],
          "on-chain leader tile: %s" % d)
    check(sorted(d["members"]) == ["node1", "node2", "node3"], "members by name: %s" % d["members"])
    check("forwarded" in d["fwd"], "a follower's page says its writes are forwarded: %r" % d["fwd"])
    block0 = int(d["chain"].split("block ")[1].split()[0])
    wait_for("the page to refresh (a later block)", lambda: (lambda d: "block " in d["chain"] and int(
        d["chain"].split("block ")[1].split()[0]) > block0)(dom()), 10)
    wait_for("the page's update time to move", lambda: dom()["updated"] != d["updated"], 5)


def test_increment_button_forwards():
    before = http("GET", C.url(1) + "/counter")[1]["value"]
    B.click("#inc")
    d = wait_for("the increment's answer", lambda: (lambda d: d if d["inc"]["value"] else None)(dom()), 15)
    check(d["inc"]["forwarded"] == "1" and "forwarded through this node" in d["inc"]["text"],
          "the answer says it went through this follower: %s" % d["inc"])
    v = int(d["inc"]["value"])
    check(v == before + 1, "the button added 1: %d -> %d" % (before, v))
    check(http("GET", C.url(3) + "/counter")[1]["value"] >= v, "committed cluster-wide")
    wait_for("the new entry in the page's log", lambda: v in dom()["log_values"], 10)


def test_kill_leader_page_follows():
    load = Load()
    try:
        time.sleep(4)
        old = C.leader()
        check(old != S["origin"], "the page's own node is a follower")
        t0 = time.time()
        C.kill9(old)
        disagreement_seen = []

        def new_leader_shown():
            d = dom()
            if d["raft_leader"] != d["chain_leader"]:
                check(d["disagree"], "raft %d vs chain %d is highlighted" % (d["raft_leader"], d["chain_leader"]))
                disagreement_seen.append(d)
            dead = [n for n in d["nodes"] if n["token"] == old]
            ok = d["raft_leader"] not in (0, old) and dead and not dead[0]["ok"]
            return d if ok and [n["token"] for n in d["nodes"] if n["role"] == "leader"] == [d["raft_leader"]] \
                else None
        d = wait_for("the page to show a new raft leader", new_leader_shown, 15, step=0.1)
        S["failover_s"] = time.time() - t0
        truth = C.leader(exclude=(old,))
        check(d["raft_leader"] == truth, "the page's new leader %d is the cluster's %d" % (d["raft_leader"], truth))
        print("  (figure) kill -9 of leader %d -> page shows leader %d after %.1f s" % (
            old, truth, S["failover_s"]))
        if disagreement_seen:
            p = os.path.join(C.dir, "dashboard-disagreement.png")
            B.screenshot(p)
            print("  screenshot (raft and contract disagree): %s" % p)
        # The contract votes the dead leader out and names one of the live
        # nodes; raft moves to it if it is not the raft leader already.
        d = wait_for("the page to show raft and the contract agreeing", lambda: (lambda d: d if d and d[
            "chain_leader"] == d["raft_leader"] and not d["disagree"] else None)(new_leader_shown()), 60, step=0.5)
        truth = C.leader(exclude=(old,))
        check(d["raft_leader"] == truth and chain_leader_of(truth) == truth,
              "the page shows %d as both leaders; the cluster says raft %d, contract %s" % (
                  d["raft_leader"], truth, chain_leader_of(truth)))
        print("  on-chain leader %d shown after %.1f s (disagreement %s on the page meanwhile)" % (
            truth, time.time() - t0, "shown" if disagreement_seen else "not seen"))
        S["killed"] = old
        time.sleep(5)  # sparklines with traffic after the failover
    finally:
        load.end()
    B.set_window(1280, 1300)
    time.sleep(1.5)
    p = os.path.join(C.dir, "dashboard-laptop.png")
    B.screenshot(p)
    print("  screenshot (1280 px): %s" % p)
    B.set_window(412, 2000)
    time.sleep(1.5)
    p = os.path.join(C.dir, "dashboard-phone.png")
    B.screenshot(p)
    print("  screenshot (412 px): %s" % p)
    B.set_window(1280, 1000)


class Forwarder(httpserver.BaseHTTPRequestHandler):
    """JSON-RPC on any path, passed on to anvil (which serves only '/')."""
    target = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(self.target, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            out = r.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def test_status_redacts_rpc_credentials():
    """The killed node comes back on an RPC URL full of credentials."""
    node = S.get("killed") or C.leader()
    rpc = C.chain_env()[0]
    Forwarder.target = rpc
    srv = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Forwarder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    url = "http://alice:hunter2pw@127.0.0.1:%d/v3/9aa3d95b3bc440fa88ea12eaa4456161?apikey=S3cr3tApiKey" % port
    path = os.path.join(C.node_dir(node), "cmdline")
    args = C.cmdline(node)
    args[args.index("--rpc-url") + 1] = url
    with open(path, "w") as f:
        f.write("\n".join(args) + "\n")
    if C.status(node, timeout=1):
        C.kill9(node)
    C.start_node(node)
    cs = wait_for("node %d to read the chain through the URL" % node,
                  lambda: (lambda s: s["chain"] if s and s["chain"]["connected"] else None)(C.status(node)), 30)
    check(cs["rpc_url"] == "http://***@127.0.0.1:%d/v3/***?apikey=***" % port, "redacted: %r" % cs["rpc_url"])
    srv.shutdown()
    srv.server_close()
    cs = wait_for("node %d to report the chain unreachable" % node,
                  lambda: (lambda s: s["chain"] if s and not s["chain"]["connected"] else None)(C.status(node)), 30)
    print("  chain error with a credential URL: %r" % cs["error"])
    text = json.dumps(C.status(node)) + C.log(node)
    for s in SECRETS:
        check(s not in text, "%r appears in /status or the log" % s)
    wait_for("the page to show node %d back as a follower and every node answering" % node,
             lambda: (lambda d: len(d["nodes"]) == 3 and all(n["ok"] for n in d["nodes"]) and any(
                 n["token"] == node and n["role"] == "follower" for n in d["nodes"]))(dom()), 20)


def test_clean_shutdown():
    B.quit()
    C.down()
    C.check_logs_clean()


def main():
    if browser.find_tools() is None:
        print("FAIL chromium/chromedriver missing (scripts/install-deps.sh installs them)")
        return 1
    try:
        return run([test_up_and_page_served, test_members_show_instance_names, test_browser_shows_the_cluster,
                    test_increment_button_forwards, test_kill_leader_page_follows,
                    test_status_redacts_rpc_credentials, test_clean_shutdown])
    finally:
        if B is not None:
            B.quit()
        if C is not None:
            C.down()


if __name__ == "__main__":
    sys.exit(finish(C, main(), remove=False))
