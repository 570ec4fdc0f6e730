/* test_relay.c - the follower -> leader relay (net/relay): its strict answer
 * parser, its URL parsing, and real exchanges over loopback TCP with a
 * scripted HTTP server on the same loop (kept-alive reuse, a kept
 * connection dying, malformed and oversized answers, timeouts, refused
 * connections, close with requests in flight). */
#include "core/err.h"
#include "net/relay.h"
#include "harness.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- the parser ---- */

static int parse(const char *s, struct relay_head *h)
{
    return relay_parse_head(s, strlen(s), 1000, h);
}

static const char GOOD[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 11\r\n\r\n{\"value\":1}";

TEST(parser_good_answers)
{
    struct relay_head h;
    ASSERT_EQ(parse(GOOD, &h), 0);
    ASSERT_EQ(h.status, 200);
    ASSERT_EQ(h.body_len, 11);
    ASSERT_EQ(h.head_len, strlen(GOOD) - 11);
    ASSERT(!h.close);
    ASSERT_STR_EQ(h.retry_after, "");
    ASSERT_EQ(
        parse("HTTP/1.1 503 Service Unavailable\r\nretry-after:  1 \r\n"
              "Connection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n",
              &h),
        0);
    ASSERT_EQ(h.status, 503);
    ASSERT_STR_EQ(h.retry_after, "1");
    ASSERT(h.close);
    ASSERT_EQ(parse("HTTP/1.0 200\r\nContent-Length: 2\r\n\r\n", &h), 0);
    ASSERT(h.close); /* HTTP/1.0 */
    ASSERT_EQ(parse("HTTP/1.1 204 No Content\r\n\r\n", &h), 0);
    ASSERT_EQ(h.body_len, 0);
    /* Every strict prefix of the head asks for more bytes. */
    size_t head = strlen(GOOD) - 11;
    for (size_t n = 0; n < head; n++)
        ASSERT_EQ(relay_parse_head(GOOD, n, 1000, &h), ERR_NOTFOUND);
    return 0;
}

TEST(parser_refuses_what_is_not_strict_http)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 600 Nope\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n", /* no Content-Length */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01z\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rz\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 503 x\r\nRetry-After: 1\r\nRetry-After: 2\r\n"
        "Content-Length: 0\r\n\r\n",
        "HTTP/1.1 503 x\r\nRetry-After: "
        "1111111111111111111111111111111111111111111111111111111111111111\r\n"
        "Content-Length: 0\r\n\r\n",
        "HTTP/1.1 503 x\r\nRetry-After: 1\t2\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 503 x\r\nRetry-After: \xff\r\nContent-Length: 0\r\n\r\n",
        "xTTP/1.1",
        "garbage without an end",
    };
    struct relay_head h;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse(bad[i], &h) != ERR_MALFORMED)
            FAILF("accepted bad answer %zu: %s", i, bad[i]);
    /* A NUL in a value (strlen would stop there). */
    static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n"
                              "Content-Length: 0\r\n\r\n";
    ASSERT_EQ(relay_parse_head(nul, sizeof nul - 1, 1000, &h), ERR_MALFORMED);
    ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", &h),
              ERR_TOOBIG);
    /* No end of head within RELAY_MAX_HEAD bytes. */
    size_t n = RELAY_MAX_HEAD + 10;
    char *big = malloc(n);
    ASSERT(big != NULL);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'a', n - 20);
    ASSERT_EQ(relay_parse_head(big, RELAY_MAX_HEAD - 1, 1000, &h),
              ERR_NOTFOUND);
    ASSERT_EQ(relay_parse_head(big, n, 1000, &h), ERR_MALFORMED);
    free(big);
    return 0;
}

