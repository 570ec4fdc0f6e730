/* httpc.h - asynchronous HTTP client on a libuv loop (curl multi socket API).
 *
 * Used by the chain JSON-RPC client, request forwarding and leader pings.
 * Never blocks the loop: curl's sockets and timer are driven by uv_poll and a
 * uv_timer on the caller's loop. All calls are made on the loop thread.
 * Connections are kept alive and reused: at most 64 at a time to one host
 * (further requests wait inside curl until one is free; each running one is
 * bounded by its own timeout),
 * all of them kept in curl's cache between requests. */
#ifndef NFTRAFT_HTTPC_H
#define NFTRAFT_HTTPC_H

#include <stddef.h>
#include <uv.h>

struct httpc;
struct httpc_req;

struct httpc_resp {
    int err;            /* 0, ERR_TIMEOUT, ERR_IO (connect/transfer failed),
                           ERR_TOOBIG (body above max), ERR_SHUTDOWN */
    const char *errmsg; /* human text when err != 0 */
    long status;        /* HTTP status, 0 when err != 0 */
    const char *body;   /* NUL-terminated; valid only during the callback */
    size_t body_len;
    const char *retry_after; /* Retry-After header value or NULL */
};

/* Fires exactly once per successfully started request. */
typedef void (*httpc_cb)(void *data, const struct httpc_resp *resp);

/* Create a client on loop. Returns 0 or ERR_NOMEM/ERR_IO. */
int httpc_init(struct httpc **out, uv_loop_t *loop);

/* Fail every pending request with ERR_SHUTDOWN (their callbacks run inside
 * this call), then release the client once its uv handles are closed; cb
 * (may be NULL) runs after that. */
void httpc_close(struct httpc *c, void (*cb)(void *data), void *data);

/* Make every later request leave from local IPv4 address ip (curl's
 * CURLOPT_INTERFACE "host!ip"); NULL or "" = the route's choice.
 * Returns 0 or ERR_INVALID (not an IPv4 address). */
int httpc_set_source(struct httpc *c, const char *ip);

/* Start one request. method is "GET" or "POST"; headers is a NULL-terminated
 * array of "Name: value" (or NULL); body/body_len may be NULL/0; the body is
 * copied. timeout_ms bounds the whole transfer; max_body caps the response
 * (ERR_TOOBIG above it). Returns 0 and the callback fires later exactly
 * once; on error (ERR_INVALID, ERR_NOMEM) the callback never fires. *req (may
 * be NULL) receives a handle for httpc_cancel. */
int httpc_request(struct httpc *c, const char *method, const char *url,
                  const char *const *headers, const void *body, size_t body_len,
                  unsigned timeout_ms, size_t max_body, httpc_cb cb, void *data,
                  struct httpc_req **req);

/* Abort a pending request; its callback fires with ERR_SHUTDOWN inside this
 * call. A handle whose callback already ran must not be passed. */
void httpc_cancel(struct httpc_req *req);

#endif
