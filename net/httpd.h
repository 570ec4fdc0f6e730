/* httpd.h - a small HTTP/1.1 server on h2o 2.2 (libuv build) for the node
 * API and the KMS auth webhook: exact-path routing, JSON answers, bodies
 * capped at max_body (413), 404/405 with JSON bodies, and answers that may
 * come later (after raft commits). Hostile input gets a 400 (a method that
 * is not a token, a path that is not UTF-8, two Content-Length headers or
 * Content-Length with Transfer-Encoding); HTTP/2 (h2c upgrade and prior
 * knowledge) is off unless enabled; connections and buffered answer bytes
 * are capped. All calls run on the loop thread. */
#ifndef NFTRAFT_HTTPD_H
#define NFTRAFT_HTTPD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct httpd;
struct httpd_req;

/* A route's handler. It answers now or later with exactly one of the
 * httpd_respond* calls; after that call r must not be touched again. */
typedef void (*httpd_handler)(void *data, struct httpd_req *r);

/* Create a server on loop; request bodies above max_body get 413. */
int httpd_init(struct httpd **out, uv_loop_t *loop, size_t max_body,
               char *errmsg, size_t errlen);

/* Limits (see httpd_set_limits). */
struct httpd_limits {
    unsigned max_conns;       /* open connections; more get a 503 + close */
    size_t max_conn_buffered; /* answer bytes queued on one connection and
                                 not yet written; a request arriving above
                                 it gets a 503 (only HTTP/2 can queue more
                                 than one answer per connection) */
    int http2;                /* 1: accept h2c upgrade and prior knowledge */
};
#define HTTPD_DEFAULT_MAX_CONNS 512
#define HTTPD_DEFAULT_MAX_CONN_BUFFERED (1u << 20)

/* Counters since start, for /metrics. */
struct httpd_stats {
    unsigned conns_open;
    uint64_t conns_refused;  /* over max_conns */
    uint64_t bad_requests;   /* refused by the checks above (400) */
    uint64_t buffer_refused; /* over max_conn_buffered (503) */
};

/* Replace the limits (httpd_init sets the defaults above, HTTP/2 off).
 * Takes effect for new connections and requests. */
void httpd_set_limits(struct httpd *s, const struct httpd_limits *l);

void httpd_stats(const struct httpd *s, struct httpd_stats *out);

/* Listen on host:port (IPv4 or IPv6 literal, or "localhost"). ERR_BUSY when
 * the address is in use, ERR_INVALID for a bad host; errmsg says which. */
int httpd_listen(struct httpd *s, const char *host, int port, char *errmsg,
                 size_t errlen);

/* The port actually bound (useful after listening on port 0). */
int httpd_port(const struct httpd *s);

/* Route method+path (exact match) to h. At most 32 routes. */
int httpd_route(struct httpd *s, const char *method, const char *path,
                httpd_handler h, void *data);

/* Stop listening, close every connection (a request still waiting for its
 * answer sees its abort callback), free the server; cb runs last. */
void httpd_close(struct httpd *s, void (*cb)(void *data), void *data);

/* Request accessors; pointers stay valid until the request is answered. */
const char *httpd_method(const struct httpd_req *r, size_t *len);
/* URL-decoded query parameter into out (cap bytes incl. NUL): 0,
 * ERR_NOTFOUND, ERR_TOOBIG, ERR_MALFORMED (bad %-escape, or a NUL byte). */
int httpd_query(const struct httpd_req *r, const char *name, char *out,
                size_t cap);
/* Header value by case-insensitive name, or NULL. Not NUL-terminated. */
const char *httpd_header(const struct httpd_req *r, const char *name,
                         size_t *len);
/* The request body (may be empty; not NUL-terminated). */
const void *httpd_body(const struct httpd_req *r, size_t *len);

/* Answer with body (copied). extra_headers: NULL-terminated "Name: value"
 * strings, or NULL. */
void httpd_respond(struct httpd_req *r, int status, const char *content_type,
                   const char *body, size_t len,
                   const char *const *extra_headers);
/* Answer with obj serialized (compact); obj is consumed (decref'd). */
void httpd_respond_json(struct httpd_req *r, int status, json_t *obj,
                        const char *const *extra_headers);
/* Answer {"error": "<message>"}. */
void httpd_error(struct httpd_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Register (or with cb NULL, clear) the callback that runs if the request
 * dies before it was answered (connection closed, server closing). After
 * it runs, r is gone: the later answer must not be sent. */
void httpd_on_abort(struct httpd_req *r, void (*cb)(void *data), void *data);

#endif
