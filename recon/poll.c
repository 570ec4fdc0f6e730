/* poll.c - one poll of the membership contract (see poll.h): each state's
 * answer callback checks the answer and makes the next state's call. */
#include "recon/poll.h"
#include "core/err.h"

#include <inttypes.h>
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
    return 0;
}

void recon_poll_close(struct recon_poll *p)
{
    p->closed = true;
    free(p->next);
    p->next = NULL;
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
    p->done(p->data, result, result == 0 ? p->next : NULL,
            result < 0 ? (msg && *msg ? msg : err_str(result)) : NULL);
}

/* Enter state s by making its call; a refused call ends the poll. */
static void enter(struct recon_poll *p, enum recon_poll_state s);

static void vote_cb(void *arg, int err, const struct membership_vote *v,
                    const char *msg)
{
    struct recon_poll *p = arg;
    if (p->closed || p->state != RECON_POLL_VOTE)
        return;
    if (err != 0) {
        finish(p, err, msg);
        return;
    }
    p->next->vote = *v;
    p->block = p->next->block;
    finish(p, 0, NULL);
}

static void nodes_cb(void *arg, int err, const struct membership_node *nodes,
                     size_t n, const char *msg)
{
    struct recon_poll *p = arg;
    if (p->closed || p->state != RECON_POLL_NODES)
        return;
    if (err == 0 && n > MEMBERSHIP_MAX_NODES) {
        err = ERR_TOOBIG;
        msg = "more active members than the contract allows";
    }
    if (err != 0) {
        finish(p, err, msg);
        return;
    }
    memcpy(p->next->nodes, nodes, n * sizeof nodes[0]);
    p->next->n_nodes = n;
    enter(p, RECON_POLL_VOTE);
}

static void state_cb(void *arg, int err, const struct membership_state *s,
                     const char *msg)
{
    struct recon_poll *p = arg;
    if (p->closed || p->state != RECON_POLL_STATE)
        return;
    if (err != 0) {
        finish(p, err, msg);
        return;
    }
    p->next->state = *s;
    enter(p, RECON_POLL_NODES);
}

static void block_cb(void *arg, int err, uint64_t head, const char *msg)
{
    struct recon_poll *p = arg;
    if (p->closed || p->state != RECON_POLL_BLOCK)
        return;
    if (err != 0) {
        finish(p, err, msg);
        return;
    }
    p->head = head;
    uint64_t pinned = head > p->confirmations ? head - p->confirmations : 0;
    if (pinned < p->block) {
        p->stale++;
        finish(p, RECON_POLL_STALE, NULL);
        return;
    }
    memset(p->next, 0, sizeof *p->next);
    p->next->block = pinned;
    snprintf(p->tag, sizeof p->tag, "0x%" PRIx64, pinned);
    enter(p, RECON_POLL_STATE);
}

static void chain_id_cb(void *arg, int err, uint64_t id, const char *msg)
{
    struct recon_poll *p = arg;
    if (p->closed || p->state != RECON_POLL_CHAIN_ID)
        return;
    if (err == 0 && id != p->chain_id) {
        char m[160];
        snprintf(m, sizeof m,
                 "the chain has id %" PRIu64 ", the cached view "
                 "was read on chain %" PRIu64,
                 id, p->chain_id);
        finish(p, ERR_INVALID, m);
        return;
    }
    if (err != 0) {
        finish(p, err, msg);
        return;
    }
    p->verify_chain_id = false;
    enter(p, RECON_POLL_BLOCK);
}

static void enter(struct recon_poll *p, enum recon_poll_state s)
{
    const struct recon_chain *c = p->chain;
    int rv = ERR_INTERNAL;
    p->state = s;
    p->calls++;
    switch (s) {
    case RECON_POLL_CHAIN_ID:
        rv = c->chain_id(c->data, chain_id_cb, p);
        break;
    case RECON_POLL_BLOCK:
        rv = c->block_number(c->data, block_cb, p);
        break;
    case RECON_POLL_STATE:
        rv = c->read_state(c->data, p->tag, state_cb, p);
        break;
    case RECON_POLL_NODES:
        rv = c->read_nodes(c->data, p->tag, nodes_cb, p);
        break;
    case RECON_POLL_VOTE:
        rv = c->read_vote(c->data, p->tag, p->token, vote_cb, p);
        break;
    case RECON_POLL_IDLE:
        break;
    }
    if (rv != 0) {
        char m[64];
        snprintf(m, sizeof m, "cannot start the %s call",
                 recon_poll_state_str(s));
        finish(p, rv, m);
    }
}

int recon_poll_start(struct recon_poll *p)
{
    if (p->state != RECON_POLL_IDLE || p->closed)
        return ERR_BUSY;
    enter(p, p->verify_chain_id ? RECON_POLL_CHAIN_ID : RECON_POLL_BLOCK);
    return 0;
}
