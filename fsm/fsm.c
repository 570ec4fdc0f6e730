/* fsm.c - the counter state machine over SQLite (WAL): value, op log,
 * idempotency table and last applied index, updated in one transaction per
 * entry; msgpack entries and snapshots, both versioned. */
#include "fsm/fsm.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION                                                         \
    3                 /* 2: index on dedup(idx), for key expiry; 3: pgrec      \
                       */
#define CMD_VERSION 2 /* 2: + the leader's key retention; 1 still read */
#define CMD_INCREMENT 1
#define CMD_PG 2       /* the PostgreSQL promotion record */
#define PG_VERSION 1   /* version of the pg entry */
#define SNAP_VERSION 2 /* 2: + the pg record; 1 still read */
#define BATCH_MAX 512  /* applies per SQLite transaction at most */

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INS_LOG,
    ST_INS_KEY,
    ST_SET_STATE,
    ST_GET_KEY,
    ST_GET_LOG,
    ST_LOG_RANGE,
    ST_PRUNE_LOG,
    ST_PRUNE_KEYS,
    ST_FIRST,
    ST_SET_PG,
    ST_COUNT
};

static const char *const SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INS_LOG] = "INSERT INTO oplog(idx, term, by, value, node, time) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
    [ST_INS_KEY] = "INSERT INTO dedup(key, idx, value) VALUES (?, ?, ?)",
    [ST_SET_STATE] = "UPDATE state SET value = ?, last_applied = ? "
                     "WHERE id = 1",
    [ST_GET_KEY] = "SELECT idx, value FROM dedup WHERE key = ?",
    [ST_GET_LOG] = "SELECT value FROM oplog WHERE idx = ?",
    [ST_LOG_RANGE] = "SELECT idx, term, by, value, node, time FROM oplog "
                     "WHERE idx >= ? ORDER BY idx LIMIT ?",
    [ST_PRUNE_LOG] = "DELETE FROM oplog WHERE idx <= ?",
    [ST_PRUNE_KEYS] = "DELETE FROM dedup WHERE idx <= ?",
    [ST_FIRST] = "SELECT min(idx) FROM oplog",
    [ST_SET_PG] = "INSERT OR REPLACE INTO pgrec(id, term, primary_id, "
                  "fenced, timeline, lsn, host, port, idx) "
                  "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
};

/* Statements of the snapshot reader (a second, read-only connection). */
enum {
    RS_BEGIN,
    RS_STATE,
    RS_OPLOG,
    RS_NKEYS,
    RS_KEYS,
    RS_PG,
    RS_END,
    RS_COUNT
};

static const char *const RSQL[RS_COUNT] = {
    [RS_BEGIN] = "BEGIN",
    [RS_STATE] = "SELECT value, last_applied FROM state WHERE id = 1",
    [RS_OPLOG] = "SELECT idx, term, by, value, node, time FROM oplog "
                 "ORDER BY idx",
    [RS_NKEYS] = "SELECT count(*) FROM dedup",
    [RS_KEYS] = "SELECT key, idx, value FROM dedup ORDER BY key",
    [RS_PG] = "SELECT term, primary_id, fenced, timeline, lsn, host, port, "
              "idx FROM pgrec WHERE id = 1",
    [RS_END] = "COMMIT",
};

/* A pinned read view being serialized (at most one per struct fsm). */
struct fsm_snap {
    struct fsm *f;
    int64_t value;
    uint64_t last_applied, count;
    bool open; /* the read transaction is still open */
    uint64_t rows, keys;
    double write_ms;
    char errmsg[1024];
};

struct fsm {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3 *rdb; /* snapshot reader; used by one thread at a time */
    sqlite3_stmt *rst[RS_COUNT];
    struct fsm_snap snap;
    bool snap_busy;
    bool unsynced; /* synchronous=OFF, guarded by the boot-id marker */
    char boot[64];
    int lock_fd;
    char path[512];
    int64_t value;
    uint64_t last_applied;
    uint64_t count;
    uint64_t retention; /* op-log rows kept; 0 = all */
    bool in_txn;        /* a batch transaction is open (fsm_flush commits) */
    unsigned batch;     /* applies in it */
    struct fsm_pg pg;   /* the newest promotion record */
    bool has_pg;
    fsm_pg_cb pg_cb;
    void *pg_data;
    char errmsg[1024];
};

static int fail(struct fsm *f, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->errmsg, sizeof f->errmsg, fmt, ap);
    va_end(ap);
    return rv;
}

const char *fsm_errmsg(const struct fsm *f)
{
    return f->errmsg;
}

int64_t fsm_value(const struct fsm *f)
{
    return f->value;
}

uint64_t fsm_last_applied(const struct fsm *f)
{
    return f->last_applied;
}

uint64_t fsm_count(const struct fsm *f)
{
    return f->count;
}

/* ---- entries ---- */

struct fixed_buf {
    char *p;
    size_t len, cap;
    bool overflow;
};

static int fixed_write(void *data, const char *buf, size_t len)
{
    struct fixed_buf *b = data;
    if (b->len + len > b->cap) {
        b->overflow = true;
        return -1;
    }
    memcpy(b->p + b->len, buf, len);
    b->len += len;
    return 0;
}

int fsm_cmd_encode(const struct fsm_cmd *cmd, void *buf, size_t cap,
                   size_t *len)
{
    size_t klen = strnlen(cmd->key, FSM_KEY_MAX + 1);
    if (cmd->by < 1 || klen > FSM_KEY_MAX)
        return ERR_INVALID;
    struct fixed_buf b = {.p = buf, .cap = cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fixed_write);
    msgpack_pack_array(&pk, 8);
    msgpack_pack_uint8(&pk, CMD_VERSION);
    msgpack_pack_uint8(&pk, CMD_INCREMENT);
    msgpack_pack_int64(&pk, cmd->by);
    msgpack_pack_uint64(&pk, cmd->node);
    msgpack_pack_uint64(&pk, cmd->term);
    msgpack_pack_int64(&pk, cmd->time_ms);
    msgpack_pack_str(&pk, klen);
    msgpack_pack_str_body(&pk, cmd->key, klen);
    msgpack_pack_uint64(&pk, cmd->key_retention);
    if (b.overflow)
        return ERR_TOOBIG;
    *len = b.len;
    return 0;
}

static bool get_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

static bool get_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        o->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    return false;
}

/* Big-endian unsigned of n (1, 2 or 4) bytes. */
static size_t mp_be(const uint8_t *p, size_t n)
{
    size_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Walk one msgpack object at p[0..n) without allocating: 0 with *used, or
 * ERR_MALFORMED when it is truncated, nests deeper than `depth`, or a
 * container claims more elements than bytes remain. msgpack-c allocates for
 * a container's claimed count before reading its elements (a 5-byte map32
 * header asks for 128 GiB), so untrusted bytes pass here first. */
