/* transport.c - the raft transport over raft's raft_uv_tcp.
 *
 * Outgoing connections are raft_uv_tcp's (it connects and writes its
 * preamble); we then answer the acceptor's challenge before raft gets the
 * stream. Incoming connections are ours: raft_uv_tcp (0.15 and 0.22.1)
 * trusts the peer's preamble (it allocates whatever address length the
 * peer sends, hands raft an address that need not be NUL-terminated, and
 * has no deadline), so we listen ourselves, read and check the preamble
 * within a deadline and run the handshake. Raft then gets one end of a
 * socket pair; a pump reads the peer's TCP stream, passes it through the
 * framing checker and writes only checked bytes to the other end. Each
 * connection being set up owns a timer and, until it is handed over, its
 * stream; each pump owns the peer's stream and its end of the pair. */
#include "net/transport.h"
#include "chain/keccak.h"
#include "chain/wallet.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"
#include "net/raftframe.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <raft.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC "nftraft1"        /* chain mode: a key signature answers */
#define MAGIC_STATIC "nftraftS" /* static mode: an HMAC answers */
#define CHALLENGE_LEN 48        /* magic[8] nonce[32] acceptor id[8] */
#define RESPONSE_LEN 65         /* r[32] s[32] recovery id[1] */
#define HMAC_LEN 32
#define PREAMBLE_LEN 24 /* raft_uv_tcp: protocol, id, address length (LE) */
#define ADDRESS_MAX 256 /* longest raft address accepted from a peer */
#define PUMP_READ 65536 /* bytes read from a peer at a time */
#define PUMP_HIGH (4u << 20) /* stop reading above this much queued */
#define PUMP_LOW (1u << 20)  /* resume below this */
#define REFUSAL_LOGS 10      /* refusal lines per window, then counted */
#define REFUSAL_WINDOW_MS 10000

static const char TAG[] = "nftraft raft handshake v1";
static const char TAG_STATIC[] = "nftraft raft handshake v1 static";

struct hs;
struct pump;

struct wrap {
    struct raft_uv_transport inner; /* first: inner callbacks find us */
    struct raft_uv_transport *outer;
    uv_loop_t *loop;
    bool auth_on;     /* a handshake runs (not --insecure-no-auth) */
    bool secret_mode; /* static mode: HMAC with the cluster secret */
    struct transport_auth auth;
    uint64_t max_message;
    unsigned max_conns;
    unsigned accepting; /* incoming connections in the handshake */
    unsigned n_pumps;
    struct list pumps;   /* struct pump, newest first */
    uint64_t log_window; /* uv_now at the start of the refusal window */
    unsigned logged, suppressed;
    uint64_t self;
    char address[ADDRESS_MAX];
    uv_tcp_t listener;
    bool listener_open;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    bool closing, inner_closed;
    struct list pending; /* struct hs with a stream, newest first */
    unsigned live;       /* handshakes not yet freed */
    uint64_t refused;
    struct list outs;         /* struct out: raft's opened streams */
    uint64_t dial_refused_id; /* the last id a dial was refused to (logged
                                 once per id in a row) */
};

/* A stream raft opened (chain mode), once handed to raft: raft owns and
 * closes it, so it is known by its descriptor and both socket addresses
 * (a descriptor number reused by another socket does not match). */
struct out {
    struct list link;
    uint64_t id;
    int fd;
    struct sockaddr_storage local, peer;
    socklen_t llen, plen;
};

enum { HS_OPEN, HS_ACCEPT };
enum {
    ST_PREAMBLE,
    ST_ADDRESS,
    ST_CHALLENGE,
    ST_RESPONSE,
    ST_VERDICT,
    ST_DONE
};

struct hs {
    struct raft_uv_connect ireq; /* first: raft_uv_tcp's request (opener) */
    struct wrap *w;
    int kind, step;
    struct list link; /* in w->pending while it holds a stream */
    bool delivered, accepted;
    struct raft_uv_connect *orig; /* opener: raft's request and callback */
    raft_uv_connect_cb cb;
    char *address;       /* acceptor: the peer's raft address */
    uint64_t id;         /* the peer's raft id */
    uv_stream_t *stream; /* ours until handed to raft */
    uv_timer_t timer;
    uv_write_t wreq;
    int handles; /* timer, stream: open handles we own */
    uint8_t nonce[32];
    uint8_t signer[20];      /* chain mode: who signed the handshake */
    bool counted;            /* in w->accepting */
    uint8_t in[ADDRESS_MAX]; /* >= PREAMBLE_LEN, RESPONSE_LEN */
    size_t want, got;
    uint8_t out[RESPONSE_LEN]; /* >= CHALLENGE_LEN */
    char peer[64];
};

