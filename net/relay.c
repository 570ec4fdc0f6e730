/* relay.c - forwarded requests over persistent raw HTTP/1.1 connections
 * (see relay.h). */
#include "net/relay.h"
#include "core/err.h"
#include "core/list.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Timeouts and idle connections are checked this often. */
#define TICK_MS 50
/* A connection idle this long is closed (h2o closes them after 10 s). */
#define IDLE_MS 4000
/* Read buffer: grown in steps of at least this; a larger one is dropped
 * once its answer is delivered. */
#define READ_STEP 4096
#define KEEP_BUF (64 * 1024)

enum cstate { C_CONNECTING, C_IDLE, C_BUSY };

struct relay_req;

struct rconn {
    uv_tcp_t tcp; /* first: the close callback gets &tcp */
    uv_connect_t connect;
    uv_write_t write;
    struct relay *r;
    struct list link; /* in relay.conns while open */
    struct sockaddr_storage addr;
    enum cstate state;
    struct relay_req *req; /* in flight on this connection, or NULL */
    bool used;             /* answered before: a kept connection */
    bool writing;          /* `write` in use (its callback not yet run) */
    bool closing;
    uint64_t idle_since; /* uv_now when it went idle */
    char *in;            /* bytes of the current answer */
    size_t in_len, in_cap;
};

struct relay_req {
    struct list link; /* in relay.queue while waiting for a connection, or
                         relay.failed */
    struct relay *r;
    struct sockaddr_storage addr;
    char *out; /* the serialized request */
    size_t out_len, max_body;
    uint64_t deadline; /* uv_now */
    bool resend;       /* may be sent again (once) */
    relay_cb cb;
    void *data;
    int err;       /* in relay.failed: the failure to report */
    char why[160]; /* and its message */
};

struct relay {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct list conns;  /* struct rconn, open */
    struct list queue;  /* struct relay_req waiting */
    struct list failed; /* struct relay_req that failed inside relay_request:
                           reported from the timer (callbacks never run
                           before relay_request returns) */
    unsigned n_conns, max_conns;
    int open_handles;
    bool closing, has_source, in_request;
    struct sockaddr_in source;
    void (*close_cb)(void *);
    void *close_data;
};

#define CONN_OF(l) LIST_CONTAINER_OF(l, struct rconn, link)
#define REQ_OF(l) LIST_CONTAINER_OF(l, struct relay_req, link)

/* ---- the answer parser ---- */

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* HTAB, SP, visible ASCII, obs-text. */
static bool is_vchar_ws(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool name_is(const char *n, size_t nl, const char *want)
{
    return nl == strlen(want) && strncasecmp(n, want, nl) == 0;
}

/* Whether the comma-separated token list v[0..vl) holds "close". */
static bool has_close(const char *v, size_t vl)
{
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < vl && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - s == 5 && strncasecmp(v + s, "close", 5) == 0)
            return true;
    }
    return false;
}

