/* sender.c - a queue of transactions through the steps nonce -> estimate
 * -> gas price -> sign + send -> receipt; one in flight at a time. */
#include "chain/sender.h"
#include "chain/hex.h"
#include "chain/rpc.h"
#include "chain/tx.h"
#include "chain/wallet.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLL_MS 200
/* A send refused because its nonce is taken (another sender on the same
 * wallet got there first) is retried after 300 ms, doubling to 5 s, with
 * the pending nonce read again; after COLLISION_TRIES retries the job
 * fails with ERR_BUSY. */
#define COLLISION_FIRST_MS 300
#define COLLISION_MAX_MS 5000
#define COLLISION_TRIES 8

struct job {
    struct list link; /* in sender.jobs */
    uint8_t to[20];
    uint8_t *data;
    size_t len;
    sender_cb cb;
    void *cb_data;
};

struct sender {
    uv_loop_t *loop;
    struct rpc *rpc;
    const struct wallet *w;
    uint64_t chain_id;
    unsigned receipt_timeout_ms;
    struct list jobs; /* struct job, oldest (the one in flight) first */
    bool busy, closing;
    uint64_t nonce, gas, gas_price;
    /* The last transaction signed: a receipt timeout makes the next one
     * take the mined ("latest") nonce, so it replaces a stuck transaction,
     * and at that nonce its fees are at least 12.5% above the stuck one's
     * (nodes refuse a replacement without a 10% bump). */
    bool replace, have_last;
    uint64_t last_nonce, last_max_fee, last_prio;
    uint64_t max_fee_cap; /* wei per gas, 0 = none */
    bool stuck;           /* replacing last_nonce needs more than the cap */
    uint64_t stuck_need;  /* the max fee that replacement would need */
    uint8_t hash[32];
    char hash_hex[67];
    uint64_t deadline;
    unsigned collisions; /* retries of the job in flight (nonce taken) */
    uint64_t collide_ms; /* its current back-off */
    uv_timer_t timer;
};

int sender_init(struct sender **out, uv_loop_t *loop, struct rpc *rpc,
                const struct wallet *w, uint64_t chain_id,
                unsigned receipt_timeout_ms)
{
    struct sender *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ERR_NOMEM;
    s->loop = loop;
    s->rpc = rpc;
    s->w = w;
    s->chain_id = chain_id;
    s->receipt_timeout_ms = receipt_timeout_ms;
    s->max_fee_cap = SENDER_DEFAULT_MAX_FEE_WEI;
    list_init(&s->jobs);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    *out = s;
    return 0;
}

static void start_next(struct sender *s);

/* The job at the head of the queue (the one in flight), or NULL. */
static struct job *head_job(const struct sender *s)
{
    struct list *l = list_first(&s->jobs);
    return l != NULL ? LIST_CONTAINER_OF(l, struct job, link) : NULL;
}

/* Finish the head job and move on. */
static void done(struct sender *s, int err, uint64_t block, const char *msg)
{
    struct job *j = head_job(s);
    list_remove(&j->link);
    s->busy = false;
    if (err != 0 && err != ERR_REVERT && err != ERR_TOOBIG)
        LOGW("chain", "transaction failed: %s", msg ? msg : err_str(err));
    j->cb(j->cb_data, err, s->hash, block, msg);
    free(j->data);
    free(j);
    if (!s->closing)
        start_next(s);
}

static json_t *call_obj(struct sender *s, const struct job *j)
{
    char from[43], to[43];
    char *data = malloc(2 * j->len + 3);
    if (data == NULL)
        return NULL;
    hex_encode(wallet_address(s->w), 20, 1, from);
    hex_encode(j->to, 20, 1, to);
    hex_encode(j->data, j->len, 1, data);
    json_t *o =
        json_pack("{s:s,s:s,s:s}", "from", from, "to", to, "data", data);
    free(data);
    return o;
}

static void receipt_cb(void *data, int err, json_t *r, const char *msg);

