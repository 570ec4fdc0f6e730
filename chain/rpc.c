/* rpc.c - JSON-RPC requests, validation of answers, retry with backoff. */
#include "chain/rpc.h"
#include "chain/abi.h"
#include "chain/hex.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/list.h"
#include "core/redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (4u << 20)
#define MAX_RESULT_BYTES (1u << 20)

struct rpc {
    uv_loop_t *loop;
    struct httpc *http;
    char url[512];
    char shown[512]; /* url with credentials redacted, for messages */
    unsigned timeout_ms, retries;
    uint64_t next_id;
    struct list calls; /* struct call pending, newest first, for rpc_close */
};

struct call {
    struct rpc *rpc;
    struct list link; /* in rpc.calls */
    char *body;
    uint64_t id;
    unsigned attempt;
    uv_timer_t *backoff; /* allocated while waiting to retry */
    struct httpc_req *hreq;
    rpc_cb cb;
    void *data;
    /* typed wrappers */
    rpc_u64_cb u64_cb;
    rpc_bytes_cb bytes_cb;
    void *typed_data;
};

int rpc_init(struct rpc **out, uv_loop_t *loop, struct httpc *http,
             const char *url, unsigned timeout_ms, unsigned retries)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return ERR_INVALID;
    struct rpc *r = calloc(1, sizeof *r);
    if (r == NULL)
        return ERR_NOMEM;
    r->loop = loop;
    r->http = http;
    snprintf(r->url, sizeof r->url, "%s", url);
    redact_url(r->url, r->shown, sizeof r->shown);
    r->timeout_ms = timeout_ms;
    r->retries = retries;
    r->next_id = 1;
    list_init(&r->calls);
    *out = r;
    return 0;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

static void finish(struct call *c, int err, json_t *result, const char *msg)
{
    list_remove(&c->link);
    if (c->backoff != NULL) {
        uv_timer_stop(c->backoff);
        uv_close((uv_handle_t *)c->backoff, free_timer);
    }
    c->cb(c->data, err, result, msg);
    free(c->body);
    free(c);
}

static void send_attempt(struct call *c);

static void backoff_cb(uv_timer_t *t)
{
    struct call *c = t->data;
    send_attempt(c);
}

static void http_cb(void *data, const struct httpc_resp *resp)
{
    struct call *c = data;
    c->hreq = NULL;
    char msg[1024];
    if (resp->err == ERR_SHUTDOWN) {
        finish(c, ERR_SHUTDOWN, NULL, "cancelled");
        return;
    }
    if (resp->err != 0 || resp->status >= 500) {
        if (c->attempt < c->rpc->retries) {
            unsigned delay = 100u << (c->attempt < 5 ? c->attempt : 5);
            c->attempt++;
            if (c->backoff == NULL) {
                c->backoff = malloc(sizeof *c->backoff);
                if (c->backoff != NULL) {
                    uv_timer_init(c->rpc->loop, c->backoff);
                    c->backoff->data = c;
                }
            }
            if (c->backoff != NULL) {
                uv_timer_start(c->backoff, backoff_cb, delay, 0);
                return;
            }
        }
        snprintf(msg, sizeof msg, "%s: %s", c->rpc->shown,
                 resp->err ? resp->errmsg : "HTTP server error");
        finish(c, resp->err ? resp->err : ERR_RPC, NULL, msg);
        return;
    }
    json_t *root, *result;
    int rv = rpc_parse_answer(resp->body, resp->body_len, c->id, resp->status,
                              &root, &result, msg, sizeof msg);
    if (rv != 0) {
        finish(c, rv, NULL, msg);
        return;
    }
    finish(c, 0, result, NULL);
    json_decref(root);
}