static int mp_check(const uint8_t *p, size_t n, int depth, size_t *used)
{
    if (n == 0 || depth < 0)
        return ERR_MALFORMED;
    uint8_t b = p[0];
    size_t hdr = 1, body = 0, items = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixint, nil, bool */
    } else if (b <= 0x8f) {
        items = 2 * (size_t)(b & 0x0f);
    } else if (b <= 0x9f) {
        items = b & 0x0f;
    } else if (b <= 0xbf) {
        body = b & 0x1f;
    } else {
        /* c4-c6 bin, c7-c9 ext, d9-db str: a length of 1/2/4 bytes. */
        static const uint8_t lenbytes[] = {
            [0xc4 - 0xc4] = 1, [0xc5 - 0xc4] = 2, [0xc6 - 0xc4] = 4,
            [0xc7 - 0xc4] = 1, [0xc8 - 0xc4] = 2, [0xc9 - 0xc4] = 4,
            [0xd9 - 0xc4] = 1, [0xda - 0xc4] = 2, [0xdb - 0xc4] = 4};
        static const uint8_t fixed[] = {
            [0xca - 0xc4] = 4, [0xcb - 0xc4] = 8, [0xcc - 0xc4] = 1,
            [0xcd - 0xc4] = 2, [0xce - 0xc4] = 4, [0xcf - 0xc4] = 8,
            [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2, [0xd2 - 0xc4] = 4,
            [0xd3 - 0xc4] = 8, [0xd4 - 0xc4] = 2, [0xd5 - 0xc4] = 3,
            [0xd6 - 0xc4] = 5, [0xd7 - 0xc4] = 9, [0xd8 - 0xc4] = 17};
        if (b == 0xc1)
            return ERR_MALFORMED;
        if (b >= 0xdc) { /* array16/32, map16/32 */
            size_t lb = b == 0xdc || b == 0xde ? 2 : 4;
            if (n < 1 + lb)
                return ERR_MALFORMED;
            items = mp_be(p + 1, lb) * (b >= 0xde ? 2 : 1);
            hdr += lb;
        } else if (lenbytes[b - 0xc4]) {
            size_t lb = lenbytes[b - 0xc4];
            if (n < 1 + lb)
                return ERR_MALFORMED;
            body = mp_be(p + 1, lb) + (b >= 0xc7 && b <= 0xc9); /* ext type */
            hdr += lb;
        } else {
            body = fixed[b - 0xc4];
        }
    }
    if (hdr > n || body > n - hdr || items > n - hdr)
        return ERR_MALFORMED;
    size_t off = hdr + body;
    for (size_t i = 0; i < items; i++) {
        size_t u;
        if (mp_check(p + off, n - off, depth - 1, &u) != 0)
            return ERR_MALFORMED;
        off += u;
    }
    *used = off;
    return 0;
}

/* msgpack_unpack_next on untrusted bytes, after mp_check. */
static int mp_unpack(msgpack_unpacked *u, const void *buf, size_t len,
                     size_t *off)
{
    size_t used;
    if (mp_check(buf, len, 8, &used) != 0)
        return MSGPACK_UNPACK_PARSE_ERROR;
    return msgpack_unpack_next(u, buf, len, off);
}

/* One entry's outer shape: an array [version, type, ...] followed by at
 * most 7 zero bytes of raft padding. 0 with the array in *o (valid while u
 * lives), or ERR_MALFORMED. */
