/* decide.h - the reconciler's decisions: what a node should do so that raft
 * follows the contract (membership, leader) and the contract follows what
 * the nodes observe (heartbeats, no-confidence votes).
 *
 * Pure: given one snapshot of raft's and the contract's state, recon_decide()
 * returns the actions to take now. The driver (recon/driver) does the I/O,
 * runs at most one raft change and one transaction at a time, and calls this
 * again after each good poll of the contract. */
#ifndef NFTRAFT_RECON_H
#define NFTRAFT_RECON_H

#include <stdbool.h>
#include <stdint.h>

#define RECON_MAX_ACTIONS 8

struct recon_server { /* one server of raft's configuration */
    uint64_t id;
    bool voter;
    bool live;      /* leader: heard from it within two election timeouts
                       (recon/chainsync's op_servers) */
    bool caught_up; /* leader: its log is within a few entries of ours */
};

struct recon_input {
    uint64_t self;    /* my token id; 0: not an active member */
    uint64_t my_id;   /* my raft id, member or not */
    bool raft_leader; /* I am raft leader and ready */
    const struct recon_server *servers; /* raft configuration */
    unsigned n_servers;
    const uint64_t *members; /* token ids of active registered instances */
    unsigned n_members;
    const uint64_t *addressable; /* token ids whose raft address is known */
    unsigned n_addressable;
    uint64_t chain_leader;     /* on-chain leader's token id; 0 = none */
    uint64_t now;              /* this node's wall clock, seconds
                                  (time(NULL), not chain time): compared
                                  with the contract's expiry, a block
                                  timestamp, so clock skew between the
                                  node and the chain shifts the lease */
    uint64_t expiry;           /* leadershipExpiry() */
    uint64_t heartbeat_period; /* seconds between leader heartbeats */
    int leader_health;         /* my ping of the on-chain leader:
                                  -1 unknown (never pinged, or the last
                                  ping was of another leader), 0 failing,
                                  1 healthy; votes need 0, a transfer 1 */
    bool voted_against_leader; /* my live no-confidence vote */
};

enum recon_kind {
    RECON_ADD,       /* raft: add token `id` as a voter */
    RECON_PROMOTE,   /* raft: make non-voter `id` a voter (raft_assign) */
    RECON_REMOVE,    /* raft: remove server `id` */
    RECON_TRANSFER,  /* raft: hand leadership to `id` */
    RECON_ELECT,     /* tx: electLeaderByToken(self) */
    RECON_HEARTBEAT, /* tx: leaderHeartbeat() */
    RECON_VOTE,      /* tx: castVoteByToken(self, leader token, against) */
    RECON_REFUSE,    /* refuse client writes: not an active member */
};

struct recon_action {
    enum recon_kind kind;
    uint64_t id;  /* ADD/REMOVE/TRANSFER target; VOTE: leader token */
    bool against; /* VOTE: true = no confidence, false = clear */
};

/* Fill out[] (at most RECON_MAX_ACTIONS) with the actions to take now, raft
 * changes first, one membership change at a time; returns their count.
 * Rules the leader follows: a leader that is no longer an active member
 * hands leadership to a live, caught-up member voter first (the new leader
 * then removes it); a voter is removed only when the voters that remain
 * still have a live majority; an existing non-voter is promoted, never
 * added again; leadership goes to the on-chain leader only when it is a
 * live, caught-up voter that answered this node's ping, and an addition
 * or a promotion of a server that is not live does not hold it back (the
 * transfer comes first then). */
unsigned recon_decide(const struct recon_input *in, struct recon_action *out);

/* Short name of an action kind for logs. */
const char *recon_kind_str(enum recon_kind k);

#endif
