/* api.c - the node's HTTP endpoints: increments through raft, linearizable
 * reads through a leader barrier, forwarding from followers, status, members
 * and Prometheus metrics. */
#include "net/api.h"
#include "pg/coord.h"
#include "pg/postgres.h"
#include "net/transport.h"
#include "core/config.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/list.h"
#include "core/log.h"
#include "core/node.h"
#include "core/version.h"
#include "fsm/fsm.h"
#include "fsm/raftfsm.h"
#include "net/dashboard.h"
#include "net/httpd.h"
#include "net/relay.h"
#include "net/request.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#define MAX_PEERS 256
#define LOG_LIMIT_MAX 1000
#define FWD_MAX_BODY (1 << 20)
#define SWEEP_MS 100
#define FORWARDED_HDR "X-Nftraft-Forwarded"
/* Connections the relay keeps to the leader (one request on each at a
 * time; further forwards queue in the relay, bounded by --max-forwards). */
#define FWD_CONNS 64
/* GET /log is the one answer whose cost grows with a parameter (~5 us a
 * row): requests queue and each loop turn serves at most LOG_ROWS_PER_TURN
 * rows, so a burst of them never holds the loop (and raft's heartbeats)
 * for long; above LOG_QUEUE_MAX queued, 503. */
#define LOG_ROWS_PER_TURN 2000
#define LOG_QUEUE_MAX 1024

/* Read-only GET answers may be read by a page of any origin: the dashboard
 * served by one node polls the other members directly. */
static const char *const CORS[] = {"Access-Control-Allow-Origin: *", NULL};

static const double BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,  0.1,    0.25,  0.5,
                                 1,      2.5,   5,      10};
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

struct peer {
    uint64_t id;
    char url[CONFIG_URL_MAX];
    char instance_id[80];
};

/* A write or read waiting for raft, or a request forwarded to the leader. */
struct pending {
    struct list link;
    struct api *api;
    struct httpd_req *http; /* NULL once the client went away or answered */
    uint64_t t0;            /* uv_hrtime at arrival */
    uint64_t deadline;      /* ms (uv_now) for the apply-timeout answer */
    int64_t by;
    bool is_write;
    bool counted; /* by added to pending_sum */
};

struct api {
    uv_loop_t *loop;
    const struct raft_uv_transport *transport; /* for /metrics */
    const struct config *cfg;
    struct node *node;
    struct fsm *fsm;
    struct httpd *httpd;
    struct httpc *httpc; /* forwarding to a leader URL the relay cannot */
    struct relay *relay; /* forwarding to the leader */
    uv_timer_t sweep;
    struct list pending; /* raft applies and barriers in flight */
    struct list fwd;     /* forwarded requests in flight */
    struct list held;    /* requests held by the fault switch */
    int64_t pending_sum; /* sum of `by` proposed and not yet applied */
    struct peer peers[MAX_PEERS];
    unsigned n_peers;
    struct api_chain_hooks hooks;
    struct coord *pg; /* --pg only */
    bool stalled;     /* test-only fault switch */
    void (*close_cb)(void *);
    void *close_data;
    /* metrics */
    uint64_t increments_total, increments_failed, forwarded_total, dedup_total,
        reads_total;
    unsigned n_fwd;        /* forwards in flight (list fwd) */
    uint64_t fwd_refused;  /* over cfg->max_forwards */
    char fwd_prefix[25];   /* random part of generated forwarding keys */
    uint64_t fwd_seq;      /* counter part of them */
    struct list log_queue; /* GET /log waiting for its turn */
    unsigned n_log_queued;
    uint64_t log_refused; /* over LOG_QUEUE_MAX */
    uv_idle_t log_idle;   /* active while log_queue is not empty */
    uint64_t hist[N_BUCKETS + 1];
    double hist_sum;
    uint64_t hist_count;
};

#define PENDING_OF(l) LIST_CONTAINER_OF(l, struct pending, link)

static int64_t now_ms_wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static const struct peer *peer_get(const struct api *a, uint64_t id)
{
    for (unsigned i = 0; i < a->n_peers; i++)
        if (a->peers[i].id == id)
            return &a->peers[i];
    return NULL;
}

int api_set_peer_url(struct api *a, uint64_t id, const char *url,
                     const char *instance_id)
{
    struct peer *p = (struct peer *)peer_get(a, id);
    if (p == NULL) {
        if (a->n_peers == MAX_PEERS)
            return ERR_TOOBIG;
        p = &a->peers[a->n_peers++];
        p->id = id;
    }
    snprintf(p->url, sizeof p->url, "%s", url);
    size_t n = strlen(p->url);
    while (n > 0 && p->url[n - 1] == '/')
        p->url[--n] = '\0';
    if (instance_id != NULL)
        snprintf(p->instance_id, sizeof p->instance_id, "%s", instance_id);
    else if (!p->instance_id[0])
        snprintf(p->instance_id, sizeof p->instance_id, "node%" PRIu64, id);
    return 0;
}

void api_set_transport(struct api *a, const struct raft_uv_transport *t)
{
    a->transport = t;
}

void api_set_pg(struct api *a, struct coord *c)
{
    a->pg = c;
}

const char *api_peer_url(struct api *a, uint64_t id)
{
    const struct peer *p = peer_get(a, id);
    return p != NULL && p->url[0] ? p->url : NULL;
}

void api_set_chain_hooks(struct api *a, const struct api_chain_hooks *hooks)
{
    a->hooks = *hooks;
}

static void observe(struct api *a, uint64_t t0)
{
    double s = (double)(uv_hrtime() - t0) / 1e9;
    size_t i = 0;
    while (i < N_BUCKETS && s > BUCKETS[i])
        i++;
    a->hist[i]++;
    a->hist_sum += s;
    a->hist_count++;
}

