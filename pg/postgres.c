/* postgres.c - the supervisor of one local PostgreSQL (see postgres.h).
 *
 * One operation at a time runs as a small state machine (op + step):
 * each step starts one asynchronous thing (a tool child, a libpq work
 * item, a timer) whose completion calls op_next(). The postmaster is a
 * child of nftraft-pgexec started in its own session (so pg_fence can kill
 * its process group) and reaped on the loop; its exit moves the role to
 * PG_STOPPED once the handle is closed. */
#include "pg/postgres.h"

#include "core/err.h"
#include "core/log.h"
#include "core/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define PG_PATH 512
#define PG_HOST 256
#define PG_DIR (PG_PATH - 64) /* room for the longest file name */
#define PG_START_TIMEOUT_MS 60000
#define PG_STOP_ESCALATE_MS 5000
#define PG_FENCED_MAX 256
#define PG_LEFTOVER_WAIT_MS 10000

enum pg_op {
    OP_NONE,
    OP_INITDB,
    OP_CLONE,
    OP_REWIND,
    OP_START,
    OP_STOP,
    OP_FOLLOW,
    OP_PROMOTE,
    OP_MEMBERS,
    OP_MEMBERS_FILES, /* standby: members.conf and pg_hba.conf, reload */
    OP_CHECKPOINT     /* standby: CHECKPOINT on its upstream */
};

static const char *op_names[] = {"none",
                                 "initdb",
                                 "clone",
                                 "rewind",
                                 "start",
                                 "stop",
                                 "follow",
                                 "promote",
                                 "members",
                                 "members (files)",
                                 "checkpoint upstream"};

struct pg_member {
    uint64_t id;
    char host[PG_HOST];
};

struct pg {
    uv_loop_t *loop;
    char bin_dir[PG_PATH], helper[PG_PATH], dir[PG_DIR];
    char host[PG_HOST], sql_host[PG_HOST];
    char user[64]; /* "" = self */
    char *password;
    int port;
    uint64_t node_id;
    bool chown_files; /* root: files go to uid/gid */
    uid_t uid;
    gid_t gid;
    char data[PG_PATH], data_new[PG_PATH], data_old[PG_PATH];
    char conf[PG_PATH], conf_file[PG_PATH], hba[PG_PATH], ident[PG_PATH];
    char standby[PG_PATH], members_conf[PG_PATH], pgpass[PG_PATH];
    char pwfile[PG_PATH], log[PG_PATH], tool_log[PG_PATH];

    enum pg_role role;
    /* The postmaster: handle open from spawn to its close callback. */
    uv_process_t pm;
    bool pm_open, pm_running, pm_expected;
    int pm_pid;
    int64_t pm_exit_status;
    int pm_term_signal;
    unsigned stop_signals; /* escalation count of the running stop */
    /* The running tool. */
    uv_process_t tool;
    bool tool_open;
    int64_t tool_status;
    int tool_signal;
    off_t tool_log_at; /* tool.log size when it started */
    off_t log_at;      /* postgres.log size when the postmaster started */
    char tool_name[32];
    uv_timer_t timer;     /* op steps: probes, waits, deferred completion */
    uv_timer_t esc_timer; /* stop escalation */
    /* The running operation. */
    enum pg_op op;
    uint64_t op_seq; /* numbers operations: stale completions are ignored */
    int step;
    pg_done_cb cb;
    void *cb_data;
    char op_host[PG_HOST];
    int op_port;
    uint64_t op_started;
    bool op_pm_lost; /* the postmaster exited during the op */
    /* What standby.conf says now. */
    char up_host[PG_HOST];
    int up_port;
    struct pg_member *members;
    unsigned n_members;
    uint32_t last_tl;  /* highest timeline pg_info saw (standby) on the
                          current PGDATA */
    uint64_t data_gen; /* bumped when PGDATA is replaced (initdb, clone,
                          rewind): last_tl then starts over */
    unsigned works;    /* libpq work items in flight */
    /* Exit reporting. */
    void (*exit_cb)(void *data, int64_t exit_status, int term_signal);
    void *exit_data;
    /* Closing. */
    bool closing, timers_closing;
    unsigned open_timers;
    void (*close_cb)(void *data);
    void *close_data;
};

/* ---- small helpers ---------------------------------------------------- */

static void sb_printf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        strbuf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    strbuf_put(b, big, (size_t)n);
    free(big);
}

const char *pg_role_name(enum pg_role role)
{
    switch (role) {
    case PG_NONE:
        return "none";
    case PG_STOPPED:
        return "stopped";
    case PG_STARTING:
        return "starting";
    case PG_PRIMARY:
        return "primary";
    case PG_STANDBY:
        return "standby";
    case PG_STOPPING:
        return "stopping";
    }
    return "unknown";
}

void pg_lsn_format(uint64_t lsn, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIX64 "/%" PRIX64, lsn >> 32, lsn & 0xffffffffu);
}

/* "X/Y" -> lsn; 0 for NULL or malformed. */
static uint64_t lsn_parse(const char *s)
{
    unsigned long long hi, lo;
    if (s == NULL || sscanf(s, "%llx/%llx", &hi, &lo) != 2)
        return 0;
    return (uint64_t)hi << 32 | (lo & 0xffffffffu);
}

/* Hosts and paths go into config files and conninfo strings unquoted:
 * letters, digits and . : - _ / only. */
static bool safe_word(const char *s, bool path)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '-' ||
              c == '_' || (path && (c == '/' || c == '+' || c == '@'))))
            return false;
    }
    return true;
}

static bool any_host(const char *h)
{
    return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "*") == 0 ||
           strcmp(h, "::") == 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void own(struct pg *p, const char *path)
{
    if (p->chown_files && chown(path, p->uid, p->gid) != 0)
        LOGW("pg", "chown %s: %s", path, strerror(errno));
}

/* Write content to path atomically (tmp + rename), mode 0600, owned by
 * the pg user. Safe in a work thread (uses only its arguments). */
static int write_file_as(const char *path, const char *content, bool chown_it,
                         uid_t uid, gid_t gid, char *err, size_t errlen)
{
    char tmp[PG_PATH + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    size_t len = strlen(content), off = 0;
    while (off < len) {
        ssize_t n = write(fd, content + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            goto fail;
        }
        off += (size_t)n;
    }
    if (chown_it && fchown(fd, uid, gid) != 0) {
        close(fd);
        goto fail;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "write %s: %s", path, strerror(errno));
    unlink(tmp);
    return ERR_IO;
}

static int write_file(struct pg *p, const char *path, const char *content,
                      char *err, size_t errlen)
{
    return write_file_as(path, content, p->chown_files, p->uid, p->gid, err,
                         errlen);
}

/* The last lines of path from offset `from` (at most ~700 bytes), one line,
 * into out. */
static void file_tail(const char *path, off_t from, char *out, size_t len)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= from) {
        close(fd);
        return;
    }
    off_t at = st.st_size - 700 > from ? st.st_size - 700 : from;
    char buf[701];
    ssize_t n = pread(fd, buf, 700, at);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *s = buf;
    if (at > from) { /* start at a line */
        char *nl = strchr(s, '\n');
        if (nl != NULL)
            s = nl + 1;
    }
    /* the first error line says why, the rest is context */
    static const char *marks[] = {
        "FATAL:", "PANIC:", "ERROR:", "error:", "could not"};
    char *first = NULL;
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        char *m = strstr(s, marks[i]);
        if (m != NULL && (first == NULL || m < first))
            first = m;
    }
    if (first != NULL)
        s = first;
    size_t o = 0;
    for (; *s && o + 1 < len; s++)
        out[o++] = (*s == '\n' || *s == '\t') ? ' ' : *s;
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* ---- finishing operations and closing ---------------------------------- */

static void maybe_free(struct pg *p);

