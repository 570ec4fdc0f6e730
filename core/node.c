/* node.c - raft lifecycle: data-dir lock, raft_uv I/O, bootstrap, start,
 * the role watcher (driven by raft's step callback) with the leader's
 * readiness, apply/barrier requests, membership changes and the ordered
 * close. The commands proposed during one loop iteration go to raft
 * together, at the end of the iteration's I/O phase (raft_apply_batch, from
 * scripts/raft-patches/0009): one local append and one AppendEntries per
 * follower for all of them. */
#include "core/node.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct node {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    bool io_ready, raft_ready;
    int lock_fd;
    uint64_t id;
    char address[64];
    uv_timer_t poll; /* role/term watcher, armed by raft's step_cb */
    int last_role;
    uint64_t last_term;
    uint64_t ready_term;  /* term in which this leader has applied ... */
    uint64_t ready_index; /* ... its log as it stood when elected */
    uint64_t elections;
    void (*change_cb)(void *);
    void *change_data;
    void (*close_cb)(void *);
    void *close_data;
    bool closing;
    int open_handles; /* poll, flush_check, flush_idle until closed */
    /* Commands proposed in this loop iteration, not yet given to raft. */
    uv_check_t flush_check; /* submits them after the I/O phase */
    uv_idle_t flush_idle;   /* keeps the loop from blocking meanwhile */
    struct node_req **batch_reqs;
    struct raft_buffer *batch_bufs;
    unsigned batch_n, batch_cap;
};

/* One in-flight apply/barrier/change. */
struct node_req {
    struct node *node;
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
        struct raft_change change;
        struct raft_transfer transfer;
    } u;
    node_apply_cb apply_cb;
    node_barrier_cb barrier_cb;
    void *data;
    uint64_t target; /* add: id to promote */
    char address[64];
};

static int fmt(char *errmsg, size_t errlen, int rv, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(errmsg, errlen, f, ap);
    va_end(ap);
    return rv;
}

/* Whether process pid is exiting: gone, or its main thread a zombie
 * while other threads (holding its descriptors) are still being torn down,
 * as for a moment after a kill -9. */