int relay_parse_head(const char *buf, size_t len, size_t max_body,
                     struct relay_head *h)
{
    memset(h, 0, sizeof *h);
    const unsigned char *b = (const unsigned char *)buf;
    static const char prefix[] = "HTTP/1.";
    for (size_t i = 0; i < len && i < sizeof prefix - 1; i++)
        if (b[i] != (unsigned char)prefix[i])
            return ERR_MALFORMED;
    /* Find the empty line within RELAY_MAX_HEAD bytes. */
    size_t lim = len < RELAY_MAX_HEAD ? len : RELAY_MAX_HEAD;
    size_t end = 0;
    for (size_t i = 0; i < lim; i++) {
        if (b[i] != '\n')
            continue;
        if (i == 0 || b[i - 1] != '\r') /* a bare LF */
            return ERR_MALFORMED;
        if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r') {
            end = i + 1;
            break;
        }
    }
    if (end == 0)
        return len >= RELAY_MAX_HEAD ? ERR_MALFORMED : ERR_NOTFOUND;
    /* Status line: HTTP/1.[01] SP 3DIGIT [SP reason] CRLF. */
    if (end < 14 || (b[7] != '0' && b[7] != '1') || b[8] != ' ')
        return ERR_MALFORMED;
    for (int i = 9; i < 12; i++)
        if (b[i] < '0' || b[i] > '9')
            return ERR_MALFORMED;
    h->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (h->status < 200 || h->status > 599)
        return ERR_MALFORMED;
    h->close = b[7] == '0';
    size_t p = 12;
    if (b[p] == ' ') {
        for (p++; b[p] != '\r'; p++)
            if (!is_vchar_ws(b[p]))
                return ERR_MALFORMED;
    }
    if (b[p] != '\r' || b[p + 1] != '\n')
        return ERR_MALFORMED;
    p += 2;
    /* Header lines until the empty one. */
    int n_cl = 0;
    uint64_t cl = 0;
    while (!(b[p] == '\r' && b[p + 1] == '\n')) {
        size_t ns = p;
        while (is_tchar(b[p]))
            p++;
        if (p == ns || b[p] != ':') /* also refuses folded lines */
            return ERR_MALFORMED;
        size_t nl = p - ns;
        p++;
        while (b[p] == ' ' || b[p] == '\t')
            p++;
        size_t vs = p;
        while (b[p] != '\r') {
            if (!is_vchar_ws(b[p]))
                return ERR_MALFORMED;
            p++;
        }
        if (b[p + 1] != '\n')
            return ERR_MALFORMED;
        size_t ve = p;
        while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
            ve--;
        const char *n = buf + ns, *v = buf + vs;
        size_t vl = ve - vs;
        if (name_is(n, nl, "content-length")) {
            if (++n_cl > 1 || vl == 0 || vl > 18)
                return ERR_MALFORMED;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return ERR_MALFORMED;
                cl = cl * 10 + (uint64_t)(v[i] - '0');
            }
        } else if (name_is(n, nl, "transfer-encoding")) {
            return ERR_MALFORMED;
        } else if (name_is(n, nl, "connection")) {
            if (has_close(v, vl))
                h->close = true;
        } else if (name_is(n, nl, "retry-after")) {
            /* Relayed to the client: printable ASCII only (seconds or an
             * HTTP-date). */
            if (vl == 0 || vl >= sizeof h->retry_after || h->retry_after[0])
                return ERR_MALFORMED;
            for (size_t i = 0; i < vl; i++)
                if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
                    return ERR_MALFORMED;
            memcpy(h->retry_after, v, vl);
            h->retry_after[vl] = '\0';
        }
        p += 2;
    }
    h->head_len = p + 2;
    if (h->head_len != end) /* the empty line found first is this one */
        return ERR_MALFORMED;
    if (h->status == 204 || h->status == 304) {
        h->body_len = 0;
        return 0;
    }
    if (n_cl != 1)
        return ERR_MALFORMED;
    if (cl > max_body)
        return ERR_TOOBIG;
    h->body_len = (size_t)cl;
    return 0;
}

int relay_parse_url(const char *url, struct sockaddr_storage *addr, char *host,
                    size_t cap)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return ERR_INVALID;
    const char *a = url + sizeof scheme - 1;
    char ip[64];
    const char *rest;
    bool v6 = a[0] == '[';
    if (v6) {
        const char *e = strchr(a, ']');
        if (e == NULL || (size_t)(e - a - 1) >= sizeof ip)
            return ERR_INVALID;
        memcpy(ip, a + 1, (size_t)(e - a - 1));
        ip[e - a - 1] = '\0';
        rest = e + 1;
    } else {
        size_t n = strcspn(a, ":/");
        if (n == 0 || n >= sizeof ip)
            return ERR_INVALID;
        memcpy(ip, a, n);
        ip[n] = '\0';
        rest = a + n;
    }
    unsigned long port = 80;
    if (*rest == ':') {
        rest++;
        if (*rest < '0' || *rest > '9')
            return ERR_INVALID;
        port = 0;
        while (*rest >= '0' && *rest <= '9') {
            port = port * 10 + (unsigned long)(*rest - '0');
            if (port > 65535)
                return ERR_INVALID;
            rest++;
        }
        if (port == 0)
            return ERR_INVALID;
    }
    if (!(rest[0] == '\0' || (rest[0] == '/' && rest[1] == '\0')))
        return ERR_INVALID;
    memset(addr, 0, sizeof *addr);
    if (v6) {
        if (uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)addr) != 0)
            return ERR_INVALID;
    } else {
        struct in_addr ia;
        if (inet_pton(AF_INET, ip, &ia) != 1 ||
            uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)addr) != 0)
            return ERR_INVALID;
    }
    size_t hl = (size_t)(rest - a); /* the authority, without a '/' */
    if (hl >= cap)
        return ERR_INVALID;
    memcpy(host, a, hl);
    host[hl] = '\0';
    return 0;
}

