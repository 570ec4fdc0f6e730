/* poll.h - one poll of the membership contract, as an explicit state
 * machine, and the ops table through which the reconciler reaches the
 * chain (struct recon_chain, modelled on raft's struct raft_io: the daemon
 * fills it with chain/membership over JSON-RPC, a unit test with a fake).
 *
 * States of one poll (enum recon_poll_state):
 *   IDLE      nothing in flight; recon_poll_start() leaves it
 *   CHAIN_ID  eth_chainId, only while the view is the cached one (a start
 *             during a chain outage): a different chain is an error
 *   BLOCK     the head block number; the poll pins block = head -
 *             confirmations, and a pinned block below the last good view's
 *             block ends the poll as RECON_POLL_STALE (a lagging or
 *             load-balanced RPC never rolls the view back)
 *   STATE     clusterState() at the pinned block
 *   NODES     activeNodes() (v1: activeMembers()) at the pinned block
 *   VOTE      tokenVotes(own token) at the pinned block; its answer
 *             completes the view
 * Every answer moves to the next state; every error (no answer, a revert, a
 * malformed answer) returns to IDLE and reports the error, and the last
 * good view stays whole (the new one is decoded aside). done() runs once
 * per started poll, after the state is back to IDLE.
 *
 * With a second endpoint (recon_poll_set_second: a second --rpc-url) every
 * state makes its call on both and moves on once both answered: the block
 * is pinned below the lower of the two heads (a lagging endpoint delays the
 * view, it does not fail the poll), both chain ids must match, and the
 * two answers of STATE, NODES and VOTE must be equal (members, their keys,
 * epochs and endpoints, in order; the leader state; the vote), else the
 * poll ends as RECON_POLL_DISAGREE with what differed, counted. */
#ifndef NFTRAFT_RECON_POLL_H
#define NFTRAFT_RECON_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/membership.h"

/* A transaction the reconciler sends. */
enum recon_tx_kind {
    RECON_TX_ELECT,     /* electLeaderByToken(token) */
    RECON_TX_HEARTBEAT, /* leaderHeartbeat() */
    RECON_TX_VOTE,      /* castVoteByToken(token, leader token, against) */
};
struct recon_tx {
    enum recon_tx_kind kind;
    uint64_t token;        /* the sending node's token */
    uint64_t leader_token; /* VOTE: the on-chain leader's token (never its
                            * address: tokens may share an owner, and a vote
                            * naming an address read from an older block
                            * would count against whoever holds it now) */
    bool against;          /* VOTE: true = no confidence, false = clear */
};

typedef void (*recon_u64_cb)(void *arg, int err, uint64_t v,
                             const char *errmsg);
typedef void (*recon_ping_cb)(void *arg, bool healthy);

/* The chain as the reconciler sees it. Every operation returning 0 calls
 * its callback exactly once, later (never from inside the call); one that
 * returns an error never calls it. block is a "0x.." quantity. */
struct recon_chain {
    void *data;
    int (*chain_id)(void *data, recon_u64_cb cb, void *arg);
    int (*block_number)(void *data, recon_u64_cb cb, void *arg);
    int (*read_state)(void *data, const char *block, membership_state_cb cb,
                      void *arg);
    int (*read_nodes)(void *data, const char *block, membership_nodes_cb cb,
                      void *arg);
    int (*read_vote)(void *data, const char *block, uint64_t token,
                     membership_vote_cb cb, void *arg);
    /* Sign and send a transaction; cb when mined or failed. */
    int (*send)(void *data, const struct recon_tx *tx, sender_cb cb, void *arg);
    /* GET http_base + "/status" within the ping timeout: healthy = 200. */
    int (*ping)(void *data, const char *http_base, recon_ping_cb cb, void *arg);
    /* Ask for the next poll soon (after a transaction was mined). */
    void (*poll_soon)(void *data);
    /* Clocks: monotonic milliseconds (rate limits) and wall-clock seconds
     * (compared with the contract's lease expiry). */
    uint64_t (*now_ms)(void *data);
    uint64_t (*wall_s)(void *data);
};

enum recon_poll_state {
    RECON_POLL_IDLE,
    RECON_POLL_CHAIN_ID,
    RECON_POLL_BLOCK,
    RECON_POLL_STATE,
    RECON_POLL_NODES,
    RECON_POLL_VOTE,
};

#define RECON_POLL_STALE 1 /* done(): the head was older than the view */
#define RECON_POLL_DISAGREE                                                    \
    2 /* done(): the two endpoints answered differently (errmsg: what) */

/* result: 0 (view is the new view, borrowed for the call), RECON_POLL_STALE
 * (view NULL, nothing changed), RECON_POLL_DISAGREE (view NULL, errmsg says
 * what differed) or a negative ERR_* with errmsg. */
typedef void (*recon_poll_done)(void *data, int result,
                                const struct membership_view *view,
                                const char *errmsg);

struct recon_poll;
struct recon_poll_end { /* the callbacks' argument: which endpoint */
    struct recon_poll *p;
    unsigned which; /* 0: chain, 1: chain2 */
};

/* Caller-owned; fields are read-only outside poll.c. */
struct recon_poll {
    const struct recon_chain *chain;
    const struct recon_chain *chain2; /* the second endpoint, or NULL */
    enum recon_poll_state state;
    uint64_t token;                /* whose vote is read */
    uint64_t confirmations;        /* blocks below the head */
    uint64_t chain_id;             /* checked in CHAIN_ID */
    bool verify_chain_id;          /* the view is the cached one: check first */
    uint64_t block;                /* the block of the last good view */
    uint64_t head;                 /* the head block last answered (the
                                      lower of the two with chain2) */
    uint64_t stale;                /* polls ended as RECON_POLL_STALE */
    uint64_t calls;                /* chain calls made */
    char tag[24];                  /* the pinned block, "0x.." */
    struct membership_view *next;  /* the view being read */
    struct membership_view *next2; /* chain2's answers, compared with it */
    uint64_t disagreements;        /* polls ended as RECON_POLL_DISAGREE */
    char disagreement[300];        /* what differed the last time */
    struct recon_poll_end ends[2];
    unsigned waiting; /* answers still due in this state */
    int err;          /* the state's first error, reported once all came */
    char errmsg[240];
    uint64_t got[2]; /* BLOCK, CHAIN_ID: each endpoint's number */
    bool closed;
    recon_poll_done done;
    void *data;
};

/* 0 or ERR_NOMEM. */
int recon_poll_init(struct recon_poll *p, const struct recon_chain *chain,
                    uint64_t token, uint64_t confirmations,
                    recon_poll_done done, void *data);
/* Also read every poll from chain2 (outlives p) and adopt a view only when
 * both agree; only while IDLE. 0 or ERR_NOMEM. */
int recon_poll_set_second(struct recon_poll *p,
                          const struct recon_chain *chain2);

/* From now on answers still in flight are dropped (p must stay valid until
 * the chain's callbacks have run, e.g. until its rpc client is closed). */
void recon_poll_close(struct recon_poll *p);

/* Start one poll from IDLE: 0, or ERR_BUSY (a poll is in flight). A call
 * the chain refuses ends the poll at once: done() may run inside this
 * call. */
int recon_poll_start(struct recon_poll *p);

/* Name of a state for logs and tests. */
const char *recon_poll_state_str(enum recon_poll_state s);

#endif
