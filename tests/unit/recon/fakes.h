/* fakes.h - a fake chain and a fake raft behind recon/poll.h's struct
 * recon_chain and recon/driver.h's struct recon_raft, for deterministic
 * reconciler tests. Every call is queued and answered only by
 * fake_chain_run()/fake_raft_run() (never inside the call, as the real
 * ones); answers are computed at delivery from the fake's state then. */
#ifndef NFTRAFT_TEST_RECON_FAKES_H
#define NFTRAFT_TEST_RECON_FAKES_H

#include "core/err.h"
#include "recon/driver.h"
#include "recon/poll.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum fake_call { F_CHAIN_ID, F_BLOCK, F_STATE, F_NODES, F_VOTE, F_TX, F_PING };

struct fake_pending {
    enum fake_call call;
    void (*cb)(void);
    void *arg;
    char block[24];
    uint64_t token;
    struct recon_tx tx;
};

struct fake_chain {
    struct recon_chain ops;
    /* what the chain answers */
    uint64_t id, head;
    struct membership_state state;
    struct membership_node nodes[8];
    size_t n_nodes;
    struct membership_vote vote;
    int fail[F_PING + 1]; /* answer this call with this error (0: ok) */
    bool refuse;          /* every call returns ERR_SHUTDOWN at once */
    bool leader_healthy;
    /* what the reconciler did */
    struct fake_pending q[64];
    unsigned nq;
    unsigned calls[F_PING + 1];
    char read_blocks[16][24]; /* the block of each read, in order */
    unsigned n_reads;
    struct recon_tx sent[16];
    unsigned n_sent;
    unsigned polls_soon;
    uint64_t now_ms, wall_s;
};

static inline int fake_queue(struct fake_chain *f, enum fake_call c,
                             void (*cb)(void), void *arg, const char *block)
{
    if (f->refuse || f->nq == 64)
        return ERR_SHUTDOWN;
    struct fake_pending *p = &f->q[f->nq++];
    memset(p, 0, sizeof *p);
    p->call = c;
    p->cb = cb;
    p->arg = arg;
    f->calls[c]++;
    if (block != NULL) {
        snprintf(p->block, sizeof p->block, "%s", block);
        if (f->n_reads < 16)
            snprintf(f->read_blocks[f->n_reads++], 24, "%s", block);
    }
    return 0;
}

static inline int fc_chain_id(void *d, recon_u64_cb cb, void *arg)
{
    return fake_queue(d, F_CHAIN_ID, (void (*)(void))cb, arg, NULL);
}
static inline int fc_block(void *d, recon_u64_cb cb, void *arg)
{
    return fake_queue(d, F_BLOCK, (void (*)(void))cb, arg, NULL);
}
static inline int fc_state(void *d, const char *b, membership_state_cb cb,
                           void *arg)
{
    return fake_queue(d, F_STATE, (void (*)(void))cb, arg, b);
}
static inline int fc_nodes(void *d, const char *b, membership_nodes_cb cb,
                           void *arg)
{
    return fake_queue(d, F_NODES, (void (*)(void))cb, arg, b);
}
static inline int fc_vote(void *d, const char *b, uint64_t token,
                          membership_vote_cb cb, void *arg)
{
    struct fake_chain *f = d;
    int rv = fake_queue(f, F_VOTE, (void (*)(void))cb, arg, b);
    if (rv == 0)
        f->q[f->nq - 1].token = token;
    return rv;
}
static inline int fc_send(void *d, const struct recon_tx *tx, sender_cb cb,
                          void *arg)
{
    struct fake_chain *f = d;
    int rv = fake_queue(f, F_TX, (void (*)(void))cb, arg, NULL);
    if (rv == 0) {
        f->q[f->nq - 1].tx = *tx;
        if (f->n_sent < 16)
            f->sent[f->n_sent++] = *tx;
    }
    return rv;
}
static inline int fc_ping(void *d, const char *http, recon_ping_cb cb,
                          void *arg)
{
    (void)http;
    return fake_queue(d, F_PING, (void (*)(void))cb, arg, NULL);
}
static inline void fc_poll_soon(void *d)
{
    ((struct fake_chain *)d)->polls_soon++;
}
static inline uint64_t fc_now_ms(void *d)
{
    return ((struct fake_chain *)d)->now_ms;
}
static inline uint64_t fc_wall_s(void *d)
{
    return ((struct fake_chain *)d)->wall_s;
}

