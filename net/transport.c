/* transport.c - the raft transport: canonical/raft's uv TCP transport with
 * TCP_NODELAY on every connection.
 *
 * raft_uv_tcp leaves Nagle's algorithm on. Its connections are one-way (a
 * leader's AppendEntries go out on one socket, the follower's answers come
 * back on the follower's own), so a small message written while the previous
 * one is unacknowledged waits for the peer's delayed ACK: up to 40 ms on
 * Linux, which was the whole p99 of POST /increment. This wrapper delegates
 * everything to raft_uv_tcp and sets TCP_NODELAY on each stream it hands to
 * raft, outgoing and accepted. */
#include "net/transport.h"
#include "core/err.h"
#include "core/log.h"

#include <raft.h>
#include <stdlib.h>

struct wrap {
    struct raft_uv_transport inner; /* raft_uv_tcp */
    struct raft_uv_transport *outer;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

/* One outgoing connect in flight: raft's request and callback. */
struct wrap_connect {
    struct raft_uv_connect req; /* what raft_uv_tcp sees */
    struct raft_uv_connect *orig;
    raft_uv_connect_cb cb;
};

static void nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP) {
        int rv = uv_tcp_nodelay((uv_tcp_t *)stream, 1);
        if (rv != 0)
            LOGW("net", "raft connection: TCP_NODELAY: %s", uv_strerror(rv));
    }
}

static int w_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct wrap *w = t->impl;
    int rv = w->inner.init(&w->inner, id, address);
    if (rv != 0)
        snprintf(t->errmsg, sizeof t->errmsg, "%s", w->inner.errmsg);
    return rv;
}

static void w_accept(struct raft_uv_transport *inner, raft_id id,
                     const char *address, struct uv_stream_s *stream)
{
    struct wrap *w = (struct wrap *)inner; /* inner is the first member */
    nodelay(stream);
    w->accept_cb(w->outer, id, address, stream);
}

static int w_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct wrap *w = t->impl;
    w->accept_cb = cb;
    w->inner.data = t->data;
    int rv = w->inner.listen(&w->inner, w_accept);
    if (rv != 0)
        snprintf(t->errmsg, sizeof t->errmsg, "%s", w->inner.errmsg);
    return rv;
}

static void w_connected(struct raft_uv_connect *req, struct uv_stream_s *stream,
                        int status)
{
    struct wrap_connect *c = (struct wrap_connect *)req;
    struct raft_uv_connect *orig = c->orig;
    raft_uv_connect_cb cb = c->cb;
    free(c);
    if (status == 0)
        nodelay(stream);
    cb(orig, stream, status);
}

static int w_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                     raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct wrap *w = t->impl;
    struct wrap_connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RAFT_NOMEM;
    c->orig = req;
    c->cb = cb;
    req->cb = cb;
    w->inner.data = t->data;
    int rv = w->inner.connect(&w->inner, &c->req, id, address, w_connected);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", w->inner.errmsg);
        free(c);
    }
    return rv;
}

static void w_closed(struct raft_uv_transport *inner)
{
    struct wrap *w = (struct wrap *)inner;
    if (w->close_cb != NULL)
        w->close_cb(w->outer);
}

static void w_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct wrap *w = t->impl;
    w->close_cb = cb;
    w->inner.close(&w->inner, w_closed);
}

int transport_init(struct raft_uv_transport *t, uv_loop_t *loop)
{
    struct wrap *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ERR_NOMEM;
    int rv = raft_uv_tcp_init(&w->inner, loop);
    if (rv != 0) {
        LOGE("net", "raft tcp transport: %s", raft_strerror(rv));
        free(w);
        return rv == RAFT_NOMEM ? ERR_NOMEM : ERR_IO;
    }
    w->outer = t;
    t->impl = w;
    t->init = w_init;
    t->listen = w_listen;
    t->connect = w_connect;
    t->close = w_close;
    return 0;
}

void transport_free(struct raft_uv_transport *t)
{
    struct wrap *w = t->impl;
    if (w == NULL)
        return;
    raft_uv_tcp_close(&w->inner);
    free(w);
    t->impl = NULL;
}
