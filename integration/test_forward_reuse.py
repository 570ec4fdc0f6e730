#!/usr/bin/env python3
"""Issue 13 integration test: writes forwarded by a follower reuse kept-alive
connections to the leader (the follower's sockets to the leader's HTTP port
are read from /proc), answers stay exactly the leader's, and forwarding keeps
working after the leader dies and comes back (the relay's kept connections
die with the old leader), keyless forwarded writes carry no generated key
(the relay never re-sends them) while a client's key is relayed, and the
keys a follower generates when it forwards through libcurl (a leader URL
the relay does not speak) stay unique across its restart."""
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, check, finish, http, run  # noqa

C = Cluster(3)
ST = {}


def leader_conns(follower, leader):
    """Local ports of the follower's TCP connections to the leader's HTTP
    port (any state), from /proc/PID/fd and /proc/net/tcp."""
    pid = C.pid(follower)
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    port = int(C.url(leader).rsplit(":", 1)[1])
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            col = line.split()
            rport = int(col[2].split(":")[1], 16)
            if rport == port and col[9] in inodes:
                ports.add(int(col[1].split(":")[1], 16))
    return ports


def setup():
    C.up()
    ST["leader"] = C.leader()
    ST["follower"] = next(i for i in range(1, 4) if i != ST["leader"])


def test_sequential_forwards_reuse_one_connection():
    f, ld = ST["follower"], ST["leader"]
    seen = set()
    prev = None
    for k in range(40):
        st, j, _ = C.increment(f)
        check(st == 200, "forwarded write %d: %s %s" % (k, st, j))
        check(prev is None or j["value"] == prev + 1,
              "forwarded write %d answered %s after %s" % (k, j, prev))
        prev = j["value"]
        seen |= leader_conns(f, ld)
    check(len(seen) == 1,
          "40 sequential forwarded writes used %d connections to the leader "
          "(local ports %s), want 1 kept-alive connection" % (len(seen), sorted(seen)))
    st, j, _ = http("GET", C.url(ld) + "/counter")
    check(st == 200 and j["value"] == prev, "leader counter %s, last forwarded answer %d" % (j, prev))


def forward_concurrently(clients, per_client, timeout=10, together=False, poll=0.01):
    """`clients` threads each send `per_client` increments through the
    follower (all released at once when `together`), while the follower's
    connections to the leader are sampled every `poll` seconds. Returns the
    leader's counter before, the answered values, the failures and the local
    ports of those connections."""
    f, ld = ST["follower"], ST["leader"]
    st, j, _ = http("GET", C.url(ld) + "/counter")
    base = j["value"]
    values, errors, seen = [], [], set()
    lock = threading.Lock()
    go = threading.Event()

    def worker():
        if together:
            go.wait()
        for _ in range(per_client):
            st, j, _ = C.increment(f, timeout=timeout)
            with lock:
                (values if st == 200 else errors).append(j["value"] if st == 200 else (st, j))

    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    go.set()
    while any(t.is_alive() for t in ts):
        seen |= leader_conns(f, ld)
        time.sleep(poll)
    for t in ts:
        t.join()
    return base, values, errors, seen


def test_concurrent_forwards_are_exact_and_bounded():
    base, values, errors, seen = forward_concurrently(8, 25)
    check(not errors, "forwarded writes failed: %s" % errors[:5])
    check(sorted(values) == list(range(base + 1, base + 201)),
          "values are not exactly %d..%d" % (base + 1, base + 200))
    # 8 clients: at most 8 connections at a time; a new one per write would
    # show far more distinct ports over 200 writes.
    check(1 <= len(seen) <= 16, "200 forwarded writes from 8 clients used %d "
          "connections to the leader" % len(seen))


def test_many_clients_share_at_most_64_connections():
    """100 concurrent clients through one follower: at most 64 connections
    to the leader (httpc's per-host cap; the rest wait inside curl), all
    kept alive, not one new connection per write once the cache is full."""
    base, values, errors, seen = forward_concurrently(100, 4, timeout=30, together=True, poll=0.005)
    check(not errors, "forwarded writes failed: %s" % errors[:5])
    check(sorted(values) == list(range(base + 1, base + 401)),
          "values are not exactly %d..%d" % (base + 1, base + 400))
    check(len(seen) <= 64, "400 forwarded writes from 100 clients used %d "
          "connections to the leader, want at most 64" % len(seen))


def test_forwarding_survives_leader_restart():
    f, ld = ST["follower"], ST["leader"]
    st, j, _ = http("GET", C.url(ld) + "/counter")
    base = j["value"]
    C.kill9(ld)  # the follower's kept connection to it dies
    C.start_node(ld)
    new = C.leader()
    via = next(i for i in range(1, 4) if i != new)
    got = []
    deadline = time.time() + 20
    while len(got) < 30 and time.time() < deadline:
        st, j, _ = C.increment(via)
        if st == 200:
            got.append(j["value"])
        else:  # only a clear retryable refusal while the cluster settles
            check(st == 503, "forwarded write after restart: %s %s" % (st, j))
            time.sleep(0.1)
    check(len(got) == 30, "only %d forwarded writes after the restart" % len(got))
    check(all(b > a for a, b in zip(got, got[1:])) and got[0] > base,
          "forwarded answers after restart: %s (base %d)" % (got, base))
    st, j, _ = http("GET", C.url(new) + "/counter")
    check(st == 200 and j["value"] == got[-1],
          "leader counter %s, last forwarded answer %d" % (j, got[-1]))
    check(len(leader_conns(via, new)) == 1, "node %d holds connections %s "
          "to the leader after 30 sequential writes" % (via, leader_conns(via, new)))
    C.check_logs_clean()