/* ---- answers ---- */

static void reply_error(struct httpd_req *r, int status, const char *outcome,
                        const char *retry_after, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    if (outcome != NULL)
        json_object_set_new(j, "outcome", json_string(outcome));
    const char *hdrs[2] = {NULL, NULL};
    char ra[32];
    if (retry_after != NULL) {
        snprintf(ra, sizeof ra, "Retry-After: %s", retry_after);
        hdrs[0] = ra;
    }
    httpd_respond_json(r, status, j, hdrs);
}

static void reply_no_leader(struct api *a, struct httpd_req *r,
                            const char *outcome)
{
    (void)a;
    reply_error(r, 503, outcome, "1",
                "no leader: the cluster is electing one; retry shortly");
}

static void reply_increment(struct api *a, struct httpd_req *r,
                            const struct fsm_result *res)
{
    struct node_status st;
    node_status(a->node, &st);
    json_t *j =
        json_pack("{s:I,s:I,s:I}", "value", (json_int_t)res->value, "index",
                  (json_int_t)res->index, "leader", (json_int_t)st.id);
    if (res->duplicate)
        json_object_set_new(j, "duplicate", json_true());
    httpd_respond_json(r, 200, j, NULL);
}

/* False when the request must not be served now: stalled by the fault
 * switch (no answer, like a hung process) or shutting down (503). */
static void pending_abort_cb(void *data);

static bool api_serving(struct api *a, struct httpd_req *r)
{
    if (a->stalled) {
        /* Hold it unanswered (a hung process), but remember it so that
         * un-stalling or closing can answer it. */
        struct pending *p = calloc(1, sizeof *p);
        if (p != NULL) {
            p->api = a;
            p->http = r;
            list_insert_tail(&a->held, &p->link);
            httpd_on_abort(r, pending_abort_cb, p);
        }
        return false;
    }
    if (a->node == NULL) {
        reply_error(r, 503, "failed", "1", "node shutting down");
        return false;
    }
    return true;
}

/* ---- forwarding to the leader ---- */

/* The leader's answer to a forwarded request (err 0), or why there is
 * none: relayed to the client. An answer that is not well-formed HTTP, or
 * too large, is 502; a broken connection or a timeout 503. */
static void fwd_done(struct pending *p, int err, const char *errmsg, int status,
                     const char *body, size_t body_len, const char *retry_after)
{
    struct api *a = p->api;
    list_remove(&p->link);
    a->n_fwd--;
    if (p->http != NULL) {
        httpd_on_abort(p->http, NULL, NULL);
        if (err == 0) {
            const char *hdrs[2] = {NULL, NULL};
            char ra[80];
            if (retry_after != NULL) {
                snprintf(ra, sizeof ra, "Retry-After: %s", retry_after);
                hdrs[0] = ra;
            }
            httpd_respond(p->http, status, "application/json", body, body_len,
                          hdrs);
            if (p->is_write)
                observe(a, p->t0);
        } else {
            bool bad = err == ERR_MALFORMED || err == ERR_TOOBIG;
            char msg[300];
            snprintf(msg, sizeof msg, "forwarding to the leader failed: %s%s",
                     errmsg ? errmsg : err_str(err),
                     p->is_write ? "; the outcome is unknown: retry with the "
                                   "same Idempotency-Key"
                                 : "");
            /* A write may have reached the leader before the failure. */
            reply_error(p->http, bad ? 502 : 503,
                        p->is_write ? "unknown" : "failed", "1", msg);
        }
    }
    free(p);
}

static void fwd_httpc_cb(void *data, const struct httpc_resp *resp)
{
    fwd_done(data, resp->err, resp->errmsg, (int)resp->status, resp->body,
             resp->body_len, resp->retry_after);
}

static void fwd_relay_cb(void *data, const struct relay_resp *resp)
{
    fwd_done(data, resp->err, resp->errmsg, resp->status, resp->body,
             resp->body_len, resp->retry_after);
}

static void pending_abort_cb(void *data)
{
    struct pending *p = data;
    p->http = NULL;
}

/* Forward r to the current leader; answers 503 itself when none is known. */
/* A pending request for r started now (its apply deadline from
 * --apply-timeout), not yet in any list; NULL after answering r 503 when
 * out of memory. The caller frees it or lists it. */
static struct pending *pending_new(struct api *a, struct httpd_req *r,
                                   bool is_write)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        reply_error(r, 503, "failed", "1", "out of memory");
        return NULL;
    }
    p->api = a;
    p->http = r;
    p->is_write = is_write;
    p->t0 = uv_hrtime();
    p->deadline = uv_now(a->loop) + a->cfg->apply_timeout_ms;
    return p;
}

/* "Idempotency-Key: fwd-<node>-<prefix>-<counter>" into out, for a keyless
 * write forwarded through libcurl. 96 random bits drawn once per process,
 * then a counter: unique like a per-request draw, without a getrandom per
 * write, and ascending, so each node's key index takes the keys of a batch
 * on its rightmost leaf. 0, or ERR_IO when there is no randomness. */
static int fwd_key(struct api *a, uint64_t self, char *out, size_t cap)
{
    if (a->fwd_prefix[0] == '\0') {
        uint8_t rnd[12];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return ERR_IO;
        static const char digits[] = "0123456789abcdef";
        for (int i = 0; i < 12; i++) {
            a->fwd_prefix[2 * i] = digits[rnd[i] >> 4];
            a->fwd_prefix[2 * i + 1] = digits[rnd[i] & 15];
        }
        a->fwd_prefix[24] = '\0';
    }
    snprintf(out, cap, "Idempotency-Key: fwd-%" PRIu64 "-%s-%016" PRIx64, self,
             a->fwd_prefix, a->fwd_seq++);
    return 0;
}