int rpc_parse_answer(const void *body, size_t len, uint64_t id,
                     long http_status, json_t **root, json_t **result,
                     char *msg, size_t msglen)
{
    *root = *result = NULL;
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    json_t *jid = j ? json_object_get(j, "id") : NULL;
    if (j == NULL || !json_is_object(j) || !json_is_integer(jid) ||
        (uint64_t)json_integer_value(jid) != id) {
        snprintf(msg, msglen, "malformed JSON-RPC answer (HTTP %ld)",
                 http_status);
        json_decref(j);
        return ERR_MALFORMED;
    }
    json_t *err = json_object_get(j, "error");
    if (err != NULL && !json_is_null(err)) {
        const char *m = json_string_value(json_object_get(err, "message"));
        const char *data_hex = json_string_value(json_object_get(err, "data"));
        int code = ERR_RPC;
        if (data_hex != NULL && strlen(data_hex) >= 10) {
            uint8_t buf[1024];
            size_t n;
            if (hex_decode(data_hex, strlen(data_hex), buf, sizeof buf, &n) ==
                0) {
                abi_revert_reason(buf, n, msg, msglen);
                code = ERR_REVERT;
            }
        }
        if (code == ERR_RPC)
            snprintf(msg, msglen, "%s", m ? m : "JSON-RPC error");
        json_decref(j);
        return code;
    }
    json_t *r = json_object_get(j, "result");
    if (r == NULL) {
        json_decref(j);
        snprintf(msg, msglen, "JSON-RPC answer without a result");
        return ERR_MALFORMED;
    }
    *root = j;
    *result = r;
    return 0;
}

static void send_attempt(struct call *c)
{
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    int rv = httpc_request(c->rpc->http, "POST", c->rpc->url, hdrs, c->body,
                           strlen(c->body), c->rpc->timeout_ms, MAX_BODY,
                           http_cb, c, &c->hreq);
    if (rv != 0)
        finish(c, rv, NULL, "cannot start the HTTP request");
}

int rpc_call(struct rpc *r, const char *method, json_t *params, rpc_cb cb,
             void *data)
{
    struct call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        json_decref(params);
        return ERR_NOMEM;
    }
    c->rpc = r;
    list_init(&c->link);
    c->id = r->next_id++;
    c->cb = cb;
    c->data = data;
    json_t *req = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id",
                            (json_int_t)c->id, "method", method, "params",
                            params ? params : json_array());
    c->body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (c->body == NULL) {
        free(c);
        return ERR_NOMEM;
    }
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    int rv =
        httpc_request(r->http, "POST", r->url, hdrs, c->body, strlen(c->body),
                      r->timeout_ms, MAX_BODY, http_cb, c, &c->hreq);
    if (rv != 0) {
        free(c->body);
        free(c);
        return rv;
    }
    list_insert_head(&r->calls, &c->link);
    return 0;
}

void rpc_close(struct rpc *r)
{
    struct list *l;
    while ((l = list_first(&r->calls)) != NULL) {
        struct call *c = LIST_CONTAINER_OF(l, struct call, link);
        if (c->hreq != NULL)
            httpc_cancel(c->hreq); /* finishes c through http_cb */
        else
            finish(c, ERR_SHUTDOWN, NULL, "cancelled");
    }
    free(r);
}

/* ---- typed wrappers ---- */

struct typed {
    rpc_u64_cb u64_cb;
    rpc_bytes_cb bytes_cb;
    void *data;
};

static void u64_done(void *data, int err, json_t *result, const char *msg)
{
    struct typed *t = data;
    uint64_t v = 0;
    if (err == 0 && hex_quantity(json_string_value(result), &v) != 0) {
        err = ERR_MALFORMED;
        msg = "the RPC answered a malformed quantity";
    }
    t->u64_cb(t->data, err, v, msg);
    free(t);
}

static int u64_call(struct rpc *r, const char *method, rpc_u64_cb cb,
                    void *data)
{
    struct typed *t = calloc(1, sizeof *t);
    if (t == NULL)
        return ERR_NOMEM;
    t->u64_cb = cb;
    t->data = data;
    int rv = rpc_call(r, method, json_array(), u64_done, t);
    if (rv != 0)
        free(t);
    return rv;
}

int rpc_chain_id(struct rpc *r, rpc_u64_cb cb, void *data)
{
    return u64_call(r, "eth_chainId", cb, data);
}