static int entry_unpack(msgpack_unpacked *u, const void *buf, size_t len,
                        const msgpack_object **o, uint64_t *version,
                        uint64_t *type)
{
    size_t off = 0;
    if (mp_unpack(u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || len - off > 7)
        return ERR_MALFORMED;
    for (size_t i = off; i < len; i++) /* raft alignment padding */
        if (((const uint8_t *)buf)[i] != 0)
            return ERR_MALFORMED;
    *o = &u->data;
    if ((*o)->type != MSGPACK_OBJECT_ARRAY || (*o)->via.array.size < 2 ||
        !get_u64(&(*o)->via.array.ptr[0], version) ||
        !get_u64(&(*o)->via.array.ptr[1], type))
        return ERR_MALFORMED;
    return 0;
}

int fsm_cmd_decode(const void *buf, size_t len, struct fsm_cmd *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *o;
    uint64_t version, type;
    int rv = entry_unpack(&u, buf, len, &o, &version, &type);
    if (rv != 0)
        goto out;
    rv = ERR_MALFORMED;
    const msgpack_object *a = o->via.array.ptr;
    if (version < 1 || version > CMD_VERSION || type != CMD_INCREMENT) {
        rv = ERR_VERSION;
        goto out;
    }
    if (o->via.array.size != (version == 1 ? 7 : 8))
        goto out;
    memset(out, 0, sizeof *out);
    if (!get_i64(&a[2], &out->by) || out->by < 1 ||
        !get_u64(&a[3], &out->node) || !get_u64(&a[4], &out->term) ||
        !get_i64(&a[5], &out->time_ms) || a[6].type != MSGPACK_OBJECT_STR ||
        a[6].via.str.size > FSM_KEY_MAX ||
        (a[6].via.str.size > 0 &&
         memchr(a[6].via.str.ptr, '\0', a[6].via.str.size) != NULL) ||
        (version >= 2 && !get_u64(&a[7], &out->key_retention)))
        goto out;
    if (a[6].via.str.size > 0) /* an empty str may have a NULL ptr */
        memcpy(out->key, a[6].via.str.ptr, a[6].via.str.size);
    out->key[a[6].via.str.size] = '\0';
    rv = 0;
out:
    msgpack_unpacked_destroy(&u);
    return rv;
}

static bool pg_valid(const struct fsm_pg *r)
{
    size_t hl = strnlen(r->host, sizeof r->host);
    if (r->term < 1 || hl > FSM_PG_HOST_MAX)
        return false;
    if (r->primary == 0)
        return hl == 0 && r->port == 0;
    return r->fenced == 0 && r->timeline >= 1 && hl > 0 && r->port >= 1 &&
           r->port <= 65535;
}

int fsm_pg_encode(const struct fsm_pg *rec, void *buf, size_t cap, size_t *len)
{
    if (!pg_valid(rec))
        return ERR_INVALID;
    size_t hl = strlen(rec->host);
    struct fixed_buf b = {.p = buf, .cap = cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fixed_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint8(&pk, PG_VERSION);
    msgpack_pack_uint8(&pk, CMD_PG);
    msgpack_pack_uint64(&pk, rec->term);
    msgpack_pack_uint64(&pk, rec->primary);
    msgpack_pack_uint64(&pk, rec->fenced);
    msgpack_pack_uint32(&pk, rec->timeline);
    msgpack_pack_uint64(&pk, rec->lsn);
    msgpack_pack_str(&pk, hl);
    msgpack_pack_str_body(&pk, rec->host, hl);
    msgpack_pack_uint32(&pk, (uint32_t)rec->port);
    if (b.overflow)
        return ERR_TOOBIG;
    *len = b.len;
    return 0;
}

/* The fields of a pg record from msgpack objects a[0..7): term, primary,
 * fenced, timeline, lsn, host, port (entry and snapshot share it). */
static bool pg_fields(const msgpack_object *a, struct fsm_pg *out)
{
    uint64_t tl, port;
    memset(out, 0, sizeof *out);
    if (!get_u64(&a[0], &out->term) || !get_u64(&a[1], &out->primary) ||
        !get_u64(&a[2], &out->fenced))
        return false;
    a++;
    if (!get_u64(&a[2], &tl) || tl > UINT32_MAX || !get_u64(&a[3], &out->lsn) ||
        a[4].type != MSGPACK_OBJECT_STR ||
        a[4].via.str.size > FSM_PG_HOST_MAX ||
        (a[4].via.str.size > 0 &&
         memchr(a[4].via.str.ptr, '\0', a[4].via.str.size) != NULL) ||
        !get_u64(&a[5], &port) || port > 65535)
        return false;
    out->timeline = (uint32_t)tl;
    out->port = (int)port;
    if (a[4].via.str.size > 0)
        memcpy(out->host, a[4].via.str.ptr, a[4].via.str.size);
    out->host[a[4].via.str.size] = '\0';
    return pg_valid(out);
}

int fsm_pg_decode(const void *buf, size_t len, struct fsm_pg *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *o;
    uint64_t version, type;
    int rv = entry_unpack(&u, buf, len, &o, &version, &type);
    if (rv == 0 && (version != PG_VERSION || type != CMD_PG))
        rv = ERR_VERSION;
    if (rv == 0 &&
        (o->via.array.size != 9 || !pg_fields(o->via.array.ptr + 2, out)))
        rv = ERR_MALFORMED;
    msgpack_unpacked_destroy(&u);
    return rv;
}

int fsm_pg_record(const struct fsm *f, struct fsm_pg *out)
{
    if (!f->has_pg)
        return ERR_NOTFOUND;
    *out = f->pg;
    return 0;
}

void fsm_on_pg(struct fsm *f, fsm_pg_cb cb, void *data)
{
    f->pg_cb = cb;
    f->pg_data = data;
}

/* ---- open/close ---- */

static int exec(struct fsm *f, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(f->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        snprintf(f->errmsg, sizeof f->errmsg, "%s: %s", f->path,
                 err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
    }
    return rc;
}

static int open_error(struct fsm *f, int rc)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return fail(f, ERR_BUSY, "state file %s is in use by another process",
                    f->path);
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT)
        return fail(f, ERR_CORRUPT,
                    "state file %s is corrupt (%s); it was left as it is",
                    f->path, sqlite3_errstr(rc));
    return ERR_IO;
}

/* The promotion record: one row at most (schema 3). */
#define PGREC_TABLE                                                            \
    "CREATE TABLE pgrec(id INTEGER PRIMARY KEY CHECK (id = 1),"                \
    " term INTEGER NOT NULL, primary_id INTEGER NOT NULL,"                     \
    " fenced INTEGER NOT NULL,"                                                \
    " timeline INTEGER NOT NULL, lsn INTEGER NOT NULL, host TEXT NOT NULL,"    \
    " port INTEGER NOT NULL, idx INTEGER NOT NULL);"

/* Read the pgrec row into f->pg (absent: has_pg false). */
static int load_pg(struct fsm *f)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(f->db,
                                "SELECT term, primary_id, fenced, timeline, "
                                "lsn, host, port, idx FROM pgrec WHERE id = 1",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return fail(f, ERR_CORRUPT, "state file %s: %s", f->path,
                    sqlite3_errmsg(f->db));
    rc = sqlite3_step(s);
    f->has_pg = false;
    memset(&f->pg, 0, sizeof f->pg);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        struct fsm_pg *p = &f->pg;
        p->term = (uint64_t)sqlite3_column_int64(s, 0);
        p->primary = (uint64_t)sqlite3_column_int64(s, 1);
        p->fenced = (uint64_t)sqlite3_column_int64(s, 2);
        p->timeline = (uint32_t)sqlite3_column_int64(s, 3);
        p->lsn = (uint64_t)sqlite3_column_int64(s, 4);
        const char *h = (const char *)sqlite3_column_text(s, 5);
        snprintf(p->host, sizeof p->host, "%s", h ? h : "");
        p->port = sqlite3_column_int(s, 6);
        p->index = (uint64_t)sqlite3_column_int64(s, 7);
        f->has_pg = pg_valid(p);
        if (!f->has_pg)
            rv = fail(f, ERR_CORRUPT, "state file %s: invalid pg record",
                      f->path);
    } else if (rc != SQLITE_DONE) {
        rv = fail(f, ERR_CORRUPT, "state file %s: %s", f->path,
                  sqlite3_errmsg(f->db));
    }
    sqlite3_finalize(s);
    return rv;
}