static void forward(struct api *a, struct httpd_req *r, bool is_write,
                    const char *path_and_query)
{
    struct node_status st;
    node_status(a->node, &st);
    size_t hl;
    if (httpd_header(r, FORWARDED_HDR, &hl) != NULL) {
        /* Never forward twice: the sender's view of the leader is stale. */
        reply_error(r, 503, "failed", "1",
                    "not the leader (forwarded request reached a follower)");
        return;
    }
    const struct peer *lp = st.leader_id ? peer_get(a, st.leader_id) : NULL;
    if (st.leader_id == 0 || st.leader_id == st.id || lp == NULL) {
        reply_no_leader(a, r, "failed");
        return;
    }
    if (a->n_fwd >= a->cfg->max_forwards) {
        a->fwd_refused++;
        reply_error(r, 503, "failed", "1",
                    "too many requests waiting for the leader; retry");
        return;
    }
    struct pending *p = pending_new(a, r, is_write);
    if (p == NULL)
        return;
    char self[64], key[FSM_KEY_MAX + 32];
    snprintf(self, sizeof self, FORWARDED_HDR ": %" PRIu64, st.id);
    const char *hdrs[4] = {"Content-Type: application/json", self, NULL, NULL};
    const char *k = httpd_header(r, "idempotency-key", &hl);
    if (k != NULL) {
        snprintf(key, sizeof key, "Idempotency-Key: %.*s", (int)hl, k);
        hdrs[2] = key;
    }
    size_t blen = 0;
    const void *body = is_write ? httpd_body(r, &blen) : NULL;
    const char *method = is_write ? "POST" : "GET";
    /* The relay re-sends a request whose kept connection died before any
     * answer only when that is harmless: a read, or a write with a key. A
     * keyless write is sent once (no generated key, no key row on every
     * replica), like a keyless write to the leader itself. */
    int rv =
        relay_request(a->relay, lp->url, method, path_and_query, hdrs, body,
                      blen, !is_write || k != NULL, a->cfg->forward_timeout_ms,
                      FWD_MAX_BODY, fwd_relay_cb, p);
    if (rv == ERR_INVALID) { /* a leader URL the relay does not speak */
        /* libcurl may send a POST again on a new connection when the kept
         * one dies under it: a key of our own makes that re-send apply
         * once. */
        rv = 0;
        if (is_write && k == NULL) {
            rv = fwd_key(a, st.id, key, sizeof key);
            hdrs[2] = key;
        }
        char url[CONFIG_URL_MAX + 128];
        snprintf(url, sizeof url, "%s%s", lp->url, path_and_query);
        if (rv == 0)
            rv = httpc_request(a->httpc, method, url, hdrs, body, blen,
                               a->cfg->forward_timeout_ms, FWD_MAX_BODY,
                               fwd_httpc_cb, p, NULL);
    }
    if (rv != 0) {
        free(p);
        reply_error(r, 503, "failed", "1", "cannot forward to the leader");
        return;
    }
    list_insert_tail(&a->fwd, &p->link);
    a->n_fwd++;
    httpd_on_abort(r, pending_abort_cb, p);
    a->forwarded_total++;
}

/* ---- POST /increment ---- */

static void pending_finish(struct pending *p)
{
    list_remove(&p->link);
    if (p->counted)
        p->api->pending_sum -= p->by;
    if (p->http != NULL)
        httpd_on_abort(p->http, NULL, NULL);
    free(p);
}

static void increment_applied(void *data, int status, uint64_t index,
                              void *result)
{
    struct pending *p = data;
    struct api *a = p->api;
    const struct fsm_result *res = result;
    bool lost = status == 0 && (res == NULL || res->entry != index);
    if (lost) {
        /* The FSM reused the result's slot (an enormous batch): the entry
         * applied, but what it produced is no longer known here. */
        LOGW("api", "result of index %llu was overwritten",
             (unsigned long long)index);
        status = ERR_UNKNOWN;
    }
    if (p->http != NULL) {
        if (status == 0 && res->status == 0) {
            a->increments_total++;
            if (res->duplicate)
                a->dedup_total++;
            reply_increment(a, p->http, res);
        } else if (status == 0 && res->status == ERR_OVERFLOW) {
            a->increments_failed++;
            reply_error(p->http, 422, "failed", NULL,
                        "increment would overflow the 64-bit counter");
        } else if (status == 0) {
            a->increments_failed++;
            reply_error(p->http, 500, "failed", NULL,
                        "entry could not be applied");
        } else {
            a->increments_failed++;
            reply_error(p->http, 503, "unknown", "1",
                        lost ? "the increment applied but its result was "
                               "overwritten: retry with the same "
                               "Idempotency-Key to read it"
                        : status == ERR_SHUTDOWN
                            ? "node shutting down; the increment may still "
                              "commit: retry with the same Idempotency-Key"
                            : "leadership lost; the increment may still "
                              "commit: retry with the same Idempotency-Key");
        }
        observe(a, p->t0);
        p->http = NULL;
    }
    pending_finish(p);
}