/* An accepted, authenticated connection: peer stream -> checker -> raft. */
struct pump {
    struct wrap *w;
    struct list link; /* in w->pumps until closing */
    uint64_t id;
    uint8_t signer[20];
    bool has_signer, closing, paused, oom;
    char peer[64];
    uv_tcp_t *tcp;          /* the peer's stream (raft_malloc'd) */
    uv_pipe_t pipe;         /* our end of the pair */
    int handles;            /* tcp, pipe */
    size_t queued;          /* bytes written to the pair, not yet done */
    uint64_t last_rx;       /* uv_now when the peer last sent bytes */
    struct pump_write *cur; /* checked bytes of the current read */
    struct raftframe *frame;
    uint8_t rbuf[PUMP_READ];
    uint8_t sink[64]; /* reads from our end (raft never writes) */
};

struct pump_write {
    uv_write_t req;
    struct pump *p;
    size_t len, cap;
    uint8_t data[];
};

/* ---- wire ---- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void transport_domain(uint64_t chain_id, const uint8_t contract[20],
                      uint8_t out[32])
{
    uint8_t b[52] = {0};
    put_u64(b + 24, chain_id);
    memcpy(b + 32, contract, 20);
    keccak256(b, sizeof b, out);
}

void transport_digest(const uint8_t domain[32], uint64_t acceptor,
                      uint64_t opener, const uint8_t nonce[32], uint8_t out[32])
{
    uint8_t b[sizeof TAG - 1 + 32 + 8 + 8 + 32];
    uint8_t *p = b;
    memcpy(p, TAG, sizeof TAG - 1);
    p += sizeof TAG - 1;
    memcpy(p, domain, 32);
    p += 32;
    put_u64(p, acceptor);
    p += 8;
    put_u64(p, opener);
    p += 8;
    memcpy(p, nonce, 32);
    keccak256(b, sizeof b, out);
}

/* ---- refusals: counted always, logged at most REFUSAL_LOGS per window ---- */

static void refusal(struct wrap *w, const char *fmt, ...)
{
    w->refused++;
    uint64_t now = uv_now(w->loop);
    if (now - w->log_window >= REFUSAL_WINDOW_MS) {
        if (w->suppressed > 0)
            LOGW("net",
                 "%u more raft connections refused in the last %u s "
                 "(not logged one by one)",
                 w->suppressed, REFUSAL_WINDOW_MS / 1000);
        w->log_window = now;
        w->logged = 0;
        w->suppressed = 0;
    }
    if (w->logged >= REFUSAL_LOGS) {
        w->suppressed++;
        return;
    }
    w->logged++;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    LOGW("net", "%s", line);
}

/* ---- handshake life cycle ---- */

static void maybe_closed(struct wrap *w)
{
    if (w->closing && w->inner_closed && w->live == 0 && w->n_pumps == 0 &&
        !w->listener_open && w->close_cb) {
        raft_uv_transport_close_cb cb = w->close_cb;
        w->close_cb = NULL;
        cb(w->outer);
    }
}

static void hs_maybe_free(struct hs *h)
{
    if (h->handles > 0)
        return;
    struct wrap *w = h->w;
    free(h->address);
    free(h);
    w->live--;
    maybe_closed(w);
}

static void timer_closed(uv_handle_t *t)
{
    struct hs *h = t->data;
    h->handles--;
    hs_maybe_free(h);
}

static void free_handle(uv_handle_t *s)
{
    raft_free(s);
}

static void stream_closed(uv_handle_t *s)
{
    struct hs *h = s->data;
    raft_free(s);
    h->handles--;
    hs_maybe_free(h);
}

static void unlist(struct hs *h)
{
    list_remove(&h->link); /* nothing when not listed */
}

static struct hs *hs_new(struct wrap *w, int kind)
{
    struct hs *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->w = w;
    h->kind = kind;
    list_init(&h->link);
    uv_timer_init(w->loop, &h->timer);
    h->timer.data = h;
    h->handles = 1;
    w->live++;
    return h;
}

/* Take ownership of stream and start the clock. */
static void hs_adopt(struct hs *h, uv_stream_t *stream);

/* Stop the timer; close the stream if it is still ours. */
static void hs_end(struct hs *h)
{
    h->step = ST_DONE;
    unlist(h);
    if (h->counted) {
        h->counted = false;
        h->w->accepting--;
    }
    if (h->stream != NULL) {
        uv_read_stop(h->stream);
        h->stream->data = h;
        uv_close((uv_handle_t *)h->stream, stream_closed);
        h->stream = NULL;
    }
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, timer_closed);
}

static void hs_fail(struct hs *h, int status, const char *why)
{
    if (h->step == ST_DONE)
        return;
    if (why != NULL)
        LOGW("net", "raft connection %s raft id %llu (%s): %s",
             h->kind == HS_OPEN ? "to" : "from", (unsigned long long)h->id,
             h->peer, why);
    struct raft_uv_connect *orig = h->orig;
    raft_uv_connect_cb cb = h->cb;
    bool deliver = h->kind == HS_OPEN && !h->delivered;
    h->delivered = true;
    hs_end(h);
    if (deliver)
        cb(orig, NULL, status);
}

