/* httpd.c - h2o 2.2 HTTP/1.1 server on a libuv loop with exact-path routing
 * and JSON errors; tracks connections so that close is orderly, caps them,
 * and refuses requests h2o itself lets through (bad method/path bytes,
 * ambiguous body framing) before any handler sees them. */
#include "net/httpd.h"
#include "net/request.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>

#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_ROUTES 32
/* A connection over the cap is answered 503, half-closed, and drained for
 * at most this long (so the client reads the 503 instead of a reset); at
 * most REFUSED_LINGER_MAX of them linger, the rest are just closed. */
#define REFUSED_LINGER_MS 1000
#define REFUSED_LINGER_MAX 64
#define BUSY_BODY "{\"error\":\"too many connections; retry shortly\"}"
static const char busy_answer[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Retry-After: 1\r\nConnection: close\r\nContent-Length: "
    "47\r\n\r\n" BUSY_BODY;
_Static_assert(sizeof BUSY_BODY - 1 == 47, "Content-Length of BUSY_BODY");

struct route {
    char method[8];
    char path[64];
    httpd_handler h;
    void *data;
};

struct conn {
    uv_tcp_t tcp; /* first: h2o's close callback gets &tcp */
    struct httpd *srv;
    struct list link; /* in httpd.conns */
    h2o_socket_t *sock;
    size_t buffered; /* answer bytes handed to h2o, request not yet done */
};

/* A connection refused over the cap: 503 written, lingering briefly. */
struct refused {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sh;
    struct httpd *srv;
    struct list link; /* in httpd.refused */
    int handles;      /* open handles: tcp + timer */
    bool closing;
    char sink[256];
};

struct root_handler {
    h2o_handler_t super;
    struct httpd *srv;
};

struct httpd {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    bool listening;
    int port;
    struct route routes[MAX_ROUTES];
    unsigned n_routes;
    struct list conns; /* struct conn */
    unsigned n_conns;
    struct list refused; /* struct refused */
    unsigned n_refused;
    bool at_cap;
    struct httpd_limits lim;
    struct httpd_stats st;
    bool closing, listener_closed;
    uv_timer_t done_marker;
    void (*close_cb)(void *);
    void *close_data;
};

struct httpd_req {
    h2o_req_t *req;
    struct httpd *srv;
    h2o_socket_t *sock; /* to find its struct conn (which may be gone) */
    size_t buffered;    /* bytes counted in that conn's `buffered` */
    bool answered;
    void (*abort_cb)(void *);
    void *abort_data;
};

static void maybe_finish_close(struct httpd *s);

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Status";
}

static struct conn *conn_of(struct httpd *s, const h2o_socket_t *sock)
{
    if (sock == NULL)
        return NULL;
    struct list *l;
    LIST_FOREACH(l, &s->conns) {
        struct conn *c = LIST_CONTAINER_OF(l, struct conn, link);
        if (c->sock == sock)
            return c;
    }
    return NULL;
}

/* Pool dispose: the request is gone (answered, or its connection died). */
static void req_dispose(void *p)
{
    struct httpd_req *r = p;
    struct conn *c = r->buffered ? conn_of(r->srv, r->sock) : NULL;
    if (c != NULL)
        c->buffered -= r->buffered < c->buffered ? r->buffered : c->buffered;
    if (!r->answered && r->abort_cb != NULL)
        r->abort_cb(r->abort_data);
}

/* h2o 2.2 keeps the first Content-Length (and lets Transfer-Encoding win)
 * and drops both from req->headers, so ambiguous framing is only visible in
 * the raw head, which is still at the start of the socket's input buffer
 * while an HTTP/1 request is being handled. NULL or what is wrong. */
static const char *framing_problem(const h2o_req_t *req, h2o_socket_t *sock)
{
    if (req->version >= 0x200)
        return NULL; /* HTTP/2 frames its bodies itself */
    const h2o_buffer_t *in = sock ? sock->input : NULL;
    if (in == NULL || in->size < req->input.method.len ||
        memcmp(in->bytes, req->input.method.base, req->input.method.len) != 0)
        return "cannot check the request framing";
    return request_framing_problem(in->bytes, in->size);
}