TEST(urls)
{
    struct sockaddr_storage a;
    char host[80];
    ASSERT_EQ(relay_parse_url("http://127.0.0.1:8081", &a, host, sizeof host),
              0);
    ASSERT_STR_EQ(host, "127.0.0.1:8081");
    ASSERT_EQ(a.ss_family, AF_INET);
    ASSERT_EQ(ntohs(((struct sockaddr_in *)&a)->sin_port), 8081);
    ASSERT_EQ(relay_parse_url("http://10.0.0.2/", &a, host, sizeof host), 0);
    ASSERT_STR_EQ(host, "10.0.0.2");
    ASSERT_EQ(ntohs(((struct sockaddr_in *)&a)->sin_port), 80);
    ASSERT_EQ(relay_parse_url("http://[::1]:9", &a, host, sizeof host), 0);
    ASSERT_EQ(a.ss_family, AF_INET6);
    ASSERT_STR_EQ(host, "[::1]:9");
    static const char *const no[] = {
        "https://127.0.0.1:1",
        "http://localhost:8081",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:80/path",
        "http://127.0.0.1:",
        "http://user@127.0.0.1",
        "http://[::1",
        "http://",
        "http://1.2.3:80",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (relay_parse_url(no[i], &a, host, sizeof host) != ERR_INVALID)
            FAILF("accepted URL %s", no[i]);
    return 0;
}

/* ---- real exchanges with a scripted server ---- */

enum mode {
    M_GOOD,   /* a good answer, kept alive */
    M_SPLIT,  /* a good answer in three writes */
    M_CLOSE,  /* a good answer, then the server closes the connection */
    M_BAD,    /* a malformed answer */
    M_HUGE,   /* Content-Length above the cap */
    M_SILENT, /* never answers */
    M_DROP,   /* closes the connection without answering */
    M_TWO,    /* two answers for one request */
};

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    enum mode mode;
    int accepts, requests;
    struct sconn *newest; /* the last connection accepted, while open */
    char last[2048];      /* the last request seen (when it fits) */
    size_t last_len, last_body;
};

struct sconn {
    uv_tcp_t tcp;
    struct srv *s;
    char *buf; /* grown to hold a whole request */
    size_t len, cap;
};

static void s_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    if (c->s->newest == c)
        c->s->newest = NULL;
    free(c->buf);
    free(c);
}

static void s_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct sconn *c = h->data;
    if (c->cap - c->len < 65536) {
        char *p = realloc(c->buf, c->cap + 65536);
        if (p == NULL) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = p;
        c->cap += 65536;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void s_write(struct sconn *c, const char *s)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)strlen(s));
    (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

#define ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"value\":42}\n"

static void s_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct sconn *c = st->data;
    struct srv *s = c->s;
    if (n < 0) {
        uv_close((uv_handle_t *)&c->tcp, s_closed);
        return;
    }
    c->len += (size_t)n;
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return;
    size_t head = (size_t)(end - c->buf) + 4, body = 0;
    char *cl = memmem(c->buf, head, "Content-Length: ", 16);
    if (cl != NULL)
        body = strtoul(cl + 16, NULL, 10);
    if (c->len < head + body)
        return;
    s->requests++;
    s->last_body = body;
    s->last_len = head + body < sizeof s->last ? head + body : 0;
    memcpy(s->last, c->buf, s->last_len);
    c->len = 0;
    switch (s->mode) {
    case M_GOOD:
        s_write(c, ANSWER);
        break;
    case M_SPLIT:
        s_write(c, "HTTP/1.1 200 OK\r\nContent-Le");
        s_write(c, "ngth: 13\r\n\r\n{\"val");
        s_write(c, "ue\":42}\n");
        break;
    case M_CLOSE:
        s_write(c, ANSWER);
        uv_close((uv_handle_t *)&c->tcp, s_closed);
        break;
    case M_BAD:
        s_write(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: "
                   "3\r\n\r\nxyz");
        break;
    case M_HUGE:
        s_write(c, "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n");
        break;
    case M_SILENT:
        break;
    case M_DROP:
        uv_close((uv_handle_t *)&c->tcp, s_closed);
        break;
    case M_TWO:
        s_write(c, ANSWER ANSWER);
        break;
    }
}

static void s_accept(uv_stream_t *l, int status)
{
    struct srv *s = l->data;
    if (status != 0)
        return;
    struct sconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, s_closed);
        return;
    }
    s->accepts++;
    s->newest = c;
    uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_read);
}

static int srv_start(struct srv *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if (uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->listener, 16, s_accept) != 0)
        return -1;
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    return 0;
}

