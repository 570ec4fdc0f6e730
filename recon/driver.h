/* driver.h - the reconciler's driver: each round it polls the contract
 * (recon/poll), turns the view and raft's configuration into a
 * recon_decide() input, and carries out the decisions: raft membership
 * changes and leadership transfer (one in flight, CHANGE_GAP apart, a
 * removal at most every SHRINK_GAP, a failing transfer backing off), and
 * transactions (one in flight): electLeaderByToken, leaderHeartbeat,
 * no-confidence votes. It also pings the on-chain leader's /status.
 *
 * It reaches the chain only through struct recon_chain (poll.h) and raft
 * only through struct recon_raft (below), so a test drives whole rounds
 * with fakes; recon/chainsync fills both with the real chain client, node
 * and transport. Single-threaded: every call and callback on one loop. */
#ifndef NFTRAFT_RECON_DRIVER_H
#define NFTRAFT_RECON_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "recon/decide.h"
#include "recon/poll.h"

typedef void (*recon_change_cb)(void *arg, int status);
typedef void (*recon_discover_cb)(void *arg, int result, const char *msg);

/* Raft as the reconciler sees it. The four changes call cb exactly once
 * when they return 0 (later, not inside the call), never otherwise. */
struct recon_raft {
    void *data;
    /* I am raft leader and ready. */
    bool (*is_leader)(void *data);
    /* Raft's configuration into out (at most cap), live filled in: heard
     * from within two election timeouts (the node itself always). */
    unsigned (*servers)(void *data, struct recon_server *out, unsigned cap);
    int (*add)(void *data, uint64_t id, const char *address, recon_change_cb cb,
               void *arg);
    int (*promote)(void *data, uint64_t id, recon_change_cb cb, void *arg);
    int (*remove)(void *data, uint64_t id, recon_change_cb cb, void *arg);
    int (*transfer)(void *data, uint64_t id, recon_change_cb cb, void *arg);
    /* After every good poll (changed: the member list differs from the
     * previous one): re-authorize raft connections, publish addresses,
     * save the view. May be NULL. */
    void (*view_read)(void *data, bool changed);
    /* This instance is now registered as another raft id (new_id: its
     * token re-registered in a new epoch) and is not raft leader: it cannot
     * change its raft id in process, the host restarts it. May be NULL. */
    void (*self_moved)(void *data, uint64_t new_id);
};

/* Chain mode's raft id of a registration: token << 32 | epoch (a new
 * registration of a token is a new raft server; v1 contracts: epoch 0). */
uint64_t recon_raft_id(uint64_t token, uint32_t epoch);

/* One active member as the driver keeps it. */
struct recon_member {
    uint64_t token;
    uint8_t instance[32];
    uint8_t owner[20];
    uint8_t key[20];  /* the node key that speaks for the token (v1: owner) */
    uint32_t epoch;   /* the registration's epoch (v1: 0) */
    uint64_t raft_id; /* recon_raft_id(token, epoch) */
    struct config_peer addr; /* on-chain endpoints when raft's transport
                                can use them (raft "" otherwise) */
    /* Missing from the latest answer but kept (still authorized, still a
     * member for raft) until a poll at a block newer than gone_block, the
     * first block it was missing at, confirms it is gone: one lying or
     * flaky answer does not de-authorize or remove anyone. */
    bool leaving;
    uint64_t gone_block;
};

/* The view: the latest answer's members, then those kept until confirmed
 * gone (at most as many again). */
#define RECON_MAX_MEMBERS (2 * MEMBERSHIP_MAX_NODES)

#define RECON_CHANGE_GAP_MS 1000
#define RECON_SHRINK_GAP_MS                                                    \
    10000 /* between two removals: a lying RPC                                 \
             cannot shrink the cluster one voter a                             \
             second */
#define RECON_TRANSFER_BACKOFF_MAX_MS 60000
/* An addition or promotion of a registered server that is not up yet is
 * retried at most this far apart: its start must not wait a minute. */
#define RECON_GROW_BACKOFF_MAX_MS 8000
#define RECON_RETRY_MIN_MS 2000
#define RECON_TX_GAP_MS 300