/* NULL when the request may reach a handler; otherwise why it gets 400. */
static const char *request_problem(const h2o_req_t *req, h2o_socket_t *sock)
{
    if (request_check_method(req->input.method.base, req->input.method.len))
        return "bad method";
    if (request_check_target(req->input.path.base, req->input.path.len) ||
        request_check_target(req->path_normalized.base,
                             req->path_normalized.len))
        return "the request target is not UTF-8 (or holds control bytes)";
    return framing_problem(req, sock);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct httpd *s = ((struct root_handler *)self)->srv;
    struct httpd_req *r =
        h2o_mem_alloc_shared(&req->pool, sizeof *r, req_dispose);
    memset(r, 0, sizeof *r);
    r->req = req;
    r->srv = s;
    r->sock = req->conn->callbacks->get_socket != NULL
                  ? req->conn->callbacks->get_socket(req->conn)
                  : NULL;
    const char *bad = request_problem(req, r->sock);
    if (bad != NULL) {
        s->st.bad_requests++;
        req->http1_is_persistent = 0; /* the rest of the input is suspect */
        httpd_error(r, 400, "%s", bad);
        return 0;
    }
    struct conn *c = conn_of(s, r->sock);
    if (c != NULL && c->buffered >= s->lim.max_conn_buffered) {
        s->st.buffer_refused++;
        const char *h[] = {"Retry-After: 1", NULL};
        httpd_respond_json(
            r, 503,
            json_pack("{s:s}", "error",
                      "too many unread answers on this connection"),
            h);
        return 0;
    }
    h2o_iovec_t path = req->path_normalized;
    const struct route *match = NULL;
    bool path_known = false;
    char allow[64] = "";
    for (unsigned i = 0; i < s->n_routes; i++) {
        const struct route *rt = &s->routes[i];
        if (strlen(rt->path) != path.len ||
            memcmp(rt->path, path.base, path.len) != 0)
            continue;
        path_known = true;
        size_t al = strlen(allow);
        snprintf(allow + al, sizeof allow - al, "%s%s", al ? ", " : "",
                 rt->method);
        if (strlen(rt->method) == req->method.len &&
            memcmp(rt->method, req->method.base, req->method.len) == 0)
            match = rt;
    }
    if (match != NULL) {
        match->h(match->data, r);
    } else if (path_known) {
        char hdr[96];
        snprintf(hdr, sizeof hdr, "Allow: %s", allow);
        const char *h[] = {hdr, NULL};
        char msg[160];
        snprintf(msg, sizeof msg, "method %.*s not allowed on %.*s (allow: %s)",
                 (int)(req->method.len > 16 ? 16 : req->method.len),
                 req->method.base, (int)(path.len > 64 ? 64 : path.len),
                 path.base, allow);
        httpd_respond_json(r, 405, json_pack("{s:s}", "error", msg), h);
    } else {
        httpd_error(r, 404, "no such endpoint: %.*s",
                    (int)(path.len > 128 ? 128 : path.len), path.base);
    }
    return 0;
}

int httpd_init(struct httpd **out, uv_loop_t *loop, size_t max_body,
               char *errmsg, size_t errlen)
{
    struct httpd *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    s->loop = loop;
    list_init(&s->conns);
    list_init(&s->refused);
    s->lim.max_conns = HTTPD_DEFAULT_MAX_CONNS;
    s->lim.max_conn_buffered = HTTPD_DEFAULT_MAX_CONN_BUFFERED;
    s->lim.http2 = 0;
    h2o_config_init(&s->config);
    /* HTTP/2 off: no h2c upgrade, and "PRI * HTTP/2.0" gets a 400. */
    s->config.http1.upgrade_to_http2 = 0;
    s->config.max_request_entity_size = max_body;
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("nftraft"));
    h2o_hostconf_t *host = h2o_config_register_host(
        &s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    struct root_handler *h = (void *)h2o_create_handler(pc, sizeof *h);
    h->super.on_req = on_req;
    h->srv = s;
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(loop, &s->done_marker);
    s->done_marker.data = s;
    *out = s;
    return 0;
}

void httpd_set_limits(struct httpd *s, const struct httpd_limits *l)
{
    s->lim = *l;
    s->config.http1.upgrade_to_http2 = l->http2 ? 1 : 0;
    if (l->http2)
        s->config.http2.max_concurrent_requests_per_connection = 16;
}

void httpd_stats(const struct httpd *s, struct httpd_stats *out)
{
    *out = s->st;
    out->conns_open = s->n_conns;
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    struct httpd *s = c->srv;
    list_remove(&c->link);
    s->n_conns--;
    free(c);
    if (s->at_cap && s->n_conns < s->lim.max_conns) {
        s->at_cap = false;
        LOGI("http",
             "below the connection cap again (%u open, %" PRIu64
             " refused so far)",
             s->n_conns, s->st.conns_refused);
    }
    maybe_finish_close(s);
}

