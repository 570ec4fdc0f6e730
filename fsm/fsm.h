/* fsm.h - the replicated counter's state machine, stored in SQLite.
 *
 * The state (counter value, op log, idempotency table, last applied raft
 * index) lives in one SQLite file in WAL mode. Applies are grouped into
 * batch transactions that update all of it together with last_applied, so
 * a restart never applies an entry twice nor skips one (a crash loses at
 * most the open batch, which raft applies again). The state is bounded:
 * the op log keeps the newest `retention` indexes (fsm_set_retention), and
 * an idempotency key expires key_retention indexes after the entry that
 * applied it (key_retention is carried in each entry, so every replica
 * expires the same keys at the same index). This module knows nothing of libuv,
 * raft or HTTP: core/ wraps it into a struct raft_fsm. A struct fsm is not
 * thread-safe: all functions run on its owner's thread, except
 * fsm_snapshot_write (below). One process at a time: the file's "-lock" sidecar
 * is flock()ed. */
#ifndef NFTRAFT_FSM_H
#define NFTRAFT_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FSM_KEY_MAX 128 /* longest Idempotency-Key, bytes */

struct fsm;

/* One increment as carried in a raft log entry (msgpack, versioned). */
struct fsm_cmd {
    int64_t by;                /* >= 1 */
    uint64_t node;             /* proposing node id (= token id) */
    uint64_t term;             /* raft term at proposal (= the entry's term) */
    int64_t time_ms;           /* proposer's wall clock, ms since the epoch */
    char key[FSM_KEY_MAX + 1]; /* Idempotency-Key; "" when none */
    uint64_t key_retention;    /* keys live this many indexes; 0 = forever */
};

/* What applying (or looking up) an increment produced. */
struct fsm_result {
    int status;     /* 0, or ERR_OVERFLOW: rejected at apply, nothing changed */
    int64_t value;  /* counter value right after this increment */
    uint64_t index; /* raft index the increment was applied at */
    bool duplicate; /* the key was applied before: value/index are the first */
    uint64_t entry; /* raft index of the entry whose apply gave this result */
};

/* One row of the op log, as GET /log shows it. */
struct fsm_entry {
    uint64_t index, term;
    int64_t by, value;
    uint64_t node;
    int64_t time_ms;
};

/* Open (creating if absent) the state file at path. Fails with ERR_CORRUPT
 * (file is not a database or fails its checks), ERR_VERSION (schema written
 * by a newer release), ERR_BUSY (another process holds it) or ERR_IO; the
 * message, naming the file, is written to errmsg. Never resets a bad file.
 * On success *out is owned by the caller; release with fsm_close(). */
int fsm_open(struct fsm **out, const char *path, char *errmsg, size_t errlen);
void fsm_close(struct fsm *f);

/* The message of the last failure on f. */
const char *fsm_errmsg(const struct fsm *f);

/* Encode cmd into buf (cap bytes); *len gets the size used. ERR_TOOBIG when
 * cap is short, ERR_INVALID for by < 1 or an over-long key.
 * FSM_CMD_MAX is always enough. */
#define FSM_CMD_MAX 256
int fsm_cmd_encode(const struct fsm_cmd *cmd, void *buf, size_t cap,
                   size_t *len);

/* Decode and validate an increment entry; ERR_MALFORMED or ERR_VERSION on
 * bad bytes (ERR_VERSION too for an entry of another type: fsm_pg_decode).
 * Up to 7 trailing zero bytes are accepted (raft entries are padded to a
 * multiple of 8 bytes); anything else after the entry is malformed. */
int fsm_cmd_decode(const void *buf, size_t len, struct fsm_cmd *out);

/* The PostgreSQL promotion record (entry type "pg", pg-design.md): which
 * raft server's PostgreSQL is the primary as of a raft term. primary 0 is
 * the fence record: nobody is primary, every standby detaches. The FSM
 * keeps the newest record (highest term; within a term the later entry);
 * an older-term record is applied as a no-op. */
#define FSM_PG_HOST_MAX 63
struct fsm_pg {
    uint64_t term;     /* raft term of the leader that appended it, >= 1 */
    uint64_t primary;  /* raft id of the primary; 0 = none (fence) */
    uint64_t fenced;   /* fence record: the primary it fences (its raft
                          id, 0 unknown); 0 in a primary's record */
    uint32_t timeline; /* the primary's timeline (fence: the old one) */
    uint64_t lsn;      /* switch LSN: the WAL position at the promotion
                          (fence: the old record's) */
    char host[FSM_PG_HOST_MAX + 1]; /* the primary's PostgreSQL address; ""
                                       in a fence record */
    int port;                       /* 1..65535; 0 in a fence record */
    uint64_t index;                 /* raft index it applied at (read side
                                       only; not encoded) */
};

/* Encode/decode a pg entry, same rules as fsm_cmd_*: a valid record has
 * term >= 1; primary != 0 needs timeline >= 1, a host (no NUL, at most
 * FSM_PG_HOST_MAX bytes), a port and fenced 0; primary 0 has host "" and
 * port 0.
 * FSM_CMD_MAX is always enough. */