static void handle_increment(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!api_serving(a, r))
        return;
    char err[256];
    size_t blen, klen;
    const void *body = httpd_body(r, &blen);
    int64_t by;
    if (request_parse_increment(body, blen, &by, err, sizeof err) != 0) {
        reply_error(r, 400, "failed", NULL, err);
        return;
    }
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    const char *k = httpd_header(r, "idempotency-key", &klen);
    if (k != NULL && request_check_key(k, klen, FSM_KEY_MAX, cmd.key, err,
                                       sizeof err) != 0) {
        reply_error(r, 400, "failed", NULL, err);
        return;
    }
    if (a->hooks.write_refusal != NULL) {
        const char *why = a->hooks.write_refusal(a->hooks.data);
        if (why != NULL) {
            reply_error(r, 403, "failed", NULL, why);
            return;
        }
    }
    struct node_status st;
    node_status(a->node, &st);
    if (st.role != NODE_LEADER) {
        forward(a, r, true, "/increment");
        return;
    }
    if (!st.ready) {
        reply_error(r, 503, "failed", "1",
                    "leader elected but not ready yet; retry shortly");
        return;
    }
    if (cmd.key[0]) {
        struct fsm_result first;
        if (fsm_lookup(a->fsm, cmd.key, &first) == 0) {
            first.duplicate = true;
            a->dedup_total++;
            reply_increment(a, r, &first);
            return;
        }
    }
    int64_t v = fsm_value(a->fsm), sum;
    if (__builtin_add_overflow(v, a->pending_sum, &sum) ||
        __builtin_add_overflow(sum, by, &sum)) {
        a->increments_failed++;
        reply_error(r, 422, "failed", NULL,
                    "increment would overflow the 64-bit counter");
        return;
    }
    cmd.by = by;
    cmd.node = st.id;
    cmd.term = st.term;
    cmd.time_ms = now_ms_wall();
    cmd.key_retention = a->cfg->key_retention;
    unsigned char buf[FSM_CMD_MAX];
    size_t len;
    if (fsm_cmd_encode(&cmd, buf, sizeof buf, &len) != 0) {
        reply_error(r, 400, "failed", NULL, "cannot encode the increment");
        return;
    }
    struct pending *p = pending_new(a, r, true);
    if (p == NULL)
        return;
    p->by = by;
    int rv = node_apply(a->node, buf, len, increment_applied, p);
    if (rv != 0) {
        free(p);
        if (rv == ERR_NOTLEADER)
            forward(a, r, true, "/increment");
        else
            reply_error(r, 503, "failed", "1", err_str(rv));
        return;
    }
    p->counted = true;
    a->pending_sum += by;
    list_insert_tail(&a->pending, &p->link);
#ifdef NFTRAFT_UNSAFE_ACK_BEFORE_COMMIT
    /* Test-only build (nftraftd-unsafe, never installed): acknowledge the
     * increment before it commits, with the value it would get. The Jepsen
     * checker's self-test must catch this as lost writes under partitions. */
    struct fsm_result unsafe = {.value = sum, .index = st.commit_index + 1};
    p->http = NULL;
    reply_increment(a, r, &unsafe);
    return;
#endif
    httpd_on_abort(r, pending_abort_cb, p);
}

/* ---- GET /counter ---- */

static void reply_counter(struct api *a, struct httpd_req *r)
{
    json_t *j = json_pack("{s:I,s:I}", "value", (json_int_t)fsm_value(a->fsm),
                          "index", (json_int_t)fsm_last_applied(a->fsm));
    httpd_respond_json(r, 200, j, NULL);
}

static void counter_barrier_cb(void *data, int status)
{
    struct pending *p = data;
    struct api *a = p->api;
    if (p->http != NULL) {
        if (status == 0) {
            a->reads_total++;
            reply_counter(a, p->http);
        } else {
            reply_error(p->http, 503, "failed", "1",
                        "leadership lost during the read; retry");
        }
        p->http = NULL;
    }
    pending_finish(p);
}

static void handle_counter(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!api_serving(a, r))
        return;
    char q[16];
    int rv = httpd_query(r, "stale", q, sizeof q);
    if (rv == 0 && (strcmp(q, "1") == 0 || strcmp(q, "true") == 0)) {
        reply_counter(a, r);
        return;
    }
    if ((rv == 0 && strcmp(q, "0") != 0 && strcmp(q, "false") != 0) ||
        (rv != 0 && rv != ERR_NOTFOUND)) {
        reply_error(r, 400, NULL, NULL, "stale must be 1, 0, true or false");
        return;
    }
    struct node_status st;
    node_status(a->node, &st);
    if (st.role != NODE_LEADER) {
        forward(a, r, false, "/counter");
        return;
    }
    struct pending *p = pending_new(a, r, false);
    if (p == NULL)
        return;
    rv = node_barrier(a->node, counter_barrier_cb, p);
    if (rv != 0) {
        free(p);
        reply_error(r, 503, "failed", "1",
                    rv == ERR_BUSY ? "leader not ready yet; retry"
                                   : "not the leader; retry");
        return;
    }
    list_insert_tail(&a->pending, &p->link);
    httpd_on_abort(r, pending_abort_cb, p);
}

/* ---- GET /log ---- */

static int query_u64(struct httpd_req *r, const char *name, uint64_t dflt,
                     uint64_t min, uint64_t max, uint64_t *out)
{
    char q[32];
    int rv = httpd_query(r, name, q, sizeof q);
    if (rv == ERR_NOTFOUND) {
        *out = dflt;
        return 0;
    }
    return rv != 0 ? ERR_INVALID : config_parse_u64(q, min, max, out);
}

struct log_req {
    struct list link;
    struct httpd_req *http; /* NULL once the client went away */
    uint64_t from, limit;
};