/* What is left open once the relay and the listener are closed: the
 * scripted server's connections. */
static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, s_closed);
}

struct result {
    int done, err, status;
    char body[64];
    char retry[64];
};

static void on_resp(void *data, const struct relay_resp *r)
{
    struct result *x = data;
    x->done++;
    x->err = r->err;
    x->status = r->status;
    x->body[0] = '\0';
    if (r->err == 0) {
        size_t n =
            r->body_len < sizeof x->body - 1 ? r->body_len : sizeof x->body - 1;
        memcpy(x->body, r->body, n);
        x->body[n] = '\0';
        snprintf(x->retry, sizeof x->retry, "%s",
                 r->retry_after ? r->retry_after : "");
    } else if (r->errmsg == NULL) {
        x->status = -1; /* must not happen */
    }
}

struct env {
    uv_loop_t loop;
    struct srv srv;
    struct relay *relay;
    char url[64];
};

static int env_up(struct env *e)
{
    uv_loop_init(&e->loop);
    if (srv_start(&e->srv, &e->loop) != 0)
        return -1;
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->srv.port);
    return relay_init(&e->relay, &e->loop, "127.0.0.1", 4);
}

/* Run the loop until x is answered (or 5 s pass). */
static void wait_for(struct env *e, struct result *x)
{
    uint64_t end = uv_now(&e->loop) + 5000;
    while (x->done == 0 && uv_now(&e->loop) < end)
        uv_run(&e->loop, UV_RUN_ONCE);
}

static int send_one(struct env *e, struct result *x, unsigned timeout_ms,
                    bool resend)
{
    memset(x, 0, sizeof *x);
    static const char *const hdrs[] = {"Idempotency-Key: k1", "X-A: b", NULL};
    int rv =
        relay_request(e->relay, e->url, "POST", "/increment", hdrs,
                      "{\"by\":2}", 8, resend, timeout_ms, 1000, on_resp, x);
    if (rv == 0)
        wait_for(e, x);
    return rv;
}

static bool relay_done;
static void relay_closed(void *data)
{
    (void)data;
    relay_done = true;
}

/* Close the relay (unless the test did) and the server, run the loop dry;
 * fails when the relay's close callback never ran or a handle is left. */