int rpc_block_number(struct rpc *r, rpc_u64_cb cb, void *data)
{
    return u64_call(r, "eth_blockNumber", cb, data);
}

static void bytes_done(void *data, int err, json_t *result, const char *msg)
{
    struct typed *t = data;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (err == 0) {
        const char *s = json_string_value(result);
        size_t sl = s ? strlen(s) : 0;
        buf = malloc(sl / 2 + 1);
        if (s == NULL || sl < 2 || buf == NULL ||
            hex_decode(s, sl, buf, MAX_RESULT_BYTES, &n) != 0) {
            err = ERR_MALFORMED;
            msg = "the RPC answered malformed call data";
            n = 0;
        }
    }
    t->bytes_cb(t->data, err, buf, n, msg);
    free(buf);
    free(t);
}

int rpc_eth_call(struct rpc *r, const uint8_t to[20], const uint8_t *calldata,
                 size_t len, const char *block, rpc_bytes_cb cb, void *data)
{
    char toh[43];
    char *dh = malloc(2 * len + 3);
    struct typed *t = calloc(1, sizeof *t);
    if (dh == NULL || t == NULL) {
        free(dh);
        free(t);
        return ERR_NOMEM;
    }
    hex_encode(to, 20, 1, toh);
    hex_encode(calldata, len, 1, dh);
    t->bytes_cb = cb;
    t->data = data;
    json_t *params = json_pack("[{s:s,s:s},s]", "to", toh, "data", dh,
                               block ? block : "latest");
    free(dh);
    int rv =
        params ? rpc_call(r, "eth_call", params, bytes_done, t) : ERR_NOMEM;
    if (rv != 0)
        free(t);
    return rv;
}

/* ---- logs ---- */

struct logs_call {
    rpc_cb cb;
    void *data;
    size_t max;
};

int rpc_check_logs(const json_t *result, size_t max_logs)
{
    if (!json_is_array(result))
        return ERR_MALFORMED;
    if (json_array_size(result) > max_logs)
        return ERR_TOOBIG;
    for (size_t i = 0; i < json_array_size(result); i++) {
        json_t *l = json_array_get(result, i);
        json_t *t = json_object_get(l, "topics");
        if (!json_is_object(l) || !json_is_array(t) || json_array_size(t) > 4 ||
            !json_is_string(json_object_get(l, "data")))
            return ERR_MALFORMED;
    }
    return 0;
}

static void logs_done(void *data, int err, json_t *result, const char *msg)
{
    struct logs_call *lc = data;
    if (err == 0) {
        err = rpc_check_logs(result, lc->max);
        if (err != 0)
            msg = err == ERR_TOOBIG ? "eth_getLogs answered too many logs"
                                    : "eth_getLogs answered a malformed log";
    }
    lc->cb(lc->data, err, err == 0 ? result : NULL, msg);
    free(lc);
}

int rpc_get_logs(struct rpc *r, const uint8_t address[20], uint64_t from,
                 const uint8_t topic0[32], size_t max_logs, rpc_cb cb,
                 void *data)
{
    struct logs_call *lc = calloc(1, sizeof *lc);
    if (lc == NULL)
        return ERR_NOMEM;
    lc->cb = cb;
    lc->data = data;
    lc->max = max_logs;
    char addr[43], fromh[24], t0[67];
    hex_encode(address, 20, 1, addr);
    snprintf(fromh, sizeof fromh, "0x%llx", (unsigned long long)from);
    json_t *filter = json_pack("{s:s,s:s,s:s}", "address", addr, "fromBlock",
                               fromh, "toBlock", "latest");
    if (filter != NULL && topic0 != NULL) {
        hex_encode(topic0, 32, 1, t0);
        json_object_set_new(filter, "topics", json_pack("[s]", t0));
    }
    int rv = filter ? rpc_call(r, "eth_getLogs", json_pack("[o]", filter),
                               logs_done, lc)
                    : ERR_NOMEM;
    if (rv != 0)
        free(lc);
    return rv;
}
