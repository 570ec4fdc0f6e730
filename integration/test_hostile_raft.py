#!/usr/bin/env python3
"""The raft port against hostile peers (static mode, 3 real nodes).

Every raft connection must first answer the static-mode challenge with an
HMAC of the cluster secret; after that every message is checked before raft
decodes it. Replays the frames that crashed raft 0.22.1's decoder (through a
correct handshake, i.e. as a member holding the secret would), a wrong
secret, a silent peer, a connection flood over the caps and an oversized
message, and requires every node to stay up and the cluster to keep
committing. The handshake is implemented here independently (hmac/hashlib).
"""
import hashlib
import hmac
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, check, http, run  # noqa: E402

C = None
TAG = b"nftraft raft handshake v1 static"


def raft_port(node_id):
    return C.base + 100 + node_id - 1


def secret():
    with open(os.path.join(C.dir, "cluster.secret")) as f:
        return bytes.fromhex(f.read().strip())


def dial(node_id, opener_id=9, key=None, answer=True):
    """Preamble + (optionally) the static handshake; (socket, verdict)."""
    s = socket.create_connection(("127.0.0.1", raft_port(node_id)), timeout=8)
    addr = b"127.0.0.1:9999\0"
    s.sendall(struct.pack("<QQQ", 1, opener_id, len(addr)) + addr)
    if not answer:
        return s, None
    ch = b""
    while len(ch) < 48:
        got = s.recv(48 - len(ch))
        if not got:
            return s, None
        ch += got
    check(ch[:8] == b"nftraftS", "static-mode challenge magic: %r" % ch[:8])
    nonce, acceptor = ch[8:40], struct.unpack(">Q", ch[40:48])[0]
    check(acceptor == node_id, "challenge names the acceptor %d" % acceptor)
    msg = TAG + struct.pack(">QQ", acceptor, opener_id) + nonce
    s.sendall(hmac.new(key or secret(), msg, hashlib.sha256).digest())
    v = s.recv(1)
    return s, (v[0] if v else None)


def closed_within(s, seconds):
    """Seconds until the peer closes s (None if still open after seconds)."""
    s.settimeout(seconds)
    t0 = time.time()
    try:
        while True:
            if s.recv(4096) == b"":
                return time.time() - t0
    except socket.timeout:
        return None
    except OSError:
        return time.time() - t0
    finally:
        s.close()


def all_up_and_committing(base):
    for i in range(1, 4):
        check(C.status(i) is not None, "node %d is down" % i)
    st, j, _ = C.increment(1, timeout=15)
    check(st == 200 and j["value"] > base, "the cluster commits: %s %s" % (st, j))
    return j["value"]


def refused_total(node_id):
    st, m, _ = http("GET", C.url(node_id) + "/metrics")
    for line in m.split("\n"):
        if line.startswith("nftraft_raft_connections_refused_total "):
            return int(line.split()[1])
    return -1


def pre(typ, hlen, version=0):
    return struct.pack("<QQ", typ | version << 16, hlen)


def words(*ws):
    return b"".join(struct.pack("<Q", w) for w in ws)


def test_crash_frames_after_a_valid_handshake():
    """The frames that segfault raft 0.22.1 (measured on a node without the
    checker) are refused at the edge; the node stays up."""
    value = all_up_and_committing(-1)
    frames = [
        ("48-byte AppendEntries, 1 entry, entry header missing",
         pre(1, 48) + words(100, 9, 0, 0, 1, 0)),
        ("all-zero 16-byte AppendEntries header", pre(1, 16) + words(0, 0)),
        ("unknown message type", pre(77, 24) + words(0, 0, 0)),
        ("entry of 12 bytes (raft walks entries padded)",
         pre(1, 64) + words(100, 9, 0, 0, 1) + words(100) + b"\x01\0\0\0" +
         struct.pack("<I", 12) + words(0) + b"x" * 12),
        ("InstallSnapshot whose configuration runs past its header",
         pre(5, 56) + words(100, 50, 2, 40, 4000, 8, 0)),
        ("RequestVote without its flags word", pre(3, 32) + words(100, 9, 0, 0)),
    ]
    for victim in (1, 2, 3):
        before = refused_total(victim)
        for what, frame in frames:
            s, v = dial(victim)
            check(v == 1, "handshake with the right secret accepted (%s): %r" % (what, v))
            s.sendall(frame)
            t = closed_within(s, 5)
            check(t is not None, "%s: node %d closed the connection" % (what, victim))
        check(refused_total(victim) >= before + len(frames),
              "node %d counted the bad frames" % victim)
        check("closed raft connection from" in C.log(victim),
              "node %d logged why it closed them" % victim)
    all_up_and_committing(value)