static inline void fake_chain_init(struct fake_chain *f)
{
    memset(f, 0, sizeof *f);
    f->ops = (struct recon_chain){
        f,       fc_chain_id, fc_block,     fc_state,  fc_nodes, fc_vote,
        fc_send, fc_ping,     fc_poll_soon, fc_now_ms, fc_wall_s};
    f->id = 31337;
    f->head = 100;
    f->now_ms = 100000;
    f->wall_s = 1000;
    f->leader_healthy = true;
}

/* Member token t with node key byte t and endpoints 127.0.0.1:900t. */
static inline void fake_chain_member(struct fake_chain *f, uint64_t t)
{
    struct membership_node *m = &f->nodes[f->n_nodes++];
    memset(m, 0, sizeof *m);
    m->token = t;
    snprintf((char *)m->instance, 32, "node%" PRIu64, t);
    memset(m->owner, (int)t, 20);
    memset(m->node_key, (int)t, 20);
    m->epoch = 1;
    snprintf(m->raft, sizeof m->raft, "127.0.0.1:%" PRIu64, 9000 + t);
    snprintf(m->http, sizeof m->http, "http://127.0.0.1:%" PRIu64 "/",
             8000 + t);
}

static inline void fake_chain_remove(struct fake_chain *f, uint64_t t)
{
    for (size_t i = 0; i < f->n_nodes; i++)
        if (f->nodes[i].token == t) {
            f->nodes[i] = f->nodes[--f->n_nodes];
            return;
        }
}

static inline void fake_deliver(struct fake_chain *f,
                                const struct fake_pending *p)
{
    int err = f->fail[p->call];
    const char *msg = err ? "fake failure" : NULL;
    static const uint8_t hash[32];
    switch (p->call) {
    case F_CHAIN_ID:
    case F_BLOCK:
        ((recon_u64_cb)p->cb)(p->arg, err, p->call == F_BLOCK ? f->head : f->id,
                              msg);
        break;
    case F_STATE:
        ((membership_state_cb)p->cb)(p->arg, err, err ? NULL : &f->state, msg);
        break;
    case F_NODES:
        ((membership_nodes_cb)p->cb)(p->arg, err, err ? NULL : f->nodes,
                                     err ? 0 : f->n_nodes, msg);
        break;
    case F_VOTE:
        ((membership_vote_cb)p->cb)(p->arg, err, err ? NULL : &f->vote, msg);
        break;
    case F_TX:
        ((sender_cb)p->cb)(p->arg, err, hash, err ? 0 : f->head + 1, msg);
        break;
    case F_PING:
        ((recon_ping_cb)p->cb)(p->arg, !err && f->leader_healthy);
        break;
    }
}

/* Answer every queued call, and the calls those answers make, in order. */
static inline void fake_chain_run(struct fake_chain *f)
{
    while (f->nq > 0) {
        struct fake_pending p = f->q[0];
        memmove(f->q, f->q + 1, (f->nq - 1) * sizeof f->q[0]);
        f->nq--;
        fake_deliver(f, &p);
    }
}

/* ---- raft ---- */

struct fake_change {
    enum recon_kind kind;
    uint64_t id;
    recon_change_cb cb;
    void *arg;
};

struct fake_raft {
    struct recon_raft ops;
    bool leader;
    struct recon_server servers[8];
    unsigned n;
    struct fake_change pending[4];
    unsigned n_pending;
    struct fake_change done[32]; /* every change asked, in order */
    unsigned n_done;
    char last_address[64];
    unsigned views, changed_views;
    unsigned moved;    /* self_moved() calls */
    uint64_t moved_to; /* its last new_id */
};

