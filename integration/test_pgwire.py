#!/usr/bin/env python3
"""integration/pgwire.py (the tests' PostgreSQL client) against a real lone
PostgreSQL 15 (initdb'd in a temp dir, as the OS user postgres when root):
SCRAM-SHA-256, md5, cleartext and trust authentication, wrong passwords,
rows/NULL/UTF-8/tags, ErrorResponse with SQLSTATE (and the connection still
usable), timeouts and CancelRequest, a terminated backend, a commit whose
synchronous-replication wait is cancelled (reported as "unknown", its row
committed locally), and fake servers that send garbage, never answer or
fake the SCRAM signature. Exits 77 when no PostgreSQL can run here."""
import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import TestFailure, check, run  # noqa: E402
import pglocal  # noqa: E402
import pgwire  # noqa: E402

PG = None


def expect(exc_type, fn, what):
    try:
        fn()
    except exc_type as e:
        return e
    except Exception as e:  # noqa: BLE001 - report the wrong kind
        raise TestFailure("%s: expected %s, got %s: %s" % (what, exc_type.__name__, type(e).__name__, e))
    raise TestFailure("%s: expected %s, nothing raised" % (what, exc_type.__name__))


def test_start_lone_postgres():
    global PG
    PG = pglocal.LonePostgres(hba=[
        "host all md5user 127.0.0.1/32 md5",
        "host all plainuser 127.0.0.1/32 password",
        "host all trustuser 127.0.0.1/32 trust",
    ])
    PG.initdb().start()  # PG set first: main() removes it even when this fails
    with PG.connect() as c:
        check(c.params.get("server_version", "").startswith("15"), "server_version %r" % c.params)
        check(c.backend_pid and c.status == "I", "pid %r status %r" % (c.backend_pid, c.status))
        c.query_all("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-pw';"
                    "SET password_encryption = 'scram-sha-256';"
                    "CREATE ROLE plainuser LOGIN PASSWORD 'plain-pw'; CREATE ROLE trustuser LOGIN")
        r = c.query("SELECT rolname, left(rolpassword, 6) FROM pg_authid "
                    "WHERE rolname IN ('md5user','plainuser') ORDER BY 1")
        check(len(r.rows) == 2 and r.rows[0][0] == "md5user" and r.rows[0][1].startswith("md5")
              and r.rows[1] == ["plainuser", "SCRAM-"], "stored verifiers: %s" % r.rows)


def test_scram_md5_cleartext_trust():
    with PG.connect() as c:  # SCRAM-SHA-256 (the default hba line)
        check(c.query("SELECT current_user").scalar() == "nftraft", "scram user")
    with PG.connect("md5user", "md5-pw") as c:
        check(c.query("SELECT current_user").scalar() == "md5user", "md5 user")
    with PG.connect("plainuser", "plain-pw") as c:
        check(c.query("SELECT current_user").scalar() == "plainuser", "cleartext user")
    with pgwire.connect("127.0.0.1", PG.port, "trustuser", None) as c:
        check(c.query("SELECT current_user").scalar() == "trustuser", "trust user")


def test_wrong_password_and_unknown_names():
    for user, pw in (("nftraft", "wrong"), ("md5user", "wrong"), ("plainuser", "wrong"),
                     ("nobody", "x")):
        e = expect(pgwire.PgConnectError, lambda: PG.connect(user, pw), "user %s" % user)
        check(isinstance(e.__cause__, pgwire.PgServerError) and e.__cause__.sqlstate == "28P01",
              "user %s: not 28P01: %r / %r" % (user, e, e.__cause__))
    e = expect(pgwire.PgConnectError, lambda: pgwire.connect("127.0.0.1", PG.port, "nftraft", None),
               "no password")
    check("asks for a password" in str(e), "no-password message: %s" % e)
    e = expect(pgwire.PgConnectError, lambda: PG.connect(database="nosuchdb"), "unknown db")
    check(e.__cause__.sqlstate == "3D000" and e.__cause__.fatal, "unknown db: %r" % e.__cause__)


