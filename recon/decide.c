/* decide.c - pure reconciliation decisions (see decide.h). */
#include "recon/decide.h"

#include <stddef.h>

static bool has(const uint64_t *v, unsigned n, uint64_t id)
{
    for (unsigned i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static const struct recon_server *server(const struct recon_input *in,
                                         uint64_t id)
{
    for (unsigned i = 0; i < in->n_servers; i++)
        if (in->servers[i].id == id)
            return &in->servers[i];
    return NULL;
}

static unsigned push(struct recon_action *out, unsigned n, enum recon_kind k,
                     uint64_t id, bool against)
{
    if (n < RECON_MAX_ACTIONS) {
        out[n].kind = k;
        out[n].id = id;
        out[n].against = against;
        n++;
    }
    return n;
}

/* Whether removing server `gone` leaves voters of which a majority is
 * live (this leader counts as live). */
static bool live_majority_without(const struct recon_input *in, uint64_t gone)
{
    unsigned voters = 0, live = 0;
    for (unsigned i = 0; i < in->n_servers; i++) {
        const struct recon_server *s = &in->servers[i];
        if (!s->voter || s->id == gone)
            continue;
        voters++;
        live += s->live || s->id == in->my_id;
    }
    return voters > 0 && live * 2 > voters;
}

/* A voter to hand leadership to: an active member, live and caught up,
 * not `not`; 0 when there is none. */
static uint64_t transfer_target(const struct recon_input *in, uint64_t not )
{
    for (unsigned i = 0; i < in->n_servers; i++) {
        const struct recon_server *s = &in->servers[i];
        if (s->id != not &&s->id != in->my_id && s->voter && s->live &&
            s->caught_up && has(in->members, in->n_members, s->id))
            return s->id;
    }
    return 0;
}

/* The leader's one membership change for this round, if any: first drop a
 * server the contract no longer lists (when the rest keep a live
 * majority), then promote a member raft holds as a non-voter, then add a
 * member raft does not know yet. */
static unsigned membership(const struct recon_input *in,
                           struct recon_action *out, unsigned n)
{
    for (unsigned i = 0; i < in->n_servers; i++) {
        uint64_t id = in->servers[i].id;
        if (id == in->my_id || has(in->members, in->n_members, id))
            continue;
        if (!in->servers[i].voter || live_majority_without(in, id))
            return push(out, n, RECON_REMOVE, id, false);
    }
    for (unsigned i = 0; i < in->n_members; i++) {
        uint64_t id = in->members[i];
        const struct recon_server *s = server(in, id);
        if (s != NULL && !s->voter)
            return push(out, n, RECON_PROMOTE, id, false);
        if (s == NULL && has(in->addressable, in->n_addressable, id))
            return push(out, n, RECON_ADD, id, false);
    }
    return n;
}

unsigned recon_decide(const struct recon_input *in, struct recon_action *out)
{
    unsigned n = 0;
    if (in->self == 0) {
        n = push(out, n, RECON_REFUSE, 0, false);
        /* A leader whose token left hands over first; the next leader
         * removes it. */
        uint64_t to = in->raft_leader ? transfer_target(in, 0) : 0;
        if (to != 0)
            n = push(out, n, RECON_TRANSFER, to, false);
        return n;
    }
    if (in->raft_leader) {
        struct recon_action m[1] = {{.kind = RECON_REMOVE}};
        unsigned nm = membership(in, m, 0);
        /* A removal, or a promotion of a live server, finishes soon and
         * holds the hand-over back; an addition or a promotion of a server
         * that is not up may fail for a long time and does not. */
        const struct recon_server *ms = nm ? server(in, m[0].id) : NULL;
        bool changing =
            nm > 0 && (m[0].kind == RECON_REMOVE ||
                       (m[0].kind == RECON_PROMOTE && ms != NULL && ms->live));
        if (nm > 0 && changing)
            n = push(out, n, m[0].kind, m[0].id, false);
        if (in->chain_leader == 0) {
            n = push(out, n, RECON_ELECT, 0, false);
        } else if (!changing && in->chain_leader != in->self) {
            const struct recon_server *s = server(in, in->chain_leader);
            if (s != NULL && s->voter && s->live && s->caught_up &&
                in->leader_health == 1 &&
                has(in->members, in->n_members, in->chain_leader))
                n = push(out, n, RECON_TRANSFER, in->chain_leader, false);
        }
        if (nm > 0 && !changing)
            n = push(out, n, m[0].kind, m[0].id, false);
    }
    if (in->chain_leader == 0)
        return n;
    if (in->chain_leader == in->self) {
        uint64_t half = in->heartbeat_period / 2;
        if (in->expiry <= in->now || in->expiry - in->now <= half)
            n = push(out, n, RECON_HEARTBEAT, 0, false);
        return n;
    }
    bool expired = in->expiry != 0 && in->now > in->expiry;
    bool failing = in->leader_health == 0 || expired;
    if (failing && !in->voted_against_leader)
        n = push(out, n, RECON_VOTE, in->chain_leader, true);
    else if (in->leader_health == 1 && !expired && in->voted_against_leader)
        n = push(out, n, RECON_VOTE, in->chain_leader, false);
    return n;
}

const char *recon_kind_str(enum recon_kind k)
{
    switch (k) {
    case RECON_ADD:
        return "add";
    case RECON_PROMOTE:
        return "promote";
    case RECON_REMOVE:
        return "remove";
    case RECON_TRANSFER:
        return "transfer";
    case RECON_ELECT:
        return "elect";
    case RECON_HEARTBEAT:
        return "heartbeat";
    case RECON_VOTE:
        return "vote";
    case RECON_REFUSE:
        return "refuse";
    }
    return "?";
}