static bool exiting(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp == NULL || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

/* The LOCK file's flock. A holder that is exiting (a node killed just
 * before this one started) is waited for, up to 5 s. */
static int lock_dir(const char *dir, int *fd_out, char *errmsg, size_t errlen)
{
    char path[600];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return fmt(errmsg, errlen, ERR_IO, "cannot open %s: %s", path,
                   strerror(errno));
    bool waited = false;
    for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
        char pid[32] = "?";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        if (r > 0) {
            pid[r] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        long holder = strtol(pid, NULL, 10);
        if (i < 500 && holder > 0 && holder != (long)getpid() &&
            exiting(holder)) {
            if (!waited)
                LOGW("node",
                     "data dir %s is still locked by process %ld, which is "
                     "exiting: waiting for it (up to 5 s)",
                     dir, holder);
            waited = true;
            usleep(10 * 1000);
            continue;
        }
        close(fd);
        return fmt(errmsg, errlen, ERR_BUSY,
                   "data dir %s is in use by another process (pid %s)", dir,
                   pid);
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        LOGW("node", "cannot write pid to %s", path);
    *fd_out = fd;
    return 0;
}

static void poll_cb(uv_timer_t *t);

const char *node_raft_version(void)
{
    static char v[32];
    int n = raft_version_number();
    snprintf(v, sizeof v, "%d.%d.%d", n / 10000, n / 100 % 100, n % 100);
    return v;
}

/* raft calls this after each step (message, tick, completed I/O). The
 * watcher runs from the loop, outside raft's stack, so that what it calls
 * (change callbacks that propose or read) never re-enters raft. */
static void step_cb(struct raft *r)
{
    struct node *n = r->data;
    if (n == NULL || n->closing || uv_is_active((uv_handle_t *)&n->poll))
        return;
    bool leader_waiting =
        raft_state(r) == RAFT_LEADER && n->ready_term != r->current_term;
    if ((int)raft_state(r) != n->last_role || r->current_term != n->last_term ||
        leader_waiting)
        uv_timer_start(&n->poll, poll_cb, 0, 0);
}

int node_init(struct node **out, uv_loop_t *loop, const struct config *cfg,
              struct raft_fsm *fsm, struct raft_uv_transport *transport,
              char *errmsg, size_t errlen)
{
    struct stat st;
    if (mkdir(cfg->data_dir, 0755) != 0 && errno != EEXIST)
        return fmt(errmsg, errlen, ERR_IO, "cannot create data dir %s: %s",
                   cfg->data_dir, strerror(errno));
    if (stat(cfg->data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fmt(errmsg, errlen, ERR_IO, "data dir %s is not a directory",
                   cfg->data_dir);
    struct node *n = calloc(1, sizeof *n);
    if (n == NULL)
        return fmt(errmsg, errlen, ERR_NOMEM, "out of memory");
    n->loop = loop;
    n->id = cfg->id;
    n->lock_fd = -1;
    snprintf(n->address, sizeof n->address, "%s", cfg->raft_addr);
    int rv = lock_dir(cfg->data_dir, &n->lock_fd, errmsg, errlen);
    if (rv != 0)
        goto err;
    rv = raft_uv_init(&n->io, loop, cfg->data_dir, transport);
    if (rv != 0) {
        rv = fmt(errmsg, errlen, ERR_IO, "raft I/O in %s: %s", cfg->data_dir,
                 n->io.errmsg);
        goto err;
    }
    n->io_ready = true;
    /* A corrupt log tail must be reported, never silently dropped. */
    raft_uv_set_auto_recovery(&n->io, false);
    rv = raft_init(&n->raft, &n->io, fsm, cfg->id, cfg->raft_addr);
    if (rv != 0) {
        rv = fmt(errmsg, errlen, ERR_INTERNAL, "raft_init: %s",
                 raft_errmsg(&n->raft));
        goto err;
    }
    n->raft_ready = true;
    n->raft.data = n;
    n->raft.legacy.step_cb = step_cb;
    raft_set_election_timeout(&n->raft, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing);
    /* How long a leader waits for an InstallSnapshot answer before sending
     * the snapshot again (raft's default, 30 s, leaves a follower whose
     * connection broke mid-transfer behind for that long). */
    raft_set_install_snapshot_timeout(&n->raft,
                                      cfg->install_snapshot_timeout_ms);
    raft_set_pre_vote(&n->raft, true);
    uv_timer_init(loop, &n->poll);
    n->poll.data = n;
    uv_check_init(loop, &n->flush_check);
    n->flush_check.data = n;
    uv_idle_init(loop, &n->flush_idle);
    n->flush_idle.data = n;
    n->open_handles = 3;
    *out = n;
    return 0;
err:
    if (n->io_ready)
        raft_uv_close(&n->io);
    if (n->lock_fd >= 0)
        close(n->lock_fd);
    free(n);
    return rv;
}

/* raft's role code for m, or -1 (which raft refuses) outside the enum. */
static int member_to_raft(enum node_member m)
{
    switch (m) {
    case NODE_STANDBY:
        return RAFT_STANDBY;
    case NODE_VOTER:
        return RAFT_VOTER;
    case NODE_SPARE:
        return RAFT_SPARE;
    }
    return -1;
}

/* raft's role code r as a node_member (an unknown code reads as spare:
 * neither votes nor replicates). */
static enum node_member member_from_raft(int r)
{
    return r == RAFT_VOTER     ? NODE_VOTER
           : r == RAFT_STANDBY ? NODE_STANDBY
                               : NODE_SPARE;
}

const char *node_member_name(enum node_member m)
{
    switch (m) {
    case NODE_STANDBY:
        return "standby";
    case NODE_VOTER:
        return "voter";
    case NODE_SPARE:
        return "spare";
    }
    return "?";
}

int node_start(struct node *n, const struct node_server *servers,
               unsigned n_servers, char *errmsg, size_t errlen)
{
    int rv;
    if (n_servers > 0) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned i = 0; i < n_servers; i++) {
            rv =
                raft_configuration_add(&conf, servers[i].id, servers[i].address,
                                       member_to_raft(servers[i].role));
            if (rv != 0) {
                raft_configuration_close(&conf);
                return fmt(errmsg, errlen, ERR_INVALID,
                           "bad server %llu %s: %s",
                           (unsigned long long)servers[i].id,
                           servers[i].address, raft_strerror(rv));
            }
        }
        rv = raft_bootstrap(&n->raft, &conf);
        raft_configuration_close(&conf);
        if (rv == 0)
            LOGI("raft", "bootstrapped a %u-server configuration", n_servers);
        else if (rv != RAFT_CANTBOOTSTRAP)
            return fmt(errmsg, errlen, ERR_IO, "raft bootstrap: %s",
                       raft_errmsg(&n->raft));
    }
    rv = raft_start(&n->raft);
    if (rv != 0)
        return fmt(errmsg, errlen, rv == RAFT_CORRUPT ? ERR_CORRUPT : ERR_IO,
                   "raft start: %s", raft_errmsg(&n->raft));
    uv_timer_start(&n->poll, poll_cb, 0, 0);
    LOGI("raft", "started id=%llu address=%s term=%llu last_applied=%llu",
         (unsigned long long)n->id, n->address,
         (unsigned long long)n->raft.current_term,
         (unsigned long long)raft_last_applied(&n->raft));
    return 0;
}

struct raft *node_raft(struct node *n)
{
    return &n->raft;
}

static const char *role_name(int r)
{
    static const char *names[] = {"unavailable", "follower", "candidate",
                                  "leader"};
    return r >= 0 && r <= 3 ? names[r] : "?";
}

/* Runs on the loop whenever raft's role, term or (for a new leader) applied
 * index may have moved. A new leader serves nothing until it has applied
 * every entry its log held when it was elected: raft 0.22 appends the
 * leader's own no-op after any uncommitted entries and commits earlier-term
 * entries only through it, so reaching that index means the leader's state
 * machine holds everything committed before its term. */
static void poll_cb(uv_timer_t *t)
{
    struct node *n = t->data;
    if (n->closing)
        return;
    int role = raft_state(&n->raft);
    uint64_t term = n->raft.current_term;
    bool changed = role != n->last_role || term != n->last_term;
    if (changed) {
        raft_id lid;
        const char *laddr;
        raft_leader(&n->raft, &lid, &laddr);
        LOGI("raft", "role %s -> %s term=%llu leader=%llu",
             role_name(n->last_role), role_name(role), (unsigned long long)term,
             (unsigned long long)lid);
        if (role == RAFT_LEADER && n->last_role != RAFT_LEADER) {
            n->elections++;
            n->ready_index = raft_last_index(&n->raft);
        }
        n->last_role = role;
        n->last_term = term;
    }
    if (role == RAFT_LEADER && n->ready_term != term &&
        raft_last_applied(&n->raft) >= n->ready_index) {
        n->ready_term = term;
        changed = true;
        LOGI("raft", "leader ready term=%llu applied=%llu",
             (unsigned long long)term,
             (unsigned long long)raft_last_applied(&n->raft));
    }
    if (changed && n->change_cb)
        n->change_cb(n->change_data);
}

void node_status(struct node *n, struct node_status *st)
{
    memset(st, 0, sizeof *st);
    st->role = (enum node_role)raft_state(&n->raft);
    st->term = n->raft.current_term;
    st->ready = st->role == NODE_LEADER && n->ready_term == st->term;
    st->id = n->id;
    st->commit_index = n->raft.commit_index;
    st->applied_index = raft_last_applied(&n->raft);
    st->elections = n->elections;
    raft_id lid;
    const char *laddr;
    raft_leader(&n->raft, &lid, &laddr);
    st->leader_id = lid;
}

unsigned node_servers(struct node *n, struct node_server *out, unsigned cap)
{
    const struct raft_configuration *c = &n->raft.configuration;
    unsigned k = 0;
    for (unsigned i = 0; i < c->n && k < cap; i++, k++) {
        out[k].id = c->servers[i].id;
        snprintf(out[k].address, sizeof out[k].address, "%s",
                 c->servers[i].address);
        out[k].role = member_from_raft(c->servers[i].role);
        out[k].caught_up = out[k].id == n->id;
        raft_index match;
        if (raft_state(&n->raft) == RAFT_LEADER && out[k].id != n->id &&
            raft_match_index(&n->raft, out[k].id, &match) == 0)
            out[k].caught_up =
                match + NODE_CATCH_UP_SLACK >= raft_last_index(&n->raft);
    }
    return k;
}

void node_on_change(struct node *n, void (*cb)(void *data), void *data)
{
    n->change_cb = cb;
    n->change_data = data;
}

static int map_raft_err(int rv)
{
    switch (rv) {
    case RAFT_NOTLEADER:
        return ERR_NOTLEADER;
    case RAFT_LEADERSHIPLOST:
        return ERR_UNKNOWN;
    case RAFT_SHUTDOWN:
        return ERR_SHUTDOWN;
    case RAFT_NOMEM:
        return ERR_NOMEM;
    case RAFT_TOOBIG:
        return ERR_TOOBIG;
    case RAFT_BUSY:
    case RAFT_CANTCHANGE: /* a configuration change is in progress */
        return ERR_BUSY;
    case RAFT_BADID:
        return ERR_NOTFOUND;
    default:
        return ERR_IO;
    }
}

/* Writes are served only by a leader that is ready (see poll_cb). */
static int check_leader(struct node *n)
{
    if (n->closing)
        return ERR_SHUTDOWN;
    if (raft_state(&n->raft) != RAFT_LEADER)
        return ERR_NOTLEADER;
    if (n->ready_term != n->raft.current_term)
        return ERR_BUSY;
    return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct node_req *nr = req->data;
    nr->apply_cb(nr->data, status == 0 ? 0 : map_raft_err(status), req->index,
                 status == 0 ? result : NULL);
    free(nr);
}

/* Largest number of commands in one raft submission. */
enum { NODE_BATCH_MAX = 1024 };

/* Give the commands proposed so far to raft, in proposal order. A batch
 * raft refuses (leadership lost since the proposals) fails each command
 * through its callback, as if raft had reported the loss. The batch is
 * detached first: a callback may propose again (a new batch). */
static void flush_batch(struct node *n)
{
    uv_check_stop(&n->flush_check);
    uv_idle_stop(&n->flush_idle);
    struct node_req **nrs = n->batch_reqs;
    struct raft_buffer *bufs = n->batch_bufs;
    unsigned count = n->batch_n, cap = n->batch_cap;
    if (count == 0)
        return;
    n->batch_reqs = NULL;
    n->batch_bufs = NULL;
    n->batch_n = n->batch_cap = 0;
    for (unsigned done = 0; done < count;) {
        unsigned k = count - done;
        if (k > NODE_BATCH_MAX)
            k = NODE_BATCH_MAX;
        struct raft_apply *reqs[NODE_BATCH_MAX];
        for (unsigned i = 0; i < k; i++)
            reqs[i] = &nrs[done + i]->u.apply;
        int rv =
            k == 1 ? raft_apply(&n->raft, reqs[0], &bufs[done], 1, apply_cb)
                   : raft_apply_batch(&n->raft, reqs, &bufs[done], k, apply_cb);
        if (rv != 0) {
            LOGW("raft", "%u proposed commands refused: %s", k,
                 raft_strerror(rv));
            for (unsigned i = 0; i < k; i++) {
                struct node_req *nr = nrs[done + i];
                raft_free(bufs[done + i].base);
                nr->apply_cb(nr->data, map_raft_err(rv), 0, NULL);
                free(nr);
            }
        }
        done += k;
    }
    if (n->batch_reqs == NULL) { /* keep the arrays for the next batch */
        n->batch_reqs = nrs;
        n->batch_bufs = bufs;
        n->batch_cap = cap;
    } else {
        free(nrs);
        free(bufs);
    }
}

static void flush_check_cb(uv_check_t *h)
{
    flush_batch(h->data);
}

static void flush_idle_cb(uv_idle_t *h)
{
    (void)h;
}

int node_apply(struct node *n, const void *bytes, size_t len, node_apply_cb cb,
               void *data)
{
    int rv = check_leader(n);
    if (rv != 0)
        return rv;
    if (n->batch_n == n->batch_cap) {
        unsigned cap = n->batch_cap ? 2 * n->batch_cap : 64;
        struct node_req **reqs = realloc(n->batch_reqs, cap * sizeof *reqs);
        if (reqs == NULL)
            return ERR_NOMEM;
        n->batch_reqs = reqs;
        struct raft_buffer *bufs = realloc(n->batch_bufs, cap * sizeof *bufs);
        if (bufs == NULL)
            return ERR_NOMEM;
        n->batch_bufs = bufs;
        n->batch_cap = cap;
    }
    /* canonical/raft 0.15 mis-reads closed segments holding entries whose
     * length is not a multiple of 8: pad with zero bytes (the FSM's
     * decoder accepts up to 7 of them). */
    size_t padded = (len + 7) / 8 * 8;
    struct node_req *nr = calloc(1, sizeof *nr);
    struct raft_buffer buf = {.base = raft_malloc(padded), .len = padded};
    if (nr == NULL || buf.base == NULL) {
        free(nr);
        raft_free(buf.base);
        return ERR_NOMEM;
    }
    memcpy(buf.base, bytes, len);
    memset((char *)buf.base + len, 0, padded - len);
    nr->node = n;
    nr->apply_cb = cb;
    nr->data = data;
    nr->u.apply.data = nr;
    if (n->batch_n == 0) {
        uv_check_start(&n->flush_check, flush_check_cb);
        uv_idle_start(&n->flush_idle, flush_idle_cb);
    }
    n->batch_reqs[n->batch_n] = nr;
    n->batch_bufs[n->batch_n] = buf;
    n->batch_n++;
    return 0;
}

/* A barrier or change request; the caller sets the raft request's data. */
static struct node_req *new_req(struct node *n, node_barrier_cb cb, void *d)
{
    struct node_req *nr = calloc(1, sizeof *nr);
    if (nr == NULL)
        return NULL;
    nr->node = n;
    nr->barrier_cb = cb;
    nr->data = d;
    return nr;
}

/* Report a barrier or change request's raft status and free it. */
static void req_done(struct node_req *nr, int status)
{
    nr->barrier_cb(nr->data, status == 0 ? 0 : map_raft_err(status));
    free(nr);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    req_done(req->data, status);
}

int node_barrier(struct node *n, node_barrier_cb cb, void *data)
{
    int rv = check_leader(n);
    if (rv != 0)
        return rv;
    flush_batch(n); /* the barrier comes after every command proposed */
    struct node_req *nr = new_req(n, cb, data);
    if (nr == NULL)
        return ERR_NOMEM;
    nr->u.barrier.data = nr;
    rv = raft_barrier(&n->raft, &nr->u.barrier, barrier_cb);
    if (rv != 0) {
        free(nr);
        return map_raft_err(rv);
    }
    return 0;
}

static void change_done_cb(struct raft_change *req, int status)
{
    struct node_req *nr = req->data;
    if (status != 0)
        LOGW("raft", "change of id=%llu failed in raft: %s (%d)",
             (unsigned long long)nr->target, raft_strerror(status), status);
    req_done(nr, status);
}

/* Step 2 of an add: promote the new server to voter once it is known. */
static void add_step_cb(struct raft_change *req, int status)
{
    struct node_req *nr = req->data;
    struct node *n = nr->node;
    if (status != 0 && !n->closing)
        LOGW("raft", "add of id=%llu failed in raft: %s (%d)",
             (unsigned long long)nr->target, raft_strerror(status), status);
    if (status != 0 || n->closing) {
        nr->barrier_cb(nr->data, status ? map_raft_err(status) : ERR_SHUTDOWN);
        free(nr);
        return;
    }
    int rv = raft_assign(&n->raft, &nr->u.change, nr->target, RAFT_VOTER,
                         change_done_cb);
    if (rv != 0) {
        LOGW("raft",
             "promote id=%llu after its add refused by raft: %s (%d): %s",
             (unsigned long long)nr->target, raft_strerror(rv), rv,
             raft_errmsg(&n->raft));
        nr->barrier_cb(nr->data, map_raft_err(rv));
        free(nr);
    }
}

static void transfer_cb(struct raft_transfer *req)
{
    struct node_req *nr = req->data;
    struct node *n = nr->node;
    raft_id lid;
    const char *laddr;
    raft_leader(&n->raft, &lid, &laddr);
    nr->barrier_cb(nr->data, lid == nr->target ? 0 : ERR_TIMEOUT);
    free(nr);
}

enum change_kind { CHANGE_ADD, CHANGE_PROMOTE, CHANGE_REMOVE, CHANGE_TRANSFER };

/* One membership change of server id, or a leadership transfer to it
 * (leader only; a transfer does not wait for the leader to be ready);
 * cb(data, status). */
static int change(struct node *n, enum change_kind kind, uint64_t id,
                  const char *address, node_barrier_cb cb, void *data)
{
    int rv = check_leader(n);
    if (rv != 0 && !(kind == CHANGE_TRANSFER && rv == ERR_BUSY))
        return rv;
    flush_batch(n);
    struct node_req *nr = new_req(n, cb, data);
    if (nr == NULL)
        return ERR_NOMEM;
    nr->target = id;
    nr->u.change.data = nr;
    struct raft_change *req = &nr->u.change;
    switch (kind) {
    case CHANGE_ADD:
        rv = raft_add(&n->raft, req, id, address, add_step_cb);
        break;
    case CHANGE_PROMOTE:
        rv = raft_assign(&n->raft, req, id, RAFT_VOTER, change_done_cb);
        break;
    case CHANGE_REMOVE:
        rv = raft_remove(&n->raft, req, id, change_done_cb);
        break;
    case CHANGE_TRANSFER:
        nr->u.transfer.data = nr;
        rv = raft_transfer(&n->raft, &nr->u.transfer, id, transfer_cb);
        break;
    }
    if (rv != 0) {
        /* Our error codes are coarser than raft's: say raft's own. */
        static const char *const what[] = {"add", "promote", "remove",
                                           "transfer"};
        LOGW("raft",
             "%s id=%llu refused by raft: %s (%d): %s (configuration "
             "committed at %llu, uncommitted at %llu, commit %llu, applied "
             "%llu, promotee %llu)",
             what[kind], (unsigned long long)id, raft_strerror(rv), rv,
             raft_errmsg(&n->raft),
             (unsigned long long)n->raft.configuration_committed_index,
             (unsigned long long)n->raft.configuration_uncommitted_index,
             (unsigned long long)n->raft.commit_index,
             (unsigned long long)n->raft.last_applied,
             (unsigned long long)n->raft.leader_state.promotee_id);
        free(nr);
        return map_raft_err(rv);
    }
    return 0;
}

int node_add_voter(struct node *n, uint64_t id, const char *address,
                   node_barrier_cb cb, void *data)
{
    return change(n, CHANGE_ADD, id, address, cb, data);
}

int node_promote(struct node *n, uint64_t id, node_barrier_cb cb, void *data)
{
    return change(n, CHANGE_PROMOTE, id, NULL, cb, data);
}

int node_remove(struct node *n, uint64_t id, node_barrier_cb cb, void *data)
{
    return change(n, CHANGE_REMOVE, id, NULL, cb, data);
}

int node_transfer(struct node *n, uint64_t id, node_barrier_cb cb, void *data)
{
    return change(n, CHANGE_TRANSFER, id, NULL, cb, data);
}

static void poll_closed_cb(uv_handle_t *h)
{
    struct node *n = h->data;
    if (--n->open_handles > 0)
        return;
    void (*cb)(void *) = n->close_cb;
    void *data = n->close_data;
    if (n->lock_fd >= 0)
        close(n->lock_fd);
    free(n->batch_reqs);
    free(n->batch_bufs);
    free(n);
    if (cb)
        cb(data);
}

static void raft_closed_cb(struct raft *r)
{
    struct node *n = r->data;
    /* raft_close already closed the I/O backend's handles; free it now. */
    raft_uv_close(&n->io);
    LOGI("raft", "closed");
    uv_close((uv_handle_t *)&n->poll, poll_closed_cb);
    uv_close((uv_handle_t *)&n->flush_check, poll_closed_cb);
    uv_close((uv_handle_t *)&n->flush_idle, poll_closed_cb);
}

void node_close(struct node *n, void (*cb)(void *data), void *data)
{
    n->closing = true;
    n->close_cb = cb;
    n->close_data = data;
    uv_timer_stop(&n->poll);
    /* Proposed commands go to raft, which cancels them as it closes. */
    flush_batch(n);
    raft_close(&n->raft, raft_closed_cb);
}