static void serve_log(struct api *a, struct httpd_req *r, uint64_t from,
                      uint64_t limit)
{
    struct fsm_entry *es = malloc(sizeof *es * limit);
    if (es == NULL) {
        reply_error(r, 503, NULL, "1", "out of memory");
        return;
    }
    unsigned n = 0;
    uint64_t next = from;
    if (fsm_log(a->fsm, from, (unsigned)limit, es, &n, &next) != 0) {
        free(es);
        reply_error(r, 500, NULL, NULL, "cannot read the op log");
        return;
    }
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(
            arr,
            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "index",
                      (json_int_t)es[i].index, "term", (json_int_t)es[i].term,
                      "by", (json_int_t)es[i].by, "value",
                      (json_int_t)es[i].value, "node", (json_int_t)es[i].node,
                      "time", (json_int_t)es[i].time_ms));
    free(es);
    /* The op log keeps a window (--log-retention): "first" is its oldest
     * index (0 when empty); asking from below it starts at "first" and
     * says so with "truncated": true rather than failing. */
    uint64_t first = fsm_log_first(a->fsm);
    json_t *j = json_pack("{s:o,s:I,s:I}", "entries", arr, "next",
                          (json_int_t)next, "first", (json_int_t)first);
    if (first > 0 && from < first)
        json_object_set_new(j, "truncated", json_true());
    httpd_respond_json(r, 200, j, CORS);
}

static void log_abort_cb(void *data)
{
    ((struct log_req *)data)->http = NULL;
}

/* One loop turn's share of the queued GET /log requests. */
static void log_turn(uv_idle_t *h)
{
    struct api *a = h->data;
    uint64_t rows = 0;
    struct list *l;
    while (rows < LOG_ROWS_PER_TURN &&
           (l = list_first(&a->log_queue)) != NULL) {
        struct log_req *q = LIST_CONTAINER_OF(l, struct log_req, link);
        list_remove(&q->link);
        a->n_log_queued--;
        if (q->http != NULL) {
            httpd_on_abort(q->http, NULL, NULL);
            serve_log(a, q->http, q->from, q->limit);
            rows += q->limit;
        }
        free(q);
    }
    if (list_empty(&a->log_queue))
        uv_idle_stop(&a->log_idle);
}

/* Answer every queued GET /log with 503 (the API is closing). */
static void log_drain(struct api *a)
{
    struct list *l;
    while ((l = list_first(&a->log_queue)) != NULL) {
        struct log_req *q = LIST_CONTAINER_OF(l, struct log_req, link);
        list_remove(&q->link);
        a->n_log_queued--;
        if (q->http != NULL) {
            httpd_on_abort(q->http, NULL, NULL);
            reply_error(q->http, 503, NULL, "1", "node shutting down");
        }
        free(q);
    }
    uv_idle_stop(&a->log_idle);
}

static void handle_log(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!api_serving(a, r))
        return;
    uint64_t from, limit;
    if (query_u64(r, "from", 1, 0, INT64_MAX, &from) != 0 ||
        query_u64(r, "limit", 100, 1, LOG_LIMIT_MAX, &limit) != 0) {
        reply_error(r, 400, NULL, NULL,
                    "from must be an integer 0..9223372036854775807 and "
                    "limit 1..1000");
        return;
    }
    struct log_req *q =
        a->n_log_queued < LOG_QUEUE_MAX ? calloc(1, sizeof *q) : NULL;
    if (q == NULL) {
        a->log_refused++;
        reply_error(r, 503, NULL, "1", "too many /log requests queued; retry");
        return;
    }
    q->http = r;
    q->from = from;
    q->limit = limit;
    list_insert_tail(&a->log_queue, &q->link);
    a->n_log_queued++;
    httpd_on_abort(r, log_abort_cb, q);
    uv_idle_start(&a->log_idle, log_turn);
}

/* ---- GET /status, /members, /metrics ---- */

