/* raftfsm.h - adapts the counter state machine (fsm.h) to struct raft_fsm.
 *
 * apply() records the result in the adapter (raft 0.15 hands the result
 * pointer to the apply callback synchronously and never frees it), so no
 * allocation happens per entry. Snapshots use raft_fsm version 3: the op log
 * is serialized on a worker thread, never on the loop. */
#ifndef NFTRAFT_RAFTFSM_H
#define NFTRAFT_RAFTFSM_H

#include <raft.h>

#include "fsm/fsm.h"

#define RAFTFSM_RESULTS 8192 /* > entries raft applies in one loop step */

struct raftfsm {
    struct raft_fsm fsm;      /* pass &rf->fsm to raft */
    struct fsm *state;        /* not owned */
    struct raft *raft;        /* set before raft_start (for the index) */
    /* Results by raft index modulo RAFTFSM_RESULTS: raft 0.22 fires the
     * apply callbacks of a whole batch after applying it, so each entry
     * needs its own result until then (one shared slot gave every callback
     * of a batch the last entry's value and index). */
    struct fsm_result results[RAFTFSM_RESULTS];
    int fatal;                /* ERR_IO once SQLite failed: stop the node */
    struct fsm_snap *snap;    /* the snapshot being taken, if any */
    int snap_rv;              /* its serialization's result (worker) */
};

/* Fill rf for state; raft is set later with raftfsm_bind(). */
void raftfsm_init(struct raftfsm *rf, struct fsm *state);
void raftfsm_bind(struct raftfsm *rf, struct raft *raft);

#endif
