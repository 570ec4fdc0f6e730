/* coord.c - raft decides the PostgreSQL primary (see coord.h and
 * pg-design: "Raft decides the primary"). One tick function looks at the
 * raft role, the newest promotion record and the local instance, and
 * starts at most one step at a time (a pg operation, a raft proposal, a
 * leadership transfer); every event (role change, applied record, finished
 * operation, peer answer) re-runs it. */
#include "pg/coord.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/node.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 100         /* the tick's period */
#define INFO_MS 500         /* local pg_info refresh, steady state */
#define PEER_MS 1000        /* leader's read of the peers, steady state */
#define PEER_FAST_MS 50     /* ... while a failover waits on them */
#define PEER_TIMEOUT_MS 800 /* one read */
#define WAIT_LOG_MS 1000    /* a waiting line at most this often */
#define STALL_MS 20000      /* standby not streaming: rewind after this */
#define RETRY_MS 2000       /* a failed step is retried after this */
#define MAX_VOTERS 64

struct peer {
    uint64_t id;
    struct coord *c;
    struct httpc_req *req; /* in flight */
    uint64_t asked_ms;     /* loop time the request was sent */
    bool ok;               /* the last answer had a "pg" object */
    uint64_t read_ms;      /* loop time that answer was asked */
    char why[160];         /* why the last read failed */
    char role[16];
    char host[64];
    int port;
    uint32_t timeline;
    uint64_t lsn;
    uint64_t receive_lsn, replay_lsn; /* standby; 0 unknown */
    bool streaming;
    bool broken; /* its PGDATA is unusable: counts as detached, lsn 0 */
    char upstream[272];
    uint64_t detached_for;          /* its standby detached for the fence
                                       record of this term, lsn read since */
    uint64_t rec_term, rec_primary; /* the record it has applied */
};

struct coord {
    uv_loop_t *loop;
    struct node *node;
    struct fsm *fsm;
    struct pg *pg;
    struct httpc *http;
    uint64_t self;
    char host[64];
    int port;
    char signal_path[512]; /* PGDATA/standby.signal */
    coord_peer_url_fn peer_url;
    void *peer_data;
    uv_timer_t tick;
    bool started, stopped, closing;
    void (*close_cb)(void *data);
    void *close_data;
    unsigned closing_parts; /* handles/clients still closing */

    /* The local instance. */
    struct pg_info info;
    uint64_t info_ms; /* loop time the last good read was asked */
    /* Reads in flight: a second one may start when the first was asked
     * before a (de)tach (a streaming standby's read also asks its upstream,
     * up to 2 s when that one hangs: the detach must be seen at once). */
    struct info_read {
        struct coord *c;
        bool busy;
        uint64_t asked_ms;
    } reads[2];
    bool info_valid;
    bool op_busy;         /* a pg operation runs */
    char op[48];          /* its name */
    bool started_primary; /* the running postmaster was started as, or
                             promoted to, primary */
    bool need_rewind;     /* its WAL may have diverged (old primary) */
    bool want_clone;      /* rewind failed: clone next */
    bool fresh_data;      /* cloned or rewound: once it streams (and so acks the
                             commits that waited for it), CHECKPOINT on the primary
                             so that the standby's snapshots show them */
    bool diverged_rewound; /* rewound because the standby's WAL had left the
                              primary's history, not streaming since */
    bool broken;           /* PGDATA unusable: marker below exists */
    bool rewound;     /* a rewind succeeded: the marker stays until the standby
                         started on it reached consistency (it needs the
                         source's WAL up to the rewind's minimum recovery point) */
    char marker[600]; /* D/pg/rewind-incomplete */
    uint64_t detached_ms;   /* loop time the standby was detached */
    uint64_t detached_term; /* for the fence record of this term */
    uint64_t follow_ms;     /* loop time it was pointed at its upstream */
    char follow_up[80];     /* host:port it was pointed at */
    uint64_t retry_at;      /* no new step before this loop time */
    uint64_t not_streaming_since;

    /* Raft side. */
    bool proposing, transferring;
    uint64_t transfer_term;
    uint64_t members_term; /* term of the last successful pg_set_members */
    uint64_t standby_members_term; /* ... on the standby before promoting */
    char members_key[1024];
    char pending_key[1024];
    uint64_t switch_lsn; /* own lsn when the promotion was decided */

    struct peer peers[MAX_VOTERS];
    unsigned n_peers;

    uint64_t failovers;
    uint64_t failover_term; /* the failover compares lsns since */
    uint64_t failover_ms;   /* ... this loop time */
    char action[200];
    uint64_t wait_logged_ms;
    char wait_why[200];
};

static void kick(struct coord *c);
static void refresh_info(struct coord *c);

/* ---- logging what we do ---- */