int fsm_pg_encode(const struct fsm_pg *rec, void *buf, size_t cap, size_t *len);
int fsm_pg_decode(const void *buf, size_t len, struct fsm_pg *out);

/* The newest applied record: 0, or ERR_NOTFOUND when none ever applied. */
int fsm_pg_record(const struct fsm *f, struct fsm_pg *out);

/* cb(data, rec) after a pg entry (or a restored snapshot) changed the
 * stored record, on the applying thread, inside raft's apply: the callee
 * must not call into raft from it (defer). NULL removes it. */
typedef void (*fsm_pg_cb)(void *data, const struct fsm_pg *rec);
void fsm_on_pg(struct fsm *f, fsm_pg_cb cb, void *data);

/* Apply the entry at raft index `index`, in the open batch transaction
 * (opened if none; committed by fsm_flush or after BATCH_MAX applies).
 * First, if the entry carries key_retention K > 0, keys applied at an
 * index <= index - K are forgotten (a retry with such a key applies again).
 * - index <= last applied: nothing changes; *out is the stored result of that
 *   index (duplicate=false) so a replay after restart is harmless.
 * - a key already applied: nothing but last_applied changes; *out is the
 *   first result with duplicate=true.
 * - value + by overflows int64: nothing but last_applied changes;
 *   out->status = ERR_OVERFLOW.
 * - a pg entry (fsm_pg_decode): stored if its term is >= the stored one's,
 *   then fsm_on_pg's callback runs; *out has value = the counter's value.
 * - bytes that do not decode: last_applied advances, returns ERR_MALFORMED
 *   (every replica skips the entry the same way).
 * Returns 0 in all these cases except the last; ERR_IO when SQLite cannot
 * write (state unchanged; the caller must stop the node). */
int fsm_apply(struct fsm *f, uint64_t index, const void *buf, size_t len,
              struct fsm_result *out);

/* Commit the open batch, if any (cheap when none). ERR_IO: the batch was
 * rolled back; the in-memory state is then ahead of the file and the
 * caller must stop the node (raft applies the entries again on restart).
 * Snapshots, restores and fsm_close flush first by themselves. */
int fsm_flush(struct fsm *f);

/* Keep only the op-log rows of the newest `rows` indexes (rows with
 * index <= last applied - rows are deleted as entries apply); 0 keeps
 * everything. A local setting: it does not change any result. */
void fsm_set_retention(struct fsm *f, uint64_t rows);

/* The smallest index in the op log, or 0 when it is empty. */
uint64_t fsm_log_first(struct fsm *f);

/* The first result for key; ERR_NOTFOUND when the key was never applied. */
int fsm_lookup(struct fsm *f, const char *key, struct fsm_result *out);

int64_t fsm_value(const struct fsm *f);
uint64_t fsm_last_applied(const struct fsm *f);
uint64_t fsm_count(const struct fsm *f); /* rows in the op log */

/* Up to `limit` op-log rows with index >= from, ascending, into out[].
 * *n gets the count; *next the index to ask for next (last index + 1, or
 * `from` when none). */
int fsm_log(struct fsm *f, uint64_t from, unsigned limit, struct fsm_entry *out,
            unsigned *n, uint64_t *next);

/* Snapshots: the whole state (value, last_applied, op log, idempotency
 * table, pg record; version 2 when there is a record, else version 1, which
 * the previous release reads; both are read) as one
 * versioned msgpack buffer, malloc'd (the caller frees it). The work is split
 * so that the part that grows with the op log can run on another thread while
 * the owner keeps applying:
 * - fsm_snapshot_begin (owner's thread, cheap) pins a read view of the state
 *   as of now on a second SQLite connection. ERR_BUSY while one is pending.
 * - fsm_snapshot_write (any one thread, once; the owner may call fsm_apply
 *   meanwhile) serializes that view; on failure fsm_snapshot_errmsg says why.
 * - fsm_snapshot_end (owner's thread) releases it; always call it.
 * fsm_snapshot does all three on the caller's thread. */
struct fsm_snap;
int fsm_snapshot_begin(struct fsm *f, struct fsm_snap **out);
int fsm_snapshot_write(struct fsm_snap *s, void **buf, size_t *len);
const char *fsm_snapshot_errmsg(const struct fsm_snap *s);
void fsm_snapshot_stats(const struct fsm_snap *s, uint64_t *last_applied,
                        uint64_t *rows, uint64_t *keys, double *write_ms);
void fsm_snapshot_end(struct fsm *f, struct fsm_snap *s);
int fsm_snapshot(struct fsm *f, void **buf, size_t *len);

/* Replace the state with a snapshot's, atomically, if its last_applied is
 * greater than ours (otherwise a no-op returning 0). The buffer is fully
 * validated before anything is written: ERR_MALFORMED/ERR_VERSION leave the
 * state as it was. Does not take ownership of buf. */
int fsm_restore(struct fsm *f, const void *buf, size_t len);

#endif