static void refused_handle_closed(uv_handle_t *h)
{
    struct refused *f = h->data;
    if (--f->handles > 0)
        return;
    struct httpd *s = f->srv;
    list_remove(&f->link);
    s->n_refused--;
    free(f);
    maybe_finish_close(s);
}

static void refused_close(struct refused *f)
{
    if (f->closing)
        return;
    f->closing = true;
    uv_close((uv_handle_t *)&f->tcp, refused_handle_closed);
    uv_close((uv_handle_t *)&f->timer, refused_handle_closed);
}

static void refused_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct refused *f = h->data;
    *buf = uv_buf_init(f->sink, sizeof f->sink);
}

static void refused_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0)
        refused_close(st->data);
}

static void refused_timeout(uv_timer_t *t)
{
    refused_close(t->data);
}

static void refused_shut(uv_shutdown_t *sh, int status)
{
    (void)sh;
    (void)status;
}

/* Over the connection cap: accept, answer 503, and let go. */
static void refuse(struct httpd *s, uv_stream_t *listener)
{
    s->st.conns_refused++;
    if (!s->at_cap) {
        s->at_cap = true;
        LOGW("http",
             "connection cap reached (%u open): new connections get "
             "503 until some close",
             s->n_conns);
    }
    struct refused *f =
        s->n_refused < REFUSED_LINGER_MAX ? calloc(1, sizeof *f) : NULL;
    if (f == NULL) {
        uv_tcp_t *t = malloc(sizeof *t);
        if (t == NULL)
            return;
        uv_tcp_init(s->loop, t);
        if (uv_accept(listener, (uv_stream_t *)t) == 0) {
            uv_buf_t b =
                uv_buf_init((char *)busy_answer, sizeof busy_answer - 1);
            uv_try_write((uv_stream_t *)t, &b, 1);
        }
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return;
    }
    f->srv = s;
    f->handles = 2;
    uv_tcp_init(s->loop, &f->tcp);
    uv_timer_init(s->loop, &f->timer);
    f->tcp.data = f->timer.data = f;
    list_insert_tail(&s->refused, &f->link);
    s->n_refused++;
    if (uv_accept(listener, (uv_stream_t *)&f->tcp) != 0) {
        refused_close(f);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)busy_answer, sizeof busy_answer - 1);
    uv_try_write((uv_stream_t *)&f->tcp, &b, 1);
    uv_shutdown(&f->sh, (uv_stream_t *)&f->tcp, refused_shut);
    uv_read_start((uv_stream_t *)&f->tcp, refused_alloc, refused_read);
    uv_timer_start(&f->timer, refused_timeout, REFUSED_LINGER_MS, 0);
}

static void on_accept(uv_stream_t *listener, int status)
{
    struct httpd *s = listener->data;
    if (status != 0 || s->closing)
        return;
    if (s->n_conns >= s->lim.max_conns) {
        refuse(s, listener);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(s->loop, &c->tcp);
    c->srv = s;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    list_insert_tail(&s->conns, &c->link);
    s->n_conns++;
    h2o_socket_t *sock =
        h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_closed);
    c->sock = sock;
    h2o_accept(&s->accept_ctx, sock);
}

int httpd_listen(struct httpd *s, const char *host, int port, char *errmsg,
                 size_t errlen)
{
    struct sockaddr_storage ss;
    const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (uv_ip4_addr(h, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(h, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(errmsg, errlen, "HTTP listen: '%s' is not an IP address",
                 host);
        return ERR_INVALID;
    }
    int rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->listener, 1024, on_accept);
    if (rv != 0) {
        snprintf(errmsg, errlen, "HTTP listen on %s:%d: %s", host, port,
                 uv_strerror(rv));
        return rv == UV_EADDRINUSE || rv == UV_EACCES ? ERR_BUSY : ERR_IO;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    s->port = port;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len) == 0)
        s->port = ntohs(bound.ss_family == AF_INET
                            ? ((struct sockaddr_in *)&bound)->sin_port
                            : ((struct sockaddr_in6 *)&bound)->sin6_port);
    s->listening = true;
    return 0;
}

int httpd_port(const struct httpd *s)
{
    return s->port;
}

int httpd_route(struct httpd *s, const char *method, const char *path,
                httpd_handler h, void *data)
{
    if (s->n_routes == MAX_ROUTES || strlen(method) >= 8 || strlen(path) >= 64)
        return ERR_TOOBIG;
    struct route *rt = &s->routes[s->n_routes++];
    snprintf(rt->method, sizeof rt->method, "%s", method);
    snprintf(rt->path, sizeof rt->path, "%s", path);
    rt->h = h;
    rt->data = data;
    return 0;
}

