"""A small PostgreSQL client (frontend/backend protocol 3.0), standard
library only, for the integration tests: startup, authentication
(SCRAM-SHA-256, md5, cleartext, trust), the simple query protocol (rows as
text, CommandComplete tags, notices, ErrorResponse with SQLSTATE), a
timeout on every socket operation and a CancelRequest. No TLS, no extended
query protocol, no COPY.

Errors (all PgWireError):
  PgConnectError  nothing was sent: connect, startup or authentication
                  failed (a write did not happen).
  PgServerError   the server answered ErrorResponse: .sqlstate, .severity,
                  .message, .detail, .fields (code letter -> text).
  PgUnknownOutcome the query was sent but no CommandComplete came back
                  (timeout, connection reset, FATAL termination): a write
                  may or may not have committed.
  PgProtocolError the server sent something this client does not expect.

outcome(fn) classifies a write for a checker: "ok" (acknowledged),
"failed" (certainly not committed: a refused connection or an ERROR in an
autocommit statement) or "unknown" (anything else, including a commit whose
wait for a synchronous standby was cancelled: PostgreSQL then reports the
commit with a WARNING, the row is committed locally but not replicated)."""
import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3 = 196608
CANCEL_CODE = 80877102


class PgWireError(Exception):
    pass


class PgConnectError(PgWireError):
    pass


class PgProtocolError(PgWireError):
    pass


class PgUnknownOutcome(PgWireError):
    pass


class PgServerError(PgWireError):
    """An ErrorResponse. fields maps the protocol's field letters to text
    (S severity, V severity not localized, C SQLSTATE, M message, D detail,
    H hint, ...)."""

    def __init__(self, fields):
        self.fields = dict(fields)
        self.severity = fields.get("V") or fields.get("S") or "ERROR"
        self.sqlstate = fields.get("C", "")
        self.message = fields.get("M", "")
        self.detail = fields.get("D", "")
        text = "%s %s: %s" % (self.severity, self.sqlstate, self.message)
        if self.detail:
            text += " (%s)" % self.detail
        super().__init__(text)

    @property
    def fatal(self):
        return self.severity in ("FATAL", "PANIC")


class Result:
    """One statement's result: tag (CommandComplete text, e.g. "INSERT 0 1"),
    columns (names), rows (lists of str or None), notices (field dicts of
    the NoticeResponses that arrived with it)."""

    def __init__(self):
        self.tag, self.columns, self.rows, self.notices = None, [], [], []

    @property
    def rowcount(self):
        """The count at the end of the tag (INSERT/UPDATE/DELETE/SELECT...),
        None when the tag has none."""
        last = (self.tag or "").split(" ")[-1]
        return int(last) if last.isdigit() else None

    @property
    def sync_wait_cancelled(self):
        """PostgreSQL reported the commit but its wait for the synchronous
        standbys was cancelled (a WARNING, SQLSTATE 01000): committed
        locally, maybe not replicated. Not an acknowledgment."""
        return any("synchronous replication" in n.get("M", "") or
                   "might not have been replicated" in n.get("D", "")
                   for n in self.notices)

    def scalar(self):
        return self.rows[0][0] if self.rows and self.rows[0] else None

    def __repr__(self):
        return "Result(tag=%r, columns=%r, rows=%r)" % (self.tag, self.columns, self.rows[:5])


def _cstr(b, pos):
    end = b.index(b"\0", pos)
    return b[pos:end].decode("utf-8", "replace"), end + 1


def _fields(body):
    out, pos = {}, 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        val, pos = _cstr(body, pos + 1)
        out[code] = val
    return out


def _saslprep(s):
    # The cluster passwords of the tests are ASCII; SASLprep leaves
    # printable ASCII unchanged (PostgreSQL uses the raw bytes when the
    # normalization fails anyway).
    return s.encode("utf-8")