static int pump_start(struct wrap *w, struct hs *h, uv_stream_t *s);

/* ---- raft's opened streams ---- */

/* Whether o's descriptor is still the socket it was (raft has not closed
 * it, nor was the number reused). */
static bool out_same(const struct out *o)
{
    struct sockaddr_storage l, p;
    socklen_t ll = sizeof l, pl = sizeof p;
    return getsockname(o->fd, (struct sockaddr *)&l, &ll) == 0 &&
           getpeername(o->fd, (struct sockaddr *)&p, &pl) == 0 &&
           ll == o->llen && pl == o->plen && memcmp(&l, &o->local, ll) == 0 &&
           memcmp(&p, &o->peer, pl) == 0;
}

/* Forget the entries whose socket raft has closed. */
static void out_prune(struct wrap *w)
{
    struct list *l, *tmp;
    LIST_FOREACH_SAFE(l, tmp, &w->outs) {
        struct out *o = LIST_CONTAINER_OF(l, struct out, link);
        if (!out_same(o)) {
            list_remove(&o->link);
            free(o);
        }
    }
}

static void out_track(struct wrap *w, uint64_t id, uv_stream_t *s)
{
    uv_os_fd_t fd;
    out_prune(w);
    struct out *o = calloc(1, sizeof *o);
    if (o == NULL || uv_fileno((uv_handle_t *)s, &fd) != 0) {
        free(o);
        return;
    }
    o->id = id;
    o->fd = fd;
    o->llen = sizeof o->local;
    o->plen = sizeof o->peer;
    if (getsockname(fd, (struct sockaddr *)&o->local, &o->llen) != 0 ||
        getpeername(fd, (struct sockaddr *)&o->peer, &o->plen) != 0) {
        free(o);
        return;
    }
    list_init(&o->link);
    list_insert_head(&w->outs, &o->link);
}

static void outs_free(struct wrap *w)
{
    struct list *l, *tmp;
    LIST_FOREACH_SAFE(l, tmp, &w->outs) {
        struct out *o = LIST_CONTAINER_OF(l, struct out, link);
        list_remove(&o->link);
        free(o);
    }
}

/* The handshake passed: an opened stream is raft's from now on; an
 * accepted one goes to raft through a pump. */
static void hs_succeed(struct hs *h)
{
    struct wrap *w = h->w;
    uv_stream_t *s = h->stream;
    uv_read_stop(s);
    s->data = NULL;
    h->stream = NULL;
    h->handles--; /* the stream is no longer ours to close */
    if (w->auth_on)
        LOGI("net", "raft connection %s raft id %llu (%s) authenticated",
             h->kind == HS_OPEN ? "to" : "from", (unsigned long long)h->id,
             h->peer);
    struct raft_uv_connect *orig = h->orig;
    raft_uv_connect_cb cb = h->cb;
    int kind = h->kind;
    h->delivered = true;
    if (kind == HS_OPEN) {
        if (w->auth_on && !w->secret_mode)
            out_track(w, h->id, s);
        hs_end(h);
        cb(orig, s, 0);
        return;
    }
    if (pump_start(w, h, s) != 0) {
        LOGW("net", "raft connection from %s: cannot set up its pump", h->peer);
        uv_close((uv_handle_t *)s, free_handle);
    }
    hs_end(h);
}

static void on_timeout(uv_timer_t *t)
{
    hs_fail(t->data, RAFT_NOCONNECTION, "handshake timed out");
}

/* ---- I/O steps ---- */

static void step(struct hs *h);

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct hs *h = handle->data;
    *buf = uv_buf_init((char *)h->in + h->got, (unsigned)(h->want - h->got));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct hs *h = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        hs_fail(h, RAFT_NOCONNECTION,
                nread == UV_EOF ? "closed during the handshake"
                                : uv_strerror((int)nread));
        return;
    }
    h->got += (size_t)nread;
    if (h->got < h->want)
        return;
    uv_read_stop(s);
    step(h);
}

static void expect(struct hs *h, size_t n)
{
    h->want = n;
    h->got = 0;
    int rv = uv_read_start(h->stream, alloc_cb, read_cb);
    if (rv != 0)
        hs_fail(h, RAFT_NOCONNECTION, uv_strerror(rv));
}

static void write_cb(uv_write_t *req, int status)
{
    struct hs *h = req->data;
    if (h->step == ST_DONE)
        return; /* cancelled: the stream is closing */
    if (status != 0) {
        hs_fail(h, RAFT_NOCONNECTION, uv_strerror(status));
        return;
    }
    step(h);
}