/* A decision: logged once when it changes, kept for /status. */
static void act(struct coord *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void act(struct coord *c, const char *fmt, ...)
{
    char buf[sizeof c->action];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (strcmp(buf, c->action) != 0)
        LOGI("pg", "%s", buf);
    snprintf(c->action, sizeof c->action, "%s", buf);
    c->wait_why[0] = '\0';
}

/* Waiting on something: logged at most once per WAIT_LOG_MS (and when
 * the reason changes). */
static void waiting(struct coord *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void waiting(struct coord *c, const char *fmt, ...)
{
    char buf[sizeof c->wait_why];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    uint64_t now = uv_now(c->loop);
    if (strcmp(buf, c->wait_why) != 0 ||
        now - c->wait_logged_ms >= WAIT_LOG_MS) {
        LOGI("pg", "%s", buf);
        c->wait_logged_ms = now;
    }
    snprintf(c->wait_why, sizeof c->wait_why, "%s", buf);
    snprintf(c->action, sizeof c->action, "%s", buf);
}

static const char *lsn_str(uint64_t lsn, char *buf)
{
    pg_lsn_format(lsn, buf, 24);
    return buf;
}

/* ---- the local instance ---- */

static void info_cb(void *data, int status, const struct pg_info *info)
{
    struct info_read *rd = data;
    struct coord *c = rd->c;
    rd->busy = false;
    if (c->closing)
        return;
    /* an older read finishing after a newer one changes nothing */
    if (status == 0 && (!c->info_valid || rd->asked_ms >= c->info_ms)) {
        c->info = *info;
        c->info_ms = rd->asked_ms;
        c->info_valid = true;
        if (info->role == PG_STANDBY) {
            if (info->streaming)
                c->not_streaming_since = 0;
            else if (c->not_streaming_since == 0)
                c->not_streaming_since = uv_now(c->loop);
        }
    }
    if (rd->asked_ms <= c->detached_ms || rd->asked_ms <= c->follow_ms)
        refresh_info(c); /* the position after the (de)tach, at once */
    kick(c);
}

/* Ask pg_info unless a read asked after the last (de)tach is in flight. */
static void refresh_info(struct coord *c)
{
    if (c->closing)
        return;
    uint64_t since =
        c->detached_ms > c->follow_ms ? c->detached_ms : c->follow_ms;
    struct info_read *free_slot = NULL;
    for (unsigned i = 0; i < 2; i++) {
        struct info_read *rd = &c->reads[i];
        if (!rd->busy)
            free_slot = rd;
        else if (rd->asked_ms > since || since == 0)
            return; /* its answer is fresh enough */
    }
    if (free_slot == NULL)
        return;
    free_slot->c = c;
    free_slot->asked_ms = uv_now(c->loop);
    if (pg_info(c->pg, info_cb, free_slot) == 0)
        free_slot->busy = true;
}

/* The local info, if it was asked after `since` and the role still is. */
static const struct pg_info *info_since(struct coord *c, uint64_t since)
{
    if (!c->info_valid || c->info_ms < since ||
        c->info.role != pg_role(c->pg)) {
        refresh_info(c);
        return NULL;
    }
    return &c->info;
}

/* ---- one pg operation at a time ---- */

struct opctx {
    struct coord *c;
    void (*then)(struct coord *c, int status, const char *errmsg);
};

static void op_done(void *data, int status, const char *errmsg)
{
    struct opctx *o = data;
    struct coord *c = o->c;
    c->op_busy = false;
    /* pg/postgres.c logs the failure itself */
    if (status != 0)
        c->retry_at = uv_now(c->loop) + RETRY_MS;
    c->info_valid = false; /* the role may have changed */
    if (o->then != NULL && !c->closing)
        o->then(c, status, errmsg);
    free(o);
    if (!c->closing) {
        refresh_info(c);
        kick(c);
    }
}

/* Start one operation: fn is called with (p, cb, data); logs a failure to
 * start. */
#define OP(c, name, then_fn, call)                                             \
    do {                                                                       \
        struct opctx *o_ = calloc(1, sizeof *o_);                              \
        if (o_ == NULL)                                                        \
            break;                                                             \
        o_->c = (c);                                                           \
        o_->then = (then_fn);                                                  \
        snprintf((c)->op, sizeof(c)->op, "%s", name);                          \
        pg_done_cb cb_ = op_done;                                              \
        void *d_ = o_;                                                         \
        int rv_ = (call);                                                      \
        if (rv_ != 0) {                                                        \
            LOGW("pg", "cannot %s now: %s", name, err_str(rv_));               \
            free(o_);                                                          \
            (c)->retry_at = uv_now((c)->loop) + RETRY_MS;                      \
        } else {                                                               \
            (c)->op_busy = true;                                               \
        }                                                                      \
    } while (0)

/* A primary runs here, or one is starting as such. */
static bool primary_here(struct coord *c)
{
    enum pg_role role = pg_role(c->pg);
    return role == PG_PRIMARY || (role == PG_STARTING && c->started_primary);
}

static void fence_now(struct coord *c, const char *why)
{
    if (pg_pid(c->pg) == 0)
        return;
    LOGW("pg", "fence: SIGKILL of the local primary (%s)", why);
    pg_fence(c->pg);
    c->started_primary = false;
    c->need_rewind = true;
    snprintf(c->action, sizeof c->action, "fenced (%s)", why);
}

static void after_start_primary(struct coord *c, int status, const char *e)
{
    (void)e;
    c->started_primary = status == 0 || pg_role(c->pg) == PG_STARTING;
}

static void start_primary(struct coord *c)
{
    act(c, "start as primary");
    c->started_primary = true; /* fence it if leadership goes meanwhile */
    OP(c, "start as primary", after_start_primary,
       pg_start(c->pg, NULL, 0, cb_, d_));
    if (!c->op_busy)
        c->started_primary = false;
}

static void clear_broken(struct coord *c);

static void after_follow(struct coord *c, int status, const char *e)
{
    (void)e;
    if (c->rewound) { /* the start after a rewind */
        c->rewound = false;
        if (status == 0) /* consistent: it accepts connections */
            clear_broken(c);
    }
    if (status == 0) {
        c->follow_ms = uv_now(c->loop);
        c->detached_term = 0;
    }
}

static void after_detach(struct coord *c, int status, const char *e)
{
    (void)e;
    struct fsm_pg rec;
    if (status == 0) {
        c->detached_ms = uv_now(c->loop);
        c->detached_term =
            fsm_pg_record(c->fsm, &rec) == 0 && rec.primary == 0 ? rec.term : 0;
    }
}

/* Start as a standby following host:port, or (host NULL) one to detach
 * next: pg_start has no detached standby, so it starts pointed at its own
 * address (it cannot receive WAL from itself) and the next step detaches
 * it. */
static void start_standby(struct coord *c, const char *host, int port)
{
    c->started_primary = false;
    c->not_streaming_since = 0;
    if (host == NULL)
        act(c, "start as a standby to detach (fence record: no primary)");
    else
        act(c, "start as a standby following %s:%d", host, port);
    snprintf(c->follow_up, sizeof c->follow_up, "%s:%d", host ? host : c->host,
             host ? port : c->port);
    OP(c, "start as a standby", after_follow,
       pg_start(c->pg, host ? host : c->host, host ? port : c->port, cb_, d_));
}

/* ---- the "PGDATA unusable" marker ----
 *
 * D/pg/rewind-incomplete exists (durably) from before a pg_rewind or a
 * pg_basebackup starts until it succeeded: a half-rewound PGDATA may stay
 * "starting up" forever (waiting for WAL nobody serves) or fail later. Such
 * a node is "broken": it never starts PostgreSQL on that data, reports
 * /status.pg "broken": true with lsn 0, and re-clones as soon as a record
 * names a primary.
 *
 * Why the leader may count a broken node as detached with lsn 0 (safety):
 * the node never streamed from the primary it rewinds/clones from after
 * the rewind began (it is stopped from then on), and that primary was
 * promoted because it held at least every detached standby's WAL, so every
 * commit acknowledged before its promotion is on it and on the standby
 * that acknowledged it; every later commit was acknowledged by a standby
 * streaming from it (synchronous ANY 1), never by the broken node. So the
 * broken node holds no acknowledged commit the others lack. Limit (5+
 * voters only): a commit acknowledged before that primary's promotion by
 * the broken node alone is then on that primary and its standbys only; if
 * that primary is the fenced one and no voter streamed from it, it is lost
 * with the broken node's data (with 3 voters the third node is the old
 * primary, or followed the new one, and holds it). */

static void fsync_dir_of(const char *path)
{
    char dir[sizeof((struct coord *)0)->marker];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void mark_broken(struct coord *c, const char *why)
{
    c->broken = true;
    int fd = open(c->marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        LOGW("pg", "cannot write %s: %s", c->marker, strerror(errno));
        return;
    }
    size_t len = strlen(why);
    if (write(fd, why, len) != (ssize_t)len || fsync(fd) != 0)
        LOGW("pg", "cannot write %s: %s", c->marker, strerror(errno));
    close(fd);
    fsync_dir_of(c->marker);
}

static void clear_broken(struct coord *c)
{
    c->broken = false;
    if (unlink(c->marker) != 0 && errno != ENOENT)
        LOGW("pg", "cannot remove %s: %s", c->marker, strerror(errno));
    fsync_dir_of(c->marker);
}

static void after_rewind(struct coord *c, int status, const char *e)
{
    (void)e;
    if (status == 0) {
        c->need_rewind = false;
        c->want_clone = false;
        c->rewound = true;
        c->fresh_data = true;
    } else if (status != ERR_SHUTDOWN) {
        c->want_clone = true;
        LOGW("pg", "rewind failed: re-clone next");
    }
}

static void after_clone(struct coord *c, int status, const char *e)
{
    (void)e;
    if (status == 0) {
        c->need_rewind = false;
        c->want_clone = false;
        c->fresh_data = true;
        clear_broken(c);
    }
}

/* ---- raft proposals ---- */

static void propose_cb(void *data, int status, uint64_t index, void *result)
{
    (void)result;
    struct coord *c = data;
    c->proposing = false;
    if (status != 0 && !c->closing)
        LOGW("pg", "record not committed: %s", err_str(status));
    else if (!c->closing)
        LOGD("pg", "record committed at index %" PRIu64, index);
    if (!c->closing)
        kick(c);
}

static void propose(struct coord *c, const struct fsm_pg *rec)
{
    unsigned char buf[FSM_CMD_MAX];
    size_t len;
    if (fsm_pg_encode(rec, buf, sizeof buf, &len) != 0) {
        LOGE("pg", "cannot encode the record (a bug)");
        return;
    }
    int rv = node_apply(c->node, buf, len, propose_cb, c);
    if (rv != 0) {
        c->retry_at = uv_now(c->loop) + 200;
        return;
    }
    c->proposing = true;
}

/* ---- peers ---- */

static struct peer *peer_of(struct coord *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n_peers; i++)
        if (c->peers[i].id == id)
            return &c->peers[i];
    if (c->n_peers == MAX_VOTERS)
        return NULL;
    struct peer *p = &c->peers[c->n_peers++];
    memset(p, 0, sizeof *p);
    p->id = id;
    p->c = c;
    return p;
}

/* "0/3000060" -> 0x3000060; false when it is not an LSN. */
static bool parse_lsn(const char *s, uint64_t *out)
{
    unsigned hi, lo;
    char tail;
    if (s == NULL || sscanf(s, "%X/%X%c", &hi, &lo, &tail) != 2)
        return false;
    *out = (uint64_t)hi << 32 | lo;
    return true;
}

static void peer_cb(void *data, const struct httpc_resp *r)
{
    struct peer *p = data;
    struct coord *c = p->c;
    p->req = NULL;
    if (r->err == ERR_SHUTDOWN || c->closing)
        return;
    p->ok = false;
    if (r->err != 0 || r->status != 200) {
        snprintf(p->why, sizeof p->why, "%s",
                 r->err != 0 ? (r->errmsg ? r->errmsg : err_str(r->err))
                             : "HTTP error");
        if (r->err == 0)
            snprintf(p->why, sizeof p->why, "HTTP %ld", r->status);
        kick(c);
        return;
    }
    json_error_t je;
    json_t *root = json_loadb(r->body, r->body_len, 0, &je);
    json_t *pg = json_object_get(root, "pg");
    json_t *rec = json_object_get(pg, "record");
    const char *role = json_string_value(json_object_get(pg, "role"));
    uint64_t lsn = 0;
    if (!json_is_object(pg) || role == NULL ||
        !parse_lsn(json_string_value(json_object_get(pg, "lsn")), &lsn)) {
        snprintf(p->why, sizeof p->why, "no pg status in its answer");
    } else {
        p->ok = true;
        p->read_ms = p->asked_ms;
        snprintf(p->role, sizeof p->role, "%s", role);
        const char *h = json_string_value(json_object_get(pg, "host"));
        snprintf(p->host, sizeof p->host, "%s", h ? h : "");
        p->port = (int)json_integer_value(json_object_get(pg, "port"));
        p->timeline =
            (uint32_t)json_integer_value(json_object_get(pg, "timeline"));
        p->lsn = lsn;
        p->receive_lsn = p->replay_lsn = 0;
        parse_lsn(json_string_value(json_object_get(pg, "receive_lsn")),
                  &p->receive_lsn);
        parse_lsn(json_string_value(json_object_get(pg, "replay_lsn")),
                  &p->replay_lsn);
        p->streaming = json_is_true(json_object_get(pg, "streaming"));
        p->detached_for =
            (uint64_t)json_integer_value(json_object_get(pg, "detached_for"));
        p->broken = json_is_true(json_object_get(pg, "broken"));
        const char *u = json_string_value(json_object_get(pg, "upstream"));
        snprintf(p->upstream, sizeof p->upstream, "%s", u ? u : "");
        p->rec_term =
            json_is_object(rec)
                ? (uint64_t)json_integer_value(json_object_get(rec, "term"))
                : 0;
        p->rec_primary =
            json_is_object(rec)
                ? (uint64_t)json_integer_value(json_object_get(rec, "primary"))
                : 0;
    }
    json_decref(root);
    kick(c);
}

/* Read peer id's /status if the last read is older than every_ms. */
static void read_peer(struct coord *c, uint64_t id, uint64_t every_ms)
{
    struct peer *p = peer_of(c, id);
    uint64_t now = uv_now(c->loop);
    if (p == NULL || p->req != NULL ||
        (p->asked_ms && now - p->asked_ms < every_ms))
        return;
    const char *base = c->peer_url ? c->peer_url(c->peer_data, id) : NULL;
    if (base == NULL) {
        snprintf(p->why, sizeof p->why, "its HTTP URL is unknown");
        return;
    }
    char url[320];
    snprintf(url, sizeof url, "%s/status", base);
    p->asked_ms = now;
    if (httpc_request(c->http, "GET", url, NULL, NULL, 0, PEER_TIMEOUT_MS,
                      1 << 20, peer_cb, p, &p->req) != 0) {
        p->req = NULL;
        snprintf(p->why, sizeof p->why, "cannot send the request");
    }
}

/* The voters (raft configuration) into ids[]; returns the count. */
static unsigned voters(struct coord *c, uint64_t *ids, char hosts[][64])
{
    struct node_server s[MAX_VOTERS];
    unsigned n = node_servers(c->node, s, MAX_VOTERS), k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (s[i].role != NODE_VOTER)
            continue;
        ids[k] = s[i].id;
        /* PostgreSQL's address as the peer reports it, else the host of
         * its raft address. */
        const struct peer *p = NULL;
        for (unsigned j = 0; j < c->n_peers; j++)
            if (c->peers[j].id == s[i].id)
                p = &c->peers[j];
        if (s[i].id == c->self) {
            snprintf(hosts[k], 64, "%s", c->host);
        } else if (p != NULL && p->host[0]) {
            snprintf(hosts[k], 64, "%s", p->host);
        } else {
            snprintf(hosts[k], 64, "%s", s[i].address);
            char *colon = strrchr(hosts[k], ':');
            if (colon != NULL)
                *colon = '\0';
        }
        k++;
    }
    return k;
}

/* ---- the leader ---- */

static void after_members(struct coord *c, int status, const char *e)
{
    (void)e;
    if (status == 0) {
        struct node_status st;
        node_status(c->node, &st);
        c->members_term = st.term;
        snprintf(c->members_key, sizeof c->members_key, "%s", c->pending_key);
    }
}

/* Primary: (re)set the members when the voters or their hosts changed or
 * not yet in this term. true when nothing needed doing. */
static bool members_ok(struct coord *c, uint64_t term)
{
    uint64_t ids[MAX_VOTERS];
    char hosts[MAX_VOTERS][64];
    unsigned n = voters(c, ids, hosts);
    char key[sizeof c->members_key] = "";
    size_t off = 0;
    for (unsigned i = 0; i < n && off < sizeof key; i++)
        off += (size_t)snprintf(key + off, sizeof key - off, "%" PRIu64 "@%s,",
                                ids[i], hosts[i]);
    if (c->members_term == term && strcmp(key, c->members_key) == 0)
        return true;
    const char *hp[MAX_VOTERS];
    for (unsigned i = 0; i < n; i++)
        hp[i] = hosts[i];
    snprintf(c->pending_key, sizeof c->pending_key, "%s", key);
    act(c,
        "set members: synchronous standbys ANY 1 of the voters but "
        "self, pg_hba (%s)",
        key);
    OP(c, "set members", after_members,
       pg_set_members(c->pg, ids, hp, n, cb_, d_));
    return false;
}

static void after_standby_members(struct coord *c, int status, const char *e)
{
    (void)e;
    struct node_status st;
    node_status(c->node, &st);
    if (status == 0)
        c->standby_members_term = st.term;
}

static void primary_record(struct coord *c, uint64_t term, uint32_t tl,
                           uint64_t lsn)
{
    struct fsm_pg r = {.term = term,
                       .primary = c->self,
                       .timeline = tl,
                       .lsn = lsn,
                       .port = c->port};
    snprintf(r.host, sizeof r.host, "%s", c->host);
    char b[24];
    act(c,
        "append record: primary node %" PRIu64 " term %" PRIu64
        " timeline %u lsn %s",
        c->self, term, tl, lsn_str(lsn, b));
    propose(c, &r);
}

static void after_promote(struct coord *c, int status, const char *e)
{
    (void)e;
    if (status == 0) {
        c->started_primary = true;
        c->failovers++;
        c->members_term = 0; /* set them now, before the record */
    }
}

static void transfer_cb(void *data, int status)
{
    struct coord *c = data;
    if (c->closing)
        return;
    if (status != 0) {
        LOGW("pg", "leadership transfer failed: %s", err_str(status));
        c->transferring = false;
        c->retry_at = uv_now(c->loop) + RETRY_MS;
    }
    kick(c);
}

#define REPLAY_WAIT_MS 5000 /* failover: a standby's replay may catch up */

/* What promoting a detached standby keeps: its replay lsn (a promoted
 * standby replays what it received unless it cannot: diverged WAL). stuck:
 * replay is below receive. Without the two (an older node) its lsn. */
static uint64_t kept_lsn(uint64_t lsn, uint64_t receive, uint64_t replay,
                         bool *stuck)
{
    *stuck = false;
    if (receive == 0 && replay == 0)
        return lsn;
    *stuck = replay < receive;
    return replay;
}

/* (timeline, lsn) a above b: a newer timeline holds every acknowledged
 * commit of the older ones (it forked from the most advanced standby). */
static bool ahead(uint32_t tl_a, uint64_t a, uint32_t tl_b, uint64_t b)
{
    return tl_a != tl_b ? tl_a > tl_b : a > b;
}

/* Failover: our fence record of this term is applied. Wait for every
 * other voter (but the fenced old primary) to report it detached after
 * applying it, compare WAL positions, transfer or promote. */
static void failover(struct coord *c, const struct node_status *st,
                     const struct fsm_pg *rec)
{
    enum pg_role role = pg_role(c->pg);
    if (role == PG_PRIMARY || role == PG_STARTING) {
        fence_now(c, "a fence record is in force");
        return;
    }
    if (role == PG_STOPPED && !c->broken) {
        start_standby(c, NULL, 0);
        return;
    }
    c->rewound = false; /* a rewound PGDATA's source is fenced */
    if (role == PG_STANDBY) {
        if (c->detached_term != st->term || c->detached_ms < c->follow_ms) {
            act(c, "detach the local standby (fence record)");
            OP(c, "detach", after_detach, pg_follow(c->pg, NULL, 0, cb_, d_));
            return;
        }
    }
    uint64_t ids[MAX_VOTERS];
    char hosts[MAX_VOTERS][64];
    unsigned n = voters(c, ids, hosts);
    uint64_t best_id = 0, best_lsn = 0, stuck_id = 0, stuck_rcv = 0,
             stuck_rpl = 0, fb_id = 0, fb_lsn = 0;
    uint32_t best_tl = 0, fb_tl = 0;
    bool no_data = role == PG_NONE || c->broken;
    for (unsigned i = 0; i < n; i++) {
        if (ids[i] == c->self)
            continue;
        if (ids[i] == rec->fenced) {
            /* The fenced old primary is no candidate, but when nothing
             * here is usable and it came back as a detached standby, it
             * holds every commit acknowledged in its tenure: the fallback
             * when every other voter is broken or has no data. */
            if (!no_data)
                continue;
            read_peer(c, ids[i], PEER_FAST_MS);
            const struct peer *p = peer_of(c, ids[i]);
            if (p != NULL && p->ok && p->rec_term == st->term &&
                p->rec_primary == 0 && !p->broken &&
                strcmp(p->role, "standby") == 0 && !p->streaming &&
                !p->upstream[0] && p->detached_for == st->term) {
                bool fb_stuck;
                fb_id = ids[i];
                fb_lsn =
                    kept_lsn(p->lsn, p->receive_lsn, p->replay_lsn, &fb_stuck);
                fb_tl = p->timeline;
            }
            continue;
        }
        read_peer(c, ids[i], PEER_FAST_MS);
        struct peer *p = peer_of(c, ids[i]);
        if (p == NULL)
            continue;
        if (!p->ok || p->rec_term != st->term || p->rec_primary != 0) {
            waiting(c,
                    "failover: waiting for node %" PRIu64 "'s lsn (%s): "
                    "only the standbys can hold an acknowledged commit",
                    ids[i],
                    !p->ok ? (p->why[0] ? p->why : "no answer yet")
                           : "it has not applied the fence record yet");
            return;
        }
        if (strcmp(p->role, "none") == 0 || p->broken)
            continue; /* no (usable) data, holds nothing: see the marker */
        if (strcmp(p->role, "standby") != 0 || p->streaming || p->upstream[0] ||
            p->detached_for != st->term) {
            waiting(c,
                    "failover: waiting for node %" PRIu64 "'s lsn: its "
                    "standby has not detached yet (role %s%s)",
                    ids[i], p->role, p->streaming ? ", streaming" : "");
            return;
        }
        bool stuck;
        uint64_t kept = kept_lsn(p->lsn, p->receive_lsn, p->replay_lsn, &stuck);
        if (stuck && p->receive_lsn > stuck_rcv) {
            stuck_id = ids[i];
            stuck_rcv = p->receive_lsn;
            stuck_rpl = p->replay_lsn;
        }
        if (best_id == 0 || ahead(p->timeline, kept, best_tl, best_lsn)) {
            best_id = ids[i];
            best_lsn = kept;
            best_tl = p->timeline;
        }
    }
    const struct pg_info *in = NULL;
    if (role == PG_STANDBY) {
        in = info_since(c, c->detached_ms + 1);
        if (in == NULL || in->streaming || in->upstream[0]) {
            waiting(c, "failover: waiting for the local standby's lsn");
            return;
        }
    }
    bool own_stuck = false;
    uint64_t own =
        in ? kept_lsn(in->lsn, in->receive_lsn, in->replay_lsn, &own_stuck) : 0;
    uint32_t own_tl = in ? in->timeline : 0;
    if (own_stuck && in->receive_lsn > stuck_rcv) {
        stuck_id = c->self;
        stuck_rcv = in->receive_lsn;
        stuck_rpl = in->replay_lsn;
    }
    if (c->failover_term != st->term) {
        c->failover_term = st->term;
        c->failover_ms = uv_now(c->loop);
    }
    if (stuck_id != 0) {
        /* Its flush may have acknowledged commits in the WAL it received:
         * compare on what promotion keeps, after giving replay a chance
         * (a trailing partial record never replays; nothing acknowledged
         * ends in it). */
        char b1[24], b2[24];
        if (uv_now(c->loop) - c->failover_ms < REPLAY_WAIT_MS) {
            waiting(c,
                    "failover: node %" PRIu64 "'s replay lsn %s is below its "
                    "receive lsn %s: waiting for it to replay (promotion "
                    "keeps only replayed WAL)",
                    stuck_id, lsn_str(stuck_rpl, b1), lsn_str(stuck_rcv, b2));
            return;
        }
        LOGW("pg",
             "failover: node %" PRIu64 "'s replay is still at %s below its "
             "receive lsn %s after %d s: compared on its replay lsn",
             stuck_id, lsn_str(stuck_rpl, b1), lsn_str(stuck_rcv, b2),
             REPLAY_WAIT_MS / 1000);
    }
    if (no_data && best_id == 0 && fb_id != 0) {
        best_id = fb_id;
        best_lsn = fb_lsn;
        best_tl = fb_tl;
    }
    if (no_data || (best_id != 0 && ahead(best_tl, best_lsn, own_tl, own))) {
        if (best_id == 0) {
            waiting(c, "failover: no %sdata here and no other voter has any",
                    c->broken ? "usable " : "");
            return;
        }
        char b[24];
        char b2[24];
        act(c,
            "transfer to node %" PRIu64 " (ahead: timeline %u lsn %s; "
            "here timeline %u lsn %s)",
            best_id, best_tl, lsn_str(best_lsn, b), own_tl, lsn_str(own, b2));
        if (node_transfer(c->node, best_id, transfer_cb, c) == 0) {
            c->transferring = true;
            c->transfer_term = st->term;
        } else {
            c->retry_at = uv_now(c->loop) + RETRY_MS;
        }
        return;
    }
    if (c->standby_members_term != st->term) {
        /* synchronous_standby_names in force from the first commit on */
        uint64_t ids2[MAX_VOTERS];
        char hosts2[MAX_VOTERS][64];
        unsigned n2 = voters(c, ids2, hosts2);
        const char *hp[MAX_VOTERS];
        for (unsigned i = 0; i < n2; i++)
            hp[i] = hosts2[i];
        act(c, "set members on the standby before promoting it");
        OP(c, "set members on the standby", after_standby_members,
           pg_set_members(c->pg, ids2, hp, n2, cb_, d_));
        return;
    }
    char b[24];
    c->switch_lsn = own;
    act(c, "promote: the local standby holds the most WAL (lsn %s)",
        lsn_str(own, b));
    OP(c, "promote", after_promote, pg_promote(c->pg, cb_, d_));
}

static void leader_step(struct coord *c, const struct node_status *st)
{
    struct fsm_pg rec;
    bool has = fsm_pg_record(c->fsm, &rec) == 0;
    enum pg_role role = pg_role(c->pg);
    if (!has) { /* bootstrap */
        if (role == PG_NONE) {
            act(c, "bootstrap: no record and no data: initdb");
            OP(c, "initdb", NULL, pg_initdb(c->pg, cb_, d_));
        } else if (role == PG_STOPPED) {
            start_primary(c);
        } else if (role == PG_STANDBY) {
            c->switch_lsn = 0;
            act(c, "bootstrap: promote the local standby (no record yet)");
            OP(c, "promote", after_promote, pg_promote(c->pg, cb_, d_));
        } else if (role == PG_PRIMARY && members_ok(c, st->term)) {
            const struct pg_info *in = info_since(c, 0);
            if (in != NULL && in->role == PG_PRIMARY)
                primary_record(c, st->term, in->timeline ? in->timeline : 1,
                               in->lsn);
        }
        return;
    }
    if (rec.primary == c->self) {
        if (role == PG_PRIMARY) {
            if (!members_ok(c, st->term))
                return;
            if (rec.term < st->term) {
                const struct pg_info *in = info_since(c, 0);
                if (in != NULL && in->role == PG_PRIMARY)
                    primary_record(c, st->term, in->timeline, rec.lsn);
            } else {
                c->switch_lsn = 0;
                if (strncmp(c->action, "primary", 7) != 0)
                    act(c, "primary (term %" PRIu64 ")", st->term);
                /* keep the peers' hosts fresh for the members */
                uint64_t ids[MAX_VOTERS];
                char hosts[MAX_VOTERS][64];
                unsigned n = voters(c, ids, hosts);
                for (unsigned i = 0; i < n; i++)
                    if (ids[i] != c->self)
                        read_peer(c, ids[i], PEER_MS);
            }
            return;
        }
        if (role == PG_STOPPED && !c->broken) {
            /* We were the primary and nobody was promoted since (a
             * promotion needs a committed fence record, which would be
             * newer than this one): our WAL holds every acknowledged
             * commit. */
            c->need_rewind = false;
            start_primary(c);
            return;
        }
    }
    if (rec.primary != 0 || rec.term != st->term) {
        struct fsm_pg f = {.term = st->term,
                           .fenced = rec.primary ? rec.primary : rec.fenced,
                           .timeline = rec.timeline,
                           .lsn = rec.lsn};
        if (role == PG_PRIMARY || role == PG_STARTING)
            fence_now(c, "fencing before a failover");
        act(c,
            "fence: append {term %" PRIu64 ", primary none} (node %" PRIu64
            " was primary); every standby detaches",
            st->term, f.fenced);
        propose(c, &f);
        return;
    }
    failover(c, st, &rec);
}

/* A primary just promoted here: members, then its record. */
static bool promoted_step(struct coord *c, const struct node_status *st)
{
    struct fsm_pg rec;
    if (fsm_pg_record(c->fsm, &rec) != 0 || rec.primary != 0 ||
        rec.term != st->term || pg_role(c->pg) != PG_PRIMARY)
        return false;
    if (!members_ok(c, st->term))
        return true;
    const struct pg_info *in = info_since(c, 0);
    if (in == NULL || in->role != PG_PRIMARY) {
        waiting(c, "promoted: waiting for the new timeline");
        return true;
    }
    primary_record(c, st->term, in->timeline,
                   c->switch_lsn ? c->switch_lsn : in->lsn);
    return true;
}

/* ---- a follower ---- */

static void follower_step(struct coord *c)
{
    struct fsm_pg rec;
    if (fsm_pg_record(c->fsm, &rec) != 0) {
        if (strcmp(c->action, "waiting for the leader's first record") != 0)
            act(c, "waiting for the leader's first record");
        return;
    }
    enum pg_role role = pg_role(c->pg);
    if (primary_here(c)) { /* a follower never runs a primary */
        fence_now(c, "not the raft leader");
        return;
    }
    if (rec.primary == 0) { /* fence: detach */
        if (role == PG_STOPPED && c->broken) {
            c->rewound = false; /* its source is fenced: re-clone next */
            if (strncmp(c->action, "broken", 6) != 0)
                act(c, "broken PGDATA (an interrupted rewind or clone): "
                       "re-clone once a record names a primary");
        } else if (role == PG_STOPPED) {
            start_standby(c, NULL, 0);
        } else if (role == PG_STANDBY) {
            if (c->detached_term != rec.term || c->detached_ms < c->follow_ms) {
                act(c, "detach (fence record of term %" PRIu64 ")", rec.term);
                OP(c, "detach", after_detach,
                   pg_follow(c->pg, NULL, 0, cb_, d_));
            }
        }
        return;
    }
    if (rec.primary == c->self)
        return; /* the new leader will fence it */
    char up[80];
    snprintf(up, sizeof up, "%s:%d", rec.host, rec.port);
    if (role == PG_NONE ||
        (role == PG_STOPPED && (c->want_clone || (c->broken && !c->rewound)))) {
        act(c, "re-clone from node %" PRIu64 " (%s): %s", rec.primary, up,
            role == PG_NONE ? "no data here"
            : c->broken     ? "PGDATA unusable (rewind or clone incomplete)"
                            : "rewind failed");
        mark_broken(c, "clone\n");
        OP(c, "clone", after_clone,
           pg_clone(c->pg, rec.host, rec.port, cb_, d_));
        return;
    }
    if (role == PG_STOPPED) {
        if (c->need_rewind) {
            act(c,
                "rewind from node %" PRIu64 " (%s): the local WAL may "
                "have diverged",
                rec.primary, up);
            mark_broken(c, "rewind\n");
            OP(c, "rewind", after_rewind,
               pg_rewind(c->pg, rec.host, rec.port, cb_, d_));
        } else {
            start_standby(c, rec.host, rec.port);
        }
        return;
    }
    if (role != PG_STANDBY)
        return;
    if (c->need_rewind) {
        /* It was a primary (fenced, died, or its PGDATA says so) and has
         * not been rewound since: its local WAL may run past the new
         * primary's switch point. Re-pointed, its walreceiver would flush
         * (and so acknowledge) the new timeline's commits that its startup
         * process can never replay: rewind first (bug 6). */
        act(c,
            "stop for a rewind before following node %" PRIu64
            " (%s): this node was a primary and its WAL may have diverged",
            rec.primary, up);
        OP(c, "stop for a rewind", NULL, pg_stop(c->pg, false, cb_, d_));
        return;
    }
    bool pointed = c->follow_ms > c->detached_ms && c->follow_ms != 0 &&
                   strcmp(c->follow_up, up) == 0;
    if (!pointed) {
        act(c, "re-point to node %" PRIu64 " (%s)", rec.primary, up);
        snprintf(c->follow_up, sizeof c->follow_up, "%s", up);
        OP(c, "re-point", after_follow,
           pg_follow(c->pg, rec.host, rec.port, cb_, d_));
        return;
    }
    const struct pg_info *in = info_since(c, c->follow_ms + 1);
    if (in == NULL)
        return;
    char b1[24], b2[24];
    if (in->diverged) {
        /* Its WAL is not on the primary's history: its walreceiver can
         * never stream (or streams WAL it cannot replay), and its replay
         * lsn, however high, says nothing about the primary's commits. */
        c->want_clone = c->diverged_rewound;
        act(c,
            "%s: the local WAL left node %" PRIu64 "'s history (here "
            "timeline %u replay lsn %s; node %" PRIu64 " on timeline %u)%s",
            c->want_clone ? "re-clone" : "rewind", rec.primary, in->timeline,
            lsn_str(in->replay_lsn, b1), rec.primary, in->upstream_timeline,
            c->want_clone ? ", still after a rewind" : "");
        c->need_rewind = true;
        c->diverged_rewound = true;
        OP(c, "stop for a rewind", NULL, pg_stop(c->pg, false, cb_, d_));
        return;
    }
    if (in->streaming)
        c->diverged_rewound = false;
    if ((in->timeline && in->timeline < rec.timeline && in->lsn > rec.lsn) ||
        in->timeline > rec.timeline) {
        act(c,
            "rewind: the local WAL diverged (timeline %u lsn %s; record "
            "timeline %u switch lsn %s)",
            in->timeline, lsn_str(in->lsn, b1), rec.timeline,
            lsn_str(rec.lsn, b2));
        c->need_rewind = true;
        OP(c, "stop for a rewind", NULL, pg_stop(c->pg, false, cb_, d_));
        return;
    }
    uint64_t now = uv_now(c->loop);
    if (!in->streaming && c->not_streaming_since &&
        now - c->not_streaming_since > STALL_MS &&
        now - c->follow_ms > STALL_MS) {
        act(c, "rewind: not streaming from %s for %d s", up, STALL_MS / 1000);
        c->need_rewind = true;
        c->not_streaming_since = 0;
        OP(c, "stop for a rewind", NULL, pg_stop(c->pg, false, cb_, d_));
        return;
    }
    if (in->streaming && c->fresh_data && in->sync_state[0]) {
        /* streaming and known to the primary: the commits that waited for a
         * synchronous standby while this PGDATA was copied are released */
        c->fresh_data = false;
        act(c,
            "CHECKPOINT on node %" PRIu64 " (%s): the standby's snapshots "
            "then show the commits that waited for a synchronous standby "
            "while its data was copied",
            rec.primary, up);
        OP(c, "checkpoint upstream", NULL,
           pg_checkpoint_upstream(c->pg, cb_, d_));
        return;
    }
    if (in->streaming && strncmp(c->action, "standby", 7) != 0)
        act(c, "standby streaming from node %" PRIu64 " (%s)", rec.primary, up);
}

/* ---- the tick ---- */

static void tick(struct coord *c)
{
    if (c->stopped || !c->started)
        return;
    uint64_t now = uv_now(c->loop);
    if (now - c->info_ms >= INFO_MS)
        refresh_info(c);
    struct node_status st;
    node_status(c->node, &st);
    if (st.role != NODE_LEADER && primary_here(c))
        fence_now(c, "raft leadership lost");
    struct fsm_pg rec;
    char up[80] = "";
    if (fsm_pg_record(c->fsm, &rec) == 0 && rec.primary != 0)
        snprintf(up, sizeof up, "%s:%d", rec.host, rec.port);
    if (c->op_busy && c->rewound && pg_role(c->pg) == PG_STARTING &&
        (st.role == NODE_LEADER || strcmp(up, c->follow_up) != 0)) {
        /* It waits for WAL from the rewind's source, which is no longer
         * the primary: it may never become consistent. Stop it; the data
         * stays marked broken (re-clone). */
        LOGW("pg",
             "abandon the start on the rewound PGDATA: its source "
             "%s is no longer the primary",
             c->follow_up);
        c->rewound = false;
        pg_fence(c->pg);
    }
    if (c->op_busy || c->proposing || now < c->retry_at)
        return;
    if (c->transferring) {
        if (st.role == NODE_LEADER && st.term == c->transfer_term)
            return; /* raft's transfer times out by itself */
        c->transferring = false;
    }
    if (st.role == NODE_LEADER && st.ready) {
        if (!promoted_step(c, &st))
            leader_step(c, &st);
    } else if (st.role != NODE_LEADER) {
        follower_step(c);
    }
}

static void tick_cb(uv_timer_t *t)
{
    tick(t->data);
}

static void kick(struct coord *c)
{
    if (c->stopped || !c->started)
        return;
    /* the next loop iteration (never inside raft's apply or a callback) */
    uv_timer_start(&c->tick, tick_cb, 0, TICK_MS);
}

/* Raft's role or term changed: fence at once if leadership is gone. */
static void node_changed(void *data)
{
    struct coord *c = data;
    if (c->stopped)
        return;
    struct node_status st;
    node_status(c->node, &st);
    if (st.role != NODE_LEADER && primary_here(c))
        fence_now(c, "raft leadership lost");
    kick(c);
}

/* A record applied (inside raft's apply: only pg_fence, then defer). */
static void record_applied(void *data, const struct fsm_pg *rec)
{
    struct coord *c = data;
    if (c->stopped)
        return;
    char b[24];
    if (rec->primary == 0)
        LOGI("pg",
             "applied fence record term %" PRIu64 " (node %" PRIu64
             " fenced, lsn %s)",
             rec->term, rec->fenced, lsn_str(rec->lsn, b));
    else
        LOGI("pg",
             "applied record term %" PRIu64 ": primary node %" PRIu64
             " at %s:%d timeline %u lsn %s",
             rec->term, rec->primary, rec->host, rec->port, rec->timeline,
             lsn_str(rec->lsn, b));
    if (rec->primary != c->self && primary_here(c))
        fence_now(c, "a record names another primary");
    kick(c);
}

static void pg_exited(void *data, int64_t status, int sig)
{
    struct coord *c = data;
    LOGW("pg", "postgres exited unexpectedly (status %" PRId64 ", signal %d)",
         status, sig);
    if (c->started_primary) /* an ex-primary: rewind it to follow another */
        c->need_rewind = true;
    c->started_primary = false;
    c->info_valid = false;
    kick(c);
}

/* ---- lifecycle ---- */

int coord_new(struct coord **out, uv_loop_t *loop, struct node *node,
              struct fsm *fsm, const struct pg_config *pcfg,
              const char *bind_ip, char *errmsg, size_t errlen)
{
    struct coord *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    c->loop = loop;
    c->node = node;
    c->fsm = fsm;
    c->self = pcfg->node_id;
    snprintf(c->marker, sizeof c->marker, "%s/rewind-incomplete", pcfg->dir);
    if (access(c->marker, F_OK) == 0) {
        c->broken = true;
        c->want_clone = true;
        LOGW("pg",
             "%s exists: a rewind or clone was interrupted, PGDATA is "
             "unusable: re-clone once a record names a primary",
             c->marker);
    }
    snprintf(c->host, sizeof c->host, "%s", pcfg->host);
    c->port = pcfg->port;
    snprintf(c->signal_path, sizeof c->signal_path, "%s/data/standby.signal",
             pcfg->dir);
    int rv = pg_new(&c->pg, loop, pcfg, errmsg, errlen);
    if (rv != 0) {
        free(c);
        return rv;
    }
    rv = httpc_init(&c->http, loop);
    if (rv == 0 && bind_ip != NULL && bind_ip[0])
        rv = httpc_set_source(c->http, bind_ip);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot create the HTTP client for pg");
        if (c->http != NULL)
            httpc_close(c->http, NULL, NULL);
        pg_close(c->pg, NULL, NULL);
        free(c);
        return rv;
    }
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    pg_on_exit(c->pg, pg_exited, c);
    *out = c;
    return 0;
}

