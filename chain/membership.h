/* membership.h - the typed binding of the membership contract
 * (contracts/src/DstackMembershipNFT.sol): instance ids, the strict
 * decoding of its views, and one function per contract call the project
 * makes. Every ABI signature of the contract is spelled in membership.c,
 * nowhere else.
 *
 * Reads go through chain/rpc (eth_call at a block), transactions through
 * chain/sender (one wallet, one at a time); both run on the caller's libuv
 * loop. A function that returns an error never calls its callback; one
 * that returns 0 calls it exactly once (ERR_SHUTDOWN when the rpc client or
 * the sender is closed first). Every answer is untrusted: a malformed one
 * is ERR_MALFORMED and nothing is decoded partially. */
#ifndef NFTRAFT_MEMBERSHIP_H
#define NFTRAFT_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/sender.h"

struct rpc;

#define MEMBERSHIP_MAX_NODES 256    /* the contract's MAX_SUPPLY_LIMIT */
#define MEMBERSHIP_MAX_ENDPOINT 256 /* endpoint bytes the contract allows */

/* An instance id as the contract stores it: "0x" + up to 32 bytes of hex
 * (right-padded), or a name of at most 32 bytes (UTF-8, right-padded, as
 * Solidity's bytes32("node1")). ERR_INVALID otherwise. */
int membership_instance_id(const char *s, uint8_t out[32]);

/* An instance id for people: the name when the bytes are a printable
 * ASCII name (no space, not starting with "0x") right-padded with zeros, as
 * membership_instance_id() encodes names ("node1"); otherwise "0x" + 64 hex
 * digits. Both forms read back with membership_instance_id(). */
void membership_instance_text(const uint8_t id[32], char out[67]);

/* One active member. From the v2 view activeNodes(); from the v1 view
 * activeMembers() node_key is the owner, epoch 0 and endpoints empty. */
struct membership_node {
    uint64_t token;
    uint8_t instance[32];
    uint8_t owner[20];
    uint8_t node_key[20];
    uint32_t epoch;
    char raft[MEMBERSHIP_MAX_ENDPOINT + 1]; /* "" when not registered */
    char http[MEMBERSHIP_MAX_ENDPOINT + 1];
};

/* clusterState(): the leader state the nodes poll, in one call. */
struct membership_state {
    uint8_t leader[20];    /* currentLeader (zero: none) */
    uint64_t leader_token; /* its token id (0: none) */
    uint64_t term;         /* leadershipTerm */
    uint64_t expiry;       /* leadershipExpiry: a block timestamp (seconds) */
    uint64_t against;      /* votes against the leader this term */
    uint64_t required;     /* votes that replace it */
    uint64_t active;       /* totalActiveNodes */
    uint64_t period;       /* heartbeatPeriod, seconds */
};

/* tokenVotes(token): a token's live vote. */
struct membership_vote {
    uint8_t target[20];
    uint64_t term;
    bool against; /* isNoConfidence */
};

/* Everything a node reads in one poll, all at one block. */
struct membership_view {
    uint64_t block;
    size_t n_nodes;
    struct membership_node nodes[MEMBERSHIP_MAX_NODES];
    struct membership_state state;
    struct membership_vote vote; /* the polling node's own token */
};

/* ---- pure decoders (d[0..len) untrusted) ---- */

/* activeNodes(): an array of (uint256 tokenId, bytes32 instanceId, address
 * owner, address nodeKey, uint32 epoch, string raftEndpoint, string
 * httpEndpoint). At most cap entries into out, *n set. 0, ERR_MALFORMED
 * (bad offsets, lengths, padding, an epoch above 2^32-1, a
 * token 0 or above 2^32-1: raft id = token << 32 | epoch would alias),
 * ERR_TOOBIG (more than cap entries, an endpoint above 256 bytes). */
int membership_decode_nodes(const uint8_t *d, size_t len,
                            struct membership_node *out, size_t cap, size_t *n);

/* activeMembers() (v1): (uint256[] tokenIds, bytes32[] instanceIds,
 * address[] owners) of equal lengths, into out as above (the same token
 * range). */
int membership_decode_members_v1(const uint8_t *d, size_t len,
                                 struct membership_node *out, size_t cap,
                                 size_t *n);

/* clusterState() and tokenVotes(): 0 or ERR_MALFORMED (*out untouched). */
int membership_decode_state(const uint8_t *d, size_t len,
                            struct membership_state *out);
int membership_decode_vote(const uint8_t *d, size_t len,
                           struct membership_vote *out);

/* ---- the contract ---- */