static bool addr_eq(const struct sockaddr_storage *x,
                    const struct sockaddr_storage *y)
{
    if (x->ss_family != y->ss_family)
        return false;
    if (x->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)x, *b = (const void *)y;
        return a->sin_port == b->sin_port &&
               a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *a = (const void *)x, *b = (const void *)y;
    return a->sin6_port == b->sin6_port &&
           memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
}

/* ---- requests and connections ---- */

static void maybe_closed(struct relay *r)
{
    if (!r->closing || r->open_handles > 0)
        return;
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    free(r);
    if (cb)
        cb(data);
}

static void tick(uv_timer_t *t);

/* Run q's callback once and free q. A failure inside relay_request (a
 * kept connection found dead by the first write) is reported on the next
 * loop turn instead: the caller registers the request after the call. */
static void req_finish(struct relay_req *q, int err, const char *errmsg,
                       const struct relay_head *h, const char *body)
{
    struct relay *r = q->r;
    if (err != 0 && r->in_request) {
        q->err = err;
        snprintf(q->why, sizeof q->why, "%s", errmsg ? errmsg : err_str(err));
        list_remove(&q->link);
        list_insert_tail(&r->failed, &q->link);
        uv_timer_start(&r->timer, tick, 0, TICK_MS);
        return;
    }
    struct relay_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.err = err;
    if (err != 0) {
        resp.errmsg = errmsg;
    } else {
        resp.status = h->status;
        resp.body = body;
        resp.body_len = h->body_len;
        resp.retry_after = h->retry_after[0] ? h->retry_after : NULL;
    }
    relay_cb cb = q->cb;
    void *data = q->data;
    list_remove(&q->link);
    free(q->out);
    free(q);
    cb(data, &resp);
}

static void timer_closed(uv_handle_t *hd)
{
    struct relay *r = hd->data;
    r->open_handles--;
    maybe_closed(r);
}

static void conn_closed(uv_handle_t *hd)
{
    struct rconn *c = hd->data;
    struct relay *r = c->r;
    free(c->in);
    free(c);
    r->open_handles--;
    maybe_closed(r);
}

/* Close c (its request, if any, was taken off it by the caller). */
static void conn_close(struct rconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    list_remove(&c->link);
    c->r->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void kick(struct relay *r);

/* c broke (connect, write or read failed, or the leader closed it): close
 * it; its request is sent again once on a fresh connection when it may be
 * (resend), c was a kept one and no byte of the answer came; else it fails
 * with ERR_IO. */
static void conn_fail(struct rconn *c, const char *why)
{
    struct relay_req *q = c->req;
    struct relay *r = c->r;
    c->req = NULL;
    bool resend = q != NULL && c->used && c->in_len == 0 && q->resend;
    conn_close(c);
    if (q == NULL)
        return;
    if (resend) {
        q->resend = false;
        list_insert_head(&r->queue, &q->link);
        kick(r);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s", why);
    req_finish(q, ERR_IO, msg, NULL, NULL);
}

static void write_cb(uv_write_t *w, int status)
{
    struct rconn *c = w->data;
    c->writing = false;
    if (c->closing)
        return;
    if (status < 0)
        conn_fail(c, "write to the leader failed");
    else if (c->state == C_IDLE) /* answered before this callback ran */
        kick(c->r);
}

static void conn_send(struct rconn *c, struct relay_req *q)
{
    c->req = q;
    c->state = C_BUSY;
    c->in_len = 0;
    uv_buf_t b = uv_buf_init(q->out, (unsigned)q->out_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)q->out_len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, "write to the leader failed");
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0)
        conn_fail(c, "write to the leader failed");
    else
        c->writing = true;
}

