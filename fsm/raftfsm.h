/* raftfsm.h - adapts the counter state machine (fsm.h) to struct raft_fsm.
 *
 * apply() records each result in the adapter, in a ring slot chosen by the
 * entry's raft index, so no allocation happens per entry. raft 0.22 fires
 * apply callbacks later than apply() runs (a whole batch of entries may be
 * applied first), so a result pointer stays valid until RAFTFSM_RESULTS more
 * entries are applied: a callback must check that result->entry is its own
 * request's index and otherwise treat the outcome as unknown.
 * Snapshots use raft_fsm version 3: the op log is serialized on a worker
 * thread, never on the loop. */
#ifndef NFTRAFT_RAFTFSM_H
#define NFTRAFT_RAFTFSM_H

#include <raft.h>

#include "fsm/fsm.h"

#define RAFTFSM_RESULTS 4096 /* apply results kept for the callbacks */

struct raftfsm {
    struct raft_fsm fsm;      /* pass &rf->fsm to raft */
    struct fsm *state;        /* not owned */
    struct raft *raft;        /* set before raft_start (for the index) */
    struct fsm_result results[RAFTFSM_RESULTS]; /* by raft index */
    int fatal;                /* ERR_IO once SQLite failed: stop the node */
    struct fsm_snap *snap;    /* the snapshot being taken, if any */
    int snap_rv;              /* its serialization's result (worker) */
};

/* Fill rf for state; raft is set later with raftfsm_bind(). */
void raftfsm_init(struct raftfsm *rf, struct fsm *state);
void raftfsm_bind(struct raftfsm *rf, struct raft *raft);

#endif
