#!/usr/bin/env python3
"""`nftraftd --pg`: a new raft leader whose standby is BEHIND another
standby does not promote itself: it hands raft leadership to the standby
that is ahead ("transfer to node F (ahead by N bytes)"), which promotes,
and the acknowledged transaction the lagging standby never received is on
the new primary.

Setup (3 nodes, leader L, standbys X and F): F restarted with a long
--election-timeout (so X wins the next election); X's walreceiver
SIGSTOPped; a 300k-row transaction committed on L (acknowledged by F alone:
ANY 1); kill -9 of L; X becomes leader, appends the fence, waits for its own
standby (the walreceiver is resumed 3 s later), sees F ahead, transfers.
Raft's election stays random: when F wins anyway (no transfer needed) the
setup is tried again, up to 3 times; exit 77 if the path was never taken."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (PG_BIN, Cluster, check, finish, http, pg_free_base, psql,  # noqa: E402
                     wait_for)

def pg_of(c, node):
    st, j, _ = http("GET", c.url(node) + "/status", timeout=2)
    return j if st == 200 and isinstance(j, dict) and j.get("pg") else None


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


def attempt(n):
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
        # fast: a long election timeout, so that slow wins the next election
        os.kill(c.pid(fast), signal.SIGTERM)
        wait_for("node %d stopped" % fast, lambda: pg_of(c, fast) is None, 15)
        time.sleep(1)
        with open(os.path.join(c.node_dir(fast), "cmdline")) as f:
            args = [a for a in f.read().split("\n") if a] + ["--election-timeout", "5000"]
        logf = open(os.path.join(c.node_dir(fast), "node.log"), "a")
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=logf, start_new_session=True)
        c.set_pid(fast, p.pid)
        wait_for("node %d streaming again" % fast, lambda: (pg_of(c, fast) or {}).get(
            "pg", {}).get("streaming"), 30)
        wr = walreceiver(c, slow)
        check(wr is not None, "node %d's walreceiver found" % slow)
        os.kill(wr, signal.SIGSTOP)
        port = s[lead - 1]["pg"]["port"]
        rc, _ = psql(port, pw, "CREATE TABLE big AS SELECT g, md5(g::text) m "
                     "FROM generate_series(1, 300000) g", timeout=60)
        check(rc == 0, "the big transaction is acknowledged (by node %d)" % fast)
        c.kill9(lead)
        time.sleep(3)
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
        transferred = "transfer to node %d (ahead by" % fast in log
        check(x["id"] == fast or not transferred, "the transfer went to node %d" % fast)
        rc, cnt = psql(x["pg"]["port"], pw, "SELECT count(*) FROM big", timeout=60)
        check(rc == 0 and cnt == "300000", "the acknowledged transaction is on the new "
              "primary (node %d): %s %s" % (x["id"], rc, cnt))
        if transferred:
            line = [ln for ln in log.splitlines() if "transfer to node" in ln][-1]
            print("attempt %d: node %d led with a lagging standby: %s" % (n, slow, line.split(
                "sub=pg ")[1]))
        else:
            print("attempt %d: node %d won the election itself (no transfer needed)" %
                  (n, x["id"]))
        c.down()
        c.check_logs_clean()
        finish(c, 0)
        return transferred
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
        for n in range(1, 4):
            if attempt(n):
                print("ok   transfer to the standby that is ahead; no acknowledged commit lost")
                return 0
    except Exception as e:
        print("FAIL: %s" % e)
        return 1
    print("skip: the lagging standby's node never won the election in 3 attempts")
    return 77


if __name__ == "__main__":
    sys.exit(main())