static void send_bytes(struct hs *h, const void *data, size_t len)
{
    memcpy(h->out, data, len);
    uv_buf_t b = uv_buf_init((char *)h->out, (unsigned)len);
    h->wreq.data = h;
    int rv = uv_write(&h->wreq, h->stream, &b, 1, write_cb);
    if (rv != 0)
        hs_fail(h, RAFT_NOCONNECTION, uv_strerror(rv));
}

/* Static mode's answer: HMAC-SHA256(secret, TAG_STATIC | acceptor |
 * opener | nonce). */
static void static_answer(const struct wrap *w, uint64_t acceptor,
                          uint64_t opener, const uint8_t nonce[32],
                          uint8_t out[HMAC_LEN])
{
    uint8_t b[sizeof TAG_STATIC - 1 + 8 + 8 + 32];
    memcpy(b, TAG_STATIC, sizeof TAG_STATIC - 1);
    put_u64(b + sizeof TAG_STATIC - 1, acceptor);
    put_u64(b + sizeof TAG_STATIC - 1 + 8, opener);
    memcpy(b + sizeof TAG_STATIC - 1 + 16, nonce, 32);
    unsigned len = HMAC_LEN;
    HMAC(EVP_sha256(), w->auth.secret, TRANSPORT_SECRET_LEN, b, sizeof b, out,
         &len);
}

static const char *magic_of(const struct wrap *w)
{
    return w->secret_mode ? MAGIC_STATIC : MAGIC;
}

/* Opener: challenge read -> signature written -> verdict read. */
static void open_step(struct hs *h)
{
    struct wrap *w = h->w;
    switch (h->step) {
    case ST_CHALLENGE: { /* the challenge is in */
        if (memcmp(h->in, magic_of(w), 8) != 0) {
            const char *why =
                memcmp(h->in, MAGIC, 8) == 0
                    ? "peer runs in chain mode, this node in static mode"
                : memcmp(h->in, MAGIC_STATIC, 8) == 0
                    ? "peer runs in static mode, this node in chain mode"
                    : "peer does not speak the nftraft handshake (plain raft "
                      "transport or --insecure-no-auth?)";
            hs_fail(h, RAFT_NOCONNECTION, why);
            return;
        }
        uint64_t acceptor = get_u64(h->in + 40);
        if (acceptor != h->id) {
            char why[96];
            snprintf(why, sizeof why,
                     "the node at this address is raft id "
                     "%llu",
                     (unsigned long long)acceptor);
            hs_fail(h, RAFT_NOCONNECTION, why);
            return;
        }
        h->step = ST_RESPONSE;
        if (w->secret_mode) {
            uint8_t mac[HMAC_LEN];
            static_answer(w, h->id, w->self, h->in + 8, mac);
            send_bytes(h, mac, sizeof mac);
            return;
        }
        uint8_t digest[32], sig[RESPONSE_LEN];
        transport_digest(w->auth.domain, h->id, w->self, h->in + 8, digest);
        if (w->auth.sign(w->auth.arg, digest, sig) != 0) {
            hs_fail(h, RAFT_NOCONNECTION, "cannot sign the handshake");
            return;
        }
        send_bytes(h, sig, sizeof sig);
        return;
    }
    case ST_RESPONSE: /* the signature is out */
        h->step = ST_VERDICT;
        expect(h, 1);
        return;
    case ST_VERDICT:
        if (h->in[0] != 1) {
            hs_fail(h, RAFT_NOCONNECTION,
                    w->secret_mode
                        ? "refused: the peer has another cluster secret"
                        : "refused: the peer does not see this node's key as "
                          "the owner of an active token with this raft id");
            return;
        }
        hs_succeed(h);
        return;
    }
}

/* Acceptor: challenge written -> signature read -> verdict written. */
static void refuse(struct hs *h, const char *why)
{
    refusal(h->w, "refused raft connection from %s: %s", h->peer, why);
    hs_fail(h, RAFT_NOCONNECTION, NULL);
}