def test_rows_types_tags():
    with PG.connect() as c:
        rs = c.query_all(
            "CREATE TABLE t (id int PRIMARY KEY, s text, n numeric);"
            "INSERT INTO t VALUES (1, 'a', 1.5), (2, NULL, NULL), (3, 'h\u00e9llo \u2603', 3);"
            "UPDATE t SET n = n + 1 WHERE n IS NOT NULL;"
            "SELECT id, s, n FROM t ORDER BY id;"
            "DELETE FROM t WHERE id = 2")
        check([r.tag for r in rs] == ["CREATE TABLE", "INSERT 0 3", "UPDATE 2", "SELECT 3", "DELETE 1"],
              "tags %s" % [r.tag for r in rs])
        check([r.rowcount for r in rs] == [None, 3, 2, 3, 1], "rowcounts %s" % [r.rowcount for r in rs])
        sel = rs[3]
        check(sel.columns == ["id", "s", "n"], "columns %s" % sel.columns)
        check(sel.rows == [["1", "a", "2.5"], ["2", None, None], ["3", "h\u00e9llo \u2603", "4"]],
              "rows %s" % sel.rows)
        empty = c.query_all("")
        check(len(empty) == 1 and empty[0].tag is None and empty[0].rows == [], "empty query %s" % empty)
        big = c.query("SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g")
        check(len(big.rows) == 20000 and big.rows[-1][0] == "20000" and big.rowcount == 20000,
              "20000 rows: %d" % len(big.rows))
        c.query("DROP TABLE t")


def test_errors_keep_connection_usable():
    with PG.connect() as c:
        e = expect(pgwire.PgServerError, lambda: c.query("SELEC 1"), "syntax error")
        check(e.sqlstate == "42601" and not e.fatal and "syntax" in e.message, "syntax: %r" % e)
        check(c.query("SELECT 7").scalar() == "7", "usable after a syntax error")
        c.query("CREATE TABLE u (id int PRIMARY KEY)")
        c.query("INSERT INTO u VALUES (1)")
        e = expect(pgwire.PgServerError, lambda: c.query("INSERT INTO u VALUES (1)"), "duplicate")
        check(e.sqlstate == "23505" and "u_pkey" in e.message + e.detail, "unique: %r" % e)
        # An error inside a multi-statement query: the implicit transaction
        # rolls back and the rest is skipped.
        e = expect(pgwire.PgServerError,
                   lambda: c.query_all("INSERT INTO u VALUES (2); SELECT 1/0; INSERT INTO u VALUES (3)"),
                   "division")
        check(e.sqlstate == "22012", "division by zero: %r" % e)
        check(c.query("SELECT array_agg(id ORDER BY id)::text FROM u").scalar() == "{1}",
              "rolled back: %s" % c.query("SELECT array_agg(id)::text FROM u").rows)
        check(pgwire.outcome(lambda: c.query("INSERT INTO u VALUES (1)"))[0] == "failed",
              "an ERROR is a failed write")
        check(pgwire.outcome(lambda: c.query("INSERT INTO u VALUES (9)"))[0] == "ok", "an acknowledged write")
        c.query("DROP TABLE u")


def test_timeout_and_cancel():
    c = PG.connect()
    t0 = time.time()
    e = expect(pgwire.PgUnknownOutcome, lambda: c.query("SELECT pg_sleep(5)", timeout=0.5), "timeout")
    check(0.4 < time.time() - t0 < 2.0 and c.closed, "timeout after %.2fs, closed %s" % (time.time() - t0, c.closed))
    expect(pgwire.PgConnectError, lambda: c.query("SELECT 1"), "query on a closed connection")
    with PG.connect() as c:
        threading.Timer(0.3, c.cancel).start()
        t0 = time.time()
        e = expect(pgwire.PgServerError, lambda: c.query("SELECT pg_sleep(10)"), "cancel")
        check(e.sqlstate == "57014" and time.time() - t0 < 3, "cancel: %r after %.1fs" % (e, time.time() - t0))
        check(c.query("SELECT 1").scalar() == "1", "usable after a cancel")