static void alloc_cb(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct rconn *c = hd->data;
    if (c->in_cap - c->in_len < READ_STEP) {
        size_t cap = c->in_cap ? c->in_cap * 2 : READ_STEP;
        while (cap - c->in_len < READ_STEP)
            cap *= 2;
        char *p = realloc(c->in, cap);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct rconn *c = s->data;
    struct relay *r = c->r;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        conn_fail(c, nread == UV_EOF ? "the leader closed the connection"
                                     : "reading from the leader failed");
        return;
    }
    struct relay_req *q = c->req;
    if (q == NULL || c->state != C_BUSY) { /* bytes nobody asked for */
        conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    struct relay_head h;
    int rv = relay_parse_head(c->in, c->in_len, q->max_body, &h);
    if (rv == ERR_NOTFOUND)
        return;
    if (rv != 0) {
        c->req = NULL;
        conn_close(c);
        req_finish(q, rv,
                   rv == ERR_TOOBIG ? "the leader's answer is too large"
                                    : "the leader's answer is not valid HTTP",
                   NULL, NULL);
        return;
    }
    size_t need = h.head_len + h.body_len;
    if (c->in_len < need)
        return;
    bool reuse = !h.close && c->in_len == need;
    c->req = NULL;
    req_finish(q, 0, NULL, &h, c->in + h.head_len);
    if (!reuse || c->closing) {
        conn_close(c);
    } else {
        c->state = C_IDLE;
        c->used = true;
        c->in_len = 0;
        c->idle_since = uv_now(r->loop);
        if (c->in_cap > KEEP_BUF) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    kick(r);
}

static void connect_cb(uv_connect_t *cr, int status)
{
    struct rconn *c = cr->data;
    if (status == UV_ECANCELED || c->closing)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect to the leader: %s",
                 uv_strerror(status));
        conn_fail(c, why);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
        conn_fail(c, "cannot read from the leader");
        return;
    }
    if (c->req != NULL)
        conn_send(c, c->req);
}

/* A new connection to q's address carrying q; q fails with ERR_IO when it
 * cannot even start. */
static void conn_open(struct relay *r, struct relay_req *q)
{
    struct rconn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        req_finish(q, ERR_NOMEM, "out of memory", NULL, NULL);
        return;
    }
    if (uv_tcp_init(r->loop, &c->tcp) != 0) {
        free(c);
        req_finish(q, ERR_IO, "cannot create a socket", NULL, NULL);
        return;
    }
    c->r = r;
    c->tcp.data = c;
    c->connect.data = c;
    c->addr = q->addr;
    c->state = C_CONNECTING;
    c->req = q;
    r->open_handles++;
    r->n_conns++;
    list_insert_tail(&r->conns, &c->link);
    uv_tcp_nodelay(&c->tcp, 1);
    int rv = 0;
    if (r->has_source && q->addr.ss_family == AF_INET)
        rv = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&r->source, 0);
    if (rv == 0)
        rv = uv_tcp_connect(&c->connect, &c->tcp,
                            (const struct sockaddr *)&q->addr, connect_cb);
    if (rv != 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect to the leader: %s",
                 uv_strerror(rv));
        conn_fail(c, why);
    }
}

/* Hand queued requests to idle connections, opening new ones up to the cap;
 * idle connections to another address (an old leader) make room. */
static void kick(struct relay *r)
{
    struct list *l, *t;
    while (!r->closing && (l = list_first(&r->queue)) != NULL) {
        struct relay_req *q = REQ_OF(l);
        struct rconn *idle = NULL;
        bool other = false;
        LIST_FOREACH(t, &r->conns) {
            struct rconn *c = CONN_OF(t);
            /* An answer can come before the callback of the write that
             * carried the request: `write` is not free until it ran. */
            if (c->state != C_IDLE || c->writing)
                continue;
            if (addr_eq(&c->addr, &q->addr)) {
                idle = c;
                break;
            }
            other = true;
        }
        if (idle == NULL && other) {
            struct list *u;
            LIST_FOREACH_SAFE(t, u, &r->conns) {
                struct rconn *c = CONN_OF(t);
                if (c->state == C_IDLE && !addr_eq(&c->addr, &q->addr))
                    conn_close(c);
            }
        }
        if (idle == NULL && r->n_conns >= r->max_conns)
            return;
        list_remove(&q->link);
        if (idle != NULL)
            conn_send(idle, q);
        else
            conn_open(r, q);
    }
}

/* Report the requests that failed inside relay_request. */
static void report_failed(struct relay *r)
{
    struct list *l;
    while ((l = list_first(&r->failed)) != NULL) {
        struct relay_req *q = REQ_OF(l);
        char why[sizeof q->why];
        memcpy(why, q->why, sizeof why); /* q is freed before the callback */
        req_finish(q, q->err, why, NULL, NULL);
    }
}