class Connection:
    """One connection. query()/query_all() run the simple query protocol.
    `timeout` bounds each wait for the server (seconds)."""

    def __init__(self, host, port, user, password=None, database="postgres",
                 timeout=5.0, application_name="pgwire", connect_timeout=None):
        self.host, self.port, self.user = host, int(port), user
        self.password, self.database = password, database
        self.timeout = timeout
        self.params, self.backend_pid, self.backend_key = {}, None, None
        self.status = None  # transaction status of the last ReadyForQuery
        self.sock = None
        self._buf = b""
        ct = connect_timeout if connect_timeout is not None else timeout
        try:
            self.sock = socket.create_connection((host, self.port), timeout=ct)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(ct)
            self._startup(application_name)
        except PgServerError as e:
            self.close()
            raise PgConnectError("%s:%d: %s" % (host, self.port, e)) from e
        except PgWireError as e:
            self.close()
            raise PgConnectError("%s:%d: %s" % (host, self.port, e)) from e
        except (OSError, ValueError) as e:
            self.close()
            raise PgConnectError("%s:%d: %s" % (host, self.port, e or type(e).__name__)) from e
        self.sock.settimeout(timeout)

    # -- wire --------------------------------------------------------------
    def _send(self, kind, body):
        msg = (kind or b"") + struct.pack("!I", len(body) + 4) + body
        self.sock.sendall(msg)

    def _recv_exact(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _recv(self):
        head = self._recv_exact(5)
        kind, length = head[:1], struct.unpack("!I", head[1:])[0]
        if length < 4 or length > 1 << 30:
            raise PgProtocolError("bad message length %d (type %r)" % (length, kind))
        return kind, self._recv_exact(length - 4)

    # -- startup and authentication ---------------------------------------
    def _startup(self, application_name):
        params = [("user", self.user), ("database", self.database),
                  ("application_name", application_name), ("client_encoding", "UTF8")]
        body = struct.pack("!I", PROTOCOL_3)
        for k, v in params:
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self._send(None, body)
        scram = None
        while True:
            kind, body = self._recv()
            if kind == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 0:
                    continue
                if code == 3:
                    self._send(b"p", self._need_password() + b"\0")
                elif code == 5:
                    pw = self._need_password()
                    inner = hashlib.md5(pw + self.user.encode()).hexdigest().encode()
                    self._send(b"p", b"md5" + hashlib.md5(inner + body[4:8]).hexdigest().encode() + b"\0")
                elif code == 10:
                    mechs = [m for m in body[4:].split(b"\0") if m]
                    if b"SCRAM-SHA-256" not in mechs:
                        raise PgConnectError("no supported SASL mechanism in %r" % mechs)
                    scram = _Scram(self._need_password())
                    first = scram.client_first()
                    self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
                elif code == 11:
                    if scram is None:
                        raise PgProtocolError("SASLContinue without SASL")
                    self._send(b"p", scram.client_final(body[4:]))
                elif code == 12:
                    if scram is None:
                        raise PgProtocolError("SASLFinal without SASL")
                    scram.verify_server(body[4:])
                else:
                    raise PgConnectError("unsupported authentication request %d" % code)
            elif kind == b"E":
                raise PgServerError(_fields(body))
            elif kind == b"S":
                k, pos = _cstr(body, 0)
                v, _ = _cstr(body, pos)
                self.params[k] = v
            elif kind == b"K":
                self.backend_pid, self.backend_key = struct.unpack("!II", body[:8])
            elif kind == b"N":
                pass
            elif kind == b"Z":
                if scram is not None and not scram.verified:
                    raise PgConnectError("SCRAM: the server never proved it knows the password")
                self.status = body[:1].decode()
                return
            else:
                raise PgProtocolError("unexpected message %r during startup" % kind)

    def _need_password(self):
        if self.password is None:
            raise PgConnectError("the server asks for a password and none was given")
        return _saslprep(self.password)

    # -- queries ------------------------------------------------------------
    def query_all(self, sql, timeout=None):
        """Run SQL (one or more statements) with the simple query protocol;
        the list of Results. PgServerError when a statement fails (the
        connection stays usable unless the error is FATAL);
        PgUnknownOutcome when no ReadyForQuery came back (timeout, reset):
        the connection is closed then."""
        if self.sock is None:
            raise PgConnectError("connection is closed")
        wait = timeout if timeout is not None else self.timeout
        self.sock.settimeout(wait)
        try:
            self._send(b"Q", sql.encode("utf-8") + b"\0")
        except OSError as e:
            self.close()
            raise PgUnknownOutcome("sending the query: %s" % e) from e
        results, cur, error = [], Result(), None
        try:
            while True:
                kind, body = self._recv()
                if kind == b"T":
                    n = struct.unpack("!H", body[:2])[0]
                    pos, cols = 2, []
                    for _ in range(n):
                        name, pos = _cstr(body, pos)
                        pos += 18
                        cols.append(name)
                    cur.columns = cols
                elif kind == b"D":
                    n = struct.unpack("!H", body[:2])[0]
                    pos, row = 2, []
                    for _ in range(n):
                        ln = struct.unpack("!i", body[pos:pos + 4])[0]
                        pos += 4
                        if ln < 0:
                            row.append(None)
                        else:
                            row.append(body[pos:pos + ln].decode("utf-8", "replace"))
                            pos += ln
                    cur.rows.append(row)
                elif kind == b"C":
                    cur.tag, _ = _cstr(body, 0)
                    results.append(cur)
                    cur = Result()
                elif kind == b"I":
                    results.append(cur)
                    cur = Result()
                elif kind == b"N":
                    cur.notices.append(_fields(body))
                elif kind == b"E":
                    error = PgServerError(_fields(body))
                    error.notices = cur.notices
                    error.results = results
                    if error.fatal:
                        self.close()
                        raise error
                elif kind == b"S":
                    k, pos = _cstr(body, 0)
                    v, _ = _cstr(body, pos)
                    self.params[k] = v
                elif kind == b"A":
                    pass
                elif kind == b"Z":
                    self.status = body[:1].decode()
                    break
                elif kind in (b"G", b"H", b"W"):
                    self.close()
                    raise PgProtocolError("COPY is not supported")
                else:
                    self.close()
                    raise PgProtocolError("unexpected message %r" % kind)
        except PgWireError:
            raise
        except socket.timeout as e:
            self.close()
            raise PgUnknownOutcome("no answer within %.1fs" % wait) from e
        except (OSError, struct.error, ValueError) as e:
            self.close()
            raise PgUnknownOutcome("connection lost: %s" % (e or type(e).__name__)) from e
        if error is not None:
            raise error
        return results

    def query(self, sql, timeout=None):
        """query_all()'s last Result (the rows of a single SELECT)."""
        rs = self.query_all(sql, timeout)
        return rs[-1] if rs else Result()

    def cancel(self):
        """Send a CancelRequest for the running query on a new connection."""
        if self.backend_pid is None:
            return
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            s.sendall(struct.pack("!IIII", 16, CANCEL_CODE, self.backend_pid, self.backend_key))
            s.settimeout(self.timeout)
            try:
                s.recv(1)
            except OSError:
                pass
        finally:
            s.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.settimeout(0.5)
                self._send(b"X", b"")
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    @property
    def closed(self):
        return self.sock is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Scram:
    """The client side of SCRAM-SHA-256 (RFC 5802/7677) without channel
    binding."""

    def __init__(self, password):
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.verified = False

    def client_first(self):
        self.first_bare = "n=,r=" + self.nonce
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first):
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(",") if "=" in a)
        if not attrs.get("r", "").startswith(self.nonce) or "s" not in attrs or "i" not in attrs:
            raise PgProtocolError("SCRAM: bad server-first-message %r" % sf)
        iters = int(attrs["i"])
        if iters < 1 or iters > 10000000:
            raise PgProtocolError("SCRAM: iteration count %d" % iters)
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]), iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_wo_proof = "c=biws,r=" + attrs["r"]
        self.auth_message = ",".join([self.first_bare, sf, final_wo_proof]).encode()
        sig = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        return (final_wo_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify_server(self, server_final):
        sf = server_final.decode()
        if not sf.startswith("v="):
            raise PgConnectError("SCRAM: server error %r" % sf)
        want = hmac.new(self.server_key, self.auth_message, hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64decode(sf[2:].split(",")[0]), want):
            raise PgConnectError("SCRAM: the server's signature is wrong")
        self.verified = True


def connect(host, port, user="nftraft", password=None, database="postgres", timeout=5.0, **kw):
    return Connection(host, port, user, password, database, timeout, **kw)


def outcome(fn):
    """Run fn() (a write: it returns a Result or list of Results) and
    classify it: ("ok", value), ("failed", exc) or ("unknown", exc/value)."""
    try:
        r = fn()
    except PgConnectError as e:
        return "failed", e
    except PgServerError as e:
        if e.fatal or getattr(e, "notices", None) and any(
                "might not have been replicated" in n.get("D", "") for n in e.notices):
            return "unknown", e
        return "failed", e
    except PgWireError as e:
        return "unknown", e
    rs = r if isinstance(r, list) else [r]
    if any(isinstance(x, Result) and x.sync_wait_cancelled for x in rs):
        return "unknown", r
    return "ok", r


def lsn_int(text):
    """'0/3000060' -> integer."""
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def wait_connect(host, port, user, password, timeout=10.0, **kw):
    """Connect, retrying until `timeout` (a server that is starting)."""
    deadline = time.time() + timeout
    while True:
        try:
            return Connection(host, port, user, password, connect_timeout=1.0, **kw)
        except PgConnectError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