static const char *role_str(enum node_role r)
{
    switch (r) {
    case NODE_LEADER:
        return "leader";
    case NODE_FOLLOWER:
        return "follower";
    case NODE_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

static json_t *leader_json(struct api *a, const struct node_status *st)
{
    if (st->leader_id == 0)
        return json_null();
    const struct peer *p = peer_get(a, st->leader_id);
    /* chain mode: raft id = token << 32 | epoch */
    uint64_t token = a->cfg->chain ? st->leader_id >> 32 : st->leader_id;
    return json_pack("{s:I,s:I,s:s,s:s}", "id", (json_int_t)st->leader_id,
                     "token_id", (json_int_t)token, "instance_id",
                     p ? p->instance_id : "", "url", p ? p->url : "");
}

/* /status "pg": the local PostgreSQL and the newest promotion record. */
static json_t *pg_json(struct api *a)
{
    struct coord_status cs;
    coord_status(a->pg, &cs);
    char lsn[24], rlsn[24];
    pg_lsn_format(cs.info.lsn, lsn, sizeof lsn);
    json_t *rec = json_null();
    if (cs.has_record) {
        pg_lsn_format(cs.record.lsn, rlsn, sizeof rlsn);
        rec = json_pack("{s:I,s:I,s:I,s:I,s:s,s:s,s:i}", "term",
                        (json_int_t)cs.record.term, "primary",
                        (json_int_t)cs.record.primary, "fenced",
                        (json_int_t)cs.record.fenced, "timeline",
                        (json_int_t)cs.record.timeline, "lsn", rlsn, "host",
                        cs.record.host, "port", cs.record.port);
    }
    json_t *j = json_pack(
        "{s:s,s:s,s:i,s:I,s:s,s:I,s:s,s:b,s:s,s:o,s:I,s:s,s:I}", "role",
        pg_role_name(cs.info.role), "host", cs.host, "port", cs.port,
        "timeline", (json_int_t)cs.info.timeline, "lsn", lsn, "replay_lag_ms",
        (json_int_t)cs.info.replay_lag_ms, "sync_state", cs.info.sync_state,
        "streaming", cs.info.streaming, "upstream", cs.info.upstream, "record",
        rec, "failovers", (json_int_t)cs.failovers, "action", cs.action,
        "info_age_ms", (json_int_t)cs.info_age_ms);
    json_object_set_new(j, "detached_for",
                        json_integer((json_int_t)cs.detached_for));
    char rcv[24], rpl[24];
    pg_lsn_format(cs.info.receive_lsn, rcv, sizeof rcv);
    pg_lsn_format(cs.info.replay_lsn, rpl, sizeof rpl);
    json_object_set_new(j, "receive_lsn", json_string(rcv));
    json_object_set_new(j, "replay_lsn", json_string(rpl));
    json_object_set_new(j, "broken", json_boolean(cs.broken));
    json_object_set_new(j, "diverged", json_boolean(cs.info.diverged));
    json_object_set_new(j, "upstream_timeline",
                        json_integer((json_int_t)cs.info.upstream_timeline));
    return j;
}

static void handle_status(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!api_serving(a, r))
        return;
    struct node_status st;
    node_status(a->node, &st);
    json_t *chain =
        a->hooks.status_json ? a->hooks.status_json(a->hooks.data) : NULL;
    const char *refusal =
        a->hooks.write_refusal ? a->hooks.write_refusal(a->hooks.data) : NULL;
    uint64_t token = a->cfg->chain ? st.id >> 32 : st.id; /* token<<32|epoch */
    json_t *j = json_pack(
        "{s:I,s:s,s:I,s:s,s:I,s:o,s:I,s:I,s:b,s:I,s:s,s:s,s:o,s:o}", "id",
        (json_int_t)st.id, "instance_id", a->cfg->instance_id, "token_id",
        (json_int_t)token, "role", role_str(st.role), "term",
        (json_int_t)st.term, "leader", leader_json(a, &st), "commit_index",
        (json_int_t)st.commit_index, "applied_index",
        (json_int_t)st.applied_index, "ready", st.ready, "value",
        (json_int_t)fsm_value(a->fsm), "url", a->cfg->advertise_url, "version",
        NFTRAFT_VERSION, "chain", chain ? chain : json_null(), "writable_error",
        refusal ? json_string(refusal) : json_null());
    if (a->pg != NULL)
        json_object_set_new(j, "pg", pg_json(a));
    httpd_respond_json(r, 200, j, CORS);
}

static void handle_members(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!api_serving(a, r))
        return;
    json_t *m =
        a->hooks.members_json ? a->hooks.members_json(a->hooks.data) : NULL;
    if (m != NULL) {
        httpd_respond_json(r, 200, m, CORS);
        return;
    }
    struct node_status st;
    node_status(a->node, &st);
    struct node_server servers[MAX_PEERS];
    unsigned n = node_servers(a->node, servers, MAX_PEERS);
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++) {
        const struct peer *p = peer_get(a, servers[i].id);
        const char *role = servers[i].role != NODE_VOTER
                               ? node_member_name(servers[i].role)
                           : servers[i].id == st.leader_id ? "leader"
                                                           : "follower";
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:n,s:b,s:s,s:s,s:s}", "token_id",
                           (json_int_t)servers[i].id, "instance_id",
                           p ? p->instance_id : "", "owner", "active", 1,
                           "role", role, "url", p ? p->url : "", "raft_address",
                           servers[i].address));
    }
    httpd_respond_json(
        r, 200, json_pack("{s:s,s:o}", "source", "static", "members", arr),
        CORS);
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL,
                          b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p != NULL && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            return;
        b->p = np;
        b->cap = cap;
    }
}

