#!/usr/bin/env python3
"""Hostile HTTP input against a running 3-node static cluster (raw sockets):
the small wrong answers of issue 16 (non-UTF-8 path or method, duplicate or
conflicting Content-Length, /log bounds, %00 in a query value) each get a
400 and change nothing; HTTP/2 (prior knowledge and h2c upgrade) is refused
unless --http2 is given; the connection cap (--max-http-conns) and the
forward cap (--max-forwards) are hit, answered 503, counted in /metrics and
recovered from; a follower whose leader URL answers hostile bytes answers
502 and stays up. Then, against the RELEASE build (build/, or
$NFTRAFT_RELEASE_BUILD), an HTTP/2 rapid-reset flood (12,000 streams opened
and reset) and a slow-reader case (more connections than the cap, each asking
GET /log?limit=1000 and never reading) with the leader's RSS measured before,
during and after; no election may follow. After every phase the cluster must
still be up and committing."""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
from cluster import Cluster, TestFailure, check, http, run  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RELEASE = os.environ.get("NFTRAFT_RELEASE_BUILD") or os.path.join(ROOT, "build")
C = None
CONN_CAP = 48
FWD_CAP = 3
CAPS = ["--max-http-conns", str(CONN_CAP), "--max-forwards", str(FWD_CAP),
        "--forward-timeout", "1500"]


def port_of(node_id, c=None):
    return int((c or C).url(node_id).rsplit(":", 1)[1])