static int load(struct fsm *f)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(f->db, "PRAGMA quick_check", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return open_error(f, rc);
    rc = sqlite3_step(s);
    bool ok = rc == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0;
    sqlite3_finalize(s);
    if (!ok)
        return rc == SQLITE_ROW || rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB
                   ? fail(f, ERR_CORRUPT,
                          "state file %s fails its integrity check; it was "
                          "left as it is",
                          f->path)
                   : open_error(f, rc);
    rc = sqlite3_prepare_v2(f->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return open_error(f, rc);
    int version = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    if (version > SCHEMA_VERSION)
        return fail(f, ERR_VERSION,
                    "state file %s has schema version %d; this build reads "
                    "up to %d",
                    f->path, version, SCHEMA_VERSION);
    if (version == 0) {
        rc = exec(f, "BEGIN IMMEDIATE;"
                     "CREATE TABLE state(id INTEGER PRIMARY KEY CHECK (id = 1),"
                     " value INTEGER NOT NULL, last_applied INTEGER NOT NULL);"
                     "INSERT INTO state VALUES (1, 0, 0);"
                     "CREATE TABLE oplog(idx INTEGER PRIMARY KEY, term INTEGER"
                     " NOT NULL, by INTEGER NOT NULL, value INTEGER NOT NULL,"
                     " node INTEGER NOT NULL, time INTEGER NOT NULL);"
                     "CREATE TABLE dedup(key TEXT PRIMARY KEY, idx INTEGER NOT"
                     " NULL, value INTEGER NOT NULL);"
                     "CREATE INDEX dedup_idx ON dedup(idx);" PGREC_TABLE
                     "PRAGMA user_version = 3;"
                     "COMMIT;");
        if (rc != SQLITE_OK) {
            int r2 = open_error(f, rc);
            return r2 == ERR_IO ? ERR_IO : r2;
        }
    } else if (version == 1 || version == 2) {
        /* 1 -> 2: keys expire now, index them by idx; 2 -> 3: pgrec. */
        rc = exec(f, version == 1
                         ? "BEGIN IMMEDIATE;"
                           "CREATE INDEX dedup_idx ON dedup(idx);" PGREC_TABLE
                           "PRAGMA user_version = 3;"
                           "COMMIT;"
                         : "BEGIN IMMEDIATE;" PGREC_TABLE
                           "PRAGMA user_version = 3;"
                           "COMMIT;");
        if (rc != SQLITE_OK)
            return open_error(f, rc);
    } else if (version < 0) {
        return fail(f, ERR_CORRUPT, "state file %s: cannot read its version",
                    f->path);
    }
    rc = sqlite3_prepare_v2(f->db,
                            "SELECT value, last_applied, (SELECT count(*) "
                            "FROM oplog) FROM state WHERE id = 1",
                            -1, &s, NULL);
    if (rc != SQLITE_OK)
        return fail(f, ERR_CORRUPT, "state file %s: %s", f->path,
                    sqlite3_errmsg(f->db));
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        f->value = sqlite3_column_int64(s, 0);
        f->last_applied = (uint64_t)sqlite3_column_int64(s, 1);
        f->count = (uint64_t)sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return fail(f, ERR_CORRUPT, "state file %s has no state row", f->path);
    int rv = load_pg(f);
    if (rv != 0)
        return rv;
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(f->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &f->st[i], NULL);
        if (rc != SQLITE_OK)
            return fail(f, ERR_CORRUPT, "state file %s: %s", f->path,
                        sqlite3_errmsg(f->db));
    }
    return 0;
}

static void guard_close(struct fsm *f);

void fsm_close(struct fsm *f)
{
    if (f == NULL)
        return;
    if (f->snap_busy)
        fsm_snapshot_end(f, &f->snap);
    if (f->in_txn && f->db != NULL)
        fsm_flush(f);
    for (int i = 0; i < RS_COUNT; i++)
        sqlite3_finalize(f->rst[i]);
    sqlite3_close(f->rdb);
    f->rdb = NULL;
    memset(f->rst, 0, sizeof f->rst);
    guard_close(f);
    for (int i = 0; i < RS_COUNT; i++)
        sqlite3_finalize(f->rst[i]);
    sqlite3_close(f->rdb);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(f->st[i]);
    sqlite3_close(f->db);
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    free(f);
}

/* ---- durability ----
 * state.db is written with PRAGMA synchronous=OFF: SQLite never fsyncs,
 * not even at checkpoints, so no fsync ever runs on the loop (the WAL
 * checkpoint's fdatasync was the largest stall left). This is sound because
 * state.db is not the durable record: raft's log and snapshots are (raft
 * fsyncs them), and the FSM is rebuilt from them (restore of raft's latest
 * snapshot, then its log) whenever state.db is behind. A process crash
 * loses nothing the kernel has (its page cache survives); only an
 * operating-system crash or power loss can leave state.db torn. That case
 * is detected: the "-lock" sidecar holds "nftraft-state v1 BOOT_ID dirty"
 * (written and fsynced before any unsynced write, BOOT_ID being the
 * kernel's boot id) and "... clean" after fsm_close has checkpointed and
 * fsynced the file. At open, "dirty" under another boot id means the
 * machine went down with unsynced writes: state.db (and its -wal/-shm) is
 * moved aside to state.db.unsynced-UNIXTIME, kept for inspection, a warning
 * is logged, and the node starts from an empty state that raft refills.
 * Without a readable boot id the file is written with synchronous=NORMAL
 * (checkpoints fsync) instead. */
static bool boot_id(char *out, size_t cap)
{
    FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (fp == NULL)
        return false;
    bool ok = fgets(out, (int)cap, fp) != NULL;
    fclose(fp);
    if (!ok)
        return false;
    out[strcspn(out, "\n")] = '\0';
    return out[0] != '\0' && strchr(out, ' ') == NULL;
}

static int write_marker(struct fsm *f, const char *boot, const char *state)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "nftraft-state v1 %s %s\n", boot, state);
    if (ftruncate(f->lock_fd, 0) != 0 ||
        pwrite(f->lock_fd, buf, (size_t)n, 0) != n ||
        fdatasync(f->lock_fd) != 0)
        return ERR_IO;
    return 0;
}