static void poll_cb(uv_timer_t *t)
{
    struct sender *s = t->data;
    if (rpc_call(s->rpc, "eth_getTransactionReceipt",
                 json_pack("[s]", s->hash_hex), receipt_cb, s) != 0)
        done(s, ERR_RPC, 0, "cannot ask for the receipt");
}

static void receipt_cb(void *data, int err, json_t *r, const char *msg)
{
    (void)msg; /* a failed poll for the receipt is retried */
    struct sender *s = data;
    if (err == ERR_SHUTDOWN)
        return;
    if (err == 0 && json_is_object(r)) {
        uint64_t status = 0, block = 0;
        if (hex_quantity(json_string_value(json_object_get(r, "status")),
                         &status) != 0 ||
            hex_quantity(json_string_value(json_object_get(r, "blockNumber")),
                         &block) != 0) {
            done(s, ERR_MALFORMED, 0, "malformed receipt");
            return;
        }
        done(s, status == 1 ? 0 : ERR_REVERT, block,
             status == 1 ? NULL : "transaction reverted");
        return;
    }
    if (uv_now(s->loop) >= s->deadline) {
        s->nonce = 0;      /* re-read the nonce before the next one ... */
        s->replace = true; /* ... the mined one: replace this transaction */
        done(s, ERR_TIMEOUT, 0,
             "no receipt in time (the transaction may "
             "still be mined)");
        return;
    }
    uv_timer_start(&s->timer, poll_cb, POLL_MS, 0);
}

/* Whether a refused send means its nonce is taken: another transaction of
 * this wallet (e.g. another node signing with the same key) got it. */
static bool has_text(const char *msg, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = msg; p != NULL && *p; p++)
        if (strncasecmp(p, what, n) == 0)
            return true;
    return false;
}

static bool nonce_taken(const char *msg)
{
    return has_text(msg, "nonce too low") ||
           has_text(msg, "replacement transaction underpriced");
}

static void collision_retry(uv_timer_t *t)
{
    struct sender *s = t->data;
    s->busy = false;
    start_next(s); /* the pending nonce again, a new estimate and price */
}

/* The job's nonce was taken: retry with back-off, or give up with ERR_BUSY
 * after COLLISION_TRIES; one log line per streak. */
static void collided(struct sender *s, const char *msg)
{
    uint64_t nonce = s->nonce;
    s->nonce = 0;         /* re-read ... */
    s->replace = false;   /* ... the pending count: after the other one */
    s->have_last = false; /* ours was not taken: nothing to replace */
    if (s->collisions == COLLISION_TRIES) {
        char m[300];
        snprintf(m, sizeof m,
                 "nonce still taken after %u retries (%.200s): another "
                 "sender keeps using this wallet",
                 s->collisions, msg);
        s->collisions = 0;
        done(s, ERR_BUSY, 0, m);
        return;
    }
    s->collide_ms = s->collisions == 0                     ? COLLISION_FIRST_MS
                    : s->collide_ms * 2 > COLLISION_MAX_MS ? COLLISION_MAX_MS
                                                           : s->collide_ms * 2;
    if (s->collisions == 0)
        LOGW("chain",
             "transaction nonce=%" PRIu64 " refused (%s): another sender "
             "uses this wallet; retrying with the next pending nonce (back-off "
             "%d ms doubling to %d ms)",
             nonce, msg, COLLISION_FIRST_MS, COLLISION_MAX_MS);
    s->collisions++;
    uv_timer_start(&s->timer, collision_retry, s->collide_ms, 0);
}

static void sent_cb(void *data, int err, json_t *r, const char *msg)
{
    (void)r; /* the hash is computed locally */
    struct sender *s = data;
    if (err == ERR_SHUTDOWN)
        return;
    if (err != 0 && has_text(msg, "already known"))
        err = 0; /* this very transaction (same hash) is already pooled */
    if (err != 0 && nonce_taken(msg)) {
        collided(s, msg);
        return;
    }
    if (err != 0) {
        s->nonce = 0; /* the node refused it: re-read the nonce */
        s->collisions = 0;
        done(s, err, 0, msg);
        return;
    }
    if (s->collisions > 0)
        LOGI("chain",
             "transaction nonce=%" PRIu64 " sent after %u nonce collision(s)",
             s->nonce, s->collisions);
    s->collisions = 0;
    s->nonce++;
    s->deadline = uv_now(s->loop) + s->receipt_timeout_ms;
    uv_timer_start(&s->timer, poll_cb, POLL_MS / 4, 0);
}