def test_terminated_backend_is_unknown():
    def terminate(pid):
        with PG.connect() as admin:
            admin.query("SELECT pg_terminate_backend(%d)" % pid)
    with PG.connect() as victim:
        t = threading.Timer(0.3, terminate, args=(victim.backend_pid,))
        t.start()
        kind, e = pgwire.outcome(lambda: victim.query("SELECT pg_sleep(10)"))
        t.join()
        check(kind == "unknown" and isinstance(e, pgwire.PgServerError) and e.sqlstate == "57P01",
              "terminated backend: %s %r" % (kind, e))
        check(victim.closed, "connection closed after FATAL")


def test_cancelled_sync_wait_is_unknown():
    """synchronous_standby_names names a standby that never comes: a commit
    waits; a cancel ends the wait with a WARNING and CommandComplete. The
    row is committed locally, so outcome() says unknown, never ok or failed."""
    with PG.connect() as c:
        c.query("CREATE TABLE s (id int)")
        c.query("ALTER SYSTEM SET synchronous_standby_names = 'ghost'")
        c.query("SELECT pg_reload_conf()")
        time.sleep(0.3)
    try:
        with PG.connect() as c:
            threading.Timer(0.5, c.cancel).start()
            t0 = time.time()
            kind, r = pgwire.outcome(lambda: c.query("INSERT INTO s VALUES (1)", timeout=5))
            check(kind == "unknown" and isinstance(r, pgwire.Result) and r.tag == "INSERT 0 1",
                  "cancelled sync wait: %s %r" % (kind, r))
            check(0.4 < time.time() - t0 < 3, "the commit did not wait: %.2fs" % (time.time() - t0))
            check(c.query("SELECT count(*) FROM s").scalar() == "1", "the row is visible locally")
            # Without a cancel the commit waits: the client's timeout says unknown.
            kind, e = pgwire.outcome(lambda: c.query("INSERT INTO s VALUES (2)", timeout=0.5))
            check(kind == "unknown" and isinstance(e, pgwire.PgUnknownOutcome), "timeout: %s %r" % (kind, e))
    finally:
        with PG.connect() as c:
            c.query("ALTER SYSTEM RESET synchronous_standby_names")
            c.query("SELECT pg_reload_conf()")


def test_refused_connection_is_failed():
    with PG.connect() as c:
        c.query("CREATE TABLE IF NOT EXISTS r (id int)")
    PG.stop()
    t0 = time.time()
    kind, e = pgwire.outcome(lambda: PG.connect(timeout=1).query("INSERT INTO r VALUES (1)"))
    check(kind == "failed" and isinstance(e, pgwire.PgConnectError) and time.time() - t0 < 2,
          "refused: %s %r" % (kind, e))
    PG.start()


class FakeServer:
    """A TCP server on 127.0.0.1 that runs `script(conn)` for one client."""

    def __init__(self, script):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.script, self.error = script, None
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        conn, _ = self.ls.accept()
        conn.settimeout(5)
        try:
            self.script(conn)
        except Exception as e:  # noqa: BLE001 - kept for the test's message
            self.error = e
        finally:
            time.sleep(0.2)
            conn.close()
            self.ls.close()


def read_msg(conn, startup=False):
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = conn.recv(n - len(b))
            if not chunk:
                raise ConnectionError("client closed")
            b += chunk
        return b
    kind = b"" if startup else exact(1)
    n = struct.unpack("!I", exact(4))[0]
    return kind, exact(n - 4)