static int guard_open(struct fsm *f, char *errmsg, size_t errlen)
{
    char cur[64], buf[160], boot[64] = "", state[16] = "";
    if (!boot_id(cur, sizeof cur))
        return 0; /* f->unsynced stays false: synchronous=NORMAL */
    ssize_t n = pread(f->lock_fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    if (sscanf(buf, "nftraft-state v1 %63s %15s", boot, state) == 2 &&
        strcmp(state, "dirty") == 0 && strcmp(boot, cur) != 0 &&
        access(f->path, F_OK) == 0) {
        char aside[sizeof f->path + 64], from[sizeof f->path + 8];
        long now = (long)time(NULL);
        static const char *const sfx[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(from, sizeof from, "%s%s", f->path, sfx[i]);
            snprintf(aside, sizeof aside, "%s.unsynced-%ld%s", f->path, now,
                     sfx[i]);
            if (rename(from, aside) != 0 && errno != ENOENT) {
                snprintf(errmsg, errlen, "cannot move %s aside: %s", from,
                         strerror(errno));
                return ERR_IO;
            }
        }
        LOGW("fsm",
             "the machine restarted (boot id %s, now %s) while %s had "
             "unsynced writes: moved it aside to %s.unsynced-%ld; starting "
             "from an empty state that raft's snapshot and log refill",
             boot, cur, f->path, f->path, now);
    }
    if (write_marker(f, cur, "dirty") != 0) {
        snprintf(errmsg, errlen, "cannot write %s-lock: %s", f->path,
                 strerror(errno));
        return ERR_IO;
    }
    snprintf(f->boot, sizeof f->boot, "%s", cur);
    f->unsynced = true;
    return 0;
}

/* Make state.db durable and mark it clean (fsm_close). */
static void guard_close(struct fsm *f)
{
    if (!f->unsynced || f->db == NULL)
        return;
    /* The reader is closed by now: a TRUNCATE checkpoint copies the whole
     * WAL into state.db and fsyncs it (synchronous=FULL), or fails. */
    if (exec(f, "PRAGMA synchronous = FULL") == SQLITE_OK &&
        sqlite3_wal_checkpoint_v2(f->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                  NULL) == SQLITE_OK) {
        int fd = open(f->path, O_RDONLY | O_CLOEXEC);
        bool ok = fd >= 0 && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            write_marker(f, f->boot, "clean");
    }
}

/* One process per state file: an flock()ed sidecar, so that this process
 * can still open the second (reader) connection that SQLite's exclusive
 * locking mode would refuse. 0, ERR_BUSY or ERR_IO (message in errmsg). */
static int lock_state_file(struct fsm *f, char *errmsg, size_t errlen)
{
    char lockpath[sizeof f->path + 8];
    snprintf(lockpath, sizeof lockpath, "%s-lock", f->path);
    f->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f->lock_fd < 0) {
        snprintf(errmsg, errlen, "cannot open %s: %s", lockpath,
                 strerror(errno));
        return ERR_IO;
    }
    if (flock(f->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        snprintf(errmsg, errlen,
                 busy ? "state file %s is in use by another process"
                      : "cannot lock %s: %s",
                 busy ? f->path : lockpath, strerror(errno));
        close(f->lock_fd);
        return busy ? ERR_BUSY : ERR_IO;
    }
    return 0;
}

/* Refuse anything that is not an SQLite file before SQLite touches it:
 * 0, or ERR_CORRUPT (message in errmsg; the file is left as it is). */
static int check_header(const char *path, char *errmsg, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return 0; /* a new state file */
    char hdr[16];
    size_t n = fread(hdr, 1, sizeof hdr, fp);
    fclose(fp);
    if (n > 0 && (n < sizeof hdr || memcmp(hdr, "SQLite format 3", 16))) {
        snprintf(errmsg, errlen,
                 "state file %s is not an SQLite database (corrupt?); it "
                 "was left as it is",
                 path);
        return ERR_CORRUPT;
    }
    return 0;
}

/* The writer connection: WAL, the synchronous level the guard chose, then
 * the schema and state (load). 0 or an error recorded by fail(). */
static int open_writer(struct fsm *f)
{
    int rc = sqlite3_open_v2(
        f->path, &f->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return fail(f, ERR_IO, "cannot open state file %s: %s", f->path,
                    sqlite3_errstr(rc));
    sqlite3_extended_result_codes(f->db, 0);
    /* Nobody else writes (the lock above); wait rather than fail should a
     * checkpoint and the snapshot reader ever meet. */
    sqlite3_busy_timeout(f->db, 5000);
    rc = exec(f, "PRAGMA journal_mode = WAL");
    if (rc == SQLITE_OK)
        rc = exec(f, f->unsynced ? "PRAGMA synchronous = OFF"
                                 : "PRAGMA synchronous = NORMAL");
    if (rc != SQLITE_OK)
        return open_error(f, rc);
    return load(f);
}

/* The snapshot reader: its own connection, so a snapshot can be serialized
 * on another thread while the writer keeps applying (WAL lets one writer
 * and readers run at once). FULLMUTEX: it changes thread. */
static int open_reader(struct fsm *f)
{
    int rc = sqlite3_open_v2(
        f->path, &f->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL);
    for (int i = 0; rc == SQLITE_OK && i < RS_COUNT; i++)
        rc = sqlite3_prepare_v3(f->rdb, RSQL[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &f->rst[i], NULL);
    if (rc != SQLITE_OK)
        return fail(f, ERR_IO, "cannot open a reader on state file %s: %s",
                    f->path,
                    f->rdb ? sqlite3_errmsg(f->rdb) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(f->rdb, 5000);
    return 0;
}

int fsm_open(struct fsm **out, const char *path, char *errmsg, size_t errlen)
{
    if (!sqlite3_threadsafe()) { /* snapshots are read on a worker thread */
        snprintf(errmsg, errlen,
                 "this SQLite (%s) was built without thread "
                 "safety (SQLITE_THREADSAFE=0)",
                 sqlite3_libversion());
        return ERR_INVALID;
    }
    struct fsm *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    int rv = lock_state_file(f, errmsg, errlen);
    if (rv != 0) {
        free(f);
        return rv;
    }
    if ((rv = guard_open(f, errmsg, errlen)) != 0 ||
        (rv = check_header(path, errmsg, errlen)) != 0) {
        fsm_close(f);
        return rv;
    }
    if ((rv = open_writer(f)) != 0 || (rv = open_reader(f)) != 0) {
        snprintf(errmsg, errlen, "%s", f->errmsg);
        fsm_close(f);
        return rv;
    }
    *out = f;
    return 0;
}

/* ---- apply ---- */

static int step_done(struct fsm *f, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(f, ERR_IO, "state file %s: %s", f->path,
                    sqlite3_errmsg(f->db));
    return 0;
}

static int set_state(struct fsm *f, int64_t value, uint64_t last_applied)
{
    sqlite3_stmt *s = f->st[ST_SET_STATE];
    sqlite3_bind_int64(s, 1, value);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)last_applied);
    return step_done(f, s);
}

/* Applies are grouped: the first apply after a flush opens a transaction,
 * fsm_flush() (the owner calls it once per loop iteration, and it runs by
 * itself every BATCH_MAX applies) commits it. An apply is answered before
 * its batch commits: state.db is not the durable record, raft's log is (a
 * crash loses at most the open batch, and raft applies those entries
 * again on restart, from its snapshot and log). Reads on this connection
 * see the open batch. */
static int begin(struct fsm *f)
{
    if (f->in_txn)
        return 0;
    int rv = step_done(f, f->st[ST_BEGIN]);
    if (rv == 0) {
        f->in_txn = true;
        f->batch = 0;
    }
    return rv;
}

static void rollback(struct fsm *f)
{
    sqlite3_step(f->st[ST_ROLLBACK]);
    sqlite3_reset(f->st[ST_ROLLBACK]);
    f->in_txn = false;
}

int fsm_flush(struct fsm *f)
{
    if (!f->in_txn)
        return 0;
    int rv = step_done(f, f->st[ST_COMMIT]);
    if (rv != 0) {
        rollback(f);
        return rv;
    }
    f->in_txn = false;
    return 0;
}

/* End one apply: a failed statement rolls the whole batch back (the
 * caller must then stop the node: the in-memory state is ahead). */
static int done(struct fsm *f, int rv)
{
    if (rv != 0) {
        rollback(f);
        return rv;
    }
    return ++f->batch >= BATCH_MAX ? fsm_flush(f) : 0;
}

/* Advance last_applied only (duplicate, overflow, malformed entries). */
static int advance(struct fsm *f, uint64_t index)
{
    int rv = begin(f);
    if (rv != 0)
        return rv;
    rv = done(f, set_state(f, f->value, index));
    if (rv == 0)
        f->last_applied = index;
    return rv;
}

static int prune(struct fsm *f, int st, uint64_t upto, uint64_t *deleted)
{
    sqlite3_stmt *s = f->st[st];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)upto);
    int rv = step_done(f, s);
    if (rv == 0 && deleted != NULL)
        *deleted = (uint64_t)sqlite3_changes(f->db);
    return rv;
}

