/* httpc.c - libcurl multi-socket client driven by uv_poll and one uv_timer
 * on the caller's loop (see httpc.h). */
#include "core/httpc.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kept between requests so that a forwarded write does not pay for a new
 * curl easy handle (its buffers) and a new uv_poll (several epoll_ctl, an
 * ioctl) each time curl takes a kept-alive connection from its cache. */
enum { HTTPC_POOL = 64, HTTPC_IDLE_SOCKS = 128, HTTPC_HOST_CONNS = 64 };

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct list reqs;  /* struct httpc_req pending, newest first */
    struct list socks; /* struct sock_ctx watched, newest first */
    struct list idle;  /* sock_ctx stopped, kept for their fd's next use */
    unsigned n_idle;
    CURL *pool[HTTPC_POOL]; /* reset easy handles kept for the next request */
    unsigned n_pool;
    int open_handles; /* uv handles not yet closed */
    bool closing;
    char source[24]; /* "host!a.b.c.d" for CURLOPT_INTERFACE, or "" */
    void (*close_cb)(void *);
    void *close_data;
};

struct httpc_req {
    struct httpc *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* request body copy */
    char *resp; /* response body */
    size_t resp_len, resp_cap, max_body;
    char retry_after[64];
    bool too_big;
    httpc_cb cb;
    void *data;
    char errbuf[CURL_ERROR_SIZE];
    struct list link; /* in httpc.reqs */
};

/* One uv_poll per socket curl asks us to watch. */
struct sock_ctx {
    uv_poll_t poll;
    struct httpc *c;
    curl_socket_t fd;
    int events; /* UV_READABLE/UV_WRITABLE the poll runs with; 0 = stopped */
    struct list link; /* in httpc.socks or httpc.idle */
};

#define SOCK_OF(l) LIST_CONTAINER_OF(l, struct sock_ctx, link)

static void sock_close(struct httpc *c, struct sock_ctx *s);

static void maybe_closed(struct httpc *c);

static void handle_closed(uv_handle_t *h)
{
    struct httpc *c = h->data;
    if (h != (uv_handle_t *)&c->timer)
        free(h); /* a sock_ctx: poll is its first member */
    c->open_handles--;
    maybe_closed(c);
}

static void req_free(struct httpc_req *r)
{
    struct httpc *c = r->c;
    list_remove(&r->link);
    curl_multi_remove_handle(c->multi, r->easy);
    if (c->n_pool < HTTPC_POOL && !c->closing) {
        curl_easy_reset(r->easy); /* keeps its buffers, drops our pointers */
        c->pool[c->n_pool++] = r->easy;
    } else {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->resp);
    free(r);
}

/* Run r's callback once with err (or the finished transfer) and free it. */
static void finish(struct httpc_req *r, CURLcode code, int forced_err)
{
    struct httpc_resp resp;
    memset(&resp, 0, sizeof resp);
    if (forced_err != 0) {
        resp.err = forced_err;
        resp.errmsg =
            forced_err == ERR_SHUTDOWN ? "request cancelled" : "request failed";
    } else if (r->too_big) {
        resp.err = ERR_TOOBIG;
        resp.errmsg = "response body too large";
    } else if (code != CURLE_OK) {
        resp.err = code == CURLE_OPERATION_TIMEDOUT ? ERR_TIMEOUT : ERR_IO;
        resp.errmsg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    } else {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        resp.body = r->resp ? r->resp : "";
        resp.body_len = r->resp_len;
        resp.retry_after = r->retry_after[0] ? r->retry_after : NULL;
    }
    /* Body, Retry-After and the error text must outlive the request. */
    char *body = r->resp;
    char retry[sizeof r->retry_after];
    char errtext[CURL_ERROR_SIZE];
    memcpy(retry, r->retry_after, sizeof retry);
    if (resp.retry_after != NULL)
        resp.retry_after = retry;
    if (resp.errmsg != NULL) {
        snprintf(errtext, sizeof errtext, "%s", resp.errmsg);
        resp.errmsg = errtext;
    }
    r->resp = NULL;
    httpc_cb cb = r->cb;
    void *data = r->data;
    req_free(r);
    cb(data, &resp);
    free(body);
}

static void check_done(struct httpc *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct httpc_req *r;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        finish(r, m->data.result, 0);
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sock_ctx *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    struct httpc *c = s->c;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    (void)easy;
    struct httpc *c = userp;
    struct sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            if (c->n_idle < HTTPC_IDLE_SOCKS) {
                /* Usually a connection going back to curl's cache: keep
                 * the (stopped) poll for when curl takes it out again. A
                 * stopped uv_poll does not mind its fd being closed and
                 * reused; it is only started again for a socket curl hands
                 * us with that same fd number. */
                uv_poll_stop(&s->poll);
                s->events = 0;
                list_remove(&s->link);
                list_insert_head(&c->idle, &s->link);
                c->n_idle++;
            } else {
                sock_close(c, s);
            }
        }
        return 0;
    }
    if (s == NULL) {
        struct list *l;
        LIST_FOREACH(l, &c->idle) {
            if (SOCK_OF(l)->fd == fd) {
                s = SOCK_OF(l);
                break;
            }
        }
        if (s != NULL) {
            list_remove(&s->link);
            c->n_idle--;
            list_insert_head(&c->socks, &s->link);
            curl_multi_assign(c->multi, fd, s);
        }
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        s->c = c;
        s->fd = fd;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        c->open_handles++;
        s->poll.data = s;
        list_insert_head(&c->socks, &s->link);
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    /* uv_poll_start always drops the fd from epoll and adds it again:
     * skip it when curl repeats what we already watch. */
    if (ev != s->events) {
        uv_poll_start(&s->poll, ev, poll_cb);
        s->events = ev;
    }
    return 0;
}