static void accept_step(struct hs *h)
{
    struct wrap *w = h->w;
    switch (h->step) {
    case ST_PREAMBLE: { /* raft_uv_tcp's preamble is in */
        uint64_t protocol = 0, len = 0, id = 0;
        for (int i = 7; i >= 0; i--) {
            protocol = (protocol << 8) | h->in[i];
            id = (id << 8) | h->in[8 + i];
            len = (len << 8) | h->in[16 + i];
        }
        char why[96];
        if (protocol != 1 || id == 0 || len == 0 || len > ADDRESS_MAX) {
            snprintf(why, sizeof why,
                     "bad raft preamble (protocol %llu, id "
                     "%llu, address length %llu)",
                     (unsigned long long)protocol, (unsigned long long)id,
                     (unsigned long long)len);
            refuse(h, why);
            return;
        }
        h->id = id;
        h->step = ST_ADDRESS;
        expect(h, (size_t)len);
        return;
    }
    case ST_ADDRESS: { /* the peer's address is in */
        if (memchr(h->in, '\0', h->want) == NULL) {
            refuse(h, "bad raft preamble (address not terminated)");
            return;
        }
        h->address = strdup((const char *)h->in);
        if (h->address == NULL) {
            hs_fail(h, RAFT_NOMEM, "out of memory");
            return;
        }
        if (!w->auth_on) {
            hs_succeed(h);
            return;
        }
        if (getrandom(h->nonce, sizeof h->nonce, 0) != sizeof h->nonce) {
            hs_fail(h, RAFT_NOCONNECTION, "no randomness for the nonce");
            return;
        }
        uint8_t c[CHALLENGE_LEN];
        memcpy(c, magic_of(w), 8);
        memcpy(c + 8, h->nonce, 32);
        put_u64(c + 40, w->self);
        h->step = ST_CHALLENGE;
        send_bytes(h, c, sizeof c);
        return;
    }
    case ST_CHALLENGE: /* the challenge is out */
        h->step = ST_RESPONSE;
        expect(h, w->secret_mode ? HMAC_LEN : RESPONSE_LEN);
        return;
    case ST_RESPONSE: { /* the signature (or HMAC) is in */
        char why[200] = "";
        if (w->secret_mode) {
            uint8_t mac[HMAC_LEN];
            static_answer(w, w->self, h->id, h->nonce, mac);
            if (CRYPTO_memcmp(mac, h->in, HMAC_LEN) != 0)
                snprintf(why, sizeof why, "wrong cluster secret");
        } else {
            uint8_t digest[32];
            transport_digest(w->auth.domain, w->self, h->id, h->nonce, digest);
            if (h->in[64] > 1 ||
                wallet_recover(digest, h->in, h->in[64], h->signer))
                snprintf(why, sizeof why, "bad signature");
            else if (w->auth.authorize(w->auth.arg, h->id, h->signer, why,
                                       sizeof why) != 0 &&
                     why[0] == '\0')
                snprintf(why, sizeof why, "not authorized");
        }
        h->accepted = why[0] == '\0';
        if (!h->accepted)
            refusal(w,
                    "refused raft connection from %s claiming raft id "
                    "%llu: %s",
                    h->peer, (unsigned long long)h->id, why);
        h->step = ST_VERDICT;
        uint8_t v = h->accepted ? 1 : 0;
        send_bytes(h, &v, 1);
        return;
    }
    case ST_VERDICT: /* the verdict is out */
        if (h->accepted)
            hs_succeed(h);
        else
            hs_fail(h, RAFT_NOCONNECTION, NULL);
        return;
    }
}

static void step(struct hs *h)
{
    if (h->kind == HS_OPEN)
        open_step(h);
    else
        accept_step(h);
}

static void hs_adopt(struct hs *h, uv_stream_t *stream)
{
    h->stream = stream;
    stream->data = h;
    h->handles++;
    list_insert_head(&h->w->pending, &h->link);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(h->peer, sizeof h->peer, "?");
    if (stream->type == UV_TCP &&
        uv_tcp_getpeername((uv_tcp_t *)stream, (struct sockaddr *)&ss, &len) ==
            0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
        snprintf(h->peer, sizeof h->peer, "%s:%d", ip, port);
    }
    uv_timer_start(&h->timer, on_timeout, TRANSPORT_HANDSHAKE_MS, 0);
}

/* ---- pumps: checked bytes from an accepted connection to raft ---- */

static void pump_maybe_free(struct pump *p)
{
    if (p->handles > 0)
        return;
    struct wrap *w = p->w;
    free(p->cur);
    free(p->frame);
    free(p);
    w->n_pumps--;
    maybe_closed(w);
}

static void pump_tcp_closed(uv_handle_t *h)
{
    struct pump *p = h->data;
    raft_free(h);
    p->handles--;
    pump_maybe_free(p);
}

static void pump_pipe_closed(uv_handle_t *h)
{
    struct pump *p = h->data;
    p->handles--;
    pump_maybe_free(p);
}

/* Close both ends; raft sees its end of the pair reach EOF. */
static void pump_close(struct pump *p)
{
    if (p->closing)
        return;
    p->closing = true;
    list_remove(&p->link);
    uv_close((uv_handle_t *)p->tcp, pump_tcp_closed);
    uv_close((uv_handle_t *)&p->pipe, pump_pipe_closed);
}