void fsm_set_retention(struct fsm *f, uint64_t rows)
{
    f->retention = rows;
}

int fsm_lookup(struct fsm *f, const char *key, struct fsm_result *out)
{
    sqlite3_stmt *s = f->st[ST_GET_KEY];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int rv = ERR_NOTFOUND;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->index = (uint64_t)sqlite3_column_int64(s, 0);
        out->value = sqlite3_column_int64(s, 1);
        rv = 0;
    } else if (rc != SQLITE_DONE) {
        rv = fail(f, ERR_IO, "state file %s: %s", f->path,
                  sqlite3_errmsg(f->db));
    }
    sqlite3_reset(s);
    return rv;
}

static int store_pg(struct fsm *f, const struct fsm_pg *rec)
{
    sqlite3_stmt *s = f->st[ST_SET_PG];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)rec->term);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)rec->primary);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)rec->fenced);
    sqlite3_bind_int64(s, 4, rec->timeline);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)rec->lsn);
    sqlite3_bind_text(s, 6, rec->host, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, rec->port);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)rec->index);
    return step_done(f, s);
}

/* A pg entry: the newest record by term wins (a later entry of the same
 * term replaces an earlier one: fence, then promotion). */
static int apply_pg(struct fsm *f, uint64_t index, struct fsm_pg *rec,
                    struct fsm_result *out)
{
    out->value = f->value;
    out->index = index;
    rec->index = index;
    bool newer = !f->has_pg || rec->term >= f->pg.term;
    int rv = begin(f);
    if (rv != 0)
        return rv;
    if (newer)
        rv = store_pg(f, rec);
    if (rv == 0)
        rv = set_state(f, f->value, index);
    rv = done(f, rv);
    if (rv != 0)
        return rv;
    f->last_applied = index;
    if (newer) {
        f->pg = *rec;
        f->has_pg = true;
        if (f->pg_cb != NULL)
            f->pg_cb(f->pg_data, &f->pg);
    }
    return 0;
}

int fsm_apply(struct fsm *f, uint64_t index, const void *buf, size_t len,
              struct fsm_result *out)
{
    memset(out, 0, sizeof *out);
    out->entry = index;
    if (index <= f->last_applied) {
        /* A replay after restart: report what that index produced. */
        sqlite3_stmt *s = f->st[ST_GET_LOG];
        sqlite3_bind_int64(s, 1, (sqlite3_int64)index);
        out->value = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0)
                                                   : f->value;
        sqlite3_reset(s);
        out->index = index;
        return 0;
    }
    struct fsm_cmd cmd;
    struct fsm_pg pg;
    if (fsm_pg_decode(buf, len, &pg) == 0)
        return apply_pg(f, index, &pg, out);
    if (fsm_cmd_decode(buf, len, &cmd) != 0) {
        int rv = advance(f, index);
        return rv != 0 ? rv
                       : fail(f, ERR_MALFORMED, "entry %llu does not decode",
                              (unsigned long long)index);
    }
    int rv = begin(f);
    if (rv != 0)
        return rv;
    /* Key expiry, a function of the entry alone (its index and the
     * retention its leader wrote in it): every replica forgets the same
     * keys at the same index. */
    if (cmd.key_retention > 0 && index > cmd.key_retention) {
        rv = prune(f, ST_PRUNE_KEYS, index - cmd.key_retention, NULL);
        if (rv != 0)
            return done(f, rv);
    }
    if (cmd.key[0] && fsm_lookup(f, cmd.key, out) == 0) {
        out->duplicate = true;
        out->entry = index;
        rv = done(f, set_state(f, f->value, index));
        if (rv == 0)
            f->last_applied = index;
        return rv;
    }
    int64_t value;
    if (__builtin_add_overflow(f->value, cmd.by, &value)) {
        out->status = ERR_OVERFLOW;
        out->value = f->value;
        out->index = index;
        rv = done(f, set_state(f, f->value, index));
        if (rv == 0)
            f->last_applied = index;
        return rv;
    }
    sqlite3_stmt *s = f->st[ST_INS_LOG];
    sqlite3_bind_int64(s, 1, (sqlite3_int64)index);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)cmd.term);
    sqlite3_bind_int64(s, 3, cmd.by);
    sqlite3_bind_int64(s, 4, value);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)cmd.node);
    sqlite3_bind_int64(s, 6, cmd.time_ms);
    rv = step_done(f, s);
    if (rv == 0 && cmd.key[0]) {
        s = f->st[ST_INS_KEY];
        sqlite3_bind_text(s, 1, cmd.key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)index);
        sqlite3_bind_int64(s, 3, value);
        rv = step_done(f, s);
    }
    /* Op-log retention: the newest `retention` indexes are kept. */
    uint64_t pruned = 0;
    if (rv == 0 && f->retention > 0 && index > f->retention)
        rv = prune(f, ST_PRUNE_LOG, index - f->retention, &pruned);
    if (rv == 0)
        rv = set_state(f, value, index);
    rv = done(f, rv);
    if (rv != 0)
        return rv;
    f->value = value;
    f->last_applied = index;
    f->count = f->count + 1 - (pruned > f->count + 1 ? f->count + 1 : pruned);
    out->value = value;
    out->index = index;
    return 0;
}

uint64_t fsm_log_first(struct fsm *f)
{
    sqlite3_stmt *s = f->st[ST_FIRST];
    uint64_t first = 0;
    if (sqlite3_step(s) == SQLITE_ROW &&
        sqlite3_column_type(s, 0) != SQLITE_NULL)
        first = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return first;
}

int fsm_log(struct fsm *f, uint64_t from, unsigned limit, struct fsm_entry *out,
            unsigned *n, uint64_t *next)
{
    sqlite3_stmt *s = f->st[ST_LOG_RANGE];
    sqlite3_bind_int64(s, 1,
                       (sqlite3_int64)(from > INT64_MAX ? INT64_MAX : from));
    sqlite3_bind_int64(s, 2, limit);
    unsigned k = 0;
    int rc;
    *next = from;
    while (k < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        out[k].index = (uint64_t)sqlite3_column_int64(s, 0);
        out[k].term = (uint64_t)sqlite3_column_int64(s, 1);
        out[k].by = sqlite3_column_int64(s, 2);
        out[k].value = sqlite3_column_int64(s, 3);
        out[k].node = (uint64_t)sqlite3_column_int64(s, 4);
        out[k].time_ms = sqlite3_column_int64(s, 5);
        *next = out[k].index + 1;
        k++;
    }
    sqlite3_reset(s);
    *n = k;
    return 0;
}