def keys_on(node, like="%"):
    """Idempotency keys node's state.db remembers, read next to the running
    node (SELECT only; WAL mode keeps the answer consistent). A read-only
    connection cannot recover a WAL left by a kill -9, so this one may;
    a busy database is retried for a few seconds."""
    path = os.path.join(C.node_dir(node), "state.db")
    deadline = time.time() + 5
    while True:
        db = sqlite3.connect(path, timeout=5)
        try:
            return {r[0] for r in db.execute("SELECT key FROM dedup WHERE key LIKE ?", (like,))}
        except sqlite3.OperationalError as e:
            check(time.time() < deadline, "reading %s: %s" % (path, e))
            time.sleep(0.1)
        finally:
            db.close()


def forward_n(f, n, key=None):
    """n increments through follower f (key: a prefix for client keys);
    only clear retryable refusals are retried while the cluster settles."""
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        st, j, _ = C.increment(f, key=("%s-%d" % (key, len(got))) if key else None)
        if st == 200:
            check(not j.get("duplicate"), "forwarded write answered as a duplicate: %s" % j)
            got.append(j["value"])
        else:
            check(st == 503, "forwarded write: %s %s" % (st, j))
            time.sleep(0.1)
    check(len(got) == n, "only %d of %d forwarded writes" % (len(got), n))
    return got


def test_keyless_forwards_add_no_key_and_keyed_ones_do():
    """The relay sends a keyless write once (never re-sends it), so it
    needs no generated key: no key row on any replica, as for a keyless
    write to the leader. A client's key is relayed as is."""
    ld = C.leader()
    f = next(i for i in range(1, 4) if i != ld)
    st, j, _ = http("GET", C.url(ld) + "/counter")
    base = j["value"]
    before = {n: keys_on(n) for n in range(1, 4)}
    got = forward_n(f, 20)
    got += forward_n(f, 5, key="relayed")
    check(got == list(range(base + 1, base + 26)),
          "forwarded answers %s, expected %d..%d" % (got, base + 1, base + 25))
    want = {"relayed-%d" % i for i in range(5)}
    deadline = time.time() + 10
    while any(keys_on(n) - before[n] != want for n in range(1, 4)):
        check(time.time() < deadline, "new keys: %s, want exactly %s" % (
            {n: sorted(keys_on(n) - before[n]) for n in range(1, 4)}, sorted(want)))
        time.sleep(0.1)


def test_curl_fallback_keys_stay_unique_across_a_follower_restart():
    """A leader URL the relay does not speak (a host name) is forwarded to
    through libcurl, which may re-send a POST: a keyless write gets
    fwd-<node>-<prefix>-<counter>, the prefix drawn once per process. After
    the follower restarts (its counter starts over) its new keys must not
    repeat the old ones, or the leader would answer them as duplicates."""
    ld = C.leader()
    f = next(i for i in range(1, 4) if i != ld)
    path = os.path.join(C.node_dir(f), "cmdline")
    with open(path) as fh:
        orig = fh.read()
    check("http://127.0.0.1:" in orig, "no peer URL to rewrite in %s" % orig)
    with open(path, "w") as fh:
        fh.write(orig.replace("http://127.0.0.1:", "http://localhost:"))
    try:
        C.kill9(f)
        C.start_node(f)
        st, j, _ = http("GET", C.url(ld) + "/counter")
        base = j["value"]
        before = keys_on(ld, "fwd-%")
        got = forward_n(f, 10)
        C.kill9(f)
        C.start_node(f)
        got += forward_n(f, 10)
        check(got == list(range(base + 1, base + 21)),
              "forwarded answers %s, expected %d..%d" % (got, base + 1, base + 20))
        new = keys_on(ld, "fwd-%") - before
        check(len(new) == 20 and len({k.rsplit("-", 1)[0] for k in new}) == 2,
              "generated keys: %s, want 20 with two prefixes" % sorted(new))
    finally:
        with open(path, "w") as fh:
            fh.write(orig)
        C.kill9(f)
        C.start_node(f)
    st, j, _ = http("GET", C.url(C.leader()) + "/counter")
    check(st == 200 and j["value"] == base + 20,
          "leader counter %s, expected %d" % (j, base + 20))
    C.check_logs_clean()


def main():
    setup()
    try:
        return run([test_sequential_forwards_reuse_one_connection,
                    test_concurrent_forwards_are_exact_and_bounded,
                    test_many_clients_share_at_most_64_connections,
                    test_forwarding_survives_leader_restart,
                    test_keyless_forwards_add_no_key_and_keyed_ones_do,
                    test_curl_fallback_keys_stay_unique_across_a_follower_restart])
    finally:
        C.down()


if __name__ == "__main__":
    sys.exit(finish(C, main()))