static void handle_metrics(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!api_serving(a, r))
        return;
    struct node_status st;
    node_status(a->node, &st);
    struct sbuf b = {0};
    sb_printf(&b, "# HELP nftraft_role Raft role of this node (1 = current).\n"
                  "# TYPE nftraft_role gauge\n");
    for (int i = 0; i <= 3; i++)
        sb_printf(&b, "nftraft_role{role=\"%s\"} %d\n",
                  role_str((enum node_role)i), (int)st.role == i);
    sb_printf(
        &b,
        "# TYPE nftraft_term gauge\nnftraft_term %" PRIu64 "\n"
        "# TYPE nftraft_commit_index gauge\nnftraft_commit_index %" PRIu64
        "\n# TYPE nftraft_applied_index gauge\nnftraft_applied_index %" PRIu64
        "\n# TYPE nftraft_counter_value gauge\n"
        "nftraft_counter_value %" PRId64 "\n"
        "# TYPE nftraft_leader_elections_total counter\n"
        "nftraft_leader_elections_total %" PRIu64 "\n"
        "# HELP nftraft_increments_total Increments committed and "
        "answered by this node as leader.\n"
        "# TYPE nftraft_increments_total counter\n"
        "nftraft_increments_total %" PRIu64 "\n"
        "# TYPE nftraft_increments_failed_total counter\n"
        "nftraft_increments_failed_total %" PRIu64 "\n"
        "# TYPE nftraft_increments_deduplicated_total counter\n"
        "nftraft_increments_deduplicated_total %" PRIu64 "\n"
        "# TYPE nftraft_forwarded_total counter\n"
        "nftraft_forwarded_total %" PRIu64 "\n"
        "# TYPE nftraft_linearizable_reads_total counter\n"
        "nftraft_linearizable_reads_total %" PRIu64 "\n",
        st.term, st.commit_index, st.applied_index, fsm_value(a->fsm),
        st.elections, a->increments_total, a->increments_failed, a->dedup_total,
        a->forwarded_total, a->reads_total);
    sb_printf(&b, "# HELP nftraft_increment_duration_seconds POST /increment "
                  "latency as seen by this node.\n"
                  "# TYPE nftraft_increment_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += a->hist[i];
        sb_printf(
            &b,
            "nftraft_increment_duration_seconds_bucket{le=\"%g\"} %" PRIu64
            "\n",
            BUCKETS[i], cum);
    }
    cum += a->hist[N_BUCKETS];
    sb_printf(&b,
              "nftraft_increment_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64
              "\nnftraft_increment_duration_seconds_sum %.6f\n"
              "nftraft_increment_duration_seconds_count %" PRIu64 "\n",
              cum, a->hist_sum, a->hist_count);
    sb_printf(&b,
              "# HELP nftraft_raft_connections_refused_total Raft "
              "connections refused by the handshake (chain mode).\n"
              "# TYPE nftraft_raft_connections_refused_total counter\n"
              "nftraft_raft_connections_refused_total %" PRIu64 "\n",
              a->transport ? transport_refused(a->transport) : 0);
    sb_printf(&b,
              "# HELP nftraft_chain_rpc_disagreements_total Contract polls "
              "whose two --rpc-url endpoints answered differently (view not "
              "adopted).\n"
              "# TYPE nftraft_chain_rpc_disagreements_total counter\n"
              "nftraft_chain_rpc_disagreements_total %" PRIu64 "\n",
              a->hooks.rpc_disagreements
                  ? a->hooks.rpc_disagreements(a->hooks.data)
                  : 0);
    struct httpd_stats hs;
    httpd_stats(a->httpd, &hs);
    sb_printf(&b,
              "# TYPE nftraft_http_connections gauge\n"
              "nftraft_http_connections %u\n"
              "# HELP nftraft_http_connections_refused_total Connections "
              "answered 503 over --max-http-conns.\n"
              "# TYPE nftraft_http_connections_refused_total counter\n"
              "nftraft_http_connections_refused_total %" PRIu64 "\n"
              "# HELP nftraft_http_bad_requests_total Requests refused 400 "
              "before routing (method, UTF-8, framing).\n"
              "# TYPE nftraft_http_bad_requests_total counter\n"
              "nftraft_http_bad_requests_total %" PRIu64 "\n"
              "# HELP nftraft_http_buffer_refused_total Requests answered 503 "
              "over the per-connection unread-answer cap.\n"
              "# TYPE nftraft_http_buffer_refused_total counter\n"
              "nftraft_http_buffer_refused_total %" PRIu64 "\n"
              "# TYPE nftraft_log_requests_queued gauge\n"
              "nftraft_log_requests_queued %u\n"
              "# TYPE nftraft_log_requests_refused_total counter\n"
              "nftraft_log_requests_refused_total %" PRIu64 "\n"
              "# TYPE nftraft_forwards_in_flight gauge\n"
              "nftraft_forwards_in_flight %u\n"
              "# HELP nftraft_forwards_refused_total Requests answered 503 "
              "over --max-forwards.\n"
              "# TYPE nftraft_forwards_refused_total counter\n"
              "nftraft_forwards_refused_total %" PRIu64 "\n",
              hs.conns_open, hs.conns_refused, hs.bad_requests,
              hs.buffer_refused, a->n_log_queued, a->log_refused, a->n_fwd,
              a->fwd_refused);
    if (a->pg != NULL) {
        struct coord_status cs;
        coord_status(a->pg, &cs);
        sb_printf(&b, "# HELP nftraft_pg_role Role of the local PostgreSQL "
                      "(1 = current).\n# TYPE nftraft_pg_role gauge\n");
        for (int i = PG_NONE; i <= PG_STOPPING; i++)
            sb_printf(&b, "nftraft_pg_role{role=\"%s\"} %d\n",
                      pg_role_name((enum pg_role)i), (int)cs.info.role == i);
        sb_printf(&b,
                  "# HELP nftraft_pg_failovers_total Standbys promoted by "
                  "this node after a failover.\n"
                  "# TYPE nftraft_pg_failovers_total counter\n"
                  "nftraft_pg_failovers_total %" PRIu64 "\n"
                  "# HELP nftraft_pg_lsn WAL position of the local "
                  "PostgreSQL (bytes).\n"
                  "# TYPE nftraft_pg_lsn gauge\nnftraft_pg_lsn %" PRIu64 "\n"
                  "# TYPE nftraft_pg_timeline gauge\n"
                  "nftraft_pg_timeline %u\n"
                  "# HELP nftraft_pg_replay_lag_seconds Standby: time since "
                  "the last replayed transaction's commit (-1 unknown).\n"
                  "# TYPE nftraft_pg_replay_lag_seconds gauge\n"
                  "nftraft_pg_replay_lag_seconds %.3f\n",
                  cs.failovers, cs.info.lsn, cs.info.timeline,
                  cs.info.replay_lag_ms < 0
                      ? -1.0
                      : (double)cs.info.replay_lag_ms / 1e3);
    }
    httpd_respond(r, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len,
                  CORS);
    free(b.p);
}

/* Answer every request the fault switch held (503) and drop it. */
static void release_held(struct api *a)
{
    struct list *l;
    while ((l = list_first(&a->held)) != NULL) {
        struct pending *p = PENDING_OF(l);
        list_remove(&p->link);
        if (p->http != NULL) {
            httpd_on_abort(p->http, NULL, NULL);
            reply_error(p->http, 503, "failed", "1",
                        "held by the fault switch; retry");
        }
        free(p);
    }
}

/* POST /fault {"http_stall": true|false}: test-only, needs
 * --enable-fault-switch. While stalled, every other endpoint never answers
 * (as a hung process would) while raft keeps running. */