def msg(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def test_fake_servers():
    # Garbage instead of an authentication request.
    def garbage(conn):
        read_msg(conn, startup=True)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    f = FakeServer(garbage)
    e = expect(pgwire.PgConnectError, lambda: pgwire.connect("127.0.0.1", f.port, "u", "p", timeout=2), "garbage")
    check(isinstance(e.__cause__, pgwire.PgProtocolError), "garbage: %r" % e.__cause__)

    # A server that accepts and never answers: the connect timeout.
    f = FakeServer(lambda conn: time.sleep(3))
    t0 = time.time()
    expect(pgwire.PgConnectError, lambda: pgwire.connect("127.0.0.1", f.port, "u", "p", timeout=0.5), "silent")
    check(time.time() - t0 < 1.5, "silent server took %.1fs" % (time.time() - t0))

    # SCRAM with a forged server signature (the server does not know the
    # password): refused although the server says AuthenticationOk.
    def forged(conn):
        read_msg(conn, startup=True)
        conn.sendall(msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
        _, body = read_msg(conn)
        first = body[body.index(b"\0") + 5:].decode()
        nonce = first.split("r=")[1]
        sf = "r=%sXYZ,s=%s,i=4096" % (nonce, "c2FsdHNhbHQ=")
        conn.sendall(msg(b"R", struct.pack("!I", 11) + sf.encode()))
        read_msg(conn)
        conn.sendall(msg(b"R", struct.pack("!I", 12) + b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
        conn.sendall(msg(b"R", struct.pack("!I", 0)) + msg(b"Z", b"I"))
    f = FakeServer(forged)
    e = expect(pgwire.PgConnectError, lambda: pgwire.connect("127.0.0.1", f.port, "u", "p", timeout=2), "forged")
    check("signature is wrong" in str(e), "forged signature: %s" % e)

    # A server that skips the SASL final message and says Ok at once.
    def skips(conn):
        read_msg(conn, startup=True)
        conn.sendall(msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
        read_msg(conn)
        conn.sendall(msg(b"R", struct.pack("!I", 0)) + msg(b"Z", b"I"))
    f = FakeServer(skips)
    e = expect(pgwire.PgConnectError, lambda: pgwire.connect("127.0.0.1", f.port, "u", "p", timeout=2), "skip")
    check("never proved" in str(e), "skipped SASL final: %s" % e)

    # A huge length: a protocol error, no allocation of 4 GB.
    def huge(conn):
        read_msg(conn, startup=True)
        conn.sendall(b"R\xff\xff\xff\xff")
    f = FakeServer(huge)
    e = expect(pgwire.PgConnectError, lambda: pgwire.connect("127.0.0.1", f.port, "u", "p", timeout=2), "huge")
    check("bad message length" in str(e), "huge length: %s" % e)

    # The connection drops in the middle of a query's answer: unknown.
    def drops(conn):
        read_msg(conn, startup=True)
        conn.sendall(msg(b"R", struct.pack("!I", 0)) + msg(b"Z", b"I"))
        read_msg(conn)
        conn.sendall(msg(b"T", struct.pack("!H", 1) + b"x\0" + b"\0" * 18)[:7])
    f = FakeServer(drops)
    c = pgwire.connect("127.0.0.1", f.port, "u", None, timeout=2)
    kind, e = pgwire.outcome(lambda: c.query("INSERT INTO x VALUES (1)"))
    check(kind == "unknown" and isinstance(e, pgwire.PgUnknownOutcome), "dropped: %s %r" % (kind, e))


def main():
    why = pglocal.pg_available()
    if why:
        print("skip: %s" % why)
        return 77
    try:
        return run([test_start_lone_postgres, test_scram_md5_cleartext_trust,
                    test_wrong_password_and_unknown_names, test_rows_types_tags,
                    test_errors_keep_connection_usable, test_timeout_and_cancel,
                    test_terminated_backend_is_unknown, test_cancelled_sync_wait_is_unknown,
                    test_refused_connection_is_failed, test_fake_servers])
    finally:
        if PG is not None:
            if os.environ.get("KEEP_PG"):
                PG.stop()
                print("kept %s" % PG.dir)
            else:
                PG.destroy()


if __name__ == "__main__":
    sys.exit(main())
