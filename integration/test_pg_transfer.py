#!/usr/bin/env python3
"""`nftraftd --pg`: a new raft leader whose standby is BEHIND another
standby does not promote itself: it hands raft leadership to the standby
that is ahead ("transfer to node F (ahead: ...)"), which promotes,
and the acknowledged transaction the lagging standby never received is on
the new primary.

Setup (3 nodes, leader L, standbys X and F): X's walreceiver SIGSTOPped; a
300k-row transaction committed on L (acknowledged by F alone: ANY 1); kill
-9 of F's node (its PostgreSQL stops with it), then L and X commit a raft
entry (so F's raft log is behind X's: F cannot win an election, X can);
kill -9 of L; F restarted; X becomes leader, appends the fence, waits for
its own standby (the walreceiver is resumed 3 s after the kill), sees F
ahead, transfers raft leadership to F, which promotes; the big transaction
is on the new primary. Deterministic: raft's election restriction (a
candidate needs a log at least as up to date as the voter's) picks X."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (PG_BIN, Cluster, check, finish, http, pg_free_base, psql,  # noqa: E402
                     wait_for)

def pg_of(c, node):
    st, j, _ = http("GET", c.url(node) + "/status", timeout=2)
    return j if st == 200 and isinstance(j, dict) and j.get("pg") else None


def postmaster_alive(c, node):
    """Whether the postmaster of node's PGDATA still runs."""
    try:
        with open(os.path.join(c.node_dir(node), "pg", "data", "postmaster.pid")) as f:
            os.kill(int(f.readline()), 0)
        return True
    except (OSError, ValueError):
        return False


def walreceiver(c, node):
    """The pid of node's walreceiver process."""
    with open(os.path.join(c.node_dir(node), "pg", "data", "postmaster.pid")) as f:
        pm = int(f.readline())
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pm and b"walreceiver" in cmd:
            return int(p)
    return None


def attempt():
    c = Cluster(nodes=3, extra=["--pg", "--pg-base-port", str(pg_free_base(36433))])
    os.chmod(c.dir, 0o755)  # PostgreSQL runs as user postgres when root
    wr = None
    try:
        c.up()
        with open(os.path.join(c.dir, "pg.password")) as f:
            pw = f.read().strip()

        def ready():
            s = [pg_of(c, i) for i in (1, 2, 3)]
            if not all(s):
                return None
            roles = sorted(x["pg"]["role"] for x in s)
            ok = roles == ["primary", "standby", "standby"] and all(
                x["pg"]["streaming"] and x["pg"]["sync_state"] == "quorum"
                for x in s if x["pg"]["role"] == "standby")
            return s if ok else None
        s = wait_for("a primary and two quorum standbys", ready, 60)
        lead = next(x["id"] for x in s if x["role"] == "leader")
        check(next(x for x in s if x["id"] == lead)["pg"]["role"] == "primary",
              "the leader's PostgreSQL is the primary")
        slow = lead % 3 + 1
        fast = 6 - lead - slow
        wr = walreceiver(c, slow)
        check(wr is not None, "node %d's walreceiver found" % slow)
        os.kill(wr, signal.SIGSTOP)
        port = s[lead - 1]["pg"]["port"]
        rc, _ = psql(port, pw, "CREATE TABLE big AS SELECT g, md5(g::text) m "
                     "FROM generate_series(1, 300000) g", timeout=60)
        check(rc == 0, "the big transaction is acknowledged (by node %d)" % fast)
        # F's raft log falls behind X's: F's node (and with it its
        # PostgreSQL) is killed, then L and X commit a counter increment.
        c.kill9(fast)
        wait_for("node %d's PostgreSQL to stop" % fast,
                 lambda: not postmaster_alive(c, fast), 30, 0.05)
        st, _, _ = c.increment(lead)
        check(st == 200, "an increment committed by nodes %d and %d: %s" % (lead, slow, st))
        t_kill = time.time()
        c.kill9(lead)
        c.start_node(fast)
        time.sleep(max(0.0, t_kill + 3 - time.time()))
        os.kill(wr, signal.SIGCONT)
        wr = None

        def new_primary():
            for i in (slow, fast):
                x = pg_of(c, i)
                r = x and x["pg"].get("record")
                if r and r["primary"] not in (0, lead) and x["pg"]["role"] == "primary":
                    return x
            return None
        x = wait_for("a new primary", new_primary, 60)
        log = c.log(slow)
        lines = [ln for ln in log.splitlines() if "transfer to node %d (ahead" % fast in ln]
        check(lines, "node %d (raft leader, lagging standby) transferred leadership to "
              "node %d:\n%s" % (slow, fast, "\n".join(ln for ln in log.splitlines()
                                                     if "sub=pg" in ln)[-3000:]))
        check(x["id"] == fast, "node %d, the standby that is ahead, is the new primary "
              "(not node %d)" % (fast, x["id"]))
        rc, cnt = psql(x["pg"]["port"], pw, "SELECT count(*) FROM big", timeout=60)
        check(rc == 0 and cnt == "300000", "the acknowledged transaction is on the new "
              "primary (node %d): %s %s" % (x["id"], rc, cnt))
        print("node %d led with a lagging standby: %s" % (slow, lines[-1].split("sub=pg ")[1]))
        c.down()
        c.check_logs_clean()
        finish(c, 0)
    except Exception:
        if wr is not None:
            os.kill(wr, signal.SIGCONT)
        c.down()
        finish(c, 1)
        raise


def main():
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        print("skip: no PostgreSQL in %s" % PG_BIN)
        return 77
    try:
        attempt()
    except Exception as e:
        print("FAIL: %s" % e)
        return 1
    print("ok   transfer to the standby that is ahead; no acknowledged commit lost")
    return 0

if __name__ == "__main__":
    sys.exit(main())