static int env_down(struct env *e)
{
    if (e->relay != NULL) {
        relay_done = false;
        relay_close(e->relay, relay_closed, NULL);
    }
    uv_close((uv_handle_t *)&e->srv.listener, NULL);
    for (int i = 0; i < 1000 && !relay_done; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    /* The scripted server's connections (freed by their close cb). */
    uv_walk(&e->loop, close_all, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    return uv_loop_close(&e->loop) == 0 && relay_done ? 0 : -1;
}

TEST(keep_alive_reuse_and_request_bytes)
{
    struct env e;
    ASSERT_EQ(env_up(&e), 0);
    struct result x;
    for (int i = 0; i < 3; i++) {
        e.srv.mode = i == 1 ? M_SPLIT : M_GOOD;
        ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
        ASSERT_EQ(x.done, 1);
        ASSERT_EQ(x.err, 0);
        ASSERT_EQ(x.status, 200);
        ASSERT_STR_EQ(x.body, "{\"value\":42}\n");
    }
    ASSERT_EQ(e.srv.accepts, 1); /* one kept-alive connection */
    ASSERT_EQ(e.srv.requests, 3);
    ASSERT_EQ(relay_conns(e.relay), 1);
    char want[256];
    snprintf(want, sizeof want,
             "POST /increment HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Idempotency-Key: k1\r\nX-A: b\r\nContent-Length: 8\r\n\r\n"
             "{\"by\":2}",
             e.srv.port);
    ASSERT_EQ(e.srv.last_len, strlen(want));
    ASSERT_MEM_EQ(e.srv.last, want, strlen(want));
    /* A body larger than a socket buffer takes more than one write (the
     * rest queued on the loop); the answer may come before that write's
     * callback, and the next request must wait for it. */
    size_t big = 8u << 20;
    char *body = malloc(big);
    ASSERT(body != NULL);
    memset(body, 'x', big);
    struct result y[2];
    memset(y, 0, sizeof y);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(relay_request(e.relay, e.url, "POST", "/big", NULL, body, big,
                                true, 5000, 1000, on_resp, &y[i]),
                  0);
    free(body); /* copied */
    wait_for(&e, &y[1]);
    ASSERT_EQ(y[0].err, 0);
    ASSERT_EQ(y[1].err, 0);
    ASSERT_EQ(e.srv.last_body, big);
    ASSERT_EQ(e.srv.requests, 5);
    /* Headers with CR/LF or without a name, and URLs it does not speak,
     * are refused before anything is sent. */
    static const char *const inj[] = {"X: a\r\nY: b", NULL};
    static const char *const noname[] = {": a", NULL};
    ASSERT_EQ(relay_request(e.relay, e.url, "POST", "/", inj, "", 0, true, 100,
                            10, on_resp, &x),
              ERR_INVALID);
    ASSERT_EQ(relay_request(e.relay, e.url, "POST", "/", noname, "", 0, true,
                            100, 10, on_resp, &x),
              ERR_INVALID);
    ASSERT_EQ(relay_request(e.relay, e.url, "PUT", "/", NULL, "", 0, true, 100,
                            10, on_resp, &x),
              ERR_INVALID);
    ASSERT_EQ(relay_request(e.relay, e.url, "GET", "/a b", NULL, "", 0, true,
                            100, 10, on_resp, &x),
              ERR_INVALID);
    ASSERT_EQ(relay_request(e.relay, "http://localhost:1", "GET", "/", NULL, "",
                            0, true, 100, 10, on_resp, &x),
              ERR_INVALID);
    ASSERT_EQ(env_down(&e), 0);
    return 0;
}

TEST(kept_connection_dying_is_resent_once)
{
    struct env e;
    ASSERT_EQ(env_up(&e), 0);
    struct result x;
    e.srv.mode = M_CLOSE; /* answers, then closes: the relay's kept one dies */
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, 0);
    /* Let the relay see the close or not: either way the next request
     * gets through on a new connection. */
    uv_run(&e.loop, UV_RUN_NOWAIT);
    e.srv.mode = M_GOOD;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, 0);
    ASSERT_EQ(x.status, 200);
    ASSERT_EQ(e.srv.accepts, 2);
    ASSERT_EQ(e.srv.requests, 2);
    /* A kept connection the server drops without answering: sent again
     * once; dropped again: fails (never a third send). */
    e.srv.mode = M_DROP;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.done, 1);
    ASSERT_EQ(x.err, ERR_IO);
    ASSERT_EQ(e.srv.requests, 4);
    /* A request that must not be sent twice (a write without a key) is
     * not: the dying kept connection fails it. */
    e.srv.mode = M_GOOD;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, 0);
    ASSERT_EQ(e.srv.requests, 5);
    e.srv.mode = M_DROP;
    ASSERT_EQ(send_one(&e, &x, 2000, false), 0);
    ASSERT_EQ(x.err, ERR_IO);
    ASSERT_EQ(e.srv.requests, 6);
    ASSERT_EQ(env_down(&e), 0);
    return 0;
}

/* The leader resets a kept connection while the loop is busy elsewhere:
 * the next request's first write fails inside relay_request. A request
 * that may not be sent again fails, but its callback runs on a later loop
 * turn, never inside relay_request (its caller registers the request only
 * after the call returns: a follower crashed on exactly this). */
TEST(failure_inside_request_is_reported_later)
{
    struct env e;
    ASSERT_EQ(env_up(&e), 0);
    struct result x;
    e.srv.mode = M_GOOD;
    ASSERT_EQ(send_one(&e, &x, 2000, false), 0);
    ASSERT_EQ(x.err, 0);
    ASSERT(e.srv.newest != NULL);
    ASSERT_EQ(uv_tcp_close_reset(&e.srv.newest->tcp, s_closed), 0);
    usleep(50 * 1000); /* the RST arrives; the loop does not run */
    memset(&x, 0, sizeof x);
    ASSERT_EQ(relay_request(e.relay, e.url, "POST", "/increment", NULL, "{}", 2,
                            false, 2000, 1000, on_resp, &x),
              0);
    ASSERT_EQ(x.done, 0); /* not from inside relay_request */
    wait_for(&e, &x);
    ASSERT_EQ(x.done, 1);
    ASSERT_EQ(x.err, ERR_IO);
    ASSERT_EQ(e.srv.requests, 1); /* sent once, never again */
    /* The relay works on: a fresh connection. */
    ASSERT_EQ(send_one(&e, &x, 2000, false), 0);
    ASSERT_EQ(x.err, 0);
    ASSERT_EQ(x.status, 200);
    ASSERT_EQ(env_down(&e), 0);
    return 0;
}

