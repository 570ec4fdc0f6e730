/* raftfsm.h - adapts the counter state machine (fsm.h) to struct raft_fsm.
 *
 * apply() records each result in a ring slot keyed by the entry's index and
 * hands raft a pointer to it; raft 0.22 fires apply callbacks later, after
 * the whole committed batch is applied, so a single shared result would be
 * overwritten. No allocation happens per entry, and followers (whose results
 * nobody reads) free nothing. A slot is reused RAFTFSM_RESULTS entries later;
 * a reader checks `at` against its own entry's index (core/node.c does). */
#ifndef NFTRAFT_RAFTFSM_H
#define NFTRAFT_RAFTFSM_H

#include <raft.h>

#include "fsm/fsm.h"

#define RAFTFSM_RESULTS 4096

/* One apply's result. `at` comes first: node.c reads it to check the slot
 * still holds its entry's result. */
struct raftfsm_result {
    uint64_t at;           /* raft index of the entry this slot holds */
    struct fsm_result res;
};

struct raftfsm {
    struct raft_fsm fsm;      /* pass &rf->fsm to raft */
    struct fsm *state;        /* not owned */
    struct raft *raft;        /* set before raft_start (for the index) */
    struct raftfsm_result results[RAFTFSM_RESULTS]; /* by index % size */
    int fatal;                /* ERR_IO once SQLite failed: stop the node */
    struct fsm_snap *snap;    /* the snapshot being taken, if any */
    int snap_rv;              /* its serialization's result (worker) */
};

/* Fill rf for state; raft is set later with raftfsm_bind(). */
void raftfsm_init(struct raftfsm *rf, struct fsm *state);
void raftfsm_bind(struct raftfsm *rf, struct raft *raft);

#endif