static void done_marker_closed(uv_handle_t *h)
{
    /* Closed after h2o's timers (close callbacks run in order). */
    struct httpd *s = h->data;
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;
    h2o_config_dispose(&s->config);
    free(s);
    if (cb)
        cb(data);
}

static void maybe_finish_close(struct httpd *s)
{
    if (!s->closing || !s->listener_closed || s->n_conns > 0 ||
        s->n_refused > 0)
        return;
    h2o_context_dispose(&s->ctx);
    uv_close((uv_handle_t *)&s->done_marker, done_marker_closed);
}

static void listener_closed(uv_handle_t *h)
{
    struct httpd *s = h->data;
    s->listener_closed = true;
    maybe_finish_close(s);
}

void httpd_close(struct httpd *s, void (*cb)(void *data), void *data)
{
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    /* HTTP/1 only: no keep-alive from now on. (h2o_context_request_shutdown
     * would also arm HTTP/2's graceful-shutdown timer, which must be empty
     * when the context is disposed.) */
    s->ctx.shutdown_requested = 1;
    /* Idle keep-alive connections: end their read side so that h2o sees
     * EOF and closes them through its own path. */
    struct list *l, *tmp;
    LIST_FOREACH(l, &s->conns) {
        struct conn *c = LIST_CONTAINER_OF(l, struct conn, link);
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RD);
    }
    LIST_FOREACH_SAFE(l, tmp, &s->refused)
        refused_close(LIST_CONTAINER_OF(l, struct refused, link));
    uv_close((uv_handle_t *)&s->listener, listener_closed);
}

const char *httpd_method(const struct httpd_req *r, size_t *len)
{
    *len = r->req->method.len;
    return r->req->method.base;
}

int httpd_query(const struct httpd_req *r, const char *name, char *out,
                size_t cap)
{
    const h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX)
        return ERR_NOTFOUND;
    return request_query_value(req->path.base + req->query_at + 1,
                               req->path.len - req->query_at - 1, name, out,
                               cap);
}

const char *httpd_header(const struct httpd_req *r, const char *name,
                         size_t *len)
{
    char lower[64];
    size_t n = strlen(name);
    if (n >= sizeof lower)
        return NULL;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    ssize_t i = h2o_find_header_by_str(&r->req->headers, lower, n, -1);
    if (i < 0)
        return NULL;
    *len = r->req->headers.entries[i].value.len;
    return r->req->headers.entries[i].value.base;
}

const void *httpd_body(const struct httpd_req *r, size_t *len)
{
    *len = r->req->entity.base ? r->req->entity.len : 0;
    return r->req->entity.base ? r->req->entity.base : "";
}

void httpd_respond(struct httpd_req *r, int status, const char *content_type,
                   const char *body, size_t len,
                   const char *const *extra_headers)
{
    h2o_req_t *req = r->req;
    r->answered = true;
    struct conn *c = conn_of(r->srv, r->sock);
    if (c != NULL) {
        r->buffered = len;
        c->buffered += len;
    }
    req->res.status = status;
    req->res.reason = reason(status);
    req->res.content_length = len;
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                       NULL, content_type, strlen(content_type));
    for (size_t i = 0; extra_headers != NULL && extra_headers[i] != NULL; i++) {
        const char *hd = extra_headers[i];
        const char *colon = strchr(hd, ':');
        if (colon == NULL || colon == hd)
            continue;
        size_t nl = (size_t)(colon - hd);
        char *name = h2o_mem_alloc_pool(&req->pool, nl);
        for (size_t k = 0; k < nl; k++)
            name[k] = (char)tolower((unsigned char)hd[k]);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        h2o_add_header_by_str(&req->pool, &req->res.headers, name, nl, 1, NULL,
                              v, strlen(v));
    }
    h2o_send_inline(req, body, len);
}

void httpd_respond_json(struct httpd_req *r, int status, json_t *obj,
                        const char *const *extra_headers)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (s == NULL) {
        static const char oom[] = "{\"error\":\"cannot encode the answer\"}";
        httpd_respond(r, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    httpd_respond(r, status, "application/json", s, strlen(s), extra_headers);
    free(s);
}

void httpd_error(struct httpd_req *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    httpd_respond_json(r, status, json_pack("{s:s}", "error", msg), NULL);
}

void httpd_on_abort(struct httpd_req *r, void (*cb)(void *data), void *data)
{
    r->abort_cb = cb;
    r->abort_data = data;
}