/* One contract at `address`, read through rpc and written through sender
 * (NULL: read only; transactions then fail with ERR_INVALID). Both are
 * borrowed and must outlive every call. Caller-owned; no cleanup. */
struct membership {
    struct rpc *rpc;
    struct sender *sender;
    uint8_t address[20];
    /* The ABI, decided by the first answer that decodes: v1 when
     * activeNodes() reverted and activeMembers() answered. Never changed
     * after (a later revert is a read error). */
    bool abi_known;
    bool v1;
};
void membership_init(struct membership *m, struct rpc *rpc,
                     struct sender *sender, const uint8_t address[20]);

/* block: a 0x quantity, or NULL for "latest". */
typedef void (*membership_nodes_cb)(void *data, int err,
                                    const struct membership_node *nodes,
                                    size_t n, const char *errmsg);
typedef void (*membership_state_cb)(void *data, int err,
                                    const struct membership_state *s,
                                    const char *errmsg);
typedef void (*membership_vote_cb)(void *data, int err,
                                   const struct membership_vote *v,
                                   const char *errmsg);

/* The active members: activeNodes(), or activeMembers() on a v1 contract.
 * Until the ABI is known (m->abi_known), a revert of activeNodes() is
 * retried as activeMembers() and the first answer that decodes decides
 * m->v1 for good; after that a revert is an error (ERR_REVERT) and never
 * changes the ABI. nodes is borrowed for the callback. */
int membership_read_nodes(struct membership *m, const char *block,
                          membership_nodes_cb cb, void *data);
int membership_read_state(struct membership *m, const char *block,
                          membership_state_cb cb, void *data);
int membership_read_vote(struct membership *m, const char *block,
                         uint64_t token, membership_vote_cb cb, void *data);

/* The LeaderElected events from block 0 (at most max): cb gets each
 * event's block, leader address and token; ERR_MALFORMED for a bad log. */
struct membership_leader_event {
    uint64_t block;
    uint64_t token;
    uint8_t leader[20];
};
typedef void (*membership_events_cb)(void *data, int err,
                                     const struct membership_leader_event *e,
                                     size_t n, const char *errmsg);
int membership_leader_events(struct membership *m, size_t max,
                             membership_events_cb cb, void *data);

/* Transactions: cb as sender_send's (mined with status 1, or the revert
 * reason). ERR_INVALID without a sender, ERR_NOMEM. */
int membership_mint(struct membership *m, const uint8_t to[20],
                    const char *name, sender_cb cb, void *data);
/* registerInstance: the token owner's own key speaks, no endpoints. */
int membership_register_instance(struct membership *m,
                                 const uint8_t instance[32], uint64_t token,
                                 sender_cb cb, void *data);
/* registerNode: node_key acts for the token; a new or re-activated
 * instance starts a new epoch. */
int membership_register_node(struct membership *m, uint64_t token,
                             const uint8_t instance[32],
                             const uint8_t node_key[20], const char *raft,
                             const char *http, sender_cb cb, void *data);
int membership_set_endpoints(struct membership *m, uint64_t token,
                             const char *raft, const char *http, sender_cb cb,
                             void *data);
int membership_deactivate(struct membership *m, uint64_t token, sender_cb cb,
                          void *data);
int membership_evict(struct membership *m, uint64_t token, sender_cb cb,
                     void *data);
int membership_readmit(struct membership *m, uint64_t token, sender_cb cb,
                       void *data);
/* safeTransferFrom(from, to, token). */
int membership_transfer(struct membership *m, const uint8_t from[20],
                        const uint8_t to[20], uint64_t token, sender_cb cb,
                        void *data);
/* castVote(target, against): the sender's sole active token votes. */
int membership_vote(struct membership *m, const uint8_t target[20],
                    bool against, sender_cb cb, void *data);
/* castVoteByToken(token, target address, against). */
int membership_vote_by_token(struct membership *m, uint64_t token,
                             const uint8_t target[20], bool against,
                             sender_cb cb, void *data);
/* castVoteByToken(token, leader token, against). */
int membership_vote_for_leader_token(struct membership *m, uint64_t token,
                                     uint64_t leader_token, bool against,
                                     sender_cb cb, void *data);
/* electLeader() (the sender's sole active token) and electLeaderByToken. */
int membership_elect(struct membership *m, sender_cb cb, void *data);
int membership_elect_by_token(struct membership *m, uint64_t token,
                              sender_cb cb, void *data);
int membership_heartbeat(struct membership *m, sender_cb cb, void *data);
int membership_update_cluster_size(struct membership *m, sender_cb cb,
                                   void *data);

#endif