def raw(port, data, timeout=5.0, read=True):
    """Send bytes on a fresh connection; everything read until the server
    closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        if not read:
            return out
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else 0


def body_of(resp):
    return resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""


def metric(c, node_id, name):
    st, text, _ = http("GET", c.url(node_id) + "/metrics", timeout=5)
    check(st == 200, "GET /metrics on node %d: %s" % (node_id, st))
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    check(m is not None, "no %s in /metrics" % name)
    return int(m.group(1))


def alive(c):
    for i in range(1, c.n + 1):
        try:
            os.kill(c.pid(i), 0)
        except ProcessLookupError:
            raise TestFailure("node %d died:\n%s" % (i, c.log(i)[-3000:]))


def commits(c, n=3):
    """The cluster is up and committing: n increments through every node,
    the counter rises by exactly their sum."""
    alive(c)
    leader = c.leader(timeout=20)
    st, before, _ = http("GET", c.url(leader) + "/counter", timeout=5)
    check(st == 200, "GET /counter: %s %s" % (st, before))
    total = 0
    for k in range(n):
        node = k % c.n + 1
        deadline = time.time() + 20
        while True:
            st, j, _ = c.increment(node, by=k + 1, key="alive-%d-%f" % (k, time.time()))
            if st == 200:
                break
            check(time.time() < deadline, "increment via node %d: %s %s" % (node, st, j))
            time.sleep(0.2)
        total += k + 1
    st, after, _ = http("GET", c.url(c.leader()) + "/counter", timeout=5)
    check(st == 200 and after["value"] >= before["value"] + total,
          "counter %s -> %s, want +%d" % (before, after, total))


def restart_with(c, node_id, flags, args=None):
    """Stop a node (SIGTERM) and start it again with `up`'s flags (or
    `args`) plus `flags` (replacing an earlier set)."""
    pid = c.pid(node_id)
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            pass
        time.sleep(0.05)
    args = (args or c.cmdline(node_id)) + list(flags)  # `up`'s flags, unchanged
    logf = open(os.path.join(c.node_dir(node_id), "node.log"), "a")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=logf,
                         start_new_session=True)
    c.set_pid(node_id, p.pid)
    deadline = time.time() + 20
    while time.time() < deadline:
        if c.status(node_id, timeout=1):
            return
        check(p.poll() is None, "node %d exited:\n%s" % (node_id, c.log(node_id)[-3000:]))
        time.sleep(0.05)
    raise TestFailure("node %d did not come back" % node_id)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- the small answers ----

BAD = [
    ("path not UTF-8", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("overlong UTF-8", b"GET /counter\xc0\xaf HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("%ff in the path", b"GET /%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("method not UTF-8", b"G\xc3\x28T /status HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("method with 8-bit bytes", b"\xe9\xe9 /status HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("two Content-Length", b"POST /increment HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 9\r\nContent-Length: 20\r\n\r\n{\"by\": 7}"),
    ("same Content-Length twice", b"POST /increment HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 9\r\ncontent-length: 9\r\n\r\n{\"by\": 7}"),
    ("Content-Length + chunked", b"POST /increment HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 14\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"9\r\n{\"by\": 7}\r\n0\r\n\r\n"),
    ("/log from = 2^63", b"GET /log?from=9223372036854775808 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("/log from = 2^64", b"GET /log?from=18446744073709551616 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("/log limit 0", b"GET /log?limit=0 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("/log limit 1001", b"GET /log?limit=1001 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("/log limit -1", b"GET /log?limit=-1 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("%00 in from", b"GET /log?from=1%00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("%00 in limit", b"GET /log?limit=%001 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("%00 in stale", b"GET /counter?stale=1%00x HTTP/1.1\r\nHost: x\r\n\r\n"),
]


# Every request asks the server to close after answering (so raw() returns
# at once); the refused ones are closed anyway.
BAD = [(w, r.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n", 1))
       for w, r in BAD]


def test_small_answers_are_400():
    leader = C.leader()
    follower = 1 if leader != 1 else 2
    st, before, _ = http("GET", C.url(leader) + "/counter")
    bad0 = metric(C, follower, "nftraft_http_bad_requests_total")
    for node in (leader, follower):
        for what, req in BAD:
            resp = raw(port_of(node), req)
            check(status_of(resp) == 400,
                  "node %d, %s: want 400, got %r" % (node, what, resp[:200]))
            j = json.loads(body_of(resp))
            check("error" in j, "%s: no error text: %r" % (what, resp[:200]))
    # The largest valid `from` is fine, and its `next` is not negative.
    resp = raw(port_of(follower), b"GET /log?from=9223372036854775807&limit=1 "
               b"HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status_of(resp) == 200, "from=2^63-1: %r" % resp[:200])
    check(json.loads(body_of(resp))["next"] == 9223372036854775807, "next: %r" % resp)
    # A refused request's pipelined follower is not served (no smuggling).
    resp = raw(port_of(leader), b"POST /increment HTTP/1.1\r\nHost: x\r\n"
               b"Content-Length: 0\r\nContent-Length: 48\r\n\r\n"
               b"POST /increment HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    check(resp.count(b"HTTP/1.1 ") == 1 and status_of(resp) == 400,
          "smuggled request: %r" % resp[:400])
    check(metric(C, follower, "nftraft_http_bad_requests_total") >= bad0 + 8,
          "bad request counter did not move")
    st, after, _ = http("GET", C.url(leader) + "/counter")
    check(after["value"] == before["value"],
          "a refused request changed the counter: %s -> %s" % (before, after))
    commits(C)


def test_http2_refused_unless_enabled():
    leader = C.leader()
    for node in range(1, C.n + 1):
        resp = raw(port_of(node), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                   b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        check(status_of(resp) == 400, "prior knowledge on node %d: %r" % (node, resp[:100]))
        resp = raw(port_of(node), b"GET /status HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n")
        check(status_of(resp) == 200 and b"101 Switching" not in resp,
              "h2c upgrade on node %d: %r" % (node, resp[:100]))
    # With --http2 the same preface gets a server SETTINGS frame.
    node = 1 if leader != 1 else 2
    restart_with(C, node, CAPS + ["--http2"])
    resp = raw(port_of(node), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
               b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", timeout=1.5)
    check(len(resp) >= 9 and resp[3] == 0x04, "--http2: no SETTINGS frame: %r" % resp[:40])
    restart_with(C, node, CAPS)
    commits(C)


def test_connection_cap_hit_and_recovered():
    node = C.leader()
    held = []
    try:
        for _ in range(CONN_CAP + 5):
            held.append(socket.create_connection(("127.0.0.1", port_of(node)), timeout=5))
        time.sleep(0.3)
        resp = raw(port_of(node), b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        check(status_of(resp) == 503 and b"too many connections" in resp,
              "over the cap: %r" % resp[:200])
        # Raft does not care: the cluster still commits (through the others).
        other = [i for i in range(1, C.n + 1) if i != node]
        alive(C)
        st, j, _ = http("GET", C.url(other[0]) + "/counter?stale=1")
        check(st == 200, "other node: %s" % st)
    finally:
        for s in held:
            s.close()
    deadline = time.time() + 10
    while status_of(raw(port_of(node), b"GET /status HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")) != 200:
        check(time.time() < deadline, "node %d did not recover from the cap" % node)
        time.sleep(0.1)
    check(metric(C, node, "nftraft_http_connections_refused_total") >= 1,
          "refused connections not counted")
    commits(C)


def test_forward_cap_hit_and_recovered():
    leader = C.leader()
    follower = 1 if leader != 1 else 2
    st, _, _ = http("POST", C.url(leader) + "/fault", '{"http_stall": true}')
    check(st == 200, "fault switch: %s" % st)
    results = []
    lock = threading.Lock()

    def one(k):
        st, j, _ = C.increment(follower, by=1, key="fwdcap-%d" % k, timeout=15)
        with lock:
            results.append((st, j))
    try:
        threads = [threading.Thread(target=one, args=(k,)) for k in range(FWD_CAP + 4)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        time.sleep(0.5)
        check(metric(C, follower, "nftraft_forwards_in_flight") == FWD_CAP,
              "forwards in flight != cap")
        for t in threads:
            t.join(30)
    finally:
        http("POST", C.url(leader) + "/fault", '{"http_stall": false}')
    refused = [j for st, j in results if st == 503 and "too many requests" in j.get("error", "")]
    check(len(refused) == 4, "want 4 refused over the cap, got %s" % results)
    check(all(st == 503 for st, _ in results), "answers: %s" % results)
    check(metric(C, follower, "nftraft_forwards_refused_total") >= 4, "not counted")
    deadline = time.time() + 10
    while metric(C, follower, "nftraft_forwards_in_flight") != 0:
        check(time.time() < deadline, "forwards still in flight")
        time.sleep(0.1)
    commits(C)


# ---- release build: floods with RSS measured ----

def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def h2_headers(stream):
    # HPACK: :method GET (idx 2), :scheme http (6), :path / (4), then a
    # literal :authority without indexing.
    block = b"\x82\x86\x84\x01\x01x"
    return h2_frame(0x1, 0x5, stream, block)


def rapid_reset_flood(port, streams, conns=4):
    """Open and immediately reset `streams` HTTP/2 streams over prior-
    knowledge connections; returns (bytes the server answered, seconds)."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0)
    per = streams // conns
    answered = 0
    t0 = time.time()
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(preface)
            buf = bytearray()
            for k in range(per):
                sid = 2 * k + 1
                buf += h2_headers(sid) + h2_frame(0x3, 0, sid, b"\x00\x00\x00\x08")
                if len(buf) > 64 * 1024:
                    s.sendall(buf)
                    buf.clear()
            s.sendall(buf)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused: the server closed on the preface
        try:
            s.settimeout(1)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                answered += len(d)
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
    return answered, time.time() - t0