/* Caller-owned; fields are read-only outside driver.c. */
struct recon_driver {
    const struct config *cfg; /* instance id, contract, timeouts */
    const struct recon_chain *chain;
    const struct recon_raft *raft;
    struct recon_poll poll;
    uint64_t self;        /* my token id */
    uint64_t self_id;     /* my raft id (recon_raft_id of my registration) */
    uint8_t instance[32]; /* cfg->instance_id as the contract stores it */
    uint64_t moved_to;    /* my instance's new raft id once seen (0: none) */
    bool stopping;
    /* the view */
    struct recon_member members[RECON_MAX_MEMBERS];
    unsigned n_members; /* leaving ones included */
    struct membership_state state;
    bool my_vote_against; /* my live no-confidence vote this term */
    bool connected;       /* the last poll succeeded */
    char error[256];      /* why the chain is unavailable ("" if it is;
                             the owner may seed it before the start) */
    /* the on-chain leader's health: -1 unknown, 0 failing, 1 healthy */
    int health;
    uint64_t health_of; /* the token `health` is about */
    uint64_t ping_target;
    bool ping_busy;
    /* actions in flight and their pacing */
    bool tx_busy, change_busy;
    uint64_t last_change_ms, last_tx_ms, last_remove_ms;
    uint64_t change_target; /* the change in flight (or the last one) */
    enum recon_kind last_change_kind;
    /* back-off, exponential from RECON_RETRY_MIN_MS: a transfer that
     * failed, to the same target (to RECON_TRANSFER_BACKOFF_MAX_MS); an
     * addition or promotion that failed, of the same server (kind and id)
     * while it is not live (to RECON_GROW_BACKOFF_MAX_MS) */
    uint64_t transfer_target, transfer_wait_ms, last_transfer_ms;
    uint64_t grow_target, grow_wait_ms, last_grow_ms;
    enum recon_kind grow_kind;
    uint64_t calls;                /* transactions' chain calls (5 each; the
                                      poll's are counted in poll.calls) */
    char refusal[300];             /* why writes are refused ("" when served) */
    uint64_t disagree_streak;      /* polls in a row the two RPC endpoints
                                      disagreed (poll.disagreements: in all) */
    recon_discover_cb discover_cb; /* discovery in progress (NULL: none) */
    void *discover_arg;
};

/* 0 or ERR_NOMEM. cfg, chain and raft outlive the driver. */
int recon_driver_init(struct recon_driver *d, const struct config *cfg,
                      const struct recon_chain *chain,
                      const struct recon_raft *raft);
void recon_driver_close(struct recon_driver *d);

/* Make nodes[0..n) the member view (discovery, the cached view): endpoints
 * that raft's transport cannot use are dropped. true when it changed. */
bool recon_driver_adopt(struct recon_driver *d,
                        const struct membership_node *nodes, size_t n);

/* A poll's answer nodes[0..n) read at `block` into the view: new members,
 * members back and changed members apply at once; a member (raft id) the
 * answer lacks is kept as leaving, and dropped only once an answer from a
 * block newer than the first one that lacked it still lacks it (a repeat
 * at the same block confirms nothing). true when the view changed. */
bool recon_driver_update(struct recon_driver *d,
                         const struct membership_node *nodes, size_t n,
                         uint64_t block);

/* This instance's token in the view (a leaving registration only when
 * there is no other), or 0 when it is not a member. */
uint64_t recon_driver_find(const struct recon_driver *d,
                           const uint8_t instance[32]);

/* The member whose raft id is id, or NULL. */
const struct recon_member *recon_driver_member(const struct recon_driver *d,
                                               uint64_t id);

/* The raft transport's check of a peer claiming raft id `id` = token << 32
 * | epoch and signing with key: 0 when token is active in the view,
 * registered in exactly that epoch (a stale epoch is an old server), and
 * key is its node key (key NULL: the id alone, for a dial); else
 * ERR_DENIED with why. */
int recon_driver_authorize(const struct recon_driver *d, uint64_t id,
                           const uint8_t key[20], char *why, size_t len);

/* Discovery, before recon_driver_start(): one poll exactly as the rounds
 * make (the block head - confirmations pinned for every read, both
 * endpoints when there are two, which must agree; eth_chainId checked to
 * be chain_id on each) whose view is adopted whole. cb(arg, result, msg)
 * once, later: 0 (the view is the members', d->poll.block its block and
 * the floor of every later poll), RECON_POLL_DISAGREE (msg: what differed)
 * or a negative ERR_* (msg). 0 or ERR_BUSY. */
int recon_driver_discover(struct recon_driver *d, uint64_t chain_id,
                          recon_discover_cb cb, void *arg);

/* Start acting as token `self`, raft id self_id (its registration in the
 * current view). block: the block the current view was read at (no later
 * poll adopts a view from a lower block); chain_id: when verify, the first poll
 * checks the chain is still this one (the view came from the cache). */
void recon_driver_start(struct recon_driver *d, uint64_t self, uint64_t block,
                        uint64_t chain_id, bool verify);

/* One round: start a poll (when none is in flight; a good poll decides and
 * acts) and ping the on-chain leader. */
void recon_driver_tick(struct recon_driver *d);

/* Where raft id `id`'s node is: its on-chain endpoints, else the --peers
 * entry of its token (id >> 32); NULL when neither is known. Valid until
 * the next view. */
const struct config_peer *recon_driver_peer(const struct recon_driver *d,
                                            uint64_t id);

/* From now on callbacks still in flight change nothing. */
void recon_driver_stop(struct recon_driver *d);

#endif
