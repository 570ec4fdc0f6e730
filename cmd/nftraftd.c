/* nftraftd.c - the node daemon: config, raft node, FSM, HTTP API on one
 * libuv loop, and the ordered shutdown on SIGINT/SIGTERM. */
#include "core/config.h"
#include "core/dataid.h"
#include "core/err.h"
#include "core/log.h"
#include "core/node.h"
#include "core/version.h"
#include "chain/hex.h"
#include "fsm/fsm.h"
#include "fsm/raftfsm.h"
#include "net/api.h"
#include "pg/coord.h"
#include "pg/postgres.h"
#include "recon/chainsync.h"
#include "net/transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a clean shutdown may wait for raft_close (close_guard_cb). */
#define CLOSE_GUARD_MS 15000

struct daemon {
    uv_loop_t loop;
    struct config cfg;
    struct raftfsm rf;
    struct raft_uv_transport transport;
    bool transport_ready;
    struct node *node;
    struct fsm *fsm;
    struct api *api;
    struct chainsync *cs; /* chain mode only */
    struct coord *coord;  /* --pg only */
    uv_signal_t sigint, sigterm;
    uv_timer_t watchdog;
    uv_timer_t close_guard; /* bounds raft's close once stopping */
    bool stopping;
    bool reexec; /* run again as a new raft server once stopped */
    char **argv;
    int exit_code;
};

/* The static-mode cluster secret: 64 hex digits (0x optional, surrounding
 * whitespace ignored) in path. 0, or non-zero with why in err. */
static int read_secret(const char *path, uint8_t out[TRANSPORT_SECRET_LEN],
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the cluster secret %s: %s", path,
                 strerror(errno));
        return ERR_IO;
    }
    char buf[160];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    struct stat st;
    bool shared = fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0;
    fclose(f);
    buf[n] = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strcspn(s, " \t\r\n");
    size_t got = 0;
    if (s[len + strspn(s + len, " \t\r\n")] != '\0' ||
        hex_decode(s, len, out, TRANSPORT_SECRET_LEN, &got) != 0 ||
        got != TRANSPORT_SECRET_LEN) {
        snprintf(err, errlen,
                 "cluster secret %s: want 64 hex digits "
                 "(32 bytes)",
                 path);
        return ERR_INVALID;
    }
    if (shared)
        LOGW("main",
             "cluster secret %s is readable by group or others "
             "(chmod 600 it)",
             path);
    return 0;
}

static void reexec(char **argv);

/* PostgreSQL is stopped (--pg): the rest. */
static void coord_closed_cb(void *data)
{
    struct daemon *d = data;
    d->coord = NULL;
    raftfsm_close(&d->rf);
    if (d->fsm != NULL)
        fsm_close(d->fsm);
    d->fsm = NULL;
    if (d->transport_ready)
        transport_free(&d->transport);
    d->transport_ready = false;
    chainsync_free(d->cs);
    d->cs = NULL;
    LOGI("main", "stopped exit=%d", d->exit_code);
}

static void api_closed_cb(void *data)
{
    struct daemon *d = data;
    d->api = NULL;
    if (d->coord != NULL)
        coord_close(d->coord, coord_closed_cb, d);
    else
        coord_closed_cb(d);
}

/* Raft is closed (its in-flight requests were answered); now HTTP. */
static void node_closed_cb(void *data)
{
    struct daemon *d = data;
    d->node = NULL;
    uv_close((uv_handle_t *)&d->close_guard, NULL); /* stops it */
    if (d->api != NULL)
        api_close(d->api, api_closed_cb, d);
    else
        api_closed_cb(d);
}

/* Raft did not call back within CLOSE_GUARD_MS of "stopping" (seen once:
 * a close that began while a snapshot was written never finished). Raft
 * persists before it acknowledges anything, so ending here without the
 * clean close is what a crash would be: exit non-zero, or run again as the
 * new raft server if that is why it stopped. LeakSanitizer is skipped on
 * purpose (_exit): the half-closed state is not a leak to report. */
static void close_guard_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;
    LOGE("main",
         "raft has not closed %d s after stopping; %s without a clean "
         "close (as after a crash: raft persisted all it acknowledged)",
         CLOSE_GUARD_MS / 1000,
         d->reexec ? "running again as the new raft server" : "exiting");
    if (d->reexec)
        reexec(d->argv);
    _exit(1);
}

