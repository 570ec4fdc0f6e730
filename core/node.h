/* node.h - a raft node's lifecycle on one libuv loop (raft 0.22).
 *
 * Owns the raft instance, its uv I/O backend and the data-dir lock; knows
 * nothing of what entries mean (the FSM is passed in). Every raft call of the
 * project goes through this module. All calls run on the loop thread. */
#ifndef NFTRAFT_NODE_H
#define NFTRAFT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct config;
struct raft_fsm;
struct raft_uv_transport;
struct node;

enum node_role {
    NODE_UNAVAILABLE = 0,
    NODE_FOLLOWER = 1,
    NODE_CANDIDATE = 2,
    NODE_LEADER = 3
};

struct node_status {
    enum node_role role;
    bool ready; /* leader whose first barrier of this term applied */
    uint64_t id, term, commit_index, applied_index;
    uint64_t leader_id; /* 0 when unknown */
    uint64_t elections; /* times this node became leader */
};

/* A server's part in the raft configuration (raft's RAFT_STANDBY,
 * RAFT_VOTER and RAFT_SPARE; node.c maps between them). */
enum node_member { NODE_STANDBY, NODE_VOTER, NODE_SPARE };

struct node_server {
    uint64_t id;
    char address[64];
    enum node_member role;
    bool caught_up; /* leader only: its log matches the leader's to within
                       NODE_CATCH_UP_SLACK entries (self: always) */
};

#define NODE_CATCH_UP_SLACK 64

/* Open the data dir (taking its lock: ERR_BUSY if another process holds
 * it), initialize raft with fsm and transport, apply the timeouts from cfg.
 * fsm and transport must outlive the node. On error errmsg says what failed
 * and nothing is left allocated. */
int node_init(struct node **out, uv_loop_t *loop, const struct config *cfg,
              struct raft_fsm *fsm, struct raft_uv_transport *transport,
              char *errmsg, size_t errlen);

/* Bootstrap with servers[] if the data dir is pristine (a no-op otherwise:
 * a restart never re-bootstraps), then start raft. A corrupt log or
 * snapshot fails here with a message naming the file. */
int node_start(struct node *n, const struct node_server *servers,
               unsigned n_servers, char *errmsg, size_t errlen);

void node_status(struct node *n, struct node_status *st);

/* The raft instance (for the FSM adapter, which reads last_applied). */
struct raft *node_raft(struct node *n);

/* Current configuration: up to cap servers into out[]; returns the count. */
unsigned node_servers(struct node *n, struct node_server *out, unsigned cap);

/* "standby", "voter" or "spare" ("?" for a value outside the enum). */
const char *node_member_name(enum node_member m);

/* Called after each role or term change (may be NULL). */
void node_on_change(struct node *n, void (*cb)(void *data), void *data);

/* Propose bytes as one command entry (copied, zero-padded to a multiple of
 * 8 bytes as raft's segment loader needs, 0.15 and 0.22.1). cb(data, status,
 * index, result): status 0 with the entry's raft index and the FSM's result
 * pointer (valid only during the callback, and only for this entry if the FSM
 * says so: raft 0.22 may apply a batch before firing its callbacks);
 * ERR_UNKNOWN when leadership was lost after the entry was appended (it may
 * still commit); ERR_SHUTDOWN when the node closes; ERR_NOTLEADER (or
 * ERR_NOMEM) when raft refused the loop iteration's commands as a whole (the
 * entry was not appended). The commands proposed during one loop iteration
 * reach raft together after its I/O phase, in proposal order, so the
 * callback never fires inside this call. Returns ERR_NOTLEADER or ERR_BUSY
 * (leader not ready yet) and then the callback never fires. */
/* The raft library's version as "MAJOR.MINOR.RELEASE", read from the
 * linked library (static storage). */
const char *node_raft_version(void);

typedef void (*node_apply_cb)(void *data, int status, uint64_t index,
                              void *result);
int node_apply(struct node *n, const void *bytes, size_t len, node_apply_cb cb,
               void *data);

/* Append a barrier; cb(data, status) once everything before it is applied.
 * Same error rules as node_apply. */
typedef void (*node_barrier_cb)(void *data, int status);
int node_barrier(struct node *n, node_barrier_cb cb, void *data);

/* Membership changes (leader only): add as voter (raft_add + raft_assign),
 * remove, or hand leadership to id. cb(data, status). ERR_BUSY: another
 * configuration change is in progress (raft's RAFT_CANTCHANGE); a change
 * raft refuses is logged with raft's own error. */
int node_add_voter(struct node *n, uint64_t id, const char *address,
                   node_barrier_cb cb, void *data);
int node_remove(struct node *n, uint64_t id, node_barrier_cb cb, void *data);
/* Make an existing non-voter a voter (raft_assign; raft catches it up
 * first and fails the change if it cannot). */
int node_promote(struct node *n, uint64_t id, node_barrier_cb cb, void *data);
int node_transfer(struct node *n, uint64_t id, node_barrier_cb cb, void *data);

/* Close raft (pending requests fail with ERR_SHUTDOWN; raft also closes its
 * uv I/O backend and the transport's handles), release the lock and free
 * the node; cb runs last, after which the caller may free the transport.
 * Never call it from inside an apply callback. */
void node_close(struct node *n, void (*cb)(void *data), void *data);

#endif