static void tick(uv_timer_t *t)
{
    struct relay *r = t->data;
    report_failed(r);
    uint64_t now = uv_now(r->loop);
    struct list expired, *l, *u;
    list_init(&expired);
    LIST_FOREACH_SAFE(l, u, &r->conns) {
        struct rconn *c = CONN_OF(l);
        if (c->req != NULL && now >= c->req->deadline) {
            list_insert_tail(&expired, &c->req->link);
            c->req = NULL;
            conn_close(c); /* an answer arriving later must not be read */
        } else if (c->state == C_IDLE && now - c->idle_since >= IDLE_MS) {
            conn_close(c);
        }
    }
    LIST_FOREACH_SAFE(l, u, &r->queue) {
        struct relay_req *q = REQ_OF(l);
        if (now >= q->deadline) {
            list_remove(&q->link);
            list_insert_tail(&expired, &q->link);
        }
    }
    /* Callbacks last: one may start requests (which walk the lists). */
    while ((l = list_first(&expired)) != NULL)
        req_finish(REQ_OF(l), ERR_TIMEOUT, "timed out waiting for the leader",
                   NULL, NULL);
    kick(r);
}

int relay_init(struct relay **out, uv_loop_t *loop, const char *source_ip,
               unsigned max_conns)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return ERR_NOMEM;
    if (source_ip != NULL && source_ip[0] != '\0') {
        if (uv_ip4_addr(source_ip, 0, &r->source) != 0) {
            free(r);
            return ERR_INVALID;
        }
        r->has_source = true;
    }
    r->loop = loop;
    r->max_conns = max_conns ? max_conns : 1;
    list_init(&r->conns);
    list_init(&r->queue);
    list_init(&r->failed);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->open_handles = 1;
    uv_timer_start(&r->timer, tick, TICK_MS, TICK_MS);
    *out = r;
    return 0;
}

static bool clean_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int relay_request(struct relay *r, const char *base_url, const char *method,
                  const char *path, const char *const *headers,
                  const void *body, size_t body_len, bool resend,
                  unsigned timeout_ms, size_t max_body, relay_cb cb, void *data)
{
    if (r->closing)
        return ERR_SHUTDOWN;
    bool post = strcmp(method, "POST") == 0;
    if (!post && strcmp(method, "GET") != 0)
        return ERR_INVALID;
    if (path[0] != '/' || strchr(path, ' ') != NULL ||
        !clean_line(path, strlen(path)))
        return ERR_INVALID;
    struct sockaddr_storage addr;
    char host[80];
    if (relay_parse_url(base_url, &addr, host, sizeof host) != 0)
        return ERR_INVALID;
    size_t cap = strlen(method) + strlen(path) + strlen(host) + 64 +
                 (post ? body_len : 0);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        size_t n = strlen(headers[i]);
        const char *colon = strchr(headers[i], ':');
        if (colon == NULL || colon == headers[i] || !clean_line(headers[i], n))
            return ERR_INVALID;
        cap += n + 2;
    }
    struct relay_req *q = calloc(1, sizeof *q);
    char *o = malloc(cap);
    if (q == NULL || o == NULL) {
        free(q);
        free(o);
        return ERR_NOMEM;
    }
    int n =
        snprintf(o, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host);
    size_t len = (size_t)n;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        size_t hl = strlen(headers[i]);
        memcpy(o + len, headers[i], hl);
        memcpy(o + len + hl, "\r\n", 2);
        len += hl + 2;
    }
    if (post)
        len += (size_t)snprintf(o + len, cap - len, "Content-Length: %zu\r\n",
                                body_len);
    memcpy(o + len, "\r\n", 2);
    len += 2;
    if (post && body_len > 0) {
        memcpy(o + len, body, body_len);
        len += body_len;
    }
    list_init(&q->link);
    q->addr = addr;
    q->out = o;
    q->out_len = len;
    q->max_body = max_body;
    q->resend = resend;
    q->deadline = uv_now(r->loop) + timeout_ms;
    q->cb = cb;
    q->data = data;
    q->r = r;
    list_insert_tail(&r->queue, &q->link);
    r->in_request = true;
    kick(r);
    r->in_request = false;
    return 0;
}

unsigned relay_conns(const struct relay *r)
{
    return r->n_conns;
}

void relay_close(struct relay *r, void (*cb)(void *data), void *data)
{
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    report_failed(r);
    struct list *l;
    while ((l = list_first(&r->queue)) != NULL)
        req_finish(REQ_OF(l), ERR_SHUTDOWN, "request cancelled", NULL, NULL);
    while ((l = list_first(&r->conns)) != NULL) {
        struct rconn *c = CONN_OF(l);
        struct relay_req *q = c->req;
        c->req = NULL;
        conn_close(c);
        if (q != NULL)
            req_finish(q, ERR_SHUTDOWN, "request cancelled", NULL, NULL);
    }
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}
