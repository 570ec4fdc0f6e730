/* raftfsm.c - struct raft_fsm callbacks over the SQLite counter FSM. */
#include "fsm/raftfsm.h"
#include "core/err.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static int rf_apply(struct raft_fsm *f, const struct raft_buffer *buf,
                    void **result)
{
    struct raftfsm *rf = f->data;
    /* raft advances last_applied right after apply returns. */
    uint64_t index = raft_last_applied(rf->raft) + 1;
    struct fsm_result *res = &rf->ring[index % RAFTFSM_RING];
    int rv = fsm_apply(rf->state, index, buf->base, buf->len, res);
    *result = res;
    if (rv == ERR_MALFORMED) {
        /* Every replica skips the same bytes the same way. */
        LOGW("fsm", "skipped malformed entry index=%llu len=%zu",
             (unsigned long long)index, buf->len);
        res->status = ERR_MALFORMED;
        return 0;
    }
    if (rv != 0) {
        LOGE("fsm", "apply index=%llu failed: %s", (unsigned long long)index,
             fsm_errmsg(rf->state));
        rf->fatal = rv;
        return RAFT_IOERR;
    }
    return 0;
}

/* raft_fsm version 3: snapshot() pins a read view; snapshot_async()
 * serializes it; snapshot_finalize() frees the buffer and releases the
 * view. raft 0.22.1's legacy layer (src/legacy.c takeSnapshot) calls
 * snapshot_async() right after snapshot(), on the loop thread, not on a
 * worker: the serialization of the retained window blocks the loop for
 * its duration (bounded by --log-retention; "snapshot taken ... ms" in the
 * log says how long). The code keeps to what a worker thread may do (no
 * logging in snapshot_async: finalize reports) so that moving it off the
 * loop stays a raft-side change. */
static int rf_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[],
                       unsigned *n_bufs)
{
    struct raftfsm *rf = f->data;
    int rv = fsm_snapshot_begin(rf->state, &rf->snap);
    if (rv != 0) {
        if (rv == ERR_BUSY)
            return RAFT_BUSY; /* raft retries at the next threshold */
        LOGE("fsm", "snapshot failed: %s", fsm_errmsg(rf->state));
        return RAFT_IOERR;
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int rf_snapshot_async(struct raft_fsm *f, struct raft_buffer *bufs[],
                             unsigned *n_bufs)
{
    struct raftfsm *rf = f->data;
    struct raft_buffer *b = malloc(sizeof *b);
    if (b == NULL) {
        rf->snap_rv = ERR_NOMEM;
        return RAFT_NOMEM;
    }
    void *data;
    size_t len;
    rf->snap_rv = fsm_snapshot_write(rf->snap, &data, &len);
    if (rf->snap_rv != 0) {
        free(b);
        return rf->snap_rv == ERR_NOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    b->base = data;
    b->len = len;
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int rf_snapshot_finalize(struct raft_fsm *f, struct raft_buffer *bufs[],
                                unsigned *n_bufs)
{
    struct raftfsm *rf = f->data;
    size_t bytes = 0;
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            bytes += (*bufs)[i].len;
            free((*bufs)[i].base);
        }
        free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    if (rf->snap == NULL)
        return 0;
    uint64_t last, rows, keys;
    double ms;
    fsm_snapshot_stats(rf->snap, &last, &rows, &keys, &ms);
    if (rf->snap_rv != 0)
        LOGE("fsm", "snapshot failed: %s", fsm_snapshot_errmsg(rf->snap));
    else if (bytes > 0)
        LOGI("fsm",
             "snapshot taken last_applied=%llu bytes=%zu rows=%llu "
             "keys=%llu write_ms=%.1f",
             (unsigned long long)last, bytes, (unsigned long long)rows,
             (unsigned long long)keys, ms);
    fsm_snapshot_end(rf->state, rf->snap);
    rf->snap = NULL;
    rf->snap_rv = 0;
    return 0;
}

static int rf_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    struct raftfsm *rf = f->data;
    uint64_t before = fsm_last_applied(rf->state);
    int rv = fsm_restore(rf->state, buf->base, buf->len);
    if (rv != 0) { /* ownership stays with raft on failure */
        LOGE("fsm", "restore failed: %s", fsm_errmsg(rf->state));
        return rv == ERR_IO ? RAFT_IOERR : RAFT_MALFORMED;
    }
    raft_free(buf->base); /* on success restore owns the buffer */
    LOGI("fsm", "snapshot restored last_applied %llu -> %llu value=%lld",
         (unsigned long long)before,
         (unsigned long long)fsm_last_applied(rf->state),
         (long long)fsm_value(rf->state));
    return 0;
}

void raftfsm_init(struct raftfsm *rf, struct fsm *state)
{
    memset(rf, 0, sizeof *rf);
    rf->state = state;
    rf->fsm.version = 3;
    rf->fsm.data = rf;
    rf->fsm.apply = rf_apply;
    rf->fsm.snapshot = rf_snapshot;
    rf->fsm.restore = rf_restore;
    rf->fsm.snapshot_finalize = rf_snapshot_finalize;
    rf->fsm.snapshot_async = rf_snapshot_async;
}

void raftfsm_flush(struct raftfsm *rf)
{
    if (rf->fatal != 0 || rf->state == NULL)
        return;
    int rv = fsm_flush(rf->state);
    if (rv != 0) {
        LOGE("fsm", "commit failed: %s", fsm_errmsg(rf->state));
        rf->fatal = rv;
    }
}

static void flush_cb(uv_check_t *h)
{
    raftfsm_flush(h->data);
}

void raftfsm_bind(struct raftfsm *rf, struct raft *raft, uv_loop_t *loop)
{
    rf->raft = raft;
    if (loop == NULL)
        return;
    uv_check_init(loop, &rf->flush);
    rf->flush.data = rf;
    uv_check_start(&rf->flush, flush_cb);
    uv_unref((uv_handle_t *)&rf->flush);
    rf->flush_started = true;
}

void raftfsm_close(struct raftfsm *rf)
{
    if (!rf->flush_started)
        return;
    rf->flush_started = false;
    uv_close((uv_handle_t *)&rf->flush, NULL);
}