/* ---- snapshots ---- */

static int snap_fail(struct fsm_snap *sn, int rv, const char *what)
{
    snprintf(sn->errmsg, sizeof sn->errmsg, "snapshot of %s: %s: %s",
             sn->f->path, what, sqlite3_errmsg(sn->f->rdb));
    return rv;
}

static void snap_close_txn(struct fsm_snap *sn)
{
    if (!sn->open)
        return;
    sqlite3_stmt **r = sn->f->rst;
    for (int i = 0; i < RS_COUNT; i++)
        sqlite3_reset(r[i]);
    if (sqlite3_step(r[RS_END]) != SQLITE_DONE)
        sqlite3_exec(sn->f->rdb, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_reset(r[RS_END]);
    sn->open = false;
}

int fsm_snapshot_begin(struct fsm *f, struct fsm_snap **out)
{
    if (f->snap_busy)
        return fail(f, ERR_BUSY, "snapshot of %s: one is in progress", f->path);
    int rv0 = fsm_flush(f); /* the reader sees committed state only */
    if (rv0 != 0)
        return rv0;
    struct fsm_snap *sn = &f->snap;
    memset(sn, 0, sizeof *sn);
    sn->f = f;
    sqlite3_stmt **r = f->rst;
    /* The first read of a transaction fixes its view of the WAL: from here
     * on the reader sees exactly the state as of f->last_applied. */
    if (sqlite3_step(r[RS_BEGIN]) != SQLITE_DONE) {
        sqlite3_reset(r[RS_BEGIN]);
        return fail(f, ERR_IO, "snapshot of %s: %s", f->path,
                    sqlite3_errmsg(f->rdb));
    }
    sqlite3_reset(r[RS_BEGIN]);
    sn->open = true;
    int rc = sqlite3_step(r[RS_STATE]);
    bool same =
        rc == SQLITE_ROW && sqlite3_column_int64(r[RS_STATE], 0) == f->value &&
        (uint64_t)sqlite3_column_int64(r[RS_STATE], 1) == f->last_applied;
    sqlite3_reset(r[RS_STATE]);
    if (!same) {
        int rv = rc == SQLITE_ROW ? fail(f, ERR_IO,
                                         "snapshot of %s: the reader does not "
                                         "see the last applied state",
                                         f->path)
                                  : fail(f, ERR_IO, "snapshot of %s: %s",
                                         f->path, sqlite3_errmsg(f->rdb));
        snap_close_txn(sn);
        return rv;
    }
    sn->value = f->value;
    sn->last_applied = f->last_applied;
    sn->count = f->count;
    f->snap_busy = true;
    *out = sn;
    return 0;
}

int fsm_snapshot_write(struct fsm_snap *sn, void **buf, size_t *len)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sqlite3_stmt **r = sn->f->rst;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rv = 0, rc;
    if (!sn->open) {
        snprintf(sn->errmsg, sizeof sn->errmsg,
                 "snapshot of %s: no read "
                 "view (written twice?)",
                 sn->f->path);
        rv = ERR_INVALID;
        goto out;
    }
    /* Version 2 only with a pg record: without one the snapshot stays
     * version 1, which a node of the previous release still reads. */
    int pg_rc = sqlite3_step(r[RS_PG]);
    if (pg_rc != SQLITE_ROW && pg_rc != SQLITE_DONE) {
        rv = snap_fail(sn, ERR_IO, "reading the pg record");
        goto out;
    }
    bool has_pg = pg_rc == SQLITE_ROW;
    msgpack_pack_array(&pk, has_pg ? 6 : 5);
    msgpack_pack_uint8(&pk, has_pg ? SNAP_VERSION : 1);
    msgpack_pack_int64(&pk, sn->value);
    msgpack_pack_uint64(&pk, sn->last_applied);
    msgpack_pack_array(&pk, (size_t)sn->count);
    while (sn->rows < sn->count &&
           (rc = sqlite3_step(r[RS_OPLOG])) == SQLITE_ROW) {
        msgpack_pack_array(&pk, 6);
        for (int c = 0; c < 6; c++)
            msgpack_pack_int64(&pk, sqlite3_column_int64(r[RS_OPLOG], c));
        sn->rows++;
    }
    if (sn->rows != sn->count) {
        rv = snap_fail(sn, ERR_IO, "op log shorter than expected");
        goto out;
    }
    uint64_t nkeys = 0;
    if (sqlite3_step(r[RS_NKEYS]) != SQLITE_ROW) {
        rv = snap_fail(sn, ERR_IO, "counting keys");
        goto out;
    }
    nkeys = (uint64_t)sqlite3_column_int64(r[RS_NKEYS], 0);
    msgpack_pack_array(&pk, (size_t)nkeys);
    while (sn->keys < nkeys && sqlite3_step(r[RS_KEYS]) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(r[RS_KEYS], 0);
        size_t kl = (size_t)sqlite3_column_bytes(r[RS_KEYS], 0);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str(&pk, kl);
        msgpack_pack_str_body(&pk, key, kl);
        msgpack_pack_int64(&pk, sqlite3_column_int64(r[RS_KEYS], 1));
        msgpack_pack_int64(&pk, sqlite3_column_int64(r[RS_KEYS], 2));
        sn->keys++;
    }
    if (sn->keys != nkeys) {
        rv = snap_fail(sn, ERR_IO, "key table shorter than expected");
        goto out;
    }
    /* The pg record (version 2): [term, primary, fenced, timeline, lsn,
     * host, port, index] (a reader also takes nil: none). */
    if (has_pg) {
        const char *h = (const char *)sqlite3_column_text(r[RS_PG], 5);
        size_t hl = (size_t)sqlite3_column_bytes(r[RS_PG], 5);
        msgpack_pack_array(&pk, 8);
        for (int c = 0; c < 5; c++)
            msgpack_pack_uint64(&pk,
                                (uint64_t)sqlite3_column_int64(r[RS_PG], c));
        msgpack_pack_str(&pk, hl);
        msgpack_pack_str_body(&pk, h ? h : "", hl);
        msgpack_pack_uint64(&pk, (uint64_t)sqlite3_column_int64(r[RS_PG], 6));
        msgpack_pack_uint64(&pk, (uint64_t)sqlite3_column_int64(r[RS_PG], 7));
    }
    /* Hand the buffer over as it is (malloc'd by msgpack): no copy. */
    *len = sb.size;
    *buf = msgpack_sbuffer_release(&sb);
    if (*buf == NULL) {
        *buf = malloc(1); /* an empty sbuffer has no data yet */
        if (*buf == NULL)
            rv = ERR_NOMEM;
    }
out:
    msgpack_sbuffer_destroy(&sb);
    /* Let checkpoints past this view as soon as it is read. */
    snap_close_txn(sn);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sn->write_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    return rv;
}