static struct recon_server *fake_server(struct fake_raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n; i++)
        if (r->servers[i].id == id)
            return &r->servers[i];
    return NULL;
}

static inline bool fr_leader(void *d)
{
    return ((struct fake_raft *)d)->leader;
}
static inline unsigned fr_servers(void *d, struct recon_server *out,
                                  unsigned cap)
{
    struct fake_raft *r = d;
    unsigned n = r->n < cap ? r->n : cap;
    memcpy(out, r->servers, n * sizeof out[0]);
    return n;
}
static inline int fr_change(struct fake_raft *r, enum recon_kind k, uint64_t id,
                            recon_change_cb cb, void *arg)
{
    if (!r->leader || r->n_pending == 4)
        return ERR_NOTLEADER;
    struct fake_change c = {k, id, cb, arg};
    r->pending[r->n_pending++] = c;
    if (r->n_done < 32)
        r->done[r->n_done++] = c;
    return 0;
}
static inline int fr_add(void *d, uint64_t id, const char *address,
                         recon_change_cb cb, void *arg)
{
    struct fake_raft *r = d;
    snprintf(r->last_address, sizeof r->last_address, "%s", address);
    return fr_change(r, RECON_ADD, id, cb, arg);
}
static inline int fr_promote(void *d, uint64_t id, recon_change_cb cb,
                             void *arg)
{
    return fr_change(d, RECON_PROMOTE, id, cb, arg);
}
static inline int fr_remove(void *d, uint64_t id, recon_change_cb cb, void *arg)
{
    return fr_change(d, RECON_REMOVE, id, cb, arg);
}
static inline int fr_transfer(void *d, uint64_t id, recon_change_cb cb,
                              void *arg)
{
    return fr_change(d, RECON_TRANSFER, id, cb, arg);
}
static inline void fr_view_read(void *d, bool changed)
{
    struct fake_raft *r = d;
    r->views++;
    r->changed_views += changed;
}

static inline void fr_self_moved(void *d, uint64_t new_id)
{
    struct fake_raft *r = d;
    r->moved++;
    r->moved_to = new_id;
}

static inline void fake_raft_init(struct fake_raft *r)
{
    memset(r, 0, sizeof *r);
    r->ops = (struct recon_raft){r,           fr_leader,    fr_servers,
                                 fr_add,      fr_promote,   fr_remove,
                                 fr_transfer, fr_view_read, fr_self_moved};
}

static inline void fake_raft_server(struct fake_raft *r, uint64_t id,
                                    bool voter, bool live, bool caught_up)
{
    r->servers[r->n++] = (struct recon_server){id, voter, live, caught_up};
}

/* Complete the pending changes as raft would: an added server joins as a
 * non-voter that is not caught up yet (raft_add; the assign fails until it
 * is), a promotion succeeds only once it is caught up, a removal drops it,
 * a transfer makes this node a follower. */
static inline void fake_raft_run(struct fake_raft *r)
{
    while (r->n_pending > 0) {
        struct fake_change c = r->pending[0];
        memmove(r->pending, r->pending + 1,
                (r->n_pending - 1) * sizeof r->pending[0]);
        r->n_pending--;
        struct recon_server *s = fake_server(r, c.id);
        int status = 0;
        if (c.kind == RECON_ADD) {
            if (s == NULL)
                fake_raft_server(r, c.id, false, true, false);
            status = ERR_TIMEOUT; /* the voter assign: not caught up */
        } else if (c.kind == RECON_PROMOTE) {
            if (s != NULL && s->caught_up)
                s->voter = true;
            else
                status = ERR_TIMEOUT;
        } else if (c.kind == RECON_REMOVE && s != NULL) {
            *s = r->servers[--r->n];
        } else if (c.kind == RECON_TRANSFER) {
            r->leader = false;
        }
        c.cb(c.arg, status);
    }
}

#endif
