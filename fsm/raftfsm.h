/* raftfsm.h - adapts the counter state machine (fsm.h) to struct raft_fsm.
 *
 * apply() records each result in a ring of RAFTFSM_RING slots indexed by
 * raft index, so no allocation happens per entry: raft 0.22 applies a
 * whole batch of committed entries before it fires their callbacks, so a
 * single slot would hand every callback of the batch the last result. The
 * consumer checks result->entry against its request's index (a slot is
 * reused only after RAFTFSM_RING more applies in one batch). A uv_check
 * handle commits the FSM's batch transaction once per loop iteration.
 * Snapshots use raft_fsm version 3 (raft 0.22's legacy path runs both
 * halves on the loop; their cost is bounded by the retained window). */
#ifndef NFTRAFT_RAFTFSM_H
#define NFTRAFT_RAFTFSM_H

#include <raft.h>
#include <uv.h>

#include "fsm/fsm.h"

#define RAFTFSM_RING 4096

struct raftfsm {
    struct raft_fsm fsm; /* pass &rf->fsm to raft */
    struct fsm *state;   /* not owned */
    struct raft *raft;   /* set before raft_start (for the index) */
    struct fsm_result ring[RAFTFSM_RING]; /* results, by index % RING */
    uv_check_t flush; /* commits the batch each loop iteration */
    bool flush_started;
    int fatal;             /* ERR_IO once SQLite failed: stop the node */
    struct fsm_snap *snap; /* the snapshot being taken, if any */
    int snap_rv;           /* its serialization's result (worker) */
};

/* Fill rf for state; raft is set later with raftfsm_bind(), which also
 * starts the per-iteration flush on loop (rf->state must be set by then;
 * loop NULL: no handle, the caller calls raftfsm_flush() itself, as the
 * simulation does after each step). raftfsm_close() stops it (call before
 * closing the loop; safe if never bound). */
void raftfsm_init(struct raftfsm *rf, struct fsm *state);
void raftfsm_bind(struct raftfsm *rf, struct raft *raft, uv_loop_t *loop);
void raftfsm_close(struct raftfsm *rf);

/* Commit the FSM's open batch of applies (what the loop does once per
 * iteration); a failure marks rf fatal and is logged. */
void raftfsm_flush(struct raftfsm *rf);

#endif