static void sock_close(struct httpc *c, struct sock_ctx *s)
{
    uv_poll_stop(&s->poll);
    list_remove(&s->link);
    s->poll.data = c;
    uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static void timer_cb(uv_timer_t *t)
{
    struct httpc *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_set_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct httpc *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

int httpc_set_source(struct httpc *c, const char *ip)
{
    struct in_addr a;
    if (ip == NULL || ip[0] == '\0') {
        c->source[0] = '\0';
        return 0;
    }
    if (inet_pton(AF_INET, ip, &a) != 1)
        return ERR_INVALID;
    snprintf(c->source, sizeof c->source, "host!%s", ip);
    return 0;
}

int httpc_init(struct httpc **out, uv_loop_t *loop)
{
    static bool global_done; /* curl_global_init before any thread starts */
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            return ERR_IO;
        global_done = true;
    }
    struct httpc *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ERR_NOMEM;
    c->loop = loop;
    list_init(&c->reqs);
    list_init(&c->socks);
    list_init(&c->idle);
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        free(c);
        return ERR_NOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_set_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* At most HTTPC_HOST_CONNS connections to one host; more requests wait
     * inside curl for one of them. The cache keeps all of those alive (and
     * some to other hosts): with a cache smaller than the parallel
     * connections, curl closed one for most requests over 64 in flight
     * (thousands of TIME_WAIT sockets a second to the leader). */
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)HTTPC_HOST_CONNS);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
                      (long)HTTPC_HOST_CONNS + 32L);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct httpc_req *r = userdata;
    size_t n = size * nmemb;
    if (r->resp_len + n > r->max_body) {
        r->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (r->resp_len + n + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap * 2 : 1024;
        while (cap < r->resp_len + n + 1)
            cap *= 2;
        char *p = realloc(r->resp, cap);
        if (p == NULL)
            return 0;
        r->resp = p;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, ptr, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct httpc_req *r = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
        const char *v = buf + sizeof name - 1;
        size_t vl = n - (sizeof name - 1);
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        if (vl >= sizeof r->retry_after)
            vl = sizeof r->retry_after - 1;
        memcpy(r->retry_after, v, vl);
        r->retry_after[vl] = '\0';
    }
    return n;
}

int httpc_request(struct httpc *c, const char *method, const char *url,
                  const char *const *headers, const void *body, size_t body_len,
                  unsigned timeout_ms, size_t max_body, httpc_cb cb, void *data,
                  struct httpc_req **req)
{
    if (c->closing)
        return ERR_SHUTDOWN;
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return ERR_INVALID;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return ERR_INVALID;
    struct httpc_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return ERR_NOMEM;
    r->c = c;
    r->cb = cb;
    r->data = data;
    r->max_body = max_body;
    r->easy = c->n_pool > 0 ? c->pool[--c->n_pool] : curl_easy_init();
    if (r->easy == NULL)
        goto nomem;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, headers[i]);
        if (l == NULL)
            goto nomem;
        r->headers = l;
    }
    /* No "Expect: 100-continue" round trip for larger bodies. */
    struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
    if (l == NULL)
        goto nomem;
    r->headers = l;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* The smallest upload buffer (default 64 KiB): a chunk that large is
     * handed back to the OS heap top on each free (malloc_consolidate). */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->source[0])
        curl_easy_setopt(e, CURLOPT_INTERFACE, c->source);
    if (strcmp(method, "POST") == 0) {
        r->body = malloc(body_len + 1);
        if (r->body == NULL)
            goto nomem;
        if (body_len)
            memcpy(r->body, body, body_len);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    list_insert_head(&c->reqs, &r->link);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        req_free(r);
        return ERR_NOMEM;
    }
    if (req != NULL)
        *req = r;
    return 0;
nomem:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
    return ERR_NOMEM;
}

void httpc_cancel(struct httpc_req *r)
{
    finish(r, CURLE_OK, ERR_SHUTDOWN);
}

static void maybe_closed(struct httpc *c)
{
    if (!c->closing || c->open_handles > 0)
        return;
    void (*cb)(void *) = c->close_cb;
    void *data = c->close_data;
    free(c);
    if (cb)
        cb(data);
}

void httpc_close(struct httpc *c, void (*cb)(void *data), void *data)
{
    c->closing = true;
    c->close_cb = cb;
    c->close_data = data;
    struct list *l;
    while ((l = list_first(&c->reqs)) != NULL)
        finish(LIST_CONTAINER_OF(l, struct httpc_req, link), CURLE_OK,
               ERR_SHUTDOWN);
    /* Removing the handles made curl ask us to drop its sockets; closing
     * the multi handle drops the rest of its cached connections. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->n_pool > 0)
        curl_easy_cleanup(c->pool[--c->n_pool]);
    while ((l = list_first(&c->socks)) != NULL)
        sock_close(c, SOCK_OF(l));
    while ((l = list_first(&c->idle)) != NULL) {
        struct sock_ctx *s = SOCK_OF(l);
        list_remove(&s->link);
        c->n_idle--;
        s->poll.data = c;
        uv_close((uv_handle_t *)&s->poll, handle_closed);
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}
