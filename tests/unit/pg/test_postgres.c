/* test_postgres.c - pg/postgres.c against a real PostgreSQL 15: initdb and
 * start a primary, clone a streaming standby, quorum commit, promotion,
 * fencing, pg_rewind of the old primary, a clone into an empty dir, and
 * the errors of bad input. Skips only when PostgreSQL is not installed.
 * Runs as root (postgres then runs as user postgres) or as any user. */
#include "harness.h"

#include "core/err.h"
#include "pg/postgres.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define PASSWORD "s3cret:pw'x"

static uv_loop_t loop;
static char helper[512];

struct done {
    bool fired;
    int status;
    char msg[1024];
};

static void done_cb(void *data, int status, const char *errmsg)
{
    struct done *d = data;
    d->fired = true;
    d->status = status;
    snprintf(d->msg, sizeof d->msg, "%s", errmsg);
}

struct info_wait {
    bool fired;
    int status;
    struct pg_info info;
};

static void info_cb(void *data, int status, const struct pg_info *info)
{
    struct info_wait *w = data;
    w->fired = true;
    w->status = status;
    w->info = *info;
}

/* Run the loop until *flag or ms pass; returns *flag. */
static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static bool run_until(bool *flag, uint64_t ms)
{
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + ms;
    uv_timer_t tick; /* repeating: the loop never waits without a timer */
    uv_timer_init(&loop, &tick);
    uv_update_time(&loop);
    uv_timer_start(&tick, tick_cb, 20, 20);
    while (!*flag && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag;
}

static void sleep_loop(uint64_t ms)
{
    bool never = false;
    run_until(&never, ms);
}

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

/* Wait for op: returns its status (or -999 on timeout). */
static int wait_op(struct done *d, uint64_t ms)
{
    if (!run_until(&d->fired, ms))
        return -999;
    if (d->status != 0)
        fprintf(stderr, "  op failed: %s\n", d->msg);
    return d->status;
}

static int get_info(struct pg *p, struct pg_info *out)
{
    struct info_wait w = {0};
    if (pg_info(p, info_cb, &w) != 0)
        return -1;
    if (!run_until(&w.fired, 10000))
        return -999;
    *out = w.info;
    return w.status;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static const char *pg_user(void)
{
    return geteuid() == 0 ? "postgres" : NULL;
}

static int have_pg(void)
{
    if (access(PG_DEFAULT_BIN_DIR "/postgres", X_OK) != 0)
        return 0;
    const char *b = getenv("NFTRAFT_BUILD_DIR");
    snprintf(helper, sizeof helper, "%s/nftraft-pgexec", b ? b : ".");
    if (b == NULL || access(helper, X_OK) != 0) { /* build/tests/<me> */
        char self[400];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return 0;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(helper, sizeof helper, "%s/../nftraft-pgexec", self);
    }
    return 1;
}

static bool loop_ready;

static void loop_init(void)
{
    if (!loop_ready) {
        uv_loop_init(&loop);
        loop_ready = true;
    }
}

/* A temp dir the pg user may enter (root: mode 0755). */
static int make_tmp(char *out, size_t len)
{
    snprintf(out, len, "/tmp/nftraft-pgtest-XXXXXX");
    if (mkdtemp(out) == NULL)
        return -1;
    return chmod(out, 0755);
}

static void rm_tmp(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
}

static int new_pg(struct pg **out, const char *tmp, const char *name,
                  uint64_t id, int port, char *err, size_t errlen)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s/pg", tmp, name);
    struct pg_config cfg = {.bin_dir = NULL,
                            .exec_helper = helper,
                            .dir = dir,
                            .host = "127.0.0.1",
                            .port = port,
                            .user = pg_user(),
                            .password = PASSWORD,
                            .node_id = id};
    return pg_new(out, &loop, &cfg, err, errlen);
}

static PGconn *sql_connect(int port)
{
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d user=nftraft dbname=postgres "
             "connect_timeout=2",
             port);
    const char *keys[] = {
        "host", "port", "user", "dbname", "password", "connect_timeout", NULL};
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *vals[] = {"127.0.0.1", ps,  "nftraft", "postgres",
                          PASSWORD,    "2", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "  connect %d: %s\n", port, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* One-value query; result copied into out ("" on error); returns 0 ok. */
static int sql_value(int port, const char *sql, char *out, size_t len)
{
    out[0] = '\0';
    PGconn *c = sql_connect(port);
    if (c == NULL)
        return -1;
    PGresult *r = PQexec(c, sql);
    int rc = -1;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
        rc = 0;
    } else if (st == PGRES_COMMAND_OK) {
        rc = 0;
    } else {
        fprintf(stderr, "  %s: %s\n", sql, PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

static void close_cb(void *data)
{
    *(bool *)data = true;
}

static void close_pg(struct pg *p)
{
    if (p == NULL)
        return;
    bool closed = false;
    pg_close(p, close_cb, &closed);
    run_until(&closed, 30000);
}

/* Poll info until pred holds (10 s). */
static int info_until(struct pg *p, struct pg_info *in,
                      bool (*pred)(const struct pg_info *, const void *),
                      const void *arg)
{
    for (int i = 0; i < 100; i++) {
        if (get_info(p, in) == 0 && pred(in, arg))
            return 0;
        sleep_loop(100);
    }
    return -1;
}

static bool is_streaming(const struct pg_info *in, const void *arg)
{
    const uint32_t *tl = arg;
    return in->role == PG_STANDBY && in->streaming && in->timeline == *tl;
}

static bool in_quorum(const struct pg_info *in, const void *arg)
{
    return is_streaming(in, arg) && strcmp(in->sync_state, "quorum") == 0;
}

static bool replayed(const struct pg_info *in, const void *arg)
{
    return in->replay_lsn >= *(const uint64_t *)arg;
}

static bool detached(const struct pg_info *in, const void *arg)
{
    (void)arg;
    return !in->streaming;
}

static struct pg *A, *B, *C;

/* The whole life of a two-node pair, timed. */
TEST(lifecycle)
{
    if (!have_pg())
        SKIP("PostgreSQL 15 is not installed (" PG_DEFAULT_BIN_DIR
             "/postgres missing)");
    loop_init();
    setvbuf(stdout, NULL, _IONBF, 0);
    char tmp[256], err[1024], v[256];
    ASSERT(make_tmp(tmp, sizeof tmp) == 0);
    int pa = free_port(), pb = free_port(), pc = free_port();
    ASSERT(pa > 0 && pb > 0 && pc > 0 && pa != pb);
    int rc = new_pg(&A, tmp, "a", 1, pa, err, sizeof err);
    if (rc != 0)
        FAILF("pg_new: %s", err);
    ASSERT_EQ(pg_role(A), PG_NONE);

    /* initdb + start as primary */
    struct done d = {0};
    double t0 = now_s();
    ASSERT_EQ(pg_initdb(A, done_cb, &d), 0);
    ASSERT_EQ(pg_initdb(A, done_cb, &d), ERR_BUSY);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    ASSERT_EQ(pg_role(A), PG_STOPPED);
    double t_initdb = now_s() - t0;
    d = (struct done){0};
    t0 = now_s();
    ASSERT_EQ(pg_start(A, NULL, 0, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    double t_start = now_s() - t0;
    ASSERT_EQ(pg_role(A), PG_PRIMARY);
    struct pg_info in;
    ASSERT_EQ(get_info(A, &in), 0);
    ASSERT_EQ(in.role, PG_PRIMARY);
    ASSERT_EQ(in.timeline, 1);
    ASSERT(in.lsn > 0);
    ASSERT_STR_EQ(in.sync_state, "primary");
    /* postgres runs as the pg user, never as root */
    {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%d", pg_pid(A));
        ASSERT(stat(path, &st) == 0);
        ASSERT(st.st_uid != 0);
    }

    /* members: node2 is the quorum standby */
    uint64_t ids[] = {1, 2};
    const char *hosts[] = {"127.0.0.1", "127.0.0.1"};
    d = (struct done){0};
    ASSERT_EQ(pg_set_members(A, ids, hosts, 2, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 20000), 0);
    ASSERT_EQ(sql_value(pa, "SHOW synchronous_standby_names", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "ANY 1 (node2)");
    ASSERT_EQ(sql_value(pa,
                        "SELECT rolcanlogin::text FROM pg_roles WHERE "
                        "rolname = 'nftraft_2'",
                        v, sizeof v),
              0);
    ASSERT_STR_EQ(v, "true");

    /* clone B from A, start it following A */
    rc = new_pg(&B, tmp, "b", 2, pb, err, sizeof err);
    if (rc != 0)
        FAILF("pg_new B: %s", err);
    d = (struct done){0};
    t0 = now_s();
    ASSERT_EQ(pg_clone(B, "127.0.0.1", pa, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    double t_clone = now_s() - t0;
    ASSERT_EQ(pg_role(B), PG_STOPPED);
    d = (struct done){0};
    ASSERT_EQ(pg_start(B, "127.0.0.1", pa, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    ASSERT_EQ(pg_role(B), PG_STANDBY);
    uint32_t tl1 = 1, tl2 = 2;
    ASSERT_EQ(info_until(B, &in, in_quorum, &tl1), 0);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", pa);
    ASSERT_STR_EQ(in.upstream, up);

    /* a write on A reaches B (its lsn advances past A's) */
    ASSERT_EQ(sql_value(pa, "CREATE TABLE t (x int)", v, sizeof v), 0);
    ASSERT_EQ(sql_value(pa, "INSERT INTO t VALUES (1)", v, sizeof v), 0);
    ASSERT_EQ(sql_value(pa, "SELECT pg_current_wal_lsn()::text", v, sizeof v),
              0);
    unsigned hi, lo;
    ASSERT(sscanf(v, "%X/%X", &hi, &lo) == 2);
    uint64_t a_lsn = (uint64_t)hi << 32 | lo;
    uint64_t b_before = in.replay_lsn;
    ASSERT(a_lsn > b_before);
    ASSERT_EQ(info_until(B, &in, replayed, &a_lsn), 0);
    ASSERT_EQ(sql_value(pb, "SELECT count(*) FROM t", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "1");

    /* quorum commit: detached B -> a commit on A waits; re-attached -> done */
    d = (struct done){0};
    ASSERT_EQ(pg_follow(B, NULL, 0, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 5000), 0);
    ASSERT_EQ(info_until(B, &in, detached, NULL), 0);
    PGconn *w = sql_connect(pa);
    ASSERT(w != NULL);
    ASSERT(PQsendQuery(w, "INSERT INTO t VALUES (2)") == 1);
    sleep_loop(1000);
    ASSERT(PQconsumeInput(w) == 1);
    ASSERT(PQisBusy(w)); /* still waiting for a standby */
    d = (struct done){0};
    ASSERT_EQ(pg_follow(B, "127.0.0.1", pa, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 5000), 0);
    bool acked = false;
    for (int i = 0; i < 200 && !acked; i++) {
        sleep_loop(50);
        ASSERT(PQconsumeInput(w) == 1);
        acked = !PQisBusy(w);
    }
    ASSERT(acked);
    PGresult *r = PQgetResult(w);
    ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(w)) != NULL)
        PQclear(r);

    /* failover: B detaches, is promoted (timeline 2) */
    d = (struct done){0};
    ASSERT_EQ(pg_follow(B, NULL, 0, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 5000), 0);
    ASSERT_EQ(info_until(B, &in, detached, NULL), 0);
    /* the members set on the standby (files + reload) hold from the
     * promotion on: no commit of the new primary skips the quorum */
    d = (struct done){0};
    ASSERT_EQ(pg_set_members(B, ids, hosts, 2, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 5000), 0);
    ASSERT_EQ(pg_role(B), PG_STANDBY);
    d = (struct done){0};
    t0 = now_s();
    ASSERT_EQ(pg_promote(B, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 70000), 0);
    double t_promote = now_s() - t0;
    ASSERT_EQ(pg_role(B), PG_PRIMARY);
    ASSERT_EQ(get_info(B, &in), 0);
    ASSERT_EQ(in.role, PG_PRIMARY);
    ASSERT_EQ(in.timeline, 2);
    ASSERT_EQ(sql_value(pb, "SHOW synchronous_standby_names", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "ANY 1 (node1)");

    /* the old primary A diverges (a commit nobody acknowledges), then is
     * fenced: the postmaster is gone and reaped, the client sees no ack */
    ASSERT(PQsendQuery(w, "INSERT INTO t VALUES (99)") == 1);
    sleep_loop(300);
    ASSERT(PQconsumeInput(w) == 1);
    ASSERT(PQisBusy(w));
    int old_pid = pg_pid(A);
    ASSERT(old_pid > 0);
    pg_fence(A);
    for (int i = 0; i < 100 && pg_role(A) != PG_STOPPED; i++)
        sleep_loop(20);
    ASSERT_EQ(pg_role(A), PG_STOPPED);
    ASSERT_EQ(pg_pid(A), 0);
    ASSERT(kill(old_pid, 0) != 0 && errno == ESRCH); /* reaped */
    for (int i = 0; i < 100 && PQisBusy(w); i++) {
        sleep_loop(20);
        PQconsumeInput(w);
    }
    r = PQgetResult(w);
    ASSERT(PQresultStatus(r) != PGRES_COMMAND_OK); /* never acknowledged */
    PQclear(r);
    PQfinish(w);

    /* B's members: A (node1) is its quorum standby now */
    d = (struct done){0};
    ASSERT_EQ(pg_set_members(B, ids, hosts, 2, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 20000), 0);
    ASSERT_EQ(sql_value(pb, "SHOW synchronous_standby_names", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "ANY 1 (node1)");

    /* rewind A from B, start it following B on timeline 2 */
    d = (struct done){0};
    t0 = now_s();
    ASSERT_EQ(pg_rewind(A, "127.0.0.1", pb, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    double t_rewind = now_s() - t0;
    d = (struct done){0};
    t0 = now_s();
    ASSERT_EQ(pg_start(A, "127.0.0.1", pb, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    double t_restart = now_s() - t0;
    ASSERT_EQ(pg_role(A), PG_STANDBY);
    ASSERT_EQ(info_until(A, &in, is_streaming, &tl2), 0);
    /* a write on B is acknowledged (A is the sync standby) and on A; the
     * diverged row 99 is gone */
    ASSERT_EQ(sql_value(pb, "INSERT INTO t VALUES (3)", v, sizeof v), 0);
    ASSERT_EQ(sql_value(pb, "SELECT pg_current_wal_lsn()::text", v, sizeof v),
              0);
    ASSERT(sscanf(v, "%X/%X", &hi, &lo) == 2);
    uint64_t b_lsn = (uint64_t)hi << 32 | lo;
    ASSERT_EQ(info_until(A, &in, replayed, &b_lsn), 0);
    ASSERT_EQ(sql_value(pa, "SELECT string_agg(x::text, ',' ORDER BY x) FROM t",
                        v, sizeof v),
              0);
    ASSERT_STR_EQ(v, "1,2,3");

    /* A leaves the members: its role may no longer log in, its walsender
     * is gone, nothing waits for it */
    uint64_t only_b[] = {2};
    const char *only_b_host[] = {"127.0.0.1"};
    d = (struct done){0};
    ASSERT_EQ(pg_set_members(B, only_b, only_b_host, 1, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 20000), 0);
    ASSERT_EQ(sql_value(pb, "SHOW synchronous_standby_names", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "");
    ASSERT_EQ(sql_value(pb,
                        "SELECT rolcanlogin::text FROM pg_roles WHERE "
                        "rolname = 'nftraft_1'",
                        v, sizeof v),
              0);
    ASSERT_STR_EQ(v, "false");
    bool gone = false;
    for (int i = 0; i < 50 && !gone; i++) {
        ASSERT_EQ(sql_value(pb,
                            "SELECT count(*) FROM pg_stat_replication WHERE "
                            "application_name = 'node1'",
                            v, sizeof v),
                  0);
        gone = strcmp(v, "0") == 0;
        if (!gone)
            sleep_loop(100);
    }
    ASSERT(gone);
    ASSERT_EQ(sql_value(pb, "INSERT INTO t VALUES (4)", v, sizeof v), 0);
    sleep_loop(1500); /* A retries (wal_retrieve_retry_interval) and fails */
    ASSERT_EQ(sql_value(pb,
                        "SELECT count(*) FROM pg_stat_replication WHERE "
                        "application_name = 'node1'",
                        v, sizeof v),
              0);
    ASSERT_STR_EQ(v, "0");

    /* clone into an empty dir */
    rc = new_pg(&C, tmp, "c", 3, pc, err, sizeof err);
    if (rc != 0)
        FAILF("pg_new C: %s", err);
    ASSERT_EQ(pg_role(C), PG_NONE);
    d = (struct done){0};
    t0 = now_s();
    ASSERT_EQ(pg_clone(C, "127.0.0.1", pb, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    double t_clone2 = now_s() - t0;
    ASSERT_EQ(pg_role(C), PG_STOPPED);
    {
        char path[700];
        snprintf(path, sizeof path, "%s/c/pg/data/PG_VERSION", tmp);
        ASSERT(access(path, F_OK) == 0);
        snprintf(path, sizeof path, "%s/c/pg/data.new", tmp);
        ASSERT(access(path, F_OK) != 0);
    }

    /* stop A (fast), B left for pg_close */
    d = (struct done){0};
    ASSERT_EQ(pg_stop(A, false, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 20000), 0);
    ASSERT_EQ(pg_role(A), PG_STOPPED);

    /* a new struct pg on A's dir (a node restart) keeps A's members'
     * settings: sync names and the replication line of nftraft_2 */
    close_pg(A);
    A = NULL;
    rc = new_pg(&A, tmp, "a", 1, pa, err, sizeof err);
    if (rc != 0)
        FAILF("pg_new A again: %s", err);
    ASSERT_EQ(pg_role(A), PG_STOPPED);
    d = (struct done){0};
    ASSERT_EQ(pg_start(A, NULL, 0, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    ASSERT_EQ(sql_value(pa, "SHOW synchronous_standby_names", v, sizeof v), 0);
    ASSERT_STR_EQ(v, "ANY 1 (node2)");
    ASSERT_EQ(sql_value(pa,
                        "SELECT count(*) FROM pg_hba_file_rules WHERE "
                        "'nftraft_2' = ANY(user_name) AND 'replication' = "
                        "ANY(database)",
                        v, sizeof v),
              0);
    ASSERT_STR_EQ(v, "1");

    printf("  timings (s): initdb %.3f, start %.3f, clone %.3f, promote %.3f, "
           "rewind %.3f, restart-after-rewind %.3f, clone-empty %.3f\n",
           t_initdb, t_start, t_clone, t_promote, t_rewind, t_restart,
           t_clone2);
    close_pg(A);
    close_pg(B);
    close_pg(C);
    A = B = C = NULL;
    rm_tmp(tmp);
    return 0;
}

static void exit_cb(void *data, int64_t status, int sig)
{
    int *got = data;
    *got = sig ? sig : (int)status + 1000;
}

/* Bad input is refused with a clear error and changes nothing. */
TEST(bad_input)
{
    if (!have_pg())
        SKIP("PostgreSQL 15 is not installed (" PG_DEFAULT_BIN_DIR
             "/postgres missing)");
    loop_init();
    char tmp[256], err[1024], dir[600];
    ASSERT(make_tmp(tmp, sizeof tmp) == 0);
    snprintf(dir, sizeof dir, "%s/x/pg", tmp);
    struct pg_config cfg = {.exec_helper = helper,
                            .dir = dir,
                            .host = "127.0.0.1",
                            .port = 5999,
                            .user = pg_user(),
                            .password = PASSWORD,
                            .node_id = 1};
    struct pg *p = NULL;
    /* missing bin dir */
    cfg.bin_dir = "/nonexistent/pg/bin";
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    ASSERT(strstr(err, "no PostgreSQL in /nonexistent/pg/bin") != NULL);
    ASSERT(p == NULL);
    cfg.bin_dir = NULL;
    /* bad host, port, dir, password, helper, user */
    cfg.host = "bad host";
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    cfg.host = "127.0.0.1";
    cfg.port = 70000;
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    cfg.port = 5999;
    cfg.dir = "relative/pg";
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    cfg.dir = dir;
    cfg.password = "";
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    cfg.password = PASSWORD;
    cfg.exec_helper = "/nonexistent/nftraft-pgexec";
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    cfg.exec_helper = helper;
    cfg.user = "no-such-user-nftraft";
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
    ASSERT(strstr(err, "unknown user") != NULL);
    if (geteuid() == 0) {
        cfg.user = NULL;
        ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), ERR_INVALID);
        ASSERT(strstr(err, "root") != NULL);
    }
    cfg.user = pg_user();
    ASSERT(access(dir, F_OK) != 0); /* nothing was created */

    /* port in use: start fails with postgres' own reason */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    ASSERT(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
           listen(lfd, 1) == 0 &&
           getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    cfg.port = ntohs(a.sin_port);
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), 0);
    int exited = 0;
    pg_on_exit(p, exit_cb, &exited);
    struct done d = {0};
    /* wrong role for the operation */
    ASSERT_EQ(pg_start(p, NULL, 0, done_cb, &d), ERR_INVALID);
    ASSERT_EQ(pg_rewind(p, "127.0.0.1", 5432, done_cb, &d), ERR_INVALID);
    ASSERT_EQ(pg_promote(p, done_cb, &d), ERR_INVALID);
    ASSERT_EQ(pg_stop(p, false, done_cb, &d), ERR_INVALID);
    ASSERT_EQ(pg_clone(p, "bad host", 5432, done_cb, &d), ERR_INVALID);
    ASSERT_EQ(pg_clone(p, "127.0.0.1", 0, done_cb, &d), ERR_INVALID);
    ASSERT_EQ(pg_initdb(p, done_cb, &d), 0);
    ASSERT_EQ(pg_clone(p, "127.0.0.1", 5432, done_cb, &d), ERR_BUSY);
    ASSERT_EQ(wait_op(&d, 60000), 0);
    ASSERT(!d.fired || d.status == 0);
    d = (struct done){0};
    ASSERT_EQ(pg_start(p, NULL, 0, done_cb, &d), 0);
    ASSERT(wait_op(&d, 30000) == ERR_IO);
    ASSERT(strstr(d.msg, "could not bind") != NULL);
    printf("  port in use: %.160s\n", d.msg);
    ASSERT_EQ(pg_role(p), PG_STOPPED);
    ASSERT_EQ(exited, 0); /* the failed start reported it, not pg_on_exit */
    close(lfd);

    /* clone from a port where nothing listens: the tool's error */
    int dead = free_port();
    d = (struct done){0};
    ASSERT_EQ(pg_clone(p, "127.0.0.1", dead, done_cb, &d), 0);
    ASSERT(wait_op(&d, 30000) == ERR_IO);
    ASSERT(strstr(d.msg, "pg_basebackup") != NULL);
    ASSERT(strstr(d.msg, "Connection refused") != NULL);
    printf("  clone from nothing: %.160s\n", d.msg);
    ASSERT_EQ(pg_role(p), PG_STOPPED); /* the data survived */

    /* an unexpected exit is reported by pg_on_exit */
    cfg.port = free_port();
    close_pg(p);
    ASSERT_EQ(pg_new(&p, &loop, &cfg, err, sizeof err), 0);
    pg_on_exit(p, exit_cb, &exited);
    exited = 0;
    d = (struct done){0};
    ASSERT_EQ(pg_start(p, NULL, 0, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 30000), 0);
    kill(pg_pid(p), SIGKILL);
    for (int i = 0; i < 100 && exited == 0; i++)
        sleep_loop(20);
    ASSERT_EQ(exited, SIGKILL);
    ASSERT_EQ(pg_role(p), PG_STOPPED);
    /* the killed postmaster's children may linger: start waits them out */
    d = (struct done){0};
    ASSERT_EQ(pg_start(p, NULL, 0, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 30000), 0);
    ASSERT_EQ(pg_role(p), PG_PRIMARY);
    d = (struct done){0};
    ASSERT_EQ(pg_stop(p, true, done_cb, &d), 0);
    ASSERT_EQ(wait_op(&d, 30000), 0);
    ASSERT_EQ(exited, SIGKILL); /* a stop is not reported as an exit */
    /* close while an operation runs: its cb gets ERR_SHUTDOWN */
    d = (struct done){0};
    ASSERT_EQ(pg_start(p, NULL, 0, done_cb, &d), 0);
    close_pg(p);
    ASSERT(d.fired && d.status == ERR_SHUTDOWN);
    rm_tmp(tmp);
    return 0;
}

/* Run the helper with args (NULL-terminated); its exit status, its stdout
 * in out. */
static int run_helper(char *const *args, char *out, size_t len)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[16];
    size_t k = 0;
    argv[k++] = helper;
    for (size_t i = 0; args[i] != NULL && k < 15; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    extern char **environ;
    pid_t pid;
    int rc = posix_spawn(&pid, helper, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    ssize_t n = read(fds[0], out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* nftraft-pgexec: drops root to --user, refuses a wrong --parent, a
 * relative program, an unknown user. */
TEST(pgexec)
{
    if (!have_pg())
        SKIP("PostgreSQL 15 is not installed (" PG_DEFAULT_BIN_DIR
             "/postgres missing)");
    char out[256], me[24];
    snprintf(me, sizeof me, "%d", (int)getpid());
    if (geteuid() == 0) {
        char *a[] = {"--user", "postgres",    "--parent", me,
                     "--",     "/usr/bin/id", "-u",       NULL};
        ASSERT_EQ(run_helper(a, out, sizeof out), 0);
        ASSERT(atoi(out) != 0); /* not root any more */
        ASSERT(strchr("123456789", out[0]) != NULL);
    } else {
        char *a[] = {"--user", "root", "--", "/bin/true", NULL};
        ASSERT_EQ(run_helper(a, out, sizeof out), 127); /* cannot switch */
    }
    char *self[] = {"--parent", me, "--", "/bin/echo", "hi", NULL};
    ASSERT_EQ(run_helper(self, out, sizeof out), 0);
    ASSERT_STR_EQ(out, "hi\n");
    char *orphan[] = {"--parent", "1", "--", "/bin/echo", "hi", NULL};
    ASSERT_EQ(run_helper(orphan, out, sizeof out), 1); /* not its parent */
    ASSERT_STR_EQ(out, "");
    char *relative[] = {"--", "bin/true", NULL};
    ASSERT_EQ(run_helper(relative, out, sizeof out), 2);
    char *nouser[] = {"--user", "no-such-user-nftraft", "--", "/bin/true",
                      NULL};
    ASSERT_EQ(run_helper(nouser, out, sizeof out), 127);
    return 0;
}

TEST(close_loop)
{
    if (!loop_ready)
        return 0;
    close_pg(A); /* left by a failed test */
    close_pg(B);
    close_pg(C);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    return 0;
}

TEST_LIST(TEST_ENTRY(pgexec), TEST_ENTRY(lifecycle), TEST_ENTRY(bad_input),
          TEST_ENTRY(close_loop))