void sender_set_max_fee(struct sender *s, uint64_t wei)
{
    s->max_fee_cap = wei;
}

int sender_stuck(const struct sender *s, char *msg, size_t len)
{
    if (!s->stuck)
        return 0;
    char h[67];
    hex_encode(s->hash, 32, 1, h);
    snprintf(msg, len,
             "transaction nonce=%" PRIu64 " hash=%s is stuck: max fee %" PRIu64
             " wei per gas; replacing it needs %" PRIu64
             ", above the ceiling %" PRIu64 " (--max-fee-gwei)",
             s->last_nonce, h, s->last_max_fee, s->stuck_need, s->max_fee_cap);
    return 1;
}

/* A replacement above the ceiling: report the stuck transaction once per
 * nonce and fail the job without sending anything. */
static void refuse_bump(struct sender *s, uint64_t need)
{
    bool first = !s->stuck || s->stuck_need != need;
    s->stuck = true;
    s->stuck_need = need;
    s->nonce = 0; /* re-read: it may have been mined meanwhile */
    s->replace = true;
    char msg[300];
    sender_stuck(s, msg, sizeof msg);
    if (first)
        LOGE("chain", "%s; not paying more", msg);
    done(s, ERR_TOOBIG, 0, msg);
}

static void sign_and_send(struct sender *s)
{
    struct job *j = head_job(s);
    uint64_t cap = s->max_fee_cap ? s->max_fee_cap : UINT64_MAX;
    if (s->gas_price > cap) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "gas price %" PRIu64 " wei is above the fee ceiling %" PRIu64
                 " (--max-fee-gwei): not sent",
                 s->gas_price, cap);
        LOGW("chain", "%s", msg);
        s->nonce = 0;
        done(s, ERR_TOOBIG, 0, msg);
        return;
    }
    uint64_t prio = s->gas_price < 1000000000ULL ? s->gas_price : 1000000000ULL;
    uint64_t max_fee = 2 * s->gas_price + prio;
    if (max_fee > cap)
        max_fee = cap;
    if (prio > max_fee)
        prio = max_fee;
    if (s->have_last && s->nonce == s->last_nonce) { /* a replacement */
        uint64_t f = s->last_max_fee + s->last_max_fee / 8 + 1;
        uint64_t p = s->last_prio + s->last_prio / 8 + 1;
        if (f > cap) {
            refuse_bump(s, f);
            return;
        }
        max_fee = max_fee > f ? max_fee : f;
        prio = prio > p ? prio : p;
        if (prio > max_fee)
            max_fee = prio;
        LOGI("chain",
             "replacing the unconfirmed transaction nonce=%" PRIu64
             " (max fee %" PRIu64 " -> %" PRIu64 " wei)",
             s->nonce, s->last_max_fee, max_fee);
    }
    struct tx t = {.chain_id = s->chain_id,
                   .nonce = s->nonce,
                   .gas_limit = s->gas + s->gas / 5 + 10000,
                   .max_fee = max_fee,
                   .max_priority_fee = prio,
                   .data = j->data,
                   .data_len = j->len};
    memcpy(t.to, j->to, 20);
    uint8_t *raw;
    size_t len;
    if (tx_sign(&t, s->w, &raw, &len, s->hash) != 0) {
        done(s, ERR_INVALID, 0, "cannot sign the transaction");
        return;
    }
    hex_encode(s->hash, 32, 1, s->hash_hex);
    if (s->stuck)
        LOGI("chain", "the stuck transaction nonce=%" PRIu64 " is %s",
             s->last_nonce,
             s->nonce == s->last_nonce ? "being replaced" : "gone (mined)");
    s->stuck = false;
    s->have_last = true;
    s->last_nonce = s->nonce;
    s->last_max_fee = max_fee;
    s->last_prio = prio;
    s->replace = false;
    char *rawhex = malloc(2 * len + 3);
    if (rawhex == NULL) {
        free(raw);
        done(s, ERR_NOMEM, 0, "out of memory");
        return;
    }
    hex_encode(raw, len, 1, rawhex);
    free(raw);
    int rv = rpc_call(s->rpc, "eth_sendRawTransaction",
                      json_pack("[s]", rawhex), sent_cb, s);
    free(rawhex);
    if (rv != 0)
        done(s, rv, 0, "cannot send the transaction");
}

