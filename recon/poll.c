/* poll.c - one poll of the membership contract (see poll.h): each state's
 * answer callback checks the answer and makes the next state's call. */
#include "recon/poll.h"
#include "core/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int recon_poll_init(struct recon_poll *p, const struct recon_chain *chain,
                    uint64_t token, uint64_t confirmations,
                    recon_poll_done done, void *data)
{
    memset(p, 0, sizeof *p);
    p->next = calloc(1, sizeof *p->next);
    if (p->next == NULL)
        return ERR_NOMEM;
    p->chain = chain;
    p->token = token;
    p->confirmations = confirmations;
    p->done = done;
    p->data = data;
    p->state = RECON_POLL_IDLE;
    for (unsigned i = 0; i < 2; i++)
        p->ends[i] = (struct recon_poll_end){p, i};
    return 0;
}

int recon_poll_set_second(struct recon_poll *p,
                          const struct recon_chain *chain2)
{
    if (p->state != RECON_POLL_IDLE)
        return ERR_BUSY;
    if (p->next2 == NULL && (p->next2 = calloc(1, sizeof *p->next2)) == NULL)
        return ERR_NOMEM;
    p->chain2 = chain2;
    return 0;
}

void recon_poll_close(struct recon_poll *p)
{
    p->closed = true;
    free(p->next);
    free(p->next2);
    p->next = p->next2 = NULL;
}

const char *recon_poll_state_str(enum recon_poll_state s)
{
    switch (s) {
    case RECON_POLL_IDLE:
        return "idle";
    case RECON_POLL_CHAIN_ID:
        return "chain-id";
    case RECON_POLL_BLOCK:
        return "block";
    case RECON_POLL_STATE:
        return "state";
    case RECON_POLL_NODES:
        return "nodes";
    case RECON_POLL_VOTE:
        return "vote";
    }
    return "?";
}

/* Back to IDLE, then report (done may start the next poll). */
static void finish(struct recon_poll *p, int result, const char *msg)
{
    p->state = RECON_POLL_IDLE;
    p->waiting = 0;
    p->done(p->data, result, result == 0 ? p->next : NULL,
            result < 0 ? (msg && *msg ? msg : err_str(result))
            : result == RECON_POLL_DISAGREE ? msg
                                            : NULL);
}

/* Enter state s by making its call(s); a refused call ends the poll. */
static void enter(struct recon_poll *p, enum recon_poll_state s);

/* Whether e's answer belongs to the state in progress (not closed, not
 * from an earlier poll). */
static bool current(const struct recon_poll_end *e, enum recon_poll_state s)
{
    const struct recon_poll *p = e->p;
    return !p->closed && p->state == s && p->waiting > 0;
}

/* e's answer has come (err: its error): true when it was the last one due
 * in this state; the state's first error is kept for then. */
static bool arrived(struct recon_poll_end *e, int err, const char *msg)
{
    struct recon_poll *p = e->p;
    if (err != 0 && p->err == 0) {
        p->err = err;
        snprintf(p->errmsg, sizeof p->errmsg, "%s%s",
                 p->chain2 == NULL ? ""
                 : e->which        ? "second RPC: "
                                   : "first RPC: ",
                 msg && *msg ? msg : err_str(err));
    }
    return --p->waiting == 0;
}

/* The view endpoint `which` is reading into. */
static struct membership_view *view_of(struct recon_poll *p, unsigned which)
{
    return which ? p->next2 : p->next;
}

/* End the poll as RECON_POLL_DISAGREE: what differed (printf). */
static void disagree(struct recon_poll *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void disagree(struct recon_poll *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->disagreement, sizeof p->disagreement, fmt, ap);
    va_end(ap);
    p->disagreements++;
    finish(p, RECON_POLL_DISAGREE, p->disagreement);
}

/* Token ids of v's members, "1,2,3" (shortened), into out. */
static void tokens_text(const struct membership_view *v, char *out, size_t len)
{
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->n_nodes && k + 24 < len; i++)
        k += (size_t)snprintf(out + k, len - k, "%s%" PRIu64, i ? "," : "",
                              v->nodes[i].token);
    if (k + 24 >= len)
        snprintf(out + k, len - k, ",...");
}