static void op_done(struct pg *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void op_done(struct pg *p, int status, const char *fmt, ...)
{
    char msg[1024] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    enum pg_op op = p->op;
    pg_done_cb cb = p->cb;
    void *data = p->cb_data;
    p->op = OP_NONE;
    p->cb = NULL;
    uv_timer_stop(&p->timer);
    if (status != 0)
        LOGW("pg", "%s failed: %s (%s)", op_names[op], msg, err_str(status));
    else
        LOGI("pg", "%s done role=%s", op_names[op], pg_role_name(p->role));
    if (cb != NULL)
        cb(data, status, status == 0 ? "" : msg);
}

static void timer_closed(uv_handle_t *h)
{
    struct pg *p = h->data;
    if (--p->open_timers == 0) {
        void (*cb)(void *) = p->close_cb;
        void *data = p->close_data;
        free(p->members);
        free(p->password);
        free(p);
        if (cb != NULL)
            cb(data);
    }
}

static void maybe_free(struct pg *p)
{
    if (!p->closing || p->timers_closing || p->pm_open || p->tool_open ||
        p->works > 0)
        return;
    p->timers_closing = true;
    uv_close((uv_handle_t *)&p->timer, timer_closed);
    uv_close((uv_handle_t *)&p->esc_timer, timer_closed);
}

/* ---- child processes ------------------------------------------------- */

/* argv for nftraft-pgexec running prog_args (NULL-terminated) into out
 * (room for n); returns the count or -1. */
static int helper_argv(struct pg *p, char **out, size_t n, char *parent,
                       size_t parentlen, char *const *prog_args)
{
    size_t k = 0;
    snprintf(parent, parentlen, "%d", (int)getpid());
    out[k++] = p->helper;
    if (p->user[0] != '\0') {
        out[k++] = "--user";
        out[k++] = p->user;
    }
    out[k++] = "--parent";
    out[k++] = parent;
    out[k++] = "--";
    for (size_t i = 0; prog_args[i] != NULL; i++) {
        if (k + 2 > n)
            return -1;
        out[k++] = prog_args[i];
    }
    out[k] = NULL;
    return (int)k;
}

/* Spawn prog_args through the helper in a new session, stdout+stderr
 * appended to log_path. *inited says whether uv_spawn initialized h (then
 * it must be closed, even when this failed). */
static int spawn(struct pg *p, uv_process_t *h, const char *log_path,
                 char *const *prog_args, uv_exit_cb exit_cb, char *err,
                 size_t errlen, bool *inited)
{
    char *argv[48], parent[24];
    *inited = false;
    if (helper_argv(p, argv, 48, parent, sizeof parent, prog_args) < 0) {
        snprintf(err, errlen, "too many arguments");
        return ERR_INTERNAL;
    }
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", log_path, strerror(errno));
        return ERR_IO;
    }
    own(p, log_path);
    char passfile[PG_PATH + 16];
    snprintf(passfile, sizeof passfile, "PGPASSFILE=%s", p->pgpass);
    char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", passfile,
                   NULL};
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fd;
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.exit_cb = exit_cb;
    o.file = p->helper;
    o.args = argv;
    o.env = env;
    o.cwd = p->dir;
    o.flags = UV_PROCESS_DETACHED;
    o.stdio_count = 3;
    o.stdio = stdio;
    h->data = p;
    int rc = uv_spawn(p->loop, h, &o);
    *inited = true; /* even when it failed: the handle must be closed */
    close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "spawn %s: %s", p->helper, uv_strerror(rc));
        return ERR_IO;
    }
    return 0;
}

static void op_next(struct pg *p);

static void tool_closed(uv_handle_t *h)
{
    struct pg *p = h->data;
    p->tool_open = false;
    if (p->closing) {
        maybe_free(p);
        return;
    }
    op_next(p);
}

/* The close of a handle whose spawn failed: nothing follows from it. */
static void handle_closed_quietly(uv_handle_t *h)
{
    struct pg *p = h->data;
    if (h == (uv_handle_t *)&p->tool)
        p->tool_open = false;
    else
        p->pm_open = false;
    maybe_free(p);
}

static void tool_exited(uv_process_t *h, int64_t status, int sig)
{
    struct pg *p = h->data;
    p->tool_status = status;
    p->tool_signal = sig;
    uv_close((uv_handle_t *)h, tool_closed);
}

/* Run bin_dir/name (or an absolute name) with args; op_next() follows
 * when it has been reaped (tool_status/tool_signal say how it ended). */
