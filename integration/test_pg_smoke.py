#!/usr/bin/env python3
"""`nftraft up --pg` end to end, the smallest run (the full scenarios are
integration/test_pg.py): 3 nodes bootstrap (one primary, two streaming
quorum standbys); a writer inserts rows through psql into whichever node
the newest promotion record names; kill -9 of the raft leader's nftraftd
(its postgres dies with it); a new leader's PostgreSQL is promoted and
every acknowledged row is on it; the old node, restarted, rejoins as a
standby and holds every row too. Prints the failover time (kill to the
first acknowledged insert on the new primary)."""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (PG_BIN, Cluster, check, finish, http, pg_free_base, psql,  # noqa: E402
                     wait_for)

def pg_of(c, node):
    st, j, _ = http("GET", c.url(node) + "/status", timeout=2)
    return j.get("pg") if st == 200 and isinstance(j, dict) else None


def record(c):
    """The newest promotion record any live node reports."""
    best = None
    for n in range(1, c.n + 1):
        pg = pg_of(c, n)
        r = pg and pg.get("record")
        if r and (best is None or r["term"] > best["term"]):
            best = r
    return best


class Writer:
    """Inserts ids 1, 2, ... into t through the primary the newest record
    names; an id whose INSERT psql acknowledged is in `acked`."""

    def __init__(self, c, password):
        self.c, self.pw = c, password
        self.acked, self.times, self.ports, self.stop = [], [], [], False
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        k = 0
        while not self.stop:
            r = record(self.c)
            if not r or not r["primary"]:
                time.sleep(0.05)
                continue
            k += 1
            rc, _ = psql(r["port"], self.pw, "insert into t values (%d)" % k, timeout=5)
            if rc == 0:
                self.acked.append(k)
                self.times.append(time.time())
                self.ports.append(r["port"])
            else:
                time.sleep(0.05)


def main():
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        print("skip: no PostgreSQL in %s" % PG_BIN)
        return 77
    base = pg_free_base(31433)
    c = Cluster(nodes=3, extra=["--pg", "--pg-base-port", str(base)])
    os.chmod(c.dir, 0o755)  # PostgreSQL runs as user postgres when root
    try:
        out = c.up()
        check("psql" in out and "PGPASSWORD" in out, "up --pg prints the psql line:\n" + out)
        with open(os.path.join(c.dir, "pg.password")) as f:
            pw = f.read().strip()

        def bootstrapped():
            pgs = [pg_of(c, n) for n in (1, 2, 3)]
            if not all(pgs):
                return None
            roles = sorted(p["role"] for p in pgs)
            ok = roles == ["primary", "standby", "standby"] and all(
                p["streaming"] and p["sync_state"] == "quorum"
                for p in pgs if p["role"] == "standby")
            return pgs if ok else None
        pgs = wait_for("a primary and two streaming quorum standbys", bootstrapped, 60)
        primary = next(p for p in pgs if p["role"] == "primary")
        rc, _ = psql(primary["port"], pw, "create table t(id int primary key)")
        check(rc == 0, "create table on the primary")
        rec = record(c)
        old = rec["primary"]
        check(pg_of(c, old)["role"] == "primary", "the record names the primary")
        w = Writer(c, pw)
        w.t.start()
        wait_for("100 acknowledged inserts", lambda: len(w.acked) >= 100, 60)
        t_kill = time.time()
        c.kill9(old)
        wait_for("a new primary's record",
                 lambda: (record(c) or {}).get("primary") not in (None, 0, old), 30)
        wait_for("inserts acknowledged after the failover",
                 lambda: any(t > t_kill for t in w.times[-5:]) and
                 len([t for t in w.times if t > t_kill]) >= 50, 60)
        w.stop = True
        w.t.join(30)
        new = record(c)
        failover = min(t for t, p in zip(w.times, w.ports)
                       if t > t_kill and p == new["port"]) - t_kill
        check(new["timeline"] >= 2, "the new primary is on a new timeline: %s" % new)
        rc, ids = psql(new["port"], pw, "select id from t")
        have = set(int(x) for x in ids.split()) if rc == 0 else set()
        lost = [k for k in w.acked if k not in have]
        check(rc == 0 and not lost, "acknowledged rows lost on the new primary: %s" % lost[:20])
        # The old node rejoins as a standby (rewind or re-point) with every row.
        c.start_node(old)

        def rejoined():
            pg = pg_of(c, old)
            if not pg or pg["role"] != "standby" or not pg["streaming"]:
                return False
            rc2, n = psql(pg["port"], pw, "select count(*) from t where id <= %d" % max(w.acked))
            return rc2 == 0 and int(n) >= len(have)
        wait_for("node %d back as a streaming standby with every row" % old, rejoined, 60)
        print("failover: kill -9 of node %d to the first acknowledged insert on node %d: "
              "%.2f s (%d rows acknowledged, none lost)" % (old, new["primary"], failover,
                                                            len(w.acked)))
        c.down()
        c.check_logs_clean()  # sanitizer builds: no report, no leak
        stopped = [i for i in (1, 2, 3) if "stopped exit=0" not in c.log(i).split(
            "received SIGTERM")[-1]]
        check(not stopped, "nodes %s did not stop cleanly" % stopped)
        return finish(c, 0)
    except Exception as e:  # report, keep the logs
        print("FAIL: %s" % e)
        c.down()
        return finish(c, 1)


if __name__ == "__main__":
    sys.exit(main())