/* 0 when both endpoints' member lists are equal, else ends the poll. */
static int compare_nodes(struct recon_poll *p)
{
    const struct membership_view *a = p->next, *b = p->next2;
    char ta[100], tb[100];
    bool same = a->n_nodes == b->n_nodes;
    for (size_t i = 0; same && i < a->n_nodes; i++)
        same = a->nodes[i].token == b->nodes[i].token;
    if (!same) {
        tokens_text(a, ta, sizeof ta);
        tokens_text(b, tb, sizeof tb);
        disagree(p,
                 "active members at block %" PRIu64 ": the first RPC lists "
                 "tokens [%s], the second [%s]",
                 a->block, ta, tb);
        return 1;
    }
    for (size_t i = 0; i < a->n_nodes; i++) {
        const struct membership_node *x = &a->nodes[i], *y = &b->nodes[i];
        const char *what =
            memcmp(x->instance, y->instance, 32) != 0   ? "instance id"
            : memcmp(x->owner, y->owner, 20) != 0       ? "owner"
            : memcmp(x->node_key, y->node_key, 20) != 0 ? "node key"
            : x->epoch != y->epoch                      ? "epoch"
            : strcmp(x->raft, y->raft) != 0             ? "raft endpoint"
            : strcmp(x->http, y->http) != 0             ? "HTTP endpoint"
                                                        : NULL;
        if (what != NULL) {
            disagree(p,
                     "active members at block %" PRIu64 ": token %" PRIu64
                     "'s %s differs between the two RPCs",
                     a->block, x->token, what);
            return 1;
        }
    }
    return 0;
}

/* 0 when both endpoints' clusterState() answers are equal. */
static int compare_state(struct recon_poll *p)
{
    const struct membership_state *a = &p->next->state, *b = &p->next2->state;
    if (a->leader_token != b->leader_token ||
        memcmp(a->leader, b->leader, 20) != 0) {
        disagree(p,
                 "clusterState() at block %" PRIu64 ": the first RPC names "
                 "leader token %" PRIu64 ", the second token %" PRIu64,
                 p->next->block, a->leader_token, b->leader_token);
        return 1;
    }
    const char *what = a->term != b->term           ? "term"
                       : a->expiry != b->expiry     ? "lease expiry"
                       : a->against != b->against   ? "votes against the leader"
                       : a->required != b->required ? "required votes"
                       : a->active != b->active     ? "active node count"
                       : a->period != b->period     ? "heartbeat period"
                                                    : NULL;
    if (what != NULL) {
        disagree(p,
                 "clusterState() at block %" PRIu64 ": the %s differs "
                 "between the two RPCs",
                 p->next->block, what);
        return 1;
    }
    return 0;
}

static int compare_vote(struct recon_poll *p)
{
    const struct membership_vote *a = &p->next->vote, *b = &p->next2->vote;
    if (memcmp(a->target, b->target, 20) != 0 || a->term != b->term ||
        a->against != b->against) {
        disagree(p,
                 "tokenVotes(%" PRIu64 ") at block %" PRIu64
                 " differs between the two RPCs",
                 p->token, p->next->block);
        return 1;
    }
    return 0;
}

static void vote_cb(void *arg, int err, const struct membership_vote *v,
                    const char *msg)
{
    struct recon_poll_end *e = arg;
    struct recon_poll *p = e->p;
    if (!current(e, RECON_POLL_VOTE))
        return;
    if (err == 0)
        view_of(p, e->which)->vote = *v;
    if (!arrived(e, err, msg))
        return;
    if (p->err != 0) {
        finish(p, p->err, p->errmsg);
        return;
    }
    if (p->chain2 != NULL && compare_vote(p) != 0)
        return;
    p->block = p->next->block;
    finish(p, 0, NULL);
}

static void nodes_cb(void *arg, int err, const struct membership_node *nodes,
                     size_t n, const char *msg)
{
    struct recon_poll_end *e = arg;
    struct recon_poll *p = e->p;
    if (!current(e, RECON_POLL_NODES))
        return;
    if (err == 0 && n > MEMBERSHIP_MAX_NODES) {
        err = ERR_TOOBIG;
        msg = "more active members than the contract allows";
    }
    if (err == 0) {
        struct membership_view *v = view_of(p, e->which);
        memcpy(v->nodes, nodes, n * sizeof nodes[0]);
        v->n_nodes = n;
    }
    if (!arrived(e, err, msg))
        return;
    if (p->err != 0) {
        finish(p, p->err, p->errmsg);
        return;
    }
    if (p->chain2 != NULL && compare_nodes(p) != 0)
        return;
    enter(p, RECON_POLL_VOTE);
}