const char *fsm_snapshot_errmsg(const struct fsm_snap *sn)
{
    return sn->errmsg;
}

void fsm_snapshot_stats(const struct fsm_snap *sn, uint64_t *last_applied,
                        uint64_t *rows, uint64_t *keys, double *write_ms)
{
    *last_applied = sn->last_applied;
    *rows = sn->rows;
    *keys = sn->keys;
    *write_ms = sn->write_ms;
}

void fsm_snapshot_end(struct fsm *f, struct fsm_snap *sn)
{
    if (sn == NULL || sn != &f->snap || !f->snap_busy)
        return;
    snap_close_txn(sn);
    f->snap_busy = false;
}

int fsm_snapshot(struct fsm *f, void **buf, size_t *len)
{
    struct fsm_snap *sn;
    int rv = fsm_snapshot_begin(f, &sn);
    if (rv != 0)
        return rv;
    rv = fsm_snapshot_write(sn, buf, len);
    if (rv != 0)
        fail(f, rv, "%s", sn->errmsg);
    fsm_snapshot_end(f, sn);
    return rv;
}

/* Validate a decoded snapshot fully; fills the header fields. */
static int snap_check(const msgpack_object *o, int64_t *value,
                      uint64_t *last_applied, struct fsm_pg *pg, bool *has_pg)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1)
        return ERR_MALFORMED;
    const msgpack_object *a = o->via.array.ptr;
    uint64_t version;
    if (!get_u64(&a[0], &version))
        return ERR_MALFORMED;
    if (version < 1 || version > SNAP_VERSION)
        return ERR_VERSION;
    *has_pg = false;
    if (o->via.array.size != (version == 1 ? 5 : 6) || !get_i64(&a[1], value) ||
        !get_u64(&a[2], last_applied) || a[3].type != MSGPACK_OBJECT_ARRAY ||
        a[4].type != MSGPACK_OBJECT_ARRAY)
        return ERR_MALFORMED;
    uint64_t prev = 0;
    for (uint32_t i = 0; i < a[3].via.array.size; i++) {
        const msgpack_object *r = &a[3].via.array.ptr[i];
        int64_t v;
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 6)
            return ERR_MALFORMED;
        for (int c = 0; c < 6; c++)
            if (!get_i64(&r->via.array.ptr[c], &v))
                return ERR_MALFORMED;
        uint64_t idx = r->via.array.ptr[0].via.u64;
        if (idx <= prev || idx > *last_applied ||
            r->via.array.ptr[2].via.i64 < 1)
            return ERR_MALFORMED;
        prev = idx;
    }
    for (uint32_t i = 0; i < a[4].via.array.size; i++) {
        const msgpack_object *r = &a[4].via.array.ptr[i];
        int64_t v;
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 3 ||
            r->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            r->via.array.ptr[0].via.str.size == 0 ||
            r->via.array.ptr[0].via.str.size > FSM_KEY_MAX ||
            !get_i64(&r->via.array.ptr[1], &v) ||
            !get_i64(&r->via.array.ptr[2], &v))
            return ERR_MALFORMED;
    }
    if (version >= 2 && a[5].type != MSGPACK_OBJECT_NIL) {
        const msgpack_object *r = &a[5];
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 8 ||
            !pg_fields(r->via.array.ptr, pg) ||
            !get_u64(&r->via.array.ptr[7], &pg->index) ||
            pg->index > *last_applied)
            return ERR_MALFORMED;
        *has_pg = true;
    }
    return 0;
}

int fsm_restore(struct fsm *f, const void *buf, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int64_t value = 0;
    uint64_t last = 0;
    struct fsm_pg pg;
    bool has_pg = false;
    memset(&pg, 0, sizeof pg);
    int rv;
    if (mp_unpack(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        rv = fail(f, ERR_MALFORMED, "snapshot does not decode");
        goto out;
    }
    rv = snap_check(&u.data, &value, &last, &pg, &has_pg);
    if (rv != 0) {
        fail(f, rv, "snapshot is %s",
             rv == ERR_VERSION ? "of an unknown version" : "malformed");
        goto out;
    }
    if (last <= f->last_applied) {
        rv = 0; /* our state is newer or equal: keep it */
        goto out;
    }
    const msgpack_object *a = u.data.via.array.ptr;
    rv = fsm_flush(f);
    if (rv == 0)
        rv = begin(f);
    if (rv != 0)
        goto out;
    rv = exec(f, "DELETE FROM oplog; DELETE FROM dedup; DELETE FROM pgrec") ==
                 SQLITE_OK
             ? 0
             : ERR_IO;
    if (rv == 0 && has_pg)
        rv = store_pg(f, &pg);
    for (uint32_t i = 0; rv == 0 && i < a[3].via.array.size; i++) {
        const msgpack_object *r = a[3].via.array.ptr[i].via.array.ptr;
        sqlite3_stmt *s = f->st[ST_INS_LOG];
        for (int c = 0; c < 6; c++)
            sqlite3_bind_int64(s, c + 1,
                               r[c].type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                                   ? r[c].via.i64
                                   : (int64_t)r[c].via.u64);
        rv = step_done(f, s);
    }
    for (uint32_t i = 0; rv == 0 && i < a[4].via.array.size; i++) {
        const msgpack_object *r = a[4].via.array.ptr[i].via.array.ptr;
        sqlite3_stmt *s = f->st[ST_INS_KEY];
        sqlite3_bind_text(s, 1, r[0].via.str.ptr, (int)r[0].via.str.size,
                          SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (int64_t)r[1].via.u64);
        sqlite3_bind_int64(s, 3,
                           r[2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                               ? r[2].via.i64
                               : (int64_t)r[2].via.u64);
        rv = step_done(f, s);
    }
    if (rv == 0)
        rv = set_state(f, value, last);
    if (rv == 0)
        rv = fsm_flush(f);
    else
        rollback(f);
    if (rv == 0) {
        f->value = value;
        f->last_applied = last;
        f->count = a[3].via.array.size;
        bool changed =
            has_pg != f->has_pg ||
            (has_pg &&
             (pg.term != f->pg.term || pg.primary != f->pg.primary ||
              pg.fenced != f->pg.fenced || pg.timeline != f->pg.timeline ||
              pg.lsn != f->pg.lsn || pg.port != f->pg.port ||
              pg.index != f->pg.index || strcmp(pg.host, f->pg.host) != 0));
        f->pg = pg;
        f->has_pg = has_pg;
        if (changed && has_pg && f->pg_cb != NULL)
            f->pg_cb(f->pg_data, &f->pg);
    }
out:
    msgpack_unpacked_destroy(&u);
    return rv;
}