static void stop(struct daemon *d, int code)
{
    if (d->stopping)
        return;
    d->stopping = true;
    d->exit_code = code;
    LOGI("main", "stopping");
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->watchdog, NULL);
    if (d->cs != NULL)
        chainsync_stop(d->cs); /* no raft change starts from here on */
    if (d->coord != NULL)
        coord_stop(d->coord); /* no PostgreSQL step starts from here on */
    if (d->node != NULL) {
        uv_timer_start(&d->close_guard, close_guard_cb, CLOSE_GUARD_MS, 0);
        node_close(d->node, node_closed_cb, d);
    } else {
        node_closed_cb(d);
    }
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    LOGI("main", "received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop(d, 0);
}

static void watchdog_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->rf.fatal != 0) {
        LOGE("main", "state machine failed (%s); stopping",
             err_str(d->rf.fatal));
        stop(d, 1);
    }
}

/* A start-up failure: logged and printed; returns 1. */
static int fail_start(const char *err)
{
    LOGE("main", "%s", err);
    fprintf(stderr, "nftraftd: %s\n", err);
    return 1;
}

/* This instance's registration moved to a new epoch while running: a raft
 * id cannot change in process, so stop cleanly and run again (main). */
static void moved_cb(void *data, uint64_t new_id)
{
    struct daemon *d = data;
    LOGW("main",
         "this instance is now raft id %" PRIu64 " (token %" PRIu64
         " epoch %" PRIu64 "), not %" PRIu64
         ": stopping and starting again as the new raft server",
         new_id, new_id >> 32, new_id & 0xffffffffu, d->cfg.id);
    d->reexec = true;
    stop(d, 0);
}

/* Chain mode: the contract says which token this instance is, its raft id
 * (token << 32 | epoch of its registration) and where its raft endpoint
 * is; a data dir of another raft id is moved aside and the node joins as
 * the new server. */
static int start_chain(struct daemon *d, char *err, size_t errlen)
{
    struct config *cfg = &d->cfg;
    uint64_t token;
    int rv = chainsync_init(&d->cs, &d->loop, cfg, err, errlen);
    if (rv == 0)
        rv = chainsync_discover(d->cs, &token, err, errlen);
    if (rv != 0)
        return fail_start(err);
    uint64_t id = chainsync_raft_id(d->cs);
    if (cfg->id != 0 && cfg->id != token && cfg->id != id)
        LOGW("main",
             "--id %" PRIu64 " ignored in chain mode: the contract makes "
             "this instance token %" PRIu64 ", raft id %" PRIu64,
             cfg->id, token, id);
    cfg->id = id;
    char label[32];
    snprintf(label, sizeof label, "%" PRIu64 ".%" PRIu64, token,
             id & 0xffffffffu);
    log_init(label, NULL);
    bool moved;
    uint64_t old_id;
    char aside[700];
    rv = dataid_claim(cfg->data_dir, id, &moved, &old_id, aside, sizeof aside,
                      err, errlen);
    if (rv != 0)
        return fail_start(err);
    if (moved) {
        LOGW("main",
             "data dir %s belonged to raft id %" PRIu64 "%s; this instance "
             "is now raft id %" PRIu64 " (token %" PRIu64 " epoch %" PRIu64
             "): its old state is kept in %s and the node starts empty, "
             "joining the cluster as a new server",
             cfg->data_dir, old_id ? old_id : token,
             old_id ? "" : " (no raft-id file: raft id = token, before epochs)",
             id, token, id & 0xffffffffu, aside);
        cfg->join = true;
    }
    chainsync_on_moved(d->cs, moved_cb, d);
    if (chainsync_peer(d->cs, id) == NULL) {
        fprintf(stderr,
                "nftraftd: token %" PRIu64 " (instance %s) has "
                "no endpoints on chain (registerNode) and no "
                "entry in a --peers address book\n",
                token, cfg->instance_id);
        return 1;
    }
    LOGI("main",
         "instance %s is token %" PRIu64 " epoch %" PRIu64 ", raft id %" PRIu64,
         cfg->instance_id, token, id & 0xffffffffu, id);
    return 0;
}

/* The raft transport: a raft peer must prove it holds its token's node key
 * (chain mode) or the cluster secret (static mode) before raft reads from
 * it. */