def test_wrong_secret_and_silent_peers_are_refused():
    value = all_up_and_committing(-1)
    s, v = dial(2, key=b"\x01" * 32)
    check(v in (0, None), "a wrong secret is refused: %r" % v)
    s.close()
    check("wrong cluster secret" in C.log(2), "node 2 says why")
    s, _ = dial(2, answer=False)  # preamble, then silence
    t = closed_within(s, 9)
    check(t is not None and t < 8, "a silent peer is closed within the deadline: %s" % t)
    all_up_and_committing(value)


def still_open(socks, close=False):
    """How many of socks the server has not closed (nothing to read yet, or
    a byte); each closed afterwards when `close`."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            n += s.recv(1) != b""
        except BlockingIOError:
            n += 1
        except OSError:
            pass
        if close:
            s.close()
    return n


def test_connection_flood_is_capped_and_drained():
    """300 connections that never answer the challenge: at most half the cap
    wait in the handshake, the rest are closed at once, all are gone after
    the deadline, and the log is not flooded (one summary line)."""
    value = all_up_and_committing(-1)
    socks = []
    for _ in range(300):
        try:
            socks.append(socket.create_connection(("127.0.0.1", raft_port(3)), timeout=2))
        except OSError:
            pass
    time.sleep(0.5)
    open_now = still_open(socks)
    check(open_now <= 40, "at most the handshake cap stays open: %d of 300" % open_now)
    time.sleep(6)
    still = still_open(socks, close=True)
    check(still == 0, "none left open after the deadline: %d" % still)
    log = C.log(3)
    check(log.count("refused a raft connection:") <= 12,
          "refusals are rate-limited in the log (%d lines)" % log.count("refused a raft connection:"))
    all_up_and_committing(value)


def test_oversized_message_is_refused():
    value = all_up_and_committing(-1)
    s, v = dial(1)
    check(v == 1, "handshake accepted")
    # One 64 MiB + 8 entry: above --max-raft-message (64 MiB), refused on
    # the header alone, before any payload is read.
    s.sendall(pre(1, 64) + words(100, 9, 0, 0, 1) + words(100) + b"\x01\0\0\0" +
              struct.pack("<I", (64 << 20) + 8) + words(0))
    check(closed_within(s, 5) is not None, "oversized message: connection closed")
    check("payload above" in C.log(1), "node 1 says why")
    all_up_and_committing(value)


def test_static_mode_needs_a_secret():
    import subprocess
    from cluster import NFTRAFTD
    r = subprocess.run([NFTRAFTD, "--data-dir", "/tmp/x", "--http", "127.0.0.1:1",
                        "--raft", "127.0.0.1:2", "--peers", "1=127.0.0.1:2=http://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and "needs --cluster-secret-file" in r.stderr,
          "static mode without a secret is a flag error: %s" % r.stderr)
    bad = os.path.join(C.dir, "bad.secret")
    with open(bad, "w") as f:
        f.write("not hex\n")
    r = subprocess.run([NFTRAFTD, "--data-dir", os.path.join(C.dir, "x"), "--http", "127.0.0.1:1",
                        "--raft", "127.0.0.1:2", "--peers", "1=127.0.0.1:2=http://127.0.0.1:1",
                        "--cluster-secret-file", bad], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1 and "want 64 hex digits" in r.stderr,
          "a malformed secret is refused clearly: %s" % r.stderr)


def main():
    global C
    C = Cluster(nodes=3)
    rc = 1
    try:
        C.up()
        C.leader()
        rc = run([test_crash_frames_after_a_valid_handshake,
                  test_wrong_secret_and_silent_peers_are_refused,
                  test_connection_flood_is_capped_and_drained,
                  test_oversized_message_is_refused,
                  test_static_mode_needs_a_secret])
        C.check_logs_clean()
    except Exception as e:
        print("FAIL setup: %s" % e)
        rc = 1
    finally:
        if rc != 0:
            C.dump_logs()
        C.down()
    return rc


if __name__ == "__main__":
    sys.exit(main())
