/* relay.h - the follower -> leader relay: forwarded requests sent over a
 * small pool of persistent raw HTTP/1.1 keep-alive connections on the
 * caller's libuv loop (uv_tcp, TCP_NODELAY), one request per connection at
 * a time, the answer read with a strict bounded parser.
 *
 * Cheaper per request than core/httpc (curl): the sockets stay registered
 * with the loop (reading is always on), a request is one write and its
 * answer usually one read. Only plain http:// to a literal IPv4 or [IPv6]
 * address is spoken; anything else is ERR_INVALID and the caller uses
 * core/httpc. All calls are made on the loop thread.
 *
 * A request the caller marks re-sendable (a read, or a write carrying an
 * Idempotency-Key) is sent again once on a fresh connection when a kept
 * connection dies before any byte of the answer arrives (the leader closed
 * it while idle, or restarted). Any other request is sent at most once: a
 * dead connection fails it with ERR_IO. */
#ifndef NFTRAFT_RELAY_H
#define NFTRAFT_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Largest answer head (status line and headers) accepted. */
#define RELAY_MAX_HEAD 8192

struct relay;

struct relay_resp {
    int err;            /* 0, ERR_TIMEOUT, ERR_IO (connect/transfer failed),
                           ERR_MALFORMED (not a well-formed HTTP/1.1 answer),
                           ERR_TOOBIG (body above max), ERR_SHUTDOWN */
    const char *errmsg; /* human text when err != 0 */
    int status;         /* HTTP status, 0 when err != 0 */
    const char *body;   /* valid only during the callback */
    size_t body_len;
    const char *retry_after; /* Retry-After value or NULL */
};

/* Fires exactly once per successfully started request, never before
 * relay_request returned (a failure found inside it is reported on a later
 * loop turn); it must not call relay_close. */
typedef void (*relay_cb)(void *data, const struct relay_resp *resp);

/* Create a relay on loop keeping at most max_conns connections (all
 * targets together; further requests queue). source_ip: local IPv4 address
 * outgoing connections leave from (NULL or "" = the route's choice).
 * Returns 0, ERR_INVALID (bad source_ip) or ERR_NOMEM. */
int relay_init(struct relay **out, uv_loop_t *loop, const char *source_ip,
               unsigned max_conns);

/* Send method ("GET" or "POST") path (starting with '/') to base_url
 * ("http://IP[:port]", no path). headers: NULL-terminated "Name: value"
 * lines without CR/LF (or NULL); the body is copied (POST only). resend:
 * the request may be sent twice (see above).
 * timeout_ms bounds the whole exchange, queueing included; max_body caps
 * the answer's body (ERR_TOOBIG above it). Returns 0 and cb fires later
 * exactly once; ERR_INVALID (a URL the relay does not speak: use another
 * client, or a bad argument), ERR_NOMEM or ERR_SHUTDOWN and cb never
 * fires. */
int relay_request(struct relay *r, const char *base_url, const char *method,
                  const char *path, const char *const *headers,
                  const void *body, size_t body_len, bool resend,
                  unsigned timeout_ms, size_t max_body, relay_cb cb,
                  void *data);

/* Connections open now (any state), for tests and metrics. */
unsigned relay_conns(const struct relay *r);

/* Fail every pending request with ERR_SHUTDOWN (callbacks run inside this
 * call), close every connection and free the relay once its handles are
 * closed; cb (may be NULL) runs after that. */
void relay_close(struct relay *r, void (*cb)(void *data), void *data);

/* ---- the answer parser (pure; a fuzz target) ---- */

struct relay_head {
    int status;           /* 200..599 */
    size_t head_len;      /* bytes up to and including the empty line */
    size_t body_len;      /* from Content-Length (0 for 204/304) */
    bool close;           /* the connection must not be reused */
    char retry_after[64]; /* "" when absent */
};

/* Parse an HTTP/1.x answer head from buf[0..len): 0 when complete (*h
 * filled), ERR_TOOBIG when Content-Length exceeds max_body, ERR_MALFORMED
 * when it is not strictly a well-formed answer this relay accepts (CRLF
 * line ends only, status 200..599, token header names, no control bytes in
 * values, no folding, exactly one Content-Length unless 204/304, no
 * Transfer-Encoding, head within RELAY_MAX_HEAD), ERR_NOTFOUND when more
 * bytes are needed. Reads nothing beyond buf[len - 1]. */
int relay_parse_head(const char *buf, size_t len, size_t max_body,
                     struct relay_head *h);

/* Split base_url ("http://a.b.c.d[:port]" or "http://[v6][:port]", an
 * optional trailing '/') into a socket address and the Host header value
 * (host cap bytes). 0 or ERR_INVALID. */
int relay_parse_url(const char *base_url, struct sockaddr_storage *addr,
                    char *host, size_t cap);

#endif