TEST(bad_answers_fail_and_close)
{
    struct env e;
    ASSERT_EQ(env_up(&e), 0);
    struct result x;
    e.srv.mode = M_BAD;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, ERR_MALFORMED);
    e.srv.mode = M_HUGE;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, ERR_TOOBIG);
    /* Two answers to one request: the first is relayed, the connection
     * is not trusted again. */
    e.srv.mode = M_TWO;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, 0);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    e.srv.mode = M_GOOD;
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, 0);
    ASSERT_EQ(e.srv.accepts, 4);
    ASSERT_EQ(env_down(&e), 0);
    return 0;
}

TEST(timeouts_refused_connections_and_close)
{
    struct env e;
    ASSERT_EQ(env_up(&e), 0);
    struct result x;
    e.srv.mode = M_SILENT;
    uint64_t t0 = uv_now(&e.loop);
    ASSERT_EQ(send_one(&e, &x, 200, true), 0);
    ASSERT_EQ(x.err, ERR_TIMEOUT);
    ASSERT(uv_now(&e.loop) - t0 >= 200);
    /* More requests than connections (4): the rest queue, and time out
     * in the queue too. */
    struct result q[6];
    memset(q, 0, sizeof q);
    for (int i = 0; i < 6; i++)
        ASSERT_EQ(relay_request(e.relay, e.url, "GET", "/counter", NULL, NULL,
                                0, true, 300, 1000, on_resp, &q[i]),
                  0);
    ASSERT(relay_conns(e.relay) <= 4);
    wait_for(&e, &q[5]);
    for (int i = 0; i < 6; i++)
        ASSERT_EQ(q[i].err, ERR_TIMEOUT);
    /* Nobody listening. */
    struct relay *r = e.relay;
    char url[64];
    snprintf(url, sizeof url, "%s", e.url);
    snprintf(e.url, sizeof e.url, "http://127.0.0.1:1");
    ASSERT_EQ(send_one(&e, &x, 2000, true), 0);
    ASSERT_EQ(x.err, ERR_IO);
    snprintf(e.url, sizeof e.url, "%s", url);
    /* Close with one in flight and one queued: both fail inside close. */
    struct result a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    ASSERT_EQ(relay_request(r, e.url, "GET", "/", NULL, NULL, 0, true, 5000, 10,
                            on_resp, &a),
              0);
    ASSERT_EQ(relay_request(r, "http://127.0.0.2:1", "GET", "/", NULL, NULL, 0,
                            true, 5000, 10, on_resp, &b),
              0);
    relay_done = false;
    relay_close(r, relay_closed, NULL);
    e.relay = NULL;
    ASSERT_EQ(a.done, 1);
    ASSERT_EQ(a.err, ERR_SHUTDOWN);
    ASSERT_EQ(b.done, 1);
    ASSERT_EQ(b.err, ERR_SHUTDOWN);
    ASSERT(!relay_done); /* the close callback runs later, on the loop */
    ASSERT_EQ(env_down(&e), 0);
    return 0;
}

TEST_LIST(TEST_ENTRY(parser_good_answers),
          TEST_ENTRY(failure_inside_request_is_reported_later),
          TEST_ENTRY(parser_refuses_what_is_not_strict_http), TEST_ENTRY(urls),
          TEST_ENTRY(keep_alive_reuse_and_request_bytes),
          TEST_ENTRY(kept_connection_dying_is_resent_once),
          TEST_ENTRY(bad_answers_fail_and_close),
          TEST_ENTRY(timeouts_refused_connections_and_close))