static void pump_emit(void *arg, const uint8_t *bytes, size_t n)
{
    struct pump *p = arg;
    struct pump_write *c = p->cur;
    if (c == NULL || c->len + n > c->cap) {
        size_t cap = c ? c->cap : 0;
        size_t want = (c ? c->len : 0) + n;
        cap = cap ? cap : PUMP_READ;
        while (cap < want)
            cap *= 2;
        struct pump_write *g = realloc(c, sizeof *g + cap);
        if (g == NULL) {
            p->oom = true;
            return;
        }
        if (c == NULL)
            g->len = 0;
        g->cap = cap;
        p->cur = c = g;
    }
    memcpy(c->data + c->len, bytes, n);
    c->len += n;
}

static void pump_read_start(struct pump *p);

static void pump_written(uv_write_t *req, int status)
{
    struct pump_write *c = (struct pump_write *)req;
    struct pump *p = c->p;
    p->queued -= c->len;
    free(c);
    if (p->closing)
        return;
    if (status != 0) { /* raft closed its end */
        pump_close(p);
        return;
    }
    if (p->paused && p->queued < PUMP_LOW) {
        p->paused = false;
        pump_read_start(p);
    }
}

static void pump_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct pump *p = h->data;
    *buf = uv_buf_init((char *)p->rbuf, sizeof p->rbuf);
}

static void pump_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct pump *p = s->data;
    if (nread == 0 || p->closing)
        return;
    if (nread < 0) {
        pump_close(p);
        return;
    }
    p->last_rx = uv_now(p->w->loop);
    int rv = raftframe_feed(p->frame, p->rbuf, (size_t)nread, pump_emit, p);
    if (rv != 0 || p->oom) {
        refusal(p->w, "closed raft connection from %s (raft id %llu): %s",
                p->peer, (unsigned long long)p->id,
                rv != 0 ? p->frame->errmsg : "out of memory");
        pump_close(p);
        return;
    }
    struct pump_write *c = p->cur;
    if (c == NULL || c->len == 0)
        return;
    p->cur = NULL;
    c->p = p;
    uv_buf_t b = uv_buf_init((char *)c->data, (unsigned)c->len);
    if (uv_write(&c->req, (uv_stream_t *)&p->pipe, &b, 1, pump_written) != 0) {
        free(c);
        pump_close(p);
        return;
    }
    p->queued += c->len;
    if (p->queued > PUMP_HIGH) { /* raft is behind: stop reading the peer */
        uv_read_stop(s);
        p->paused = true;
    }
}

static void pump_read_start(struct pump *p)
{
    if (uv_read_start((uv_stream_t *)p->tcp, pump_alloc, pump_read) != 0)
        pump_close(p);
}

static void sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct pump *p = h->data;
    *buf = uv_buf_init((char *)p->sink, sizeof p->sink);
}

/* Our end of the pair: raft never writes; EOF means raft let go. */
static void sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct pump *p = s->data;
    if (nread < 0 && !p->closing)
        pump_close(p);
}

/* Close callback of a pump whose set-up failed after its pipe was
 * initialized: nothing else refers to it. */
static void pump_abandoned(uv_handle_t *h)
{
    struct pump *p = h->data;
    free(p->frame);
    free(p);
}

/* Give raft one end of a socket pair for the accepted stream s and start
 * pumping checked bytes into the other. On error nothing is handed over
 * and the caller still owns s. */
static int pump_start(struct wrap *w, struct hs *h, uv_stream_t *s)
{
    int fds[2] = {-1, -1};
    struct pump *p = calloc(1, sizeof *p);
    uv_pipe_t *theirs = raft_malloc(sizeof *theirs);
    if (p == NULL || theirs == NULL)
        goto err;
    p->frame = malloc(sizeof *p->frame);
    if (p->frame == NULL)
        goto err;
    raftframe_init(p->frame, w->max_message);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        goto err;
    uv_pipe_init(w->loop, theirs, 0);
    if (uv_pipe_open(theirs, fds[1]) != 0) {
        uv_close((uv_handle_t *)theirs, free_handle);
        theirs = NULL;
        goto err;
    }
    fds[1] = -1;
    uv_pipe_init(w->loop, &p->pipe, 0);
    if (uv_pipe_open(&p->pipe, fds[0]) != 0) {
        /* The handle is the loop's until closed: p is freed in its close
         * callback, not here. */
        close(fds[0]);
        uv_close((uv_handle_t *)theirs, free_handle);
        p->pipe.data = p;
        uv_close((uv_handle_t *)&p->pipe, pump_abandoned);
        return ERR_IO;
    }
    fds[0] = -1;
    p->w = w;
    p->id = h->id;
    p->has_signer = w->auth_on && !w->secret_mode;
    memcpy(p->signer, h->signer, sizeof p->signer);
    snprintf(p->peer, sizeof p->peer, "%s", h->peer);
    p->tcp = (uv_tcp_t *)s;
    p->last_rx = uv_now(w->loop);
    s->data = p;
    p->pipe.data = p;
    p->handles = 2;
    list_insert_head(&w->pumps, &p->link);
    w->n_pumps++;
    uv_read_start((uv_stream_t *)&p->pipe, sink_alloc, sink_read);
    pump_read_start(p);
    w->accept_cb(w->outer, h->id, h->address, (uv_stream_t *)theirs);
    return 0;
err:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    if (theirs != NULL)
        raft_free(theirs);
    if (p != NULL)
        free(p->frame);
    free(p);
    return ERR_NOMEM;
}