static int start_transport(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    struct transport_auth auth;
    memset(&auth, 0, sizeof auth);
    if (d->cs != NULL) {
        chainsync_transport_auth(d->cs, &auth);
    } else if (!cfg->insecure_no_auth &&
               read_secret(cfg->cluster_secret_file, auth.secret, err,
                           errlen) != 0) {
        return fail_start(err);
    }
    if (cfg->insecure_no_auth)
        LOGW("main",
             "--insecure-no-auth: the raft port is NOT "
             "authenticated; anyone who reaches %s can speak raft to this "
             "node (for tests only)",
             cfg->raft_addr);
    struct transport_config tc = {
        .auth = cfg->insecure_no_auth ? NULL : &auth,
        .max_message = cfg->max_raft_message,
        .max_connections = cfg->max_raft_connections,
    };
    if (transport_init(&d->transport, &d->loop, &tc) != 0) {
        LOGE("main", "cannot create the raft transport");
        return 1;
    }
    d->transport_ready = true;
    return 0;
}

/* The raft node, the state machine in DIR/state.db and the HTTP API. */
static int start_node(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    int rv = node_init(&d->node, &d->loop, cfg, &d->rf.fsm, &d->transport, err,
                       errlen);
    if (rv != 0)
        return fail_start(err);
    char path[600];
    snprintf(path, sizeof path, "%s/state.db", cfg->data_dir);
    if (fsm_open(&d->fsm, path, err, errlen) != 0)
        return fail_start(err);
    fsm_set_retention(d->fsm, cfg->log_retention);
    d->rf.state = d->fsm;
    raftfsm_bind(&d->rf, node_raft(d->node), &d->loop);
    if (api_init(&d->api, &d->loop, cfg, d->node, d->fsm, err, errlen) != 0)
        return fail_start(err);
    return 0;
}

/* The PostgreSQL password (--pg-password-file): its first line, at most
 * cap - 1 bytes, not empty. 0, or non-zero with why in err. */
static int read_pg_password(const char *path, char *out, size_t cap, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the PostgreSQL password %s: %s",
                 path, strerror(errno));
        return ERR_IO;
    }
    struct stat st;
    bool shared = fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (out[0] == '\0' || strchr(out, '\'') != NULL ||
        strchr(out, '\\') != NULL) {
        snprintf(err, errlen,
                 "--pg-password-file %s: want one line of text (no quote "
                 "or backslash)",
                 path);
        return ERR_INVALID;
    }
    if (shared)
        LOGW("main",
             "PostgreSQL password %s is readable by group or others "
             "(chmod 600 it)",
             path);
    return 0;
}

static const char *peer_url_cb(void *data, uint64_t id)
{
    struct daemon *d = data;
    return d->api != NULL ? api_peer_url(d->api, id) : NULL;
}

/* --pg: the local PostgreSQL under DIR/pg and its coordinator. */
static int start_pg(struct daemon *d, char *err, size_t errlen)
{
    const struct config *cfg = &d->cfg;
    char password[256], dir[600], helper[600], self[512];
    if (read_pg_password(cfg->pg_password_file, password, sizeof password, err,
                         errlen) != 0)
        return fail_start(err);
    snprintf(dir, sizeof dir, "%s/pg", cfg->data_dir);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(helper, sizeof helper, "%s/nftraft-pgexec",
             slash != NULL ? self : ".");
    struct pg_config pc = {
        .bin_dir = cfg->pg_bin,
        .exec_helper = helper,
        .dir = dir,
        .host = cfg->pg_host,
        .port = cfg->pg_port,
        .user = cfg->pg_user[0] ? cfg->pg_user : NULL,
        .password = password,
        .node_id = cfg->id,
    };
    int rv = coord_new(&d->coord, &d->loop, d->node, d->fsm, &pc, cfg->bind_ip,
                       err, errlen);
    memset(password, 0, sizeof password);
    if (rv != 0)
        return fail_start(err);
    coord_set_peer_url(d->coord, peer_url_cb, d);
    api_set_pg(d->api, d->coord);
    LOGI("main", "PostgreSQL on %s:%d (data %s, programs %s, user %s)",
         cfg->pg_host, cfg->pg_port, dir, cfg->pg_bin,
         cfg->pg_user[0] ? cfg->pg_user : "self");
    return 0;
}

/* First start: static mode bootstraps --peers; chain mode the active
 * members it has addresses for (a --join node never bootstraps). Returns
 * how many servers. */