static int run_tool(struct pg *p, const char *name, char *const *args,
                    char *err, size_t errlen)
{
    char prog[PG_PATH + 64];
    if (name[0] == '/')
        snprintf(prog, sizeof prog, "%s", name);
    else
        snprintf(prog, sizeof prog, "%s/%s", p->bin_dir, name);
    char *argv[40];
    size_t k = 0;
    argv[k++] = prog;
    for (size_t i = 0; args[i] != NULL && k < 39; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    snprintf(p->tool_name, sizeof p->tool_name, "%s", name);
    p->tool_log_at = file_size(p->tool_log);
    {
        int fd =
            open(p->tool_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd >= 0) {
            char line[PG_PATH + 64];
            int n = snprintf(line, sizeof line, "== %s\n", prog);
            if (n > 0 && write(fd, line, (size_t)n) < 0)
                LOGD("pg", "tool.log: %s", strerror(errno));
            close(fd);
            p->tool_log_at = file_size(p->tool_log);
        }
    }
    if (p->tool_open) { /* a failed spawn's handle is still closing */
        snprintf(err, errlen, "the previous tool's handle is still closing");
        return ERR_BUSY;
    }
    p->tool_status = -1;
    p->tool_signal = 0;
    bool inited;
    int rc = spawn(p, &p->tool, p->tool_log, argv, tool_exited, err, errlen,
                   &inited);
    p->tool_open = inited;
    if (rc != 0) {
        if (inited)
            uv_close((uv_handle_t *)&p->tool, handle_closed_quietly);
        return rc;
    }
    LOGD("pg", "run %s pid=%d", name, p->tool.pid);
    return 0;
}

/* After a tool was reaped: 0, or fail the op with its output's tail. */
static int tool_result(struct pg *p)
{
    if (p->tool_status == 0 && p->tool_signal == 0)
        return 0;
    char tail[720];
    file_tail(p->tool_log, p->tool_log_at, tail, sizeof tail);
    if (p->tool_signal != 0)
        op_done(p, ERR_IO, "%s killed by signal %d: %s", p->tool_name,
                p->tool_signal, tail);
    else
        op_done(p, ERR_IO, "%s exited with status %" PRId64 ": %s",
                p->tool_name, p->tool_status, tail);
    return -1;
}

static void pm_closed(uv_handle_t *h)
{
    struct pg *p = h->data;
    p->pm_open = false;
    p->pm_pid = 0;
    p->role = PG_STOPPED;
    if (p->closing) {
        maybe_free(p);
        return;
    }
    bool expected = p->pm_expected;
    uv_timer_stop(&p->esc_timer);
    if (p->op == OP_STOP) {
        op_done(p, 0, NULL);
    } else if (p->op == OP_START) {
        expected = true; /* the failed start reports it */
        char tail[720];
        file_tail(p->log, p->log_at, tail, sizeof tail);
        op_done(p, ERR_IO,
                "postgres exited (status %" PRId64 ", signal %d) while "
                "starting: %s",
                p->pm_exit_status, p->pm_term_signal, tail);
    } else if (p->op != OP_NONE) {
        p->op_pm_lost = true; /* the op's work item reports it */
    }
    if (!expected) {
        LOGW("pg", "postgres exited unexpectedly status=%" PRId64 " signal=%d",
             p->pm_exit_status, p->pm_term_signal);
        if (p->exit_cb != NULL)
            p->exit_cb(p->exit_data, p->pm_exit_status, p->pm_term_signal);
    }
}

static void pm_exited(uv_process_t *h, int64_t status, int sig)
{
    struct pg *p = h->data;
    p->pm_running = false;
    p->pm_exit_status = status;
    p->pm_term_signal = sig;
    LOGI("pg", "postgres pid=%d exited status=%" PRId64 " signal=%d", h->pid,
         status, sig);
    uv_close((uv_handle_t *)h, pm_closed);
}

static void esc_fire(uv_timer_t *t)
{
    struct pg *p = t->data;
    if (!p->pm_running)
        return;
    p->stop_signals++;
    int sig = p->stop_signals == 1 ? SIGQUIT : SIGKILL;
    LOGW("pg", "postgres pid=%d still running: sending %s", p->pm_pid,
         sig == SIGQUIT ? "SIGQUIT" : "SIGKILL");
    if (sig == SIGKILL)
        kill(-p->pm_pid, SIGKILL);
    kill(p->pm_pid, sig);
    if (p->stop_signals == 1)
        uv_timer_start(&p->esc_timer, esc_fire, PG_STOP_ESCALATE_MS, 0);
}

static void stop_pm(struct pg *p, bool immediate)
{
    p->pm_expected = true;
    p->role = PG_STOPPING;
    p->stop_signals = immediate ? 1 : 0;
    kill(p->pm_pid, immediate ? SIGQUIT : SIGINT);
    uv_timer_start(&p->esc_timer, esc_fire, PG_STOP_ESCALATE_MS, 0);
}

/* Children of pid, from /proc (before it dies: they are re-parented). */
static unsigned children_of(int pid, int *out, unsigned max)
{
    unsigned n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid;
        char state;
        if (rp != NULL && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 &&
            ppid == pid)
            out[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

/* Processes left on our PGDATA while no postmaster of ours runs: the
 * children of a killed postmaster (they exit on their own, not at once),
 * or a postmaster of an earlier node process. postgres processes chdir to
 * PGDATA, so they are found by their cwd; zombies do not count (they hold
 * no shared memory). kill_them: SIGKILL each. Returns how many. */
static unsigned leftovers(struct pg *p, bool kill_them)
{
    char want[PATH_MAX];
    if (realpath(p->data, want) == NULL)
        return 0;
    unsigned n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    int self = (int)getpid();
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        int pid = atoi(e->d_name);
        if (pid == self)
            continue;
        char path[300], cwd[PATH_MAX], buf[256];
        snprintf(path, sizeof path, "/proc/%s/cwd", e->d_name);
        ssize_t k = readlink(path, cwd, sizeof cwd - 1);
        if (k <= 0)
            continue;
        cwd[k] = '\0';
        if (strcmp(cwd, want) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = '\0';
        char *rp = strrchr(buf, ')');
        char state = 0;
        if (rp == NULL || sscanf(rp + 1, " %c", &state) != 1 || state == 'Z' ||
            state == 'X')
            continue;
        n++;
        if (kill_them)
            kill(pid, SIGKILL);
    }
    closedir(d);
    return n;
}

void pg_fence(struct pg *p)
{
    if (!p->pm_running)
        return;
    int kids[PG_FENCED_MAX];
    unsigned n = children_of(p->pm_pid, kids, PG_FENCED_MAX);
    p->pm_expected = true;
    kill(-p->pm_pid, SIGKILL);
    kill(p->pm_pid, SIGKILL);
    for (unsigned i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    LOGW("pg", "fenced: SIGKILL postgres pid=%d and %u children", p->pm_pid, n);
}

/* ---- libpq work items ------------------------------------------------- */

#define PG_HIST_MAX 64

/* One line of a timeline history file: timeline tli ended at lsn end. */
struct tl_end {
    uint32_t tli;
    uint64_t end;
};

/* Parse a timeline history file ("parent<TAB>switchpoint<TAB>reason"
 * lines, '#' comments) into out[]; returns the entries kept. */
static unsigned history_parse(const char *text, struct tl_end *out,
                              unsigned max)
{
    unsigned n = 0;
    for (const char *line = text; line != NULL && *line && n < max;) {
        unsigned tli, hi, lo;
        if (*line != '#' && sscanf(line, "%u %X/%X", &tli, &hi, &lo) == 3) {
            out[n].tli = tli;
            out[n].end = (uint64_t)hi << 32 | lo;
            n++;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return n;
}

/* A standby on timeline tl that replayed up to replay: can it follow an
 * upstream on timeline up_tl whose history is hist[n]? Not when tl is newer,
 * is not among its ancestors, or ended before replay (its WAL went on where
 * the upstream's did not). */
static bool history_diverged(uint32_t tl, uint64_t replay, uint32_t up_tl,
                             const struct tl_end *hist, unsigned n)
{
    if (tl == up_tl)
        return false;
    if (tl > up_tl)
        return true;
    for (unsigned i = 0; i < n; i++)
        if (hist[i].tli == tl)
            return replay > hist[i].end;
    return true;
}

enum work_kind { W_PROBE, W_CHECKPOINT, W_PROMOTE, W_MEMBERS, W_INFO };

struct work {
    uv_work_t req;
    struct pg *p;
    enum work_kind kind;
    uint64_t op_seq; /* the operation it belongs to */
    char host[PG_HOST];
    int port;
    const char *password; /* p->password: immutable */
    uint64_t node_id;
    bool skip;             /* W_INFO: not running, nothing to ask */
    uint64_t data_gen;     /* W_INFO: p->data_gen when queued */
    char up_host[PG_HOST]; /* W_INFO: the upstream standby.conf names */
    int up_port;           /* ... 0 none */
    uint32_t up_tl;        /* W_INFO results: the upstream's timeline (0: not a
                              primary, or not read), */
    bool up_hist_ok;       /* ... its history was read: */
    unsigned n_hist;
    struct tl_end hist[PG_HIST_MAX]; /* ... its ancestors and where each
                                        ended */
    /* W_MEMBERS inputs */
    uint64_t *ids;
    unsigned n_ids;
    char *hba, *hba_path, *members_conf, *members_path, *sync_names;
    bool chown_it;
    uid_t uid;
    gid_t gid;
    /* results */
    int status;
    char err[768];
    bool in_recovery;
    struct pg_info info;
    void (*info_cb)(void *data, int status, const struct pg_info *info);
    void *info_data;
};

static PGconn *w_connect(const char *host, int port, const char *password,
                         int stmt_timeout_ms, char *err, size_t errlen)
{
    char port_s[16], opts[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(opts, sizeof opts, "-c statement_timeout=%d", stmt_timeout_ms);
    const char *keys[] = {"host",     "port",
                          "user",     "dbname",
                          "password", "connect_timeout",
                          "options",  "application_name",
                          NULL};
    const char *vals[] = {host, port_s, "nftraft",      "postgres", password,
                          "2",  opts,   "nftraft-node", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (c == NULL) {
        snprintf(err, errlen, "libpq: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "connect %s:%d: %s", host, port,
                 PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Run sql; 0 or ERR_IO with the message in err. res (optional) gets the
 * result (caller PQclear()s). */
static int w_exec(PGconn *c, const char *sql, PGresult **res, char *err,
                  size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return ERR_IO;
    }
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

static void trim_err(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *q = s; *q; q++)
        if (*q == '\n')
            *q = ' ';
}

static void w_info(struct work *w)
{
    struct pg_info *in = &w->info;
    PGconn *c =
        w_connect(w->host, w->port, w->password, 2000, w->err, sizeof w->err);
    if (c == NULL) {
        w->status = ERR_IO;
        return;
    }
    PGresult *r = NULL;
    if (w_exec(c, "SELECT pg_is_in_recovery()", &r, w->err, sizeof w->err))
        goto fail;
    bool rec = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    w->in_recovery = rec;
    if (!rec) {
        if (w_exec(c,
                   "SELECT pg_current_wal_lsn()::text, "
                   "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
                   &r, w->err, sizeof w->err))
            goto fail;
        in->lsn = lsn_parse(PQgetvalue(r, 0, 0));
        in->timeline = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 16);
        in->replay_lag_ms = 0;
        snprintf(in->sync_state, sizeof in->sync_state, "primary");
        PQclear(r);
        PQfinish(c);
        return;
    }
    if (w_exec(c,
               "SELECT pg_last_wal_receive_lsn()::text, "
               "pg_last_wal_replay_lsn()::text, "
               "COALESCE((extract(epoch FROM now() - "
               "pg_last_xact_replay_timestamp()) * 1000)::bigint, -1), "
               "(SELECT timeline_id FROM pg_control_checkpoint()), "
               "(SELECT min_recovery_end_timeline FROM pg_control_recovery()), "
               "(SELECT status FROM pg_stat_wal_receiver), "
               "(SELECT received_tli FROM pg_stat_wal_receiver), "
               "(SELECT sender_host FROM pg_stat_wal_receiver), "
               "(SELECT sender_port FROM pg_stat_wal_receiver)",
               &r, w->err, sizeof w->err))
        goto fail;
    in->receive_lsn =
        lsn_parse(PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0));
    in->replay_lsn =
        lsn_parse(PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1));
    in->lsn =
        in->receive_lsn > in->replay_lsn ? in->receive_lsn : in->replay_lsn;
    in->replay_lag_ms = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    uint32_t tl = (uint32_t)strtoul(PQgetvalue(r, 0, 3), NULL, 10);
    uint32_t t2 = (uint32_t)strtoul(PQgetvalue(r, 0, 4), NULL, 10);
    uint32_t t3 = (uint32_t)strtoul(PQgetvalue(r, 0, 6), NULL, 10);
    tl = t2 > tl ? t2 : tl;
    tl = t3 > tl ? t3 : tl;
    in->timeline = tl;
    in->streaming = strcmp(PQgetvalue(r, 0, 5), "streaming") == 0;
    char up_host[PG_HOST] = "";
    int up_port = 0;
    if (!PQgetisnull(r, 0, 7) && !PQgetisnull(r, 0, 8)) {
        snprintf(up_host, sizeof up_host, "%s", PQgetvalue(r, 0, 7));
        up_port = atoi(PQgetvalue(r, 0, 8));
        snprintf(in->upstream, sizeof in->upstream, "%s:%d", up_host, up_port);
    }
    PQclear(r);
    PQfinish(c);
    /* Ask the upstream standby.conf names (else the one it streams from):
     * how it sees us, and its timeline history (is our WAL on it?). */
    if (w->up_port > 0) {
        snprintf(up_host, sizeof up_host, "%s", w->up_host);
        up_port = w->up_port;
    }
    if (up_port <= 0)
        return;
    char e2[256];
    PGconn *u = w_connect(up_host, up_port, w->password, 2000, e2, sizeof e2);
    if (u == NULL)
        return;
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT sync_state FROM pg_stat_replication WHERE "
             "application_name = 'node%" PRIu64 "' LIMIT 1), "
             "CASE WHEN pg_is_in_recovery() THEN NULL ELSE "
             "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END",
             w->node_id);
    if (w_exec(u, sql, &r, e2, sizeof e2) == 0) {
        if (in->streaming && !PQgetisnull(r, 0, 0))
            snprintf(in->sync_state, sizeof in->sync_state, "%s",
                     PQgetvalue(r, 0, 0));
        if (!PQgetisnull(r, 0, 1))
            w->up_tl = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 16);
        /* streaming only on the primary's own timeline: a walreceiver
         * that keeps reconnecting on an older one ("End of WAL reached
         * on timeline 1") receives nothing it can use */
        if (w->up_tl != 0 && w->up_tl != t3)
            in->streaming = false;
        PQclear(r);
    }
    if (w->up_tl > 1) {
        snprintf(sql, sizeof sql, "SELECT pg_read_file('pg_wal/%08X.history')",
                 w->up_tl);
        if (w_exec(u, sql, &r, e2, sizeof e2) == 0) {
            w->up_hist_ok = true;
            w->n_hist =
                history_parse(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0),
                              w->hist, PG_HIST_MAX);
            PQclear(r);
        }
    } else if (w->up_tl == 1) {
        w->up_hist_ok = true; /* timeline 1 has no history */
    }
    PQfinish(u);
    return;
fail:
    w->status = ERR_IO;
    PQfinish(c);
}

/* Each member's role nftraft_<id> REPLICATION LOGIN with the cluster
 * password (self too: it follows a later primary with it); every other
 * nftraft_<id> role NOLOGIN. */
static int w_roles(struct work *w, PGconn *c)
{
    PGresult *r;
    int rc = w_exec(c,
                    "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname ~ "
                    "'^nftraft_[0-9]+$'",
                    &r, w->err, sizeof w->err);
    if (rc != 0)
        return rc;
    char *lit = PQescapeLiteral(c, w->password, strlen(w->password));
    if (lit == NULL) {
        snprintf(w->err, sizeof w->err, "escape: %s", PQerrorMessage(c));
        PQclear(r);
        return ERR_NOMEM;
    }
    int rows = PQntuples(r);
    for (unsigned i = 0; rc == 0 && i < w->n_ids; i++) {
        char name[40];
        snprintf(name, sizeof name, "nftraft_%" PRIu64, w->ids[i]);
        bool found = false;
        for (int j = 0; j < rows && !found; j++)
            found = strcmp(PQgetvalue(r, j, 0), name) == 0;
        struct strbuf q = {0};
        sb_printf(&q, "%s ROLE %s WITH REPLICATION LOGIN PASSWORD %s",
                  found ? "ALTER" : "CREATE", name, lit);
        rc = q.oom ? ERR_NOMEM : w_exec(c, q.p, NULL, w->err, sizeof w->err);
        if (rc != 0) /* the statement holds the password: do not show it */
            snprintf(w->err, sizeof w->err, "%s role %s: %s",
                     found ? "alter" : "create", name, PQerrorMessage(c));
        free(q.p);
    }
    for (int j = 0; rc == 0 && j < rows; j++) {
        const char *name = PQgetvalue(r, j, 0); /* ^nftraft_[0-9]+$ */
        bool member = false;
        for (unsigned i = 0; i < w->n_ids && !member; i++) {
            char want[40];
            snprintf(want, sizeof want, "nftraft_%" PRIu64, w->ids[i]);
            member = strcmp(name, want) == 0;
        }
        if (member || strcmp(PQgetvalue(r, j, 1), "t") != 0)
            continue;
        char q[96];
        snprintf(q, sizeof q, "ALTER ROLE %s NOLOGIN", name);
        rc = w_exec(c, q, NULL, w->err, sizeof w->err);
    }
    PQfreemem(lit);
    PQclear(r);
    return rc;
}

static void w_members(struct work *w)
{
    PGconn *c =
        w_connect(w->host, w->port, w->password, 10000, w->err, sizeof w->err);
    if (c == NULL) {
        w->status = ERR_IO;
        return;
    }
    /* Role DDL is local bookkeeping: never wait for a standby's ack. */
    int rc = w_exec(c, "SET synchronous_commit = local", NULL, w->err,
                    sizeof w->err);
    if (rc == 0)
        rc = w_roles(w, c);
    if (rc == 0)
        rc = write_file_as(w->members_path, w->members_conf, w->chown_it,
                           w->uid, w->gid, w->err, sizeof w->err);
    if (rc == 0)
        rc = write_file_as(w->hba_path, w->hba, w->chown_it, w->uid, w->gid,
                           w->err, sizeof w->err);
    if (rc == 0)
        rc = w_exec(c, "SELECT pg_reload_conf()", NULL, w->err, sizeof w->err);
    /* The reload reaches this backend between statements: wait for it. */
    bool seen = false;
    for (int i = 0; rc == 0 && i < 250 && !seen; i++) {
        PGresult *r;
        rc = w_exec(c, "SHOW synchronous_standby_names", &r, w->err,
                    sizeof w->err);
        if (rc == 0) {
            seen = strcmp(PQgetvalue(r, 0, 0), w->sync_names) == 0;
            PQclear(r);
        }
        if (!seen)
            usleep(20000);
    }
    if (rc == 0 && !seen) {
        snprintf(w->err, sizeof w->err,
                 "synchronous_standby_names did not become '%s' after reload",
                 w->sync_names);
        rc = ERR_TIMEOUT;
    }
    if (rc == 0) {
        struct strbuf keep = {0};
        strbuf_puts(&keep, "{");
        for (unsigned i = 0; i < w->n_ids; i++)
            sb_printf(&keep, "%snftraft_%" PRIu64, i ? "," : "", w->ids[i]);
        strbuf_puts(&keep, "}");
        const char *params[1] = {keep.oom ? "{}" : keep.p};
        PGresult *r = PQexecParams(
            c,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_replication "
            "WHERE usename ~ '^nftraft_[0-9]+$' AND usename <> ALL($1::text[])",
            1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(w->err, sizeof w->err, "terminate walsenders: %s",
                     PQerrorMessage(c));
            rc = ERR_IO;
        }
        PQclear(r);
        free(keep.p);
    }
    w->status = rc;
    PQfinish(c);
}

static void work_run(uv_work_t *req)
{
    struct work *w = req->data;
    PGconn *c = NULL;
    PGresult *r = NULL;
    w->status = 0;
    w->err[0] = '\0';
    switch (w->kind) {
    case W_INFO:
        if (!w->skip)
            w_info(w);
        break;
    case W_MEMBERS:
        w_members(w);
        break;
    case W_PROBE:
        c = w_connect(w->host, w->port, w->password, 2000, w->err,
                      sizeof w->err);
        if (c == NULL ||
            w_exec(c, "SELECT pg_is_in_recovery()", &r, w->err, sizeof w->err))
            w->status = ERR_IO;
        else
            w->in_recovery = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        break;
    case W_CHECKPOINT:
        c = w_connect(w->host, w->port, w->password, 60000, w->err,
                      sizeof w->err);
        if (c == NULL || w_exec(c, "CHECKPOINT", NULL, w->err, sizeof w->err))
            w->status = ERR_IO;
        break;
    case W_PROMOTE:
        c = w_connect(w->host, w->port, w->password, 70000, w->err,
                      sizeof w->err);
        if (c == NULL || w_exec(c, "SELECT pg_promote(true, 60)", &r, w->err,
                                sizeof w->err)) {
            w->status = ERR_IO;
            break;
        }
        if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
            snprintf(w->err, sizeof w->err,
                     "pg_promote did not finish in 60 s");
            w->status = ERR_TIMEOUT;
            break;
        }
        PQclear(r);
        r = NULL;
        if (w_exec(c, "SELECT pg_is_in_recovery()", &r, w->err, sizeof w->err))
            w->status = ERR_IO;
        else if (strcmp(PQgetvalue(r, 0, 0), "f") != 0) {
            snprintf(w->err, sizeof w->err, "still in recovery after promote");
            w->status = ERR_IO;
        }
        break;
    }
    if (r != NULL)
        PQclear(r);
    if (c != NULL)
        PQfinish(c);
    trim_err(w->err);
}

static void work_free(struct work *w)
{
    free(w->ids);
    free(w->hba);
    free(w->members_conf);
    free(w->sync_names);
    free(w);
}

static void work_after(uv_work_t *req, int status);

static struct work *work_new(struct pg *p, enum work_kind kind)
{
    struct work *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->p = p;
    w->kind = kind;
    w->op_seq = p->op_seq;
    w->data_gen = p->data_gen;
    w->req.data = w;
    snprintf(w->host, sizeof w->host, "%s", p->sql_host);
    w->port = p->port;
    w->password = p->password;
    w->node_id = p->node_id;
    w->hba_path = p->hba;
    w->members_path = p->members_conf;
    w->chown_it = p->chown_files;
    w->uid = p->uid;
    w->gid = p->gid;
    return w;
}

static int work_queue(struct pg *p, struct work *w)
{
    int rc = uv_queue_work(p->loop, &w->req, work_run, work_after);
    if (rc != 0) {
        work_free(w);
        return ERR_IO;
    }
    p->works++;
    return 0;
}

/* ---- operations ------------------------------------------------------- */

static void timer_next(uv_timer_t *t)
{
    op_next(t->data);
}

static void defer_next(struct pg *p, uint64_t ms)
{
    uv_timer_start(&p->timer, timer_next, ms, 0);
}

static struct work *op_work_done; /* set only during work_after's op_next */

static void work_after(uv_work_t *req, int status)
{
    struct work *w = req->data;
    struct pg *p = w->p;
    p->works--;
    if (status == UV_ECANCELED && w->status == 0) {
        w->status = ERR_SHUTDOWN;
        snprintf(w->err, sizeof w->err, "cancelled");
    }
    if (p->closing) {
        if (w->kind == W_INFO) {
            struct pg_info blank;
            memset(&blank, 0, sizeof blank);
            blank.role = p->role;
            blank.replay_lag_ms = -1;
            w->info_cb(w->info_data, ERR_SHUTDOWN, &blank);
        }
        work_free(w);
        maybe_free(p);
        return;
    }
    if (w->kind == W_INFO) {
        w->info.role = p->role;
        if (w->status == 0 && !w->skip && w->in_recovery) {
            if (w->data_gen != p->data_gen) {
                /* asked of the PGDATA a clone or rewind replaced since */
            } else if (w->info.timeline > p->last_tl) {
                p->last_tl = w->info.timeline;
            } else {
                w->info.timeline = p->last_tl;
            }
            w->info.upstream_timeline = w->up_tl;
            if (w->up_hist_ok && w->info.timeline != 0)
                w->info.diverged =
                    history_diverged(w->info.timeline, w->info.replay_lsn,
                                     w->up_tl, w->hist, w->n_hist);
        }
        if (w->status != 0) {
            struct pg_info blank;
            memset(&blank, 0, sizeof blank);
            blank.role = p->role;
            blank.replay_lag_ms = -1;
            w->info_cb(w->info_data, w->status, &blank);
        } else {
            w->info_cb(w->info_data, 0, &w->info);
        }
        work_free(w);
        return;
    }
    if (w->op_seq == p->op_seq && p->op != OP_NONE) {
        op_work_done = w;
        op_next(p);
        op_work_done = NULL;
    }
    work_free(w);
}

static int start_work(struct pg *p, enum work_kind kind, const char *host,
                      int port)
{
    struct work *w = work_new(p, kind);
    if (w == NULL)
        return ERR_NOMEM;
    if (host != NULL) {
        snprintf(w->host, sizeof w->host, "%s", host);
        w->port = port;
    }
    return work_queue(p, w);
}

static int mkdir_owned(struct pg *p, const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    own(p, path);
    return 0;
}

static char *build_conf(struct pg *p)
{
    struct strbuf b = {0};
    sb_printf(&b,
              "# written by nftraftd (pg/postgres.c): do not edit, it is "
              "rewritten at every start\n"
              "data_directory = '%s'\n"
              "hba_file = '%s'\n"
              "ident_file = '%s'\n"
              "listen_addresses = '%s'\n"
              "port = %d\n"
              "unix_socket_directories = ''\n"
              "wal_level = replica\n"
              "max_wal_senders = 10\n"
              "max_replication_slots = 10\n"
              "wal_log_hints = on\n"
              "hot_standby = on\n"
              "wal_keep_size = '256MB'\n"
              "synchronous_commit = on\n"
              "fsync = on\n"
              "password_encryption = 'scram-sha-256'\n"
              "recovery_target_timeline = 'latest'\n"
              "wal_retrieve_retry_interval = '500ms'\n"
              "wal_receiver_status_interval = '1s'\n"
              "log_destination = 'stderr'\n"
              "logging_collector = off\n"
              "log_line_prefix = '%%m [%%p] '\n"
              "include_if_exists = '%s'\n"
              "include_if_exists = '%s'\n",
              p->data, p->hba, p->ident,
              strcmp(p->host, "::") == 0 ? "*" : p->host, p->port,
              p->members_conf, p->standby);
    return b.oom ? (free(b.p), NULL) : b.p;
}

static const char *cidr_suffix(const char *host)
{
    if (strchr(host, ':') != NULL)
        return "/128";
    for (const char *s = host; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.'))
            return ""; /* a host name: pg_hba matches it by name */
    return "/32";
}

static char *build_hba(struct pg *p)
{
    struct strbuf b = {0};
    sb_printf(&b, "# written by nftraftd (pg/postgres.c): do not edit\n"
                  "# TYPE DATABASE USER ADDRESS METHOD\n"
                  "host all nftraft all scram-sha-256\n"
                  "host replication nftraft all scram-sha-256\n");
    for (unsigned i = 0; i < p->n_members; i++)
        if (p->members[i].id != p->node_id)
            sb_printf(&b,
                      "host replication nftraft_%" PRIu64 " %s%s "
                      "scram-sha-256\n",
                      p->members[i].id, p->members[i].host,
                      cidr_suffix(p->members[i].host));
    return b.oom ? (free(b.p), NULL) : b.p;
}

static char *sync_names(struct pg *p)
{
    struct strbuf b = {0};
    unsigned k = 0;
    for (unsigned i = 0; i < p->n_members; i++) {
        if (p->members[i].id == p->node_id)
            continue;
        sb_printf(&b, "%snode%" PRIu64, k == 0 ? "ANY 1 (" : ",",
                  p->members[i].id);
        k++;
    }
    if (k > 0)
        strbuf_puts(&b, ")");
    else
        strbuf_puts(&b, "");
    return b.oom ? (free(b.p), NULL) : b.p;
}

static char *build_members_conf(const char *names)
{
    struct strbuf b = {0};
    sb_printf(&b,
              "# written by nftraftd (pg/postgres.c): the members\n"
              "synchronous_standby_names = '%s'\n",
              names);
    return b.oom ? (free(b.p), NULL) : b.p;
}

static char *build_standby(struct pg *p)
{
    struct strbuf b = {0};
    strbuf_puts(&b, "# written by nftraftd (pg/postgres.c): the upstream\n");
    if (p->up_host[0] != '\0')
        sb_printf(&b,
                  "primary_conninfo = 'host=%s port=%d user=nftraft_%" PRIu64
                  " application_name=node%" PRIu64
                  " passfile=%s connect_timeout=2'\n",
                  p->up_host, p->up_port, p->node_id, p->node_id, p->pgpass);
    else
        strbuf_puts(&b, "primary_conninfo = ''\n");
    strbuf_puts(&b, "primary_slot_name = ''\n");
    return b.oom ? (free(b.p), NULL) : b.p;
}

static char *build_pgpass(struct pg *p)
{
    struct strbuf b = {0};
    strbuf_puts(&b, "*:*:*:*:");
    for (const char *s = p->password; *s; s++) {
        if (*s == ':' || *s == '\\')
            strbuf_put(&b, "\\", 1);
        strbuf_put(&b, s, 1);
    }
    strbuf_puts(&b, "\n");
    return b.oom ? (free(b.p), NULL) : b.p;
}

/* Write every config file (pg_hba.conf and members.conf only when members
 * were set or they are missing). */
static int write_configs(struct pg *p, char *err, size_t errlen)
{
    char *conf = build_conf(p), *hba = build_hba(p), *sb = build_standby(p),
         *pass = build_pgpass(p), *names = sync_names(p);
    char *members = names != NULL ? build_members_conf(names) : NULL;
    int rc = ERR_NOMEM;
    snprintf(err, errlen, "out of memory");
    if (conf && hba && sb && pass && members) {
        rc = write_file(p, p->conf_file, conf, err, errlen);
        /* the members' files survive a restart of the node (a new
         * struct pg knows no members until pg_set_members) */
        if (rc == 0 && (p->n_members > 0 || !exists(p->hba)))
            rc = write_file(p, p->hba, hba, err, errlen);
        if (rc == 0)
            rc = write_file(p, p->ident, "# empty\n", err, errlen);
        if (rc == 0)
            rc = write_file(p, p->standby, sb, err, errlen);
        if (rc == 0)
            rc = write_file(p, p->pgpass, pass, err, errlen);
        if (rc == 0 && (p->n_members > 0 || !exists(p->members_conf)))
            rc = write_file(p, p->members_conf, members, err, errlen);
    }
    free(conf);
    free(hba);
    free(sb);
    free(pass);
    free(names);
    free(members);
    return rc;
}

static void spawn_postmaster(struct pg *p)
{
    char err[512], cf[PG_PATH + 32], prog[PG_PATH + 16];
    snprintf(cf, sizeof cf, "config_file=%s", p->conf_file);
    snprintf(prog, sizeof prog, "%s/postgres", p->bin_dir);
    char *argv[] = {prog, "-c", cf, NULL};
    p->pm_expected = false;
    p->log_at = file_size(p->log);
    p->pm_exit_status = 0;
    p->pm_term_signal = 0;
    bool inited;
    int rc =
        spawn(p, &p->pm, p->log, argv, pm_exited, err, sizeof err, &inited);
    p->pm_open = inited;
    if (rc != 0) {
        if (inited)
            uv_close((uv_handle_t *)&p->pm, handle_closed_quietly);
        p->role = PG_STOPPED;
        op_done(p, rc, "%s", err);
        return;
    }
    p->pm_running = true;
    p->pm_pid = p->pm.pid;
    p->role = PG_STARTING;
    LOGI("pg", "postgres pid=%d starting port=%d%s%s", p->pm_pid, p->port,
         p->up_host[0] ? " upstream=" : "", p->up_host);
}

/* Wait (polling) until no process is left on PGDATA (see leftovers():
 * their shared memory or lock file would make postgres and pg_rewind
 * refuse the data dir); they are SIGKILLed (no postmaster of ours runs).
 * Returns true when done waiting, false when a timer was armed. */
static bool wait_leftovers(struct pg *p)
{
    unsigned n = leftovers(p, true);
    if (n == 0)
        return true;
    if (uv_now(p->loop) - p->op_started > PG_LEFTOVER_WAIT_MS) {
        LOGW("pg", "%u processes still run on %s; going on", n, p->data);
        return true;
    }
    if (uv_now(p->loop) - p->op_started < 25)
        LOGI("pg", "waiting for %u processes left on %s", n, p->data);
    defer_next(p, 20);
    return false;
}

/* rm -rf the existing ones of paths (up to 2) as the pg user; false when
 * none exists (nothing started). */
static bool rm_rf(struct pg *p, const char *a, const char *b)
{
    char err[512];
    char *args[5] = {"-rf", "--", NULL, NULL, NULL};
    size_t k = 2;
    if (a != NULL && exists(a))
        args[k++] = (char *)a;
    if (b != NULL && exists(b))
        args[k++] = (char *)b;
    if (k == 2)
        return false;
    int rc = run_tool(p, "/bin/rm", args, err, sizeof err);
    if (rc != 0)
        op_done(p, rc, "%s", err);
    return true;
}

static void op_initdb(struct pg *p)
{
    char err[768];
    switch (p->step++) {
    case 0:
        if (!rm_rf(p, p->data, NULL))
            op_next(p);
        return;
    case 1: {
        if (p->tool_name[0] && tool_result(p) != 0)
            return;
        if (mkdir_owned(p, p->data, err, sizeof err) != 0 ||
            write_file(p, p->pwfile, p->password, err, sizeof err) != 0) {
            op_done(p, ERR_IO, "%s", err);
            return;
        }
        char dflag[PG_PATH + 8], pwflag[PG_PATH + 16];
        snprintf(dflag, sizeof dflag, "-D%s", p->data);
        snprintf(pwflag, sizeof pwflag, "--pwfile=%s", p->pwfile);
        char *args[] = {dflag,        "--data-checksums",     "-U", "nftraft",
                        pwflag,       "--auth=scram-sha-256", "-E", "UTF8",
                        "--locale=C", "--no-instructions",    NULL};
        int rc = run_tool(p, "initdb", args, err, sizeof err);
        if (rc != 0) {
            unlink(p->pwfile);
            op_done(p, rc, "%s", err);
        }
        return;
    }
    case 2:
        unlink(p->pwfile);
        if (tool_result(p) != 0)
            return;
        p->role = PG_STOPPED;
        op_done(p, 0, NULL);
        return;
    }
}

static void op_clone(struct pg *p)
{
    char err[768];
    switch (p->step++) {
    case 0: /* what an interrupted clone left */
        if (!rm_rf(p, p->data_new, p->data_old))
            op_next(p);
        return;
    case 1: {
        if (p->tool_name[0] && tool_result(p) != 0)
            return;
        char dflag[PG_PATH + 8], conn[PG_HOST + 160];
        snprintf(dflag, sizeof dflag, "-D%s", p->data_new);
        snprintf(conn, sizeof conn,
                 "host=%s port=%d user=nftraft connect_timeout=2 "
                 "application_name=node%" PRIu64 "-clone",
                 p->op_host, p->op_port, p->node_id);
        char *args[] = {dflag, "-d",   conn, "-X", "stream",
                        "-c",  "fast", "-w", NULL};
        int rc = run_tool(p, "pg_basebackup", args, err, sizeof err);
        if (rc != 0)
            op_done(p, rc, "%s", err);
        return;
    }
    case 2:
        if (tool_result(p) != 0)
            return;
        if (exists(p->data) && rename(p->data, p->data_old) != 0) {
            op_done(p, ERR_IO, "rename %s: %s", p->data, strerror(errno));
            return;
        }
        if (rename(p->data_new, p->data) != 0) {
            op_done(p, ERR_IO, "rename %s: %s", p->data_new, strerror(errno));
            return;
        }
        p->role = PG_STOPPED;
        if (!rm_rf(p, p->data_old, NULL))
            op_next(p);
        return;
    case 3:
        if (tool_result(p) != 0)
            return;
        op_done(p, 0, NULL);
        return;
    }
}

static void op_rewind(struct pg *p)
{
    char err[768];
    struct work *w = op_work_done;
    switch (p->step++) {
    case 0: {
        int rc = start_work(p, W_CHECKPOINT, p->op_host, p->op_port);
        if (rc != 0)
            op_done(p, rc, "cannot queue the CHECKPOINT");
        return;
    }
    case 1:
        if (w == NULL || w->status != 0) {
            op_done(p, w ? w->status : ERR_INTERNAL,
                    "CHECKPOINT on the source: %s", w ? w->err : "");
            return;
        }
        /* fall through */
    case 2:
        p->step = 2;
        if (!wait_leftovers(p))
            return;
        p->step = 3;
        {
            /* pg_rewind's crash recovery (postgres --single -D PGDATA) reads
             * PGDATA's own postgresql.conf: without our WAL retention its
             * checkpoint removes the WAL pg_rewind needs next. */
            char inner[PG_PATH + 32];
            snprintf(inner, sizeof inner, "%s/postgresql.conf", p->data);
            if (write_file(p, inner,
                           "# nftraftd: only for pg_rewind's crash recovery; "
                           "the server uses ../conf/postgresql.conf\n"
                           "wal_keep_size = '256MB'\n"
                           "wal_log_hints = on\n"
                           "listen_addresses = ''\n",
                           err, sizeof err) != 0) {
                op_done(p, ERR_IO, "%s", err);
                return;
            }
            char dflag[PG_PATH + 24], src[PG_HOST + 160];
            snprintf(dflag, sizeof dflag, "--target-pgdata=%s", p->data);
            snprintf(src, sizeof src,
                     "--source-server=host=%s port=%d user=nftraft "
                     "dbname=postgres connect_timeout=2",
                     p->op_host, p->op_port);
            char *args[] = {dflag, src, NULL};
            int rc = run_tool(p, "pg_rewind", args, err, sizeof err);
            if (rc != 0)
                op_done(p, rc, "%s", err);
        }
        return;
    case 3: {
        if (tool_result(p) != 0)
            return;
        p->role = PG_STOPPED;
        /* Same timeline number on both sides: pg_rewind compares nothing
         * and leaves the local WAL as it was, yet a timeline number is no
         * proof of the same history (two nodes promoted from the same
         * parent pick the same next number). Not a success: re-clone. */
        char tail[720];
        file_tail(p->tool_log, p->tool_log_at, tail, sizeof tail);
        if (strstr(tail, "on the same timeline") != NULL) {
            op_done(p, ERR_CORRUPT,
                    "pg_rewind: source and target are on the same timeline: "
                    "it checked nothing (the local WAL may still diverge)");
            return;
        }
        op_done(p, 0, NULL);
        return;
    }
    }
}

static void op_start(struct pg *p)
{
    struct work *w = op_work_done;
    switch (p->step) {
    case 0: {
        if (p->pm_open) { /* a failed spawn's handle is still closing */
            defer_next(p, 1);
            return;
        }
        if (!wait_leftovers(p))
            return;
        char err[1024];
        char signal_path[PG_PATH + 32];
        snprintf(signal_path, sizeof signal_path, "%s/standby.signal", p->data);
        int rc = write_configs(p, err, sizeof err);
        if (rc == 0 && p->up_host[0] != '\0')
            rc = write_file(p, signal_path, "", err, sizeof err);
        else if (rc == 0 && unlink(signal_path) != 0 && errno != ENOENT) {
            snprintf(err, sizeof err, "unlink %s: %s", signal_path,
                     strerror(errno));
            rc = ERR_IO;
        }
        if (rc != 0) {
            op_done(p, rc, "%s", err);
            return;
        }
        p->step = 1;
        spawn_postmaster(p);
        if (p->op == OP_START)
            defer_next(p, 50);
        return;
    }
    case 1: /* timer: probe */
        if (!p->pm_running)
            return; /* pm_closed fails the op */
        p->step = 2;
        if (start_work(p, W_PROBE, NULL, 0) != 0) {
            p->step = 1;
            defer_next(p, 100);
        }
        return;
    case 2: /* probe returned */
        if (w != NULL && w->status == 0 && p->pm_running) {
            p->role = w->in_recovery ? PG_STANDBY : PG_PRIMARY;
            op_done(p, 0, NULL);
            return;
        }
        if (!p->pm_running)
            return;
        if (uv_now(p->loop) - p->op_started > PG_START_TIMEOUT_MS) {
            op_done(p, ERR_TIMEOUT,
                    "postgres does not accept connections after %d s: %s",
                    PG_START_TIMEOUT_MS / 1000, w ? w->err : "");
            return;
        }
        p->step = 1;
        defer_next(p, 50);
        return;
    }
}

static void op_promote(struct pg *p)
{
    struct work *w = op_work_done;
    if (p->step++ == 0) {
        int rc = start_work(p, W_PROMOTE, NULL, 0);
        if (rc != 0)
            op_done(p, rc, "cannot queue the promotion");
        return;
    }
    if (w == NULL || w->status != 0 || p->op_pm_lost || !p->pm_running) {
        op_done(p, w && w->status ? w->status : ERR_IO, "promote: %s",
                w && w->err[0] ? w->err : "postgres exited");
        return;
    }
    p->role = PG_PRIMARY;
    p->up_host[0] = '\0';
    p->up_port = 0;
    char err[512];
    char *sb = build_standby(p);
    int rc = sb ? write_file(p, p->standby, sb, err, sizeof err) : ERR_NOMEM;
    free(sb);
    if (rc != 0)
        LOGW("pg", "promoted, but standby.conf: %s", err);
    op_done(p, 0, NULL);
}

static void op_members(struct pg *p)
{
    struct work *w = op_work_done;
    if (w == NULL)
        return;
    if (w->status != 0 || p->op_pm_lost || !p->pm_running) {
        op_done(p, w->status ? w->status : ERR_IO, "set members: %s",
                w->err[0] ? w->err : "postgres exited");
        return;
    }
    op_done(p, 0, NULL);
}

static void op_checkpoint(struct pg *p)
{
    struct work *w = op_work_done;
    if (p->step++ == 0) {
        int rc = start_work(p, W_CHECKPOINT, p->op_host, p->op_port);
        if (rc != 0)
            op_done(p, rc, "cannot queue the CHECKPOINT");
        return;
    }
    if (w == NULL || w->status != 0) {
        op_done(p, w ? w->status : ERR_INTERNAL, "CHECKPOINT on %s:%d: %s",
                p->op_host, p->op_port, w ? w->err : "");
        return;
    }
    op_done(p, 0, NULL);
}

static void op_next(struct pg *p)
{
    if (p->closing)
        return;
    switch (p->op) {
    case OP_NONE:
    case OP_STOP: /* pm_closed finishes it */
        return;
    case OP_INITDB:
        op_initdb(p);
        return;
    case OP_CLONE:
        op_clone(p);
        return;
    case OP_REWIND:
        op_rewind(p);
        return;
    case OP_START:
        op_start(p);
        return;
    case OP_FOLLOW:
    case OP_MEMBERS_FILES:
        op_done(p, 0, NULL);
        return;
    case OP_PROMOTE:
        op_promote(p);
        return;
    case OP_MEMBERS:
        op_members(p);
        return;
    case OP_CHECKPOINT:
        op_checkpoint(p);
        return;
    }
}

/* ---- public API ------------------------------------------------------- */

static int op_begin(struct pg *p, enum pg_op op, pg_done_cb cb, void *data)
{
    if (p->closing)
        return ERR_SHUTDOWN;
    if (p->op != OP_NONE)
        return ERR_BUSY;
    if (cb == NULL)
        return ERR_INVALID;
    p->op = op;
    p->op_seq++;
    p->step = 0;
    p->cb = cb;
    p->cb_data = data;
    p->op_started = uv_now(p->loop);
    p->op_pm_lost = false;
    p->tool_name[0] = '\0';
    LOGI("pg", "%s begins role=%s", op_names[op], pg_role_name(p->role));
    return 0;
}

static bool valid_endpoint(const char *host, int port)
{
    return host != NULL && safe_word(host, false) && strlen(host) < PG_HOST &&
           port > 0 && port < 65536;
}

/* PGDATA is about to be replaced: what pg_info remembered of the old one
 * (the highest timeline seen) no longer holds. */
static void new_data(struct pg *p)
{
    p->data_gen++;
    p->last_tl = 0;
}

int pg_initdb(struct pg *p, pg_done_cb cb, void *data)
{
    if (!p->closing && p->op == OP_NONE && p->role != PG_NONE)
        return ERR_INVALID;
    int rc = op_begin(p, OP_INITDB, cb, data);
    if (rc == 0) {
        new_data(p);
        defer_next(p, 0);
    }
    return rc;
}

int pg_clone(struct pg *p, const char *src_host, int src_port, pg_done_cb cb,
             void *data)
{
    if (!valid_endpoint(src_host, src_port))
        return ERR_INVALID;
    if (!p->closing && p->op == OP_NONE && p->role != PG_NONE &&
        p->role != PG_STOPPED)
        return ERR_INVALID;
    int rc = op_begin(p, OP_CLONE, cb, data);
    if (rc != 0)
        return rc;
    new_data(p);
    snprintf(p->op_host, sizeof p->op_host, "%s", src_host);
    p->op_port = src_port;
    defer_next(p, 0);
    return 0;
}

int pg_rewind(struct pg *p, const char *src_host, int src_port, pg_done_cb cb,
              void *data)
{
    if (!valid_endpoint(src_host, src_port))
        return ERR_INVALID;
    if (!p->closing && p->op == OP_NONE && p->role != PG_STOPPED)
        return ERR_INVALID;
    int rc = op_begin(p, OP_REWIND, cb, data);
    if (rc != 0)
        return rc;
    new_data(p);
    snprintf(p->op_host, sizeof p->op_host, "%s", src_host);
    p->op_port = src_port;
    defer_next(p, 0);
    return 0;
}

int pg_start(struct pg *p, const char *upstream_host, int upstream_port,
             pg_done_cb cb, void *data)
{
    if (upstream_host != NULL && !valid_endpoint(upstream_host, upstream_port))
        return ERR_INVALID;
    if (!p->closing && p->op == OP_NONE && p->role != PG_STOPPED)
        return ERR_INVALID;
    int rc = op_begin(p, OP_START, cb, data);
    if (rc != 0)
        return rc;
    snprintf(p->up_host, sizeof p->up_host, "%s",
             upstream_host ? upstream_host : "");
    p->up_port = upstream_host ? upstream_port : 0;
    defer_next(p, 0);
    return 0;
}

int pg_stop(struct pg *p, bool immediate, pg_done_cb cb, void *data)
{
    if (!p->closing && p->op == OP_NONE && !p->pm_running)
        return ERR_INVALID;
    int rc = op_begin(p, OP_STOP, cb, data);
    if (rc != 0)
        return rc;
    if (p->role != PG_STOPPING)
        stop_pm(p, immediate);
    return 0;
}

/* The end of an op that rewrote a config file: rc != 0 means the op never
 * ran (release it without calling cb); else SIGHUP the postmaster and let
 * the op's probe finish it. */
static int reload_or_release(struct pg *p, int rc)
{
    if (rc != 0) {
        p->op = OP_NONE;
        p->cb = NULL;
        return rc;
    }
    kill(p->pm_pid, SIGHUP);
    defer_next(p, 0);
    return 0;
}

int pg_follow(struct pg *p, const char *upstream_host, int upstream_port,
              pg_done_cb cb, void *data)
{
    if (upstream_host != NULL && !valid_endpoint(upstream_host, upstream_port))
        return ERR_INVALID;
    if (!p->closing && p->op == OP_NONE &&
        (p->role != PG_STANDBY || !p->pm_running))
        return ERR_INVALID;
    int rc = op_begin(p, OP_FOLLOW, cb, data);
    if (rc != 0)
        return rc;
    snprintf(p->up_host, sizeof p->up_host, "%s",
             upstream_host ? upstream_host : "");
    p->up_port = upstream_host ? upstream_port : 0;
    char err[512];
    char *sb = build_standby(p);
    rc = sb ? write_file(p, p->standby, sb, err, sizeof err) : ERR_NOMEM;
    free(sb);
    return reload_or_release(p, rc);
}

int pg_checkpoint_upstream(struct pg *p, pg_done_cb cb, void *data)
{
    if (!p->closing && p->op == OP_NONE &&
        (p->role != PG_STANDBY || !p->pm_running || p->up_port == 0))
        return ERR_INVALID;
    int rc = op_begin(p, OP_CHECKPOINT, cb, data);
    if (rc != 0)
        return rc;
    snprintf(p->op_host, sizeof p->op_host, "%s", p->up_host);
    p->op_port = p->up_port;
    defer_next(p, 0);
    return 0;
}

int pg_promote(struct pg *p, pg_done_cb cb, void *data)
{
    if (!p->closing && p->op == OP_NONE &&
        (p->role != PG_STANDBY || !p->pm_running))
        return ERR_INVALID;
    int rc = op_begin(p, OP_PROMOTE, cb, data);
    if (rc == 0)
        defer_next(p, 0);
    return rc;
}

/* A malloc'd copy of the member list (at least one slot); NULL when out
 * of memory. */
static struct pg_member *members_new(const uint64_t *ids,
                                     const char *const *hosts, unsigned n)
{
    struct pg_member *m = calloc(n ? n : 1, sizeof *m);
    for (unsigned i = 0; m != NULL && i < n; i++) {
        m[i].id = ids[i];
        snprintf(m[i].host, sizeof m[i].host, "%s", hosts[i]);
    }
    return m;
}

/* pg_set_members on a standby: keep the members, write members.conf and
 * pg_hba.conf, reload (no SQL: a standby is read-only). A standby about to
 * be promoted thus waits for a synchronous standby from its first commit. */
static int set_members_standby(struct pg *p, const uint64_t *ids,
                               const char *const *hosts, unsigned n,
                               pg_done_cb cb, void *data)
{
    struct pg_member *m = members_new(ids, hosts, n);
    if (m == NULL)
        return ERR_NOMEM;
    int rc = op_begin(p, OP_MEMBERS_FILES, cb, data);
    if (rc != 0) {
        free(m);
        return rc;
    }
    free(p->members);
    p->members = m;
    p->n_members = n;
    char err[512];
    char *names = sync_names(p), *hba = build_hba(p);
    char *conf = names ? build_members_conf(names) : NULL;
    rc = conf && hba ? write_file(p, p->members_conf, conf, err, sizeof err)
                     : ERR_NOMEM;
    if (rc == 0)
        rc = write_file(p, p->hba, hba, err, sizeof err);
    free(names);
    free(hba);
    free(conf);
    return reload_or_release(p, rc);
}

int pg_set_members(struct pg *p, const uint64_t *ids, const char *const *hosts,
                   unsigned n, pg_done_cb cb, void *data)
{
    if (n > 0 && (ids == NULL || hosts == NULL))
        return ERR_INVALID;
    for (unsigned i = 0; i < n; i++)
        if (ids[i] == 0 || !safe_word(hosts[i], false) ||
            strlen(hosts[i]) >= PG_HOST)
            return ERR_INVALID;
    if (!p->closing && p->op == OP_NONE && p->role == PG_STANDBY &&
        p->pm_running)
        return set_members_standby(p, ids, hosts, n, cb, data);
    if (!p->closing && p->op == OP_NONE &&
        (p->role != PG_PRIMARY || !p->pm_running))
        return ERR_INVALID;
    if (p->closing)
        return ERR_SHUTDOWN;
    if (p->op != OP_NONE)
        return ERR_BUSY;
    struct pg_member *m = members_new(ids, hosts, n);
    struct work *w = work_new(p, W_MEMBERS);
    if (m == NULL || w == NULL) {
        free(m);
        free(w);
        return ERR_NOMEM;
    }
    free(p->members);
    p->members = m;
    p->n_members = n;
    w->ids = malloc((n ? n : 1) * sizeof *w->ids);
    if (w->ids != NULL) {
        memcpy(w->ids, ids, n * sizeof *ids);
        w->n_ids = n;
    }
    w->sync_names = sync_names(p);
    w->hba = build_hba(p);
    w->members_conf = w->sync_names ? build_members_conf(w->sync_names) : NULL;
    if (!w->ids || !w->sync_names || !w->hba || !w->members_conf) {
        work_free(w);
        return ERR_NOMEM;
    }
    int rc = op_begin(p, OP_MEMBERS, cb, data);
    if (rc != 0) {
        work_free(w);
        return rc;
    }
    w->op_seq = p->op_seq;
    rc = work_queue(p, w);
    if (rc != 0) {
        p->op = OP_NONE;
        p->cb = NULL;
    }
    return rc;
}

int pg_info(struct pg *p,
            void (*cb)(void *data, int status, const struct pg_info *info),
            void *data)
{
    if (p->closing)
        return ERR_SHUTDOWN;
    if (cb == NULL)
        return ERR_INVALID;
    struct work *w = work_new(p, W_INFO);
    if (w == NULL)
        return ERR_NOMEM;
    w->info_cb = cb;
    w->info_data = data;
    w->info.replay_lag_ms = -1;
    w->skip =
        !p->pm_running || p->role == PG_STARTING || p->role == PG_STOPPING;
    if (p->role == PG_STANDBY) {
        snprintf(w->up_host, sizeof w->up_host, "%s", p->up_host);
        w->up_port = p->up_port;
    }
    return work_queue(p, w);
}

void pg_on_exit(struct pg *p,
                void (*cb)(void *data, int64_t exit_status, int term_signal),
                void *data)
{
    p->exit_cb = cb;
    p->exit_data = data;
}

enum pg_role pg_role(const struct pg *p)
{
    return p->role;
}

int pg_pid(const struct pg *p)
{
    return p->pm_running ? p->pm_pid : 0;
}

void pg_close(struct pg *p, void (*cb)(void *data), void *data)
{
    if (p->closing)
        return;
    p->close_cb = cb;
    p->close_data = data;
    if (p->op != OP_NONE) {
        pg_done_cb ocb = p->cb;
        void *odata = p->cb_data;
        p->op = OP_NONE;
        p->cb = NULL;
        if (ocb != NULL)
            ocb(odata, ERR_SHUTDOWN, "closing");
    }
    p->closing = true;
    uv_timer_stop(&p->timer);
    if (p->tool_open && p->tool.pid > 0) {
        kill(-p->tool.pid, SIGKILL);
        kill(p->tool.pid, SIGKILL);
    }
    if (p->pm_running && p->role != PG_STOPPING)
        stop_pm(p, false);
    maybe_free(p);
}

/* Every ancestor of path must be searchable by uid/gid. */
static int check_search(const char *path, uid_t uid, gid_t gid,
                        const char *user, char *err, size_t errlen)
{
    char buf[PG_PATH];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        struct stat st;
        if (stat(buf, &st) == 0) {
            mode_t bit = st.st_uid == uid   ? S_IXUSR
                         : st.st_gid == gid ? S_IXGRP
                                            : S_IXOTH;
            if (!(st.st_mode & bit)) {
                snprintf(err, errlen,
                         "%s (mode %04o) is not searchable by user %s: "
                         "chmod o+x it",
                         buf, (unsigned)(st.st_mode & 07777), user);
                return ERR_INVALID;
            }
        }
        *s = c;
        if (c == '\0')
            break;
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char buf[PG_PATH];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int pg_new(struct pg **out, uv_loop_t *loop, const struct pg_config *cfg,
           char *err, size_t errlen)
{
    *out = NULL;
    const char *bin = cfg->bin_dir ? cfg->bin_dir : PG_DEFAULT_BIN_DIR;
    if (cfg->dir == NULL || cfg->dir[0] != '/' || !safe_word(cfg->dir, true) ||
        strlen(cfg->dir) >= PG_DIR) {
        snprintf(err, errlen,
                 "pg: dir must be an absolute path of letters, digits and "
                 "./-_+@ (got %s)",
                 cfg->dir ? cfg->dir : "(null)");
        return ERR_INVALID;
    }
    if (!valid_endpoint(cfg->host, cfg->port) &&
        !(cfg->host && any_host(cfg->host) && cfg->port > 0 &&
          cfg->port < 65536)) {
        snprintf(err, errlen, "pg: bad listen address %s:%d",
                 cfg->host ? cfg->host : "(null)", cfg->port);
        return ERR_INVALID;
    }
    if (cfg->password == NULL || cfg->password[0] == '\0' ||
        strchr(cfg->password, '\n') != NULL) {
        snprintf(err, errlen, "pg: the password must be one non-empty line");
        return ERR_INVALID;
    }
    if (cfg->node_id == 0) {
        snprintf(err, errlen, "pg: node id 0");
        return ERR_INVALID;
    }
    if (strlen(bin) > PG_PATH - 40 || cfg->exec_helper == NULL ||
        strlen(cfg->exec_helper) >= PG_PATH) {
        snprintf(err, errlen,
                 "pg: bin dir or exec helper path missing or too long");
        return ERR_INVALID;
    }
    char prog[PG_PATH + 16];
    snprintf(prog, sizeof prog, "%s/postgres", bin);
    if (access(prog, X_OK) != 0) {
        snprintf(err, errlen, "pg: no PostgreSQL in %s (%s: %s)", bin, prog,
                 strerror(errno));
        return ERR_INVALID;
    }
    if (cfg->exec_helper[0] != '/' || access(cfg->exec_helper, X_OK) != 0) {
        snprintf(err, errlen,
                 "pg: exec helper %s is not an executable "
                 "absolute path",
                 cfg->exec_helper);
        return ERR_INVALID;
    }
    bool root = geteuid() == 0;
    struct passwd *pw = NULL;
    if (cfg->user != NULL) {
        if (strlen(cfg->user) >= 64 || (pw = getpwnam(cfg->user)) == NULL) {
            snprintf(err, errlen, "pg: unknown user %s", cfg->user);
            return ERR_INVALID;
        }
        if (!root && pw->pw_uid != geteuid()) {
            snprintf(err, errlen,
                     "pg: not root: postgres cannot run as user %s", cfg->user);
            return ERR_INVALID;
        }
        if (pw->pw_uid == 0) {
            snprintf(err, errlen, "pg: postgres cannot run as root (user %s)",
                     cfg->user);
            return ERR_INVALID;
        }
    } else if (root) {
        snprintf(err, errlen,
                 "pg: running as root needs a user for postgres (it refuses "
                 "root)");
        return ERR_INVALID;
    }
    struct pg *p = calloc(1, sizeof *p);
    if (p == NULL || (p->password = strdup(cfg->password)) == NULL) {
        free(p);
        snprintf(err, errlen, "pg: out of memory");
        return ERR_NOMEM;
    }
    p->loop = loop;
    snprintf(p->bin_dir, sizeof p->bin_dir, "%s", bin);
    snprintf(p->helper, sizeof p->helper, "%s", cfg->exec_helper);
    snprintf(p->dir, sizeof p->dir, "%s", cfg->dir);
    snprintf(p->host, sizeof p->host, "%s", cfg->host);
    snprintf(p->sql_host, sizeof p->sql_host, "%s",
             any_host(cfg->host) ? "127.0.0.1" : cfg->host);
    p->port = cfg->port;
    p->node_id = cfg->node_id;
    if (pw != NULL && root) {
        snprintf(p->user, sizeof p->user, "%s", cfg->user);
        p->chown_files = true;
        p->uid = pw->pw_uid;
        p->gid = pw->pw_gid;
    } else {
        p->uid = geteuid();
        p->gid = getegid();
    }
#define PATHF(field, fmt) snprintf(p->field, sizeof p->field, fmt, p->dir)
    PATHF(data, "%s/data");
    PATHF(data_new, "%s/data.new");
    PATHF(data_old, "%s/data.old");
    PATHF(conf, "%s/conf");
    PATHF(conf_file, "%s/conf/postgresql.conf");
    PATHF(hba, "%s/conf/pg_hba.conf");
    PATHF(ident, "%s/conf/pg_ident.conf");
    PATHF(standby, "%s/conf/standby.conf");
    PATHF(members_conf, "%s/conf/members.conf");
    PATHF(pgpass, "%s/conf/pgpass");
    PATHF(pwfile, "%s/conf/initdb.pw");
    PATHF(log, "%s/postgres.log");
    PATHF(tool_log, "%s/tool.log");
#undef PATHF
    int rc;
    if (mkdir_p(p->dir) != 0) {
        snprintf(err, errlen, "pg: mkdir %s: %s", p->dir, strerror(errno));
        rc = ERR_IO;
        goto fail;
    }
    own(p, p->dir);
    if ((rc = mkdir_owned(p, p->conf, err, errlen)) != 0)
        goto fail;
    if (p->chown_files &&
        (rc = check_search(p->conf, p->uid, p->gid, p->user, err, errlen)) != 0)
        goto fail;
    char *pass = build_pgpass(p);
    rc = pass ? write_file(p, p->pgpass, pass, err, errlen) : ERR_NOMEM;
    free(pass);
    if (rc != 0)
        goto fail;
    char version[PG_PATH + 16];
    snprintf(version, sizeof version, "%s/PG_VERSION", p->data);
    p->role = exists(version) ? PG_STOPPED : PG_NONE;
    uv_timer_init(loop, &p->timer);
    uv_timer_init(loop, &p->esc_timer);
    p->timer.data = p;
    p->esc_timer.data = p;
    p->open_timers = 2;
    *out = p;
    return 0;
fail:
    free(p->password);
    free(p);
    return rc;
}