uint64_t transport_heard_ms_ago(struct raft_uv_transport *t, uint64_t id)
{
    struct wrap *w = t->impl;
    uint64_t last = 0;
    bool any = false;
    struct list *l;
    if (w == NULL)
        return UINT64_MAX;
    LIST_FOREACH(l, &w->pumps) {
        struct pump *p = LIST_CONTAINER_OF(l, struct pump, link);
        if (p->id == id && !p->closing) {
            any = true;
            last = p->last_rx > last ? p->last_rx : last;
        }
    }
    return any ? uv_now(w->loop) - last : UINT64_MAX;
}

unsigned transport_reauthorize(struct raft_uv_transport *t)
{
    struct wrap *w = t->impl;
    unsigned closed = 0;
    if (w == NULL || w->closing)
        return 0;
    struct list *l, *tmp;
    LIST_FOREACH_SAFE(l, tmp, &w->pumps) {
        struct pump *p = LIST_CONTAINER_OF(l, struct pump, link);
        char why[200] = "";
        if (!p->has_signer || w->auth.authorize(w->auth.arg, p->id, p->signer,
                                                why, sizeof why) == 0)
            continue;
        LOGW("net",
             "closing raft connection from %s (raft id %llu): no "
             "longer authorized: %s",
             p->peer, (unsigned long long)p->id,
             why[0] ? why : "not authorized");
        pump_close(p);
        closed++;
    }
    /* Streams raft opened to an id no longer authorized: shut down (raft
     * sees the error, closes the stream and dials again, which w_connect
     * refuses). */
    out_prune(w);
    LIST_FOREACH_SAFE(l, tmp, &w->outs) {
        struct out *o = LIST_CONTAINER_OF(l, struct out, link);
        char why[200] = "";
        if (w->auth.authorize(w->auth.arg, o->id, NULL, why, sizeof why) == 0)
            continue;
        LOGW("net",
             "closing raft connection to raft id %llu: no longer "
             "authorized: %s",
             (unsigned long long)o->id, why[0] ? why : "not authorized");
        shutdown(o->fd, SHUT_RDWR);
        list_remove(&o->link);
        free(o);
        closed++;
    }
    return closed;
}

/* ---- raft_uv_transport methods ---- */

static void opened(struct raft_uv_connect *ireq, struct uv_stream_s *stream,
                   int status)
{
    struct hs *h = (struct hs *)ireq; /* ireq is the first member */
    if (status != 0 || h->w->closing) {
        if (status == 0) { /* connected just as we close: drop it */
            hs_adopt(h, stream);
            status = RAFT_CANCELED;
        }
        h->delivered = true;
        struct raft_uv_connect *orig = h->orig;
        raft_uv_connect_cb cb = h->cb;
        hs_end(h);
        cb(orig, NULL, status);
        return;
    }
    if (!h->w->auth_on) { /* --insecure-no-auth: raft_uv_tcp's stream */
        h->delivered = true;
        struct raft_uv_connect *orig = h->orig;
        raft_uv_connect_cb cb = h->cb;
        hs_end(h);
        cb(orig, stream, 0);
        return;
    }
    hs_adopt(h, stream);
    h->step = ST_CHALLENGE;
    expect(h, CHALLENGE_LEN);
}