class HostileLeader(threading.Thread):
    """An HTTP port that reads each request (head and Content-Length body)
    and answers it with the next scripted bytes, then closes the
    connection; None closes without answering, ("stall", bytes) sends
    them and holds the connection open for 4 s."""

    def __init__(self, answers):
        super().__init__(daemon=True)
        self.answers = list(answers)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen = []

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        with conn:
            conn.settimeout(10)
            buf = b""
            try:
                while b"\r\n\r\n" not in buf:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, body = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                while m and len(body) < int(m.group(1)):
                    body += conn.recv(65536)
                self.seen.append(head)
                ans = self.answers.pop(0) if self.answers else None
                if isinstance(ans, tuple):
                    conn.sendall(ans[1])
                    time.sleep(4)
                elif ans is not None:
                    conn.sendall(ans)
            except OSError:
                return


def test_hostile_leader_answers_are_502():
    """A follower forwards to whatever answers on the leader's HTTP URL: a
    port answering garbage, oversized, chunked or never-ending heads is
    answered 502 (outcome unknown), a connection closed without an answer
    or an answer that stops midway 503; a well-formed answer is relayed as
    is (status, body, Retry-After). The follower never crashes and, back
    on the real leader, forwards again."""
    leader = C.leader()
    f = 1 if leader != 1 else 2
    bad = [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 10000,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
        b"HTTP/1.1 200 OK\r\nRetry-After: 1\x01\r\nContent-Length: 2\r\n\r\n{}",
    ]
    answers = bad + [None, ("stall", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
                     b"HTTP/1.1 201 Created\r\nRetry-After: 7\r\nContent-Length: 11\r\n\r\n{\"value\":1}"]
    h = HostileLeader(answers)
    h.start()
    real = "=%s" % C.url(leader)
    args = [a.replace(real, "=http://127.0.0.1:%d" % h.port) if a.startswith("1=") else a
            for a in C.cmdline(f)]
    check(args != C.cmdline(f), "leader URL not found in %s" % C.cmdline(f))
    try:
        restart_with(C, f, CAPS, args)
        deadline = time.time() + 15
        while ((C.status(f) or {}).get("leader") or {}).get("id") != leader:
            check(time.time() < deadline, "node %d never saw leader %d" % (f, leader))
            time.sleep(0.1)
        for k, want in enumerate([502] * len(bad) + [503, 503]):
            st, j, _ = C.increment(f, key="hostile-%d" % k, timeout=10)
            check(st == want and j.get("outcome") == "unknown",
                  "answer %d (%r...): %s %s, want %d outcome unknown"
                  % (k, answers[k] and str(answers[k])[:40], st, j, want))
            check(C.status(f) is not None, "node %d died on answer %d" % (f, k))
        st, body, hdrs = http("POST", C.url(f) + "/increment", "", {"Idempotency-Key": "hostile-ok"})
        hdrs = {k.lower(): v for k, v in hdrs.items()}
        check(st == 201 and body == {"value": 1} and hdrs.get("retry-after") == "7",
              "well-formed answer relayed as %s %s %s" % (st, body, hdrs))
        check(len(h.seen) == len(answers) and all(b"X-Nftraft-Forwarded: %d" % f in s for s in h.seen),
              "the hostile port saw %d requests: %s" % (len(h.seen), h.seen[:2]))
    finally:
        h.sock.close()
        restart_with(C, f, CAPS)
    commits(C)


def test_release_floods_rss():
    nftraft = os.path.join(RELEASE, "nftraft")
    if not os.access(nftraft, os.X_OK):
        print("  (no release build at %s: skipped)" % RELEASE)
        return
    saved = cluster.NFTRAFT
    cluster.NFTRAFT = nftraft
    rc = Cluster(nodes=3)
    try:
        rc.up()
    finally:
        cluster.NFTRAFT = saved
    try:
        leader = rc.leader(timeout=20)
        port, pid = port_of(leader, rc), rc.pid(leader)
        # Fill the op log so that /log?limit=1000 is a big answer (~100 KB).
        def filler(k):
            for i in range(125):
                rc.increment(leader, by=1)
        ts = [threading.Thread(target=filler, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        st, j, _ = http("GET", rc.url(leader) + "/log?limit=1000")
        check(st == 200 and len(j["entries"]) == 1000, "log has %s" % (j and len(j["entries"])))
        answer = len(json.dumps(j, separators=(",", ":")))
        term0 = rc.status(leader)["term"]
        rss0 = rss_kb(pid)

        answered, secs = rapid_reset_flood(port, 12000)
        rss1 = rss_kb(pid)
        check(answered < 4096, "HTTP/2 flood got %d bytes of answers" % answered)
        check(rc.status(leader)["term"] == term0, "election after the HTTP/2 flood")

        cap = 512
        n = cap + 88
        socks, t0 = [], time.time()
        req = b"GET /log?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            try:
                s.sendall(req)
            except OSError:
                pass
            socks.append(s)
        time.sleep(2)
        rss2 = rss_kb(pid)
        st, j, _ = http("GET", rc.url(leader) + "/status", timeout=5)
        over = st  # the leader is at its cap: a new client gets 503
        # The other nodes (and raft) are unaffected.
        others = [i for i in range(1, 4) if i != leader]
        st, _, _ = rc.increment(others[0], by=1)
        check(st in (200, 503), "increment during the slow readers: %s" % st)
        for s in socks:
            s.close()
        t0 = time.time()
        while http("GET", rc.url(leader) + "/status", timeout=2)[0] != 200:
            check(time.time() < t0 + 15, "the leader did not recover from the cap")
            time.sleep(0.1)
        recovered = time.time() - t0
        time.sleep(1)
        rss3 = rss_kb(pid)
        refused = metric(rc, leader, "nftraft_http_connections_refused_total")
        check(rc.status(leader)["term"] == term0, "election after the slow readers")
        commits(rc)
        print("  release leader RSS: before %d kB; after 12000 HTTP/2 streams reset "
              "(%.1fs, %d bytes answered) %d kB; with %d slow readers of a %d-byte "
              "/log answer %d kB; after they closed %d kB; new client at the cap "
              "got %s; %d connections refused; serving again %.1fs after the "
              "close" % (rss0, secs, answered, rss1, n, answer, rss2, rss3,
                         over, refused, recovered))
        check(over == 503, "a client over the cap got %s, not 503" % over)
        check(refused >= n - cap, "refused %d < %d" % (refused, n - cap))
        # Bounded: at most one answer per open connection is held by the
        # process (HTTP/1.1 serves one request at a time per connection).
        check(rss2 - rss0 < cap * answer // 1024 + 32 * 1024,
              "slow readers grew RSS by %d kB" % (rss2 - rss0))
        check(rss3 - rss0 < 48 * 1024, "RSS not back after close: +%d kB" % (rss3 - rss0))
        check(rss1 - rss0 < 16 * 1024, "HTTP/2 flood grew RSS by %d kB" % (rss1 - rss0))
    finally:
        rc.down()


def main():
    global C
    C = Cluster(nodes=3, extra=["--enable-fault-switch"])
    rc = 1
    try:
        C.up()
        for i in range(1, 4):
            restart_with(C, i, CAPS)
        rc = run([test_small_answers_are_400, test_http2_refused_unless_enabled,
                  test_connection_cap_hit_and_recovered,
                  test_forward_cap_hit_and_recovered,
                  test_hostile_leader_answers_are_502, test_release_floods_rss])
        C.check_logs_clean()
    except TestFailure as e:
        print("FAIL setup: %s" % e)
        rc = 1
    finally:
        if rc:
            C.dump_logs()
        C.down()
    return rc


if __name__ == "__main__":
    sys.exit(main())