static void state_cb(void *arg, int err, const struct membership_state *s,
                     const char *msg)
{
    struct recon_poll_end *e = arg;
    struct recon_poll *p = e->p;
    if (!current(e, RECON_POLL_STATE))
        return;
    if (err == 0)
        view_of(p, e->which)->state = *s;
    if (!arrived(e, err, msg))
        return;
    if (p->err != 0) {
        finish(p, p->err, p->errmsg);
        return;
    }
    if (p->chain2 != NULL && compare_state(p) != 0)
        return;
    enter(p, RECON_POLL_NODES);
}

static void block_cb(void *arg, int err, uint64_t head, const char *msg)
{
    struct recon_poll_end *e = arg;
    struct recon_poll *p = e->p;
    if (!current(e, RECON_POLL_BLOCK))
        return;
    p->got[e->which] = head;
    if (!arrived(e, err, msg))
        return;
    if (p->err != 0) {
        finish(p, p->err, p->errmsg);
        return;
    }
    /* Two endpoints: the lower head, which both have. */
    head = p->chain2 != NULL && p->got[1] < p->got[0] ? p->got[1] : p->got[0];
    p->head = head;
    uint64_t pinned = head > p->confirmations ? head - p->confirmations : 0;
    if (pinned < p->block) {
        p->stale++;
        finish(p, RECON_POLL_STALE, NULL);
        return;
    }
    memset(p->next, 0, sizeof *p->next);
    p->next->block = pinned;
    if (p->next2 != NULL) {
        memset(p->next2, 0, sizeof *p->next2);
        p->next2->block = pinned;
    }
    snprintf(p->tag, sizeof p->tag, "0x%" PRIx64, pinned);
    enter(p, RECON_POLL_STATE);
}

static void chain_id_cb(void *arg, int err, uint64_t id, const char *msg)
{
    struct recon_poll_end *e = arg;
    struct recon_poll *p = e->p;
    if (!current(e, RECON_POLL_CHAIN_ID))
        return;
    p->got[e->which] = id;
    if (!arrived(e, err, msg))
        return;
    if (p->err != 0) {
        finish(p, p->err, p->errmsg);
        return;
    }
    for (unsigned i = 0; i < (p->chain2 ? 2u : 1u); i++)
        if (p->got[i] != p->chain_id) {
            char m[160];
            snprintf(m, sizeof m,
                     "the %schain has id %" PRIu64 ", the cached view "
                     "was read on chain %" PRIu64,
                     p->chain2 == NULL ? ""
                     : i               ? "second RPC's "
                                       : "first RPC's ",
                     p->got[i], p->chain_id);
            finish(p, ERR_INVALID, m);
            return;
        }
    p->verify_chain_id = false;
    enter(p, RECON_POLL_BLOCK);
}

/* State s's call on endpoint c, answering to e. */
static int call(struct recon_poll *p, const struct recon_chain *c,
                struct recon_poll_end *e, enum recon_poll_state s)
{
    switch (s) {
    case RECON_POLL_CHAIN_ID:
        return c->chain_id(c->data, chain_id_cb, e);
    case RECON_POLL_BLOCK:
        return c->block_number(c->data, block_cb, e);
    case RECON_POLL_STATE:
        return c->read_state(c->data, p->tag, state_cb, e);
    case RECON_POLL_NODES:
        return c->read_nodes(c->data, p->tag, nodes_cb, e);
    case RECON_POLL_VOTE:
        return c->read_vote(c->data, p->tag, p->token, vote_cb, e);
    case RECON_POLL_IDLE:
        break;
    }
    return ERR_INTERNAL;
}

static void enter(struct recon_poll *p, enum recon_poll_state s)
{
    p->state = s;
    p->waiting = 0;
    p->err = 0;
    p->got[0] = p->got[1] = 0;
    for (unsigned i = 0; i < (p->chain2 ? 2u : 1u); i++) {
        p->calls++;
        int rv = call(p, i ? p->chain2 : p->chain, &p->ends[i], s);
        if (rv == 0) {
            p->waiting++;
            continue;
        }
        char m[64];
        snprintf(m, sizeof m, "cannot start the %s call%s",
                 recon_poll_state_str(s), i ? " on the second RPC" : "");
        if (p->waiting == 0) { /* nothing in flight: ends now */
            finish(p, rv, m);
            return;
        }
        p->err = rv; /* the first's answer ends the state with it */
        snprintf(p->errmsg, sizeof p->errmsg, "%s", m);
        return;
    }
}

int recon_poll_start(struct recon_poll *p)
{
    if (p->state != RECON_POLL_IDLE || p->closed)
        return ERR_BUSY;
    enter(p, p->verify_chain_id ? RECON_POLL_CHAIN_ID : RECON_POLL_BLOCK);
    return 0;
}