void coord_set_peer_url(struct coord *c, coord_peer_url_fn fn, void *data)
{
    c->peer_url = fn;
    c->peer_data = data;
}

void coord_start(struct coord *c)
{
    c->started = true;
    node_on_change(c->node, node_changed, c);
    fsm_on_pg(c->fsm, record_applied, c);
    struct fsm_pg rec;
    char b[24];
    if (pg_role(c->pg) == PG_STOPPED && access(c->signal_path, F_OK) != 0) {
        /* PGDATA of a primary (no standby.signal): rewind it before it
         * follows another primary (a record naming this node starts it as
         * the primary again instead). */
        c->need_rewind = true;
        LOGI("pg", "the local PGDATA was a primary's (no standby.signal): "
                   "rewind before following another primary");
    }
    if (fsm_pg_record(c->fsm, &rec) == 0)
        LOGI("pg",
             "coordinator starts: newest record term %" PRIu64
             " primary node %" PRIu64 " timeline %u lsn %s; local "
             "PostgreSQL %s",
             rec.term, rec.primary, rec.timeline, lsn_str(rec.lsn, b),
             pg_role_name(pg_role(c->pg)));
    else
        LOGI("pg", "coordinator starts: no record yet; local PostgreSQL %s",
             pg_role_name(pg_role(c->pg)));
    kick(c);
}