static void price_cb(void *data, int err, json_t *r, const char *msg)
{
    struct sender *s = data;
    if (err == ERR_SHUTDOWN)
        return;
    if (err != 0 || hex_quantity(json_string_value(r), &s->gas_price) != 0) {
        done(s, err ? err : ERR_MALFORMED, 0,
             err ? msg : "malformed eth_gasPrice answer");
        return;
    }
    sign_and_send(s);
}

static void estimate_cb(void *data, int err, json_t *r, const char *msg)
{
    struct sender *s = data;
    if (err == ERR_SHUTDOWN)
        return;
    if (err != 0 || hex_quantity(json_string_value(r), &s->gas) != 0 ||
        s->gas > 30000000) {
        done(s, err ? err : ERR_MALFORMED, 0,
             err ? msg : "malformed eth_estimateGas answer");
        return;
    }
    if (rpc_call(s->rpc, "eth_gasPrice", json_array(), price_cb, s) != 0)
        done(s, ERR_RPC, 0, "cannot ask the gas price");
}

static void estimate(struct sender *s)
{
    json_t *o = call_obj(s, head_job(s));
    if (o == NULL || rpc_call(s->rpc, "eth_estimateGas", json_pack("[o]", o),
                              estimate_cb, s) != 0)
        done(s, ERR_RPC, 0, "cannot estimate gas");
}

static void nonce_cb(void *data, int err, json_t *r, const char *msg)
{
    struct sender *s = data;
    if (err == ERR_SHUTDOWN)
        return;
    uint64_t n;
    if (err != 0 || hex_quantity(json_string_value(r), &n) != 0) {
        done(s, err ? err : ERR_MALFORMED, 0,
             err ? msg : "malformed nonce answer");
        return;
    }
    s->nonce = n;
    estimate(s);
}

static void start_next(struct sender *s)
{
    if (s->busy || list_empty(&s->jobs))
        return;
    s->busy = true;
    if (s->nonce != 0) {
        estimate(s);
        return;
    }
    char from[43];
    hex_encode(wallet_address(s->w), 20, 1, from);
    if (rpc_call(s->rpc, "eth_getTransactionCount",
                 json_pack("[s,s]", from, s->replace ? "latest" : "pending"),
                 nonce_cb, s) != 0)
        done(s, ERR_RPC, 0, "cannot ask the nonce");
}

int sender_send(struct sender *s, const uint8_t to[20], const uint8_t *calldata,
                size_t len, sender_cb cb, void *data)
{
    if (s->closing)
        return ERR_SHUTDOWN;
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL || (j->data = malloc(len ? len : 1)) == NULL) {
        free(j);
        return ERR_NOMEM;
    }
    memcpy(j->to, to, 20);
    if (len > 0) /* calldata may be NULL when empty */
        memcpy(j->data, calldata, len);
    j->len = len;
    j->cb = cb;
    j->cb_data = data;
    list_insert_tail(&s->jobs, &j->link);
    start_next(s);
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void sender_close(struct sender *s)
{
    s->closing = true;
    uv_timer_stop(&s->timer);
    while (!list_empty(&s->jobs)) {
        s->busy = false;
        done(s, ERR_SHUTDOWN, 0, "sender closed");
    }
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}