static int w_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                     raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct wrap *w = t->impl;
    char why[200] = "";
    if (w->auth_on && !w->secret_mode &&
        w->auth.authorize(w->auth.arg, id, NULL, why, sizeof why) != 0) {
        /* Not a member (any more): no dial. raft retries later. */
        if (w->dial_refused_id != id)
            LOGW("net", "not dialing raft id %llu (%s): %s",
                 (unsigned long long)id, address,
                 why[0] ? why : "not authorized");
        w->dial_refused_id = id;
        snprintf(t->errmsg, sizeof t->errmsg, "raft id %llu not authorized",
                 (unsigned long long)id);
        return RAFT_NOCONNECTION;
    }
    if (w->dial_refused_id == id)
        w->dial_refused_id = 0;
    struct hs *h = hs_new(w, HS_OPEN);
    if (h == NULL)
        return RAFT_NOMEM;
    h->orig = req;
    h->cb = cb;
    h->id = id;
    snprintf(h->peer, sizeof h->peer, "%s", address);
    req->cb = cb;
    w->inner.data = t->data;
    int rv = w->inner.connect(&w->inner, &h->ireq, id, address, opened);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", w->inner.errmsg);
        h->delivered = true;
        hs_end(h);
    }
    return rv;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct wrap *w = server->data;
    if (status != 0) {
        LOGW("net", "raft listener: %s", uv_strerror(status));
        return;
    }
    uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
    if (tcp == NULL)
        return;
    uv_tcp_init(w->loop, tcp);
    struct hs *h = NULL;
    if (uv_accept(server, (uv_stream_t *)tcp) != 0 || w->closing) {
        uv_close((uv_handle_t *)tcp, free_handle);
        return;
    }
    if (w->accepting + w->n_pumps >= w->max_conns ||
        w->accepting >= (w->max_conns + 1) / 2) {
        refusal(w,
                "refused a raft connection: %u in the handshake and %u "
                "established (caps %u and %u)",
                w->accepting, w->n_pumps, (w->max_conns + 1) / 2, w->max_conns);
        uv_close((uv_handle_t *)tcp, free_handle);
        return;
    }
    if ((h = hs_new(w, HS_ACCEPT)) == NULL) {
        uv_close((uv_handle_t *)tcp, free_handle);
        return;
    }
    h->counted = true;
    w->accepting++;
    hs_adopt(h, (uv_stream_t *)tcp);
    h->step = ST_PREAMBLE;
    expect(h, PREAMBLE_LEN);
}

static int w_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct wrap *w = t->impl;
    w->self = id;
    snprintf(w->address, sizeof w->address, "%s", address);
    int rv = w->inner.init(&w->inner, id, address);
    if (rv != 0)
        snprintf(t->errmsg, sizeof t->errmsg, "%s", w->inner.errmsg);
    return rv;
}

static int w_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct wrap *w = t->impl;
    w->accept_cb = cb;
    char host[ADDRESS_MAX];
    snprintf(host, sizeof host, "%s", w->address);
    char *colon = strrchr(host, ':');
    struct sockaddr_in sa;
    int rv = UV_EINVAL;
    if (colon != NULL) {
        *colon = '\0';
        rv = uv_ip4_addr(host, atoi(colon + 1), &sa);
    }
    if (rv == 0)
        rv = uv_tcp_init(w->loop, &w->listener);
    if (rv == 0) {
        w->listener_open = true;
        w->listener.data = w;
        rv = uv_tcp_bind(&w->listener, (struct sockaddr *)&sa, 0);
    }
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&w->listener, 128, on_connection);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "listen on %.100s: %.100s",
                 w->address, uv_strerror(rv));
        return RAFT_IOERR;
    }
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    struct wrap *w = h->data;
    w->listener_open = false;
    maybe_closed(w);
}

static void inner_closed(struct raft_uv_transport *inner)
{
    struct wrap *w = (struct wrap *)inner;
    w->inner_closed = true;
    maybe_closed(w);
}

static void w_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct wrap *w = t->impl;
    w->closing = true;
    w->close_cb = cb;
    /* Handshakes in progress end now; connects raft_uv_tcp still has in
     * flight are cancelled by it and end in opened(). */
    struct list *l;
    while ((l = list_first(&w->pending)) != NULL)
        hs_fail(LIST_CONTAINER_OF(l, struct hs, link), RAFT_CANCELED, NULL);
    while ((l = list_first(&w->pumps)) != NULL)
        pump_close(LIST_CONTAINER_OF(l, struct pump, link));
    if (w->listener_open)
        uv_close((uv_handle_t *)&w->listener, listener_closed);
    w->inner.close(&w->inner, inner_closed);
}

int transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                   const struct transport_config *cfg)
{
    const struct transport_auth *auth = cfg->auth;
    struct wrap *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ERR_NOMEM;
    w->inner.version = 1; /* raft_uv_transport's struct version */
    int rv = raft_uv_tcp_init(&w->inner, loop);
    if (rv != 0) {
        LOGE("net", "raft tcp transport: %s", raft_strerror(rv));
        free(w);
        return rv == RAFT_NOMEM ? ERR_NOMEM : ERR_IO;
    }
    w->outer = t;
    w->loop = loop;
    list_init(&w->pending);
    list_init(&w->pumps);
    list_init(&w->outs);
    w->auth_on = auth != NULL;
    if (auth != NULL)
        w->auth = *auth;
    w->secret_mode = auth != NULL && auth->sign == NULL;
    w->max_message = cfg->max_message;
    w->max_conns = cfg->max_connections ? cfg->max_connections : 64;
    memset(t, 0, sizeof *t);
    t->version = 1;
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
    outs_free(w);
    free(w);
    t->impl = NULL;
}

uint64_t transport_refused(const struct raft_uv_transport *t)
{
    return t->impl ? ((const struct wrap *)t->impl)->refused : 0;
}