void coord_stop(struct coord *c)
{
    if (c->stopped)
        return;
    c->stopped = true;
    if (c->started) {
        node_on_change(c->node, NULL, NULL);
        fsm_on_pg(c->fsm, NULL, NULL);
    }
    uv_timer_stop(&c->tick);
}

static void close_part(void *data)
{
    struct coord *c = data;
    if (--c->closing_parts > 0)
        return;
    void (*cb)(void *) = c->close_cb;
    void *cbd = c->close_data;
    free(c);
    if (cb != NULL)
        cb(cbd);
}

static void tick_closed(uv_handle_t *h)
{
    close_part(h->data);
}

void coord_close(struct coord *c, void (*cb)(void *data), void *data)
{
    coord_stop(c);
    c->closing = true;
    c->close_cb = cb;
    c->close_data = data;
    c->closing_parts = 3;
    httpc_close(c->http, close_part, c);
    pg_close(c->pg, close_part, c);
    uv_close((uv_handle_t *)&c->tick, tick_closed);
}

void coord_status(struct coord *c, struct coord_status *st)
{
    memset(st, 0, sizeof *st);
    st->info = c->info;
    st->info.role = pg_role(c->pg);
    st->info_age_ms =
        c->info_valid ? (int64_t)(uv_now(c->loop) - c->info_ms) : -1;
    if (!c->info_valid) {
        memset(&st->info, 0, sizeof st->info);
        st->info.role = pg_role(c->pg);
        st->info.replay_lag_ms = -1;
    }
    snprintf(st->host, sizeof st->host, "%s", c->host);
    st->port = c->port;
    st->has_record = fsm_pg_record(c->fsm, &st->record) == 0;
    st->failovers = c->failovers;
    st->broken = c->broken;
    if (c->broken) { /* holds nothing usable: see the marker */
        st->info.lsn = st->info.receive_lsn = st->info.replay_lsn = 0;
        st->info.streaming = false;
        st->info.diverged = false;
    }
    st->detached_for = c->detached_term && c->detached_ms >= c->follow_ms &&
                               c->info_valid && c->info_ms > c->detached_ms &&
                               st->info.role == PG_STANDBY
                           ? c->detached_term
                           : 0;
    snprintf(st->action, sizeof st->action, "%s", c->action);
}