static void handle_fault(void *data, struct httpd_req *r)
{
    struct api *a = data;
    if (!a->cfg->fault_switch) {
        reply_error(r, 404, NULL, NULL,
                    "fault switch disabled (start with --enable-fault-switch)");
        return;
    }
    size_t blen;
    const void *body = httpd_body(r, &blen);
    json_error_t je;
    json_t *j = json_loadb(body, blen, 0, &je);
    json_t *v = j ? json_object_get(j, "http_stall") : NULL;
    if (v == NULL || !json_is_boolean(v)) {
        json_decref(j);
        reply_error(r, 400, NULL, NULL, "body must be {\"http_stall\": bool}");
        return;
    }
    a->stalled = json_is_true(v);
    json_decref(j);
    if (!a->stalled)
        release_held(a);
    LOGW("http", "fault switch: http_stall=%s", a->stalled ? "on" : "off");
    httpd_respond_json(r, 200, json_pack("{s:b}", "http_stall", a->stalled),
                       NULL);
}

/* Answer requests whose raft apply outlived --apply-timeout. */
static void sweep_cb(uv_timer_t *t)
{
    struct api *a = t->data;
    uint64_t now = uv_now(a->loop);
    struct list *l;
    LIST_FOREACH(l, &a->pending) {
        struct pending *p = PENDING_OF(l);
        if (p->http != NULL && now >= p->deadline) {
            httpd_on_abort(p->http, NULL, NULL);
            reply_error(p->http, 503, p->is_write ? "unknown" : "failed", "1",
                        p->is_write ? "timed out waiting for commit; the "
                                      "increment may still commit: retry "
                                      "with the same Idempotency-Key"
                                    : "timed out waiting for the leader");
            p->http = NULL;
        }
    }
}

int api_init(struct api **out, uv_loop_t *loop, const struct config *cfg,
             struct node *node, struct fsm *fsm, char *errmsg, size_t errlen)
{
    struct api *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    a->loop = loop;
    a->cfg = cfg;
    a->node = node;
    a->fsm = fsm;
    list_init(&a->pending);
    list_init(&a->fwd);
    list_init(&a->held);
    list_init(&a->log_queue);
    for (unsigned i = 0; i < cfg->n_peers; i++)
        api_set_peer_url(a, cfg->peers[i].id, cfg->peers[i].http, NULL);
    if (cfg->id != 0)
        api_set_peer_url(a, cfg->id, cfg->advertise_url, cfg->instance_id);
    int rv = httpc_init(&a->httpc, loop);
    if (rv == 0)
        rv = httpc_set_source(a->httpc, cfg->bind_ip);
    if (rv != 0) {
        snprintf(errmsg, errlen, "HTTP client: %s", err_str(rv));
        free(a);
        return rv;
    }
    rv = relay_init(&a->relay, loop, cfg->bind_ip, FWD_CONNS);
    if (rv != 0) {
        snprintf(errmsg, errlen, "forwarding relay: %s", err_str(rv));
        httpc_close(a->httpc, NULL, NULL);
        free(a);
        return rv;
    }
    rv = httpd_init(&a->httpd, loop, cfg->max_body, errmsg, errlen);
    if (rv != 0) {
        relay_close(a->relay, NULL, NULL);
        httpc_close(a->httpc, NULL, NULL);
        free(a);
        return rv;
    }
    struct httpd_limits lim = {.max_conns = cfg->max_http_conns,
                               .max_conn_buffered =
                                   HTTPD_DEFAULT_MAX_CONN_BUFFERED,
                               .http2 = cfg->http2};
    httpd_set_limits(a->httpd, &lim);
    httpd_route(a->httpd, "GET", "/counter", handle_counter, a);
    httpd_route(a->httpd, "POST", "/increment", handle_increment, a);
    httpd_route(a->httpd, "GET", "/log", handle_log, a);
    httpd_route(a->httpd, "GET", "/status", handle_status, a);
    httpd_route(a->httpd, "GET", "/members", handle_members, a);
    httpd_route(a->httpd, "GET", "/metrics", handle_metrics, a);
    httpd_route(a->httpd, "POST", "/fault", handle_fault, a);
    dashboard_register(a->httpd);
    uv_timer_init(loop, &a->sweep);
    a->sweep.data = a;
    uv_idle_init(loop, &a->log_idle);
    a->log_idle.data = a;
    uv_timer_start(&a->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
    rv = httpd_listen(a->httpd, cfg->http_host, cfg->http_port, errmsg, errlen);
    if (rv != 0) {
        /* Tear down asynchronously; the caller stops the loop. */
        a->node = NULL;
        api_close(a, NULL, NULL);
        return rv;
    }
    LOGI("http", "listening on %s:%d (advertised %s; dashboard at %s/)",
         cfg->http_host, cfg->http_port, cfg->advertise_url,
         cfg->advertise_url);
    *out = a;
    return 0;
}

static void api_httpd_closed(void *data)
{
    struct api *a = data;
    void (*cb)(void *) = a->close_cb;
    void *cd = a->close_data;
    /* Raft is closed: every apply callback has run; nothing is pending. */
    struct list *l;
    while ((l = list_first(&a->pending)) != NULL)
        pending_finish(PENDING_OF(l));
    free(a);
    if (cb)
        cb(cd);
}

static void api_sweep_closed(uv_handle_t *h)
{
    struct api *a = h->data;
    httpd_close(a->httpd, api_httpd_closed, a);
}

static void api_relay_closed(void *data)
{
    struct api *a = data;
    uv_close((uv_handle_t *)&a->log_idle, NULL); /* before the sweep's cb */
    uv_close((uv_handle_t *)&a->sweep, api_sweep_closed);
}

void api_close(struct api *a, void (*cb)(void *data), void *data)
{
    a->node = NULL;
    a->stalled = false;
    release_held(a);
    log_drain(a);
    a->close_cb = cb;
    a->close_data = data;
    uv_timer_stop(&a->sweep);
    /* Both fail their forwarded requests (answered 503 by fwd_done)
     * synchronously. */
    httpc_close(a->httpc, NULL, NULL);
    relay_close(a->relay, api_relay_closed, a);
}