static unsigned bootstrap_servers(struct daemon *d, struct node_server *servers)
{
    const struct config *cfg = &d->cfg;
    unsigned n = 0;
    if (!cfg->chain) {
        for (unsigned i = 0; i < cfg->n_peers; i++) {
            servers[n].id = cfg->peers[i].id;
            snprintf(servers[n].address, sizeof servers[n].address, "%s",
                     cfg->peers[i].raft);
            servers[n++].role = NODE_VOTER;
        }
    } else if (!cfg->join) {
        uint64_t ids[CONFIG_MAX_PEERS];
        unsigned k = chainsync_members(d->cs, ids, CONFIG_MAX_PEERS);
        for (unsigned i = 0; i < k; i++) {
            const struct config_peer *p = chainsync_peer(d->cs, ids[i]);
            servers[n].id = ids[i];
            snprintf(servers[n].address, sizeof servers[n].address, "%s",
                     p->raft);
            servers[n++].role = NODE_VOTER;
        }
    }
    return n;
}

/* Start everything in order; 1 on a failure (stop() then unwinds it). */
static int run(struct daemon *d)
{
    char err[1024];
    if (d->cfg.chain && start_chain(d, err, sizeof err) != 0)
        return 1;
    raftfsm_init(&d->rf, NULL);
    if (start_transport(d, err, sizeof err) != 0 ||
        start_node(d, err, sizeof err) != 0 ||
        (d->cfg.pg && start_pg(d, err, sizeof err) != 0))
        return 1;
    struct node_server servers[CONFIG_MAX_PEERS];
    unsigned n = bootstrap_servers(d, servers);
    if (node_start(d->node, servers, n, err, sizeof err) != 0)
        return fail_start(err);
    api_set_transport(d->api, &d->transport);
    if (d->cs != NULL)
        chainsync_attach(d->cs, d->node, d->api, &d->transport);
    if (d->coord != NULL)
        coord_start(d->coord);
    return 0;
}

/* Run this binary again with the same arguments (the loop is closed):
 * no descriptor but stdin/stdout/stderr survives the exec. Returns only
 * on failure. */
static void reexec(char **argv)
{
    DIR *dp = opendir("/proc/self/fd");
    struct dirent *e;
    while (dp != NULL && (e = readdir(dp)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(dp))
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    if (dp != NULL)
        closedir(dp);
    LOGI("main", "re-executing %s", argv[0]);
    execv("/proc/self/exe", argv);
    LOGE("main", "cannot re-execute /proc/self/exe: %s", strerror(errno));
}

int main(int argc, char **argv)
{
    static struct daemon d; /* one per process; lives for the whole run */
    char err[512];
    int rv = config_parse(&d.cfg, argc, argv, err, sizeof err);
    if (rv == CONFIG_HELP) {
        config_usage(stdout);
        return 0;
    }
    if (rv == CONFIG_VERSION) {
        printf("nftraftd %s (raft %s)\n", NFTRAFT_VERSION, node_raft_version());
        return 0;
    }
    if (rv != 0) {
        fprintf(stderr,
                "nftraftd: %s\nusage: nftraftd --data-dir DIR --http "
                "HOST:PORT --raft IPV4:PORT (--peers ID=RAFT=URL,... | "
                "--rpc-url URL --contract ADDR) [options]; see --help\n",
                err);
        return 2;
    }
    char label[32];
    snprintf(label, sizeof label, "%" PRIu64, d.cfg.id);
    log_init(label, d.cfg.log_level);
    log_on_crash();
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sigterm);
    d.sigint.data = d.sigterm.data = &d;
    uv_signal_start(&d.sigint, signal_cb, SIGINT);
    uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
    uv_timer_init(&d.loop, &d.watchdog);
    d.watchdog.data = &d;
    uv_timer_start(&d.watchdog, watchdog_cb, 100, 100);
    uv_timer_init(&d.loop, &d.close_guard);
    d.close_guard.data = &d;
    d.argv = argv;
    LOGI("main",
         "nftraftd %s (raft %s) starting id=%" PRIu64 " data=%s "
         "http=%s:%d raft=%s",
         NFTRAFT_VERSION, node_raft_version(), d.cfg.id, d.cfg.data_dir,
         d.cfg.http_host, d.cfg.http_port, d.cfg.raft_addr);
    if (run(&d) != 0)
        stop(&d, 1);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&d.loop);
    if (rv != 0)
        LOGW("main", "loop closed with handles open: %s", uv_strerror(rv));
    if (d.reexec) {
        reexec(argv);
        return 1;
    }
    return d.exit_code;
}
