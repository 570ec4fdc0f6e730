"""A lone PostgreSQL for the tests (not part of any cluster): initdb into a
temp dir as the OS user `postgres` when running as root, superuser
`nftraft` with a password (SCRAM), TCP on 127.0.0.1 only, started as a
direct child (`postgres -D`), stopped fast or killed. Used by
test_pgwire.py (the client against a real server) and test_pg.py (the
commit latency of a lone PostgreSQL, the baseline of the cluster's)."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from cluster import TestFailure, free_base_port
import pgwire

PG_BIN = os.environ.get("NFTRAFT_PG_BIN", "/usr/lib/postgresql/15/bin")


def pg_available():
    """None when a PostgreSQL 15 can run here, else why not."""
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        return "no PostgreSQL binaries in %s" % PG_BIN
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no OS user postgres"
    return None


class LonePostgres:
    """hba: a list of pg_hba lines (type db user addr method) put before the
    default `host all all 127.0.0.1/32 scram-sha-256`."""

    def __init__(self, password="pgwire-test-pw", hba=(), conf=()):
        self.password = password
        self.port = free_base_port(1)
        self.dir = tempfile.mkdtemp(prefix="nftraft-pglone-")
        self.data = os.path.join(self.dir, "data")
        self.proc = None
        self.hba, self.conf = list(hba), list(conf)
        self.as_user = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.as_user = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)

    def _run(self, args, timeout=120):
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                           **self.as_user)
        if r.returncode != 0:
            raise TestFailure("%s failed: %s%s" % (args[0], r.stdout[-2000:], r.stderr[-2000:]))
        return r.stdout

    def initdb(self):
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.as_user:
            os.chown(pwfile, self.as_user["user"], self.as_user["group"])
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "nftraft",
                   "--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8",
                   "--no-instructions"])
        os.unlink(pwfile)
        lines = ["%s\n" % l for l in self.hba] + ["host all all 127.0.0.1/32 scram-sha-256\n"]
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.writelines(lines)
        return self

    def start(self):
        log = open(os.path.join(self.dir, "postgres.log"), "a")
        args = [os.path.join(PG_BIN, "postgres"), "-D", self.data,
                "-c", "listen_addresses=127.0.0.1", "-c", "port=%d" % self.port,
                "-c", "unix_socket_directories=", "-c", "fsync=on",
                "-c", "logging_collector=off"]
        for c in self.conf:
            args += ["-c", c]
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.dir,
                                     start_new_session=True, **self.as_user)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise TestFailure("postgres exited %s:\n%s" % (self.proc.returncode, self.log()[-2000:]))
            try:
                pgwire.connect("127.0.0.1", self.port, "nftraft", self.password,
                               timeout=2).close()
                return self
            except pgwire.PgConnectError:
                if time.time() > deadline:
                    self.stop(signal.SIGKILL)
                    raise TestFailure("postgres did not accept connections:\n%s" % self.log()[-2000:])
                time.sleep(0.05)

    def connect(self, user="nftraft", password=None, **kw):
        return pgwire.connect("127.0.0.1", self.port, user,
                              self.password if password is None else password, **kw)

    def log(self):
        try:
            with open(os.path.join(self.dir, "postgres.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGINT):
        """SIGINT = fast shutdown; SIGKILL = crash (the process group, so no
        backend lingers)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            if sig == signal.SIGKILL:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.send_signal(sig)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
