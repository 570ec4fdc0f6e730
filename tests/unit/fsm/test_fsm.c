/* test_fsm.c - the SQLite counter state machine (fsm/fsm): entry codec,
 * apply, idempotency, overflow, replay, restart, snapshots, corrupt files. */
#include "core/err.h"
#include "fsm/fsm.h"
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static void fresh_dir(void)
{
    char cmd[300];
    if (dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", dir);
    }
    snprintf(dir, sizeof dir, "/tmp/nftraft-test-fsm-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static size_t enc_k(const char *key, int64_t by, uint64_t key_retention,
                    unsigned char *buf)
{
    struct fsm_cmd c = {.by = by,
                        .node = 2,
                        .term = 7,
                        .time_ms = 1234,
                        .key_retention = key_retention};
    snprintf(c.key, sizeof c.key, "%s", key);
    size_t len = 0;
    if (fsm_cmd_encode(&c, buf, FSM_CMD_MAX, &len) != 0)
        return 0;
    return len;
}

static size_t enc(const char *key, int64_t by, unsigned char *buf)
{
    return enc_k(key, by, 0, buf);
}

/* Apply entries from..to to f: entry i adds `by` (i itself when by is 0)
 * and carries the key "k<i>" when i is a multiple of key_every (0: no
 * key), with key_retention. */
static int apply_range(struct fsm *f, uint64_t from, uint64_t to, int64_t by,
                       uint64_t key_every, uint64_t key_retention)
{
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    for (uint64_t i = from; i <= to; i++) {
        char key[32] = "";
        if (key_every != 0 && i % key_every == 0)
            snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
        size_t n = enc_k(key, by != 0 ? by : (int64_t)i, key_retention, e);
        ASSERT_EQ(fsm_apply(f, i, e, n, &r), 0);
    }
    return 0;
}

static struct fsm *open_fsm(const char *name)
{
    char p[300], err[512];
    path_of(p, sizeof p, name);
    struct fsm *f = NULL;
    if (fsm_open(&f, p, err, sizeof err) != 0) {
        fprintf(stderr, "  open %s: %s\n", p, err);
        return NULL;
    }
    return f;
}

/* A new empty directory and the state machine `name` in it. */
static struct fsm *fresh_fsm(const char *name)
{
    fresh_dir();
    return open_fsm(name);
}

/* A new empty directory and two state machines in it, a.db and b.db; 0, or
 * 1 with neither open. */
static int fresh_pair(struct fsm **a, struct fsm **b)
{
    *a = fresh_fsm("a.db");
    *b = open_fsm("b.db");
    if (*a != NULL && *b != NULL)
        return 0;
    fsm_close(*a); /* NULL is fine */
    fsm_close(*b);
    return 1;
}

TEST(codec_roundtrip)
{
    struct fsm_cmd c = {.by = 42, .node = 3, .term = 9, .time_ms = -5}, d;
    snprintf(c.key, sizeof c.key, "key-1");
    unsigned char buf[FSM_CMD_MAX];
    size_t len;
    ASSERT_EQ(fsm_cmd_encode(&c, buf, sizeof buf, &len), 0);
    ASSERT_EQ(fsm_cmd_decode(buf, len, &d), 0);
    ASSERT_EQ(d.by, 42);
    ASSERT_U64_EQ(d.node, 3);
    ASSERT_U64_EQ(d.term, 9);
    ASSERT_EQ(d.time_ms, -5);
    ASSERT_STR_EQ(d.key, "key-1");
    return 0;
}

TEST(codec_rejects)
{
    struct fsm_cmd c = {.by = 1}, d;
    unsigned char buf[FSM_CMD_MAX + 16];
    size_t len;
    ASSERT_EQ(fsm_cmd_encode(&c, buf, 4, &len), ERR_TOOBIG);
    c.by = 0;
    ASSERT_EQ(fsm_cmd_encode(&c, buf, sizeof buf, &len), ERR_INVALID);
    c.by = 1;
    memset(c.key, 'k', sizeof c.key); /* no terminator within the limit */
    ASSERT_EQ(fsm_cmd_encode(&c, buf, sizeof buf, &len), ERR_INVALID);
    c.key[0] = '\0';
    ASSERT_EQ(fsm_cmd_encode(&c, buf, sizeof buf, &len), 0);
    for (size_t cut = 0; cut < len; cut++)
        ASSERT(fsm_cmd_decode(buf, cut, &d) != 0); /* truncated */
    buf[len] = 0xc0;                               /* trailing garbage */
    ASSERT_EQ(fsm_cmd_decode(buf, len + 1, &d), ERR_MALFORMED);
    memset(buf + len, 0, 8); /* raft alignment padding: up to 7 zeros */
    ASSERT_EQ(fsm_cmd_decode(buf, len + 7, &d), 0);
    ASSERT_EQ(fsm_cmd_decode(buf, len + 8, &d), ERR_MALFORMED);
    /* Hand-made msgpack: [9,1,...] unknown version; wrong types; by <= 0. */
    const unsigned char v9[] = {0x97, 0x09, 0x01, 0x01, 0x01, 0x01, 0x01, 0xa0};
    ASSERT_EQ(fsm_cmd_decode(v9, sizeof v9, &d), ERR_VERSION);
    const unsigned char t7[] = {0x97, 0x01, 0x07, 0x01, 0x01, 0x01, 0x01, 0xa0};
    ASSERT_EQ(fsm_cmd_decode(t7, sizeof t7, &d), ERR_VERSION);
    const unsigned char by0[] = {0x97, 0x01, 0x01, 0x00,
                                 0x01, 0x01, 0x01, 0xa0};
    ASSERT_EQ(fsm_cmd_decode(by0, sizeof by0, &d), ERR_MALFORMED);
    const unsigned char neg[] = {0x97, 0x01, 0x01, 0xff,
                                 0x01, 0x01, 0x01, 0xa0};
    ASSERT_EQ(fsm_cmd_decode(neg, sizeof neg, &d), ERR_MALFORMED);
    const unsigned char strby[] = {0x97, 0x01, 0x01, 0xa1, '1',
                                   0x01, 0x01, 0x01, 0xa0};
    ASSERT_EQ(fsm_cmd_decode(strby, sizeof strby, &d), ERR_MALFORMED);
    const unsigned char notarr[] = {0x01};
    ASSERT_EQ(fsm_cmd_decode(notarr, sizeof notarr, &d), ERR_MALFORMED);
    const unsigned char shortarr[] = {0x93, 0x01, 0x01, 0x01};
    ASSERT_EQ(fsm_cmd_decode(shortarr, sizeof shortarr, &d), ERR_MALFORMED);
    return 0;
}

TEST(apply_dedupe_overflow_replay)
{
    struct fsm *f = fresh_fsm("s.db");
    ASSERT(f != NULL);
    unsigned char b[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc("", 5, b);
    ASSERT_EQ(fsm_apply(f, 1, b, n, &r), 0);
    ASSERT_EQ(r.value, 5);
    ASSERT_U64_EQ(r.index, 1);
    n = enc("k", 2, b);
    ASSERT_EQ(fsm_apply(f, 2, b, n, &r), 0);
    ASSERT_EQ(r.value, 7);
    ASSERT(!r.duplicate);
    ASSERT_EQ(fsm_apply(f, 3, b, n, &r), 0); /* same key again */
    ASSERT(r.duplicate);
    ASSERT_EQ(r.value, 7);
    ASSERT_U64_EQ(r.index, 2);
    ASSERT_EQ(fsm_value(f), 7);
    ASSERT_U64_EQ(fsm_last_applied(f), 3);
    ASSERT_EQ(fsm_lookup(f, "k", &r), 0);
    ASSERT_U64_EQ(r.index, 2);
    ASSERT_EQ(fsm_lookup(f, "nope", &r), ERR_NOTFOUND);
    n = enc("", INT64_MAX, b);
    ASSERT_EQ(fsm_apply(f, 4, b, n, &r), 0);
    ASSERT_EQ(r.status, ERR_OVERFLOW);
    ASSERT_EQ(fsm_value(f), 7);
    ASSERT_U64_EQ(fsm_last_applied(f), 4);
    ASSERT_EQ(fsm_apply(f, 5, "junk", 4, &r), ERR_MALFORMED);
    ASSERT_U64_EQ(fsm_last_applied(f), 5);
    ASSERT_EQ(fsm_value(f), 7);
    /* Replays of old indexes change nothing. */
    n = enc("", 100, b);
    ASSERT_EQ(fsm_apply(f, 2, b, n, &r), 0);
    ASSERT_EQ(r.value, 7);
    ASSERT_EQ(fsm_value(f), 7);
    ASSERT_U64_EQ(fsm_count(f), 2);
    fsm_close(f);
    /* Restart: state kept, no double apply. */
    f = open_fsm("s.db");
    ASSERT(f != NULL);
    ASSERT_EQ(fsm_value(f), 7);
    ASSERT_U64_EQ(fsm_last_applied(f), 5);
    ASSERT_EQ(fsm_apply(f, 1, b, n, &r), 0);
    ASSERT_EQ(fsm_value(f), 7);
    ASSERT_EQ(fsm_apply(f, 6, b, n, &r), 0);
    ASSERT_EQ(fsm_value(f), 107);
    fsm_close(f);
    return 0;
}

TEST(log_paging)
{
    struct fsm *f = fresh_fsm("s.db");
    ASSERT(f != NULL);
    unsigned char b[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc("", 1, b);
    for (uint64_t i = 1; i <= 25; i++)
        ASSERT_EQ(fsm_apply(f, i * 2, b, n, &r), 0);
    struct fsm_entry es[10];
    unsigned got, total = 0;
    uint64_t from = 1, next;
    int64_t last = 0;
    for (;;) {
        ASSERT_EQ(fsm_log(f, from, 10, es, &got, &next), 0);
        if (got == 0)
            break;
        for (unsigned i = 0; i < got; i++) {
            ASSERT_EQ(es[i].value, last + 1);
            ASSERT_U64_EQ(es[i].term, 7);
            last = es[i].value;
        }
        total += got;
        from = next;
    }
    ASSERT_EQ(total, 25);
    ASSERT_U64_EQ(next, 51);
    fsm_close(f);
    return 0;
}

TEST(snapshot_restore)
{
    struct fsm *a, *b;
    ASSERT_EQ(fresh_pair(&a, &b), 0);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    ASSERT_EQ(apply_range(a, 1, 50, 0, 5, 0), 0);
    void *buf;
    size_t len;
    ASSERT_EQ(fsm_snapshot(a, &buf, &len), 0);
    /* Corrupted bytes: rejected, nothing changes. */
    unsigned char *bad = malloc(len);
    memcpy(bad, buf, len);
    bad[len / 2] ^= 0xff;
    bad[len - 1] ^= 0xff;
    ASSERT(fsm_restore(b, bad, len - 3) != 0);
    ASSERT_EQ(fsm_value(b), 0);
    ASSERT_U64_EQ(fsm_last_applied(b), 0);
    free(bad);
    ASSERT_EQ(fsm_restore(b, buf, len), 0);
    ASSERT_EQ(fsm_value(b), fsm_value(a));
    ASSERT_U64_EQ(fsm_last_applied(b), 50);
    ASSERT_U64_EQ(fsm_count(b), 50);
    ASSERT_EQ(fsm_lookup(b, "k25", &r), 0);
    ASSERT_U64_EQ(r.index, 25);
    struct fsm_entry ea[50], eb[50];
    unsigned na, nb;
    uint64_t x;
    ASSERT_EQ(fsm_log(a, 1, 50, ea, &na, &x), 0);
    ASSERT_EQ(fsm_log(b, 1, 50, eb, &nb, &x), 0);
    ASSERT_EQ(na, nb);
    ASSERT_MEM_EQ(ea, eb, sizeof ea[0] * na);
    /* A duplicate key after restore is still deduplicated. */
    size_t n = enc("k25", 1000, e);
    ASSERT_EQ(fsm_apply(b, 51, e, n, &r), 0);
    ASSERT(r.duplicate);
    /* An older snapshot is a no-op. */
    ASSERT_EQ(fsm_restore(b, buf, len), 0);
    ASSERT_U64_EQ(fsm_last_applied(b), 51);
    free(buf);
    fsm_close(a);
    fsm_close(b);
    return 0;
}

TEST(corrupt_file_untouched)
{
    fresh_dir();
    char p[300], err[512];
    path_of(p, sizeof p, "bad.db");
    FILE *fp = fopen(p, "wb");
    ASSERT(fp != NULL);
    fputs("this is not a database at all, not even close........", fp);
    fclose(fp);
    struct fsm *f = NULL;
    ASSERT_EQ(fsm_open(&f, p, err, sizeof err), ERR_CORRUPT);
    ASSERT(strstr(err, p) != NULL);
    fp = fopen(p, "rb");
    char back[8] = "";
    ASSERT(fread(back, 1, 7, fp) == 7);
    fclose(fp);
    ASSERT_MEM_EQ(back, "this is", 7);
    /* A damaged SQLite file: header kept, pages overwritten. */
    struct fsm *g = open_fsm("dmg.db");
    ASSERT(g != NULL);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc("", 1, e);
    for (uint64_t i = 1; i <= 200; i++)
        ASSERT_EQ(fsm_apply(g, i, e, n, &r), 0);
    fsm_close(g);
    path_of(p, sizeof p, "dmg.db");
    int fd = open(p, O_WRONLY);
    ASSERT(fd >= 0);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    ASSERT(pwrite(fd, junk, sizeof junk, 4096) == (ssize_t)sizeof junk);
    close(fd);
    ASSERT_EQ(fsm_open(&f, p, err, sizeof err), ERR_CORRUPT);
    ASSERT(strstr(err, p) != NULL);
    return 0;
}

struct snap_job {
    struct fsm_snap *sn;
    void *buf;
    size_t len;
    int rv;
};

static void *snap_thread(void *arg)
{
    struct snap_job *j = arg;
    j->rv = fsm_snapshot_write(j->sn, &j->buf, &j->len);
    return NULL;
}

/* The raft_fsm v3 path: the view pinned by fsm_snapshot_begin is what
 * another thread serializes, while the owner keeps applying. */
TEST(snapshot_view_is_pinned_while_applying)
{
    struct fsm *a, *b;
    ASSERT_EQ(fresh_pair(&a, &b), 0);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    ASSERT_EQ(apply_range(a, 1, 2000, 1, 2, 0), 0);
    struct snap_job j = {0};
    ASSERT_EQ(fsm_snapshot_begin(a, &j.sn), 0);
    struct fsm_snap *again;
    ASSERT_EQ(fsm_snapshot_begin(a, &again), ERR_BUSY);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, snap_thread, &j), 0);
    ASSERT_EQ(apply_range(a, 2001, 3000, 1, 1, 0), 0); /* concurrently */
    pthread_join(t, NULL);
    ASSERT_EQ(j.rv, 0);
    uint64_t last, rows, keys;
    double ms;
    fsm_snapshot_stats(j.sn, &last, &rows, &keys, &ms);
    ASSERT_U64_EQ(last, 2000);
    ASSERT_U64_EQ(rows, 2000);
    ASSERT_U64_EQ(keys, 1000);
    fsm_snapshot_end(a, j.sn);
    ASSERT_EQ(fsm_restore(b, j.buf, j.len), 0);
    ASSERT_EQ(fsm_value(b), 2000);
    ASSERT_U64_EQ(fsm_last_applied(b), 2000);
    ASSERT_U64_EQ(fsm_count(b), 2000);
    ASSERT_EQ(fsm_lookup(b, "k2000", &r), 0);
    ASSERT_EQ(fsm_lookup(b, "k2002", &r), ERR_NOTFOUND);
    free(j.buf);
    /* Released: the next snapshot sees everything. */
    void *buf;
    size_t len;
    ASSERT_EQ(fsm_snapshot(a, &buf, &len), 0);
    ASSERT_EQ(fsm_restore(b, buf, len), 0);
    ASSERT_EQ(fsm_value(b), 3000);
    ASSERT_U64_EQ(fsm_count(b), 3000);
    free(buf);
    /* A view begun and dropped without writing leaves nothing held. */
    ASSERT_EQ(fsm_snapshot_begin(a, &j.sn), 0);
    fsm_snapshot_end(a, j.sn);
    size_t n = enc("", 1, e);
    ASSERT_EQ(fsm_apply(a, 3001, e, n, &r), 0);
    fsm_close(a);
    fsm_close(b);
    return 0;
}

TEST(second_opener_is_refused)
{
    struct fsm *f = fresh_fsm("s.db");
    ASSERT(f != NULL);
    char p[300];
    path_of(p, sizeof p, "s.db");
    pid_t pid = fork();
    if (pid == 0) {
        char err[512];
        struct fsm *g = NULL;
        int rv = fsm_open(&g, p, err, sizeof err);
        _exit(rv == ERR_BUSY ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fsm_close(f);
    return 0;
}

/* Version-1 entries (no key retention) are still read; unknown versions
 * are refused as such. */
TEST(codec_versions)
{
    static const unsigned char v1[] = {0x97, 1,    1,    5,    2,  7,
                                       0xcd, 0x04, 0xd2, 0xa1, 'k'};
    struct fsm_cmd c;
    ASSERT_EQ(fsm_cmd_decode(v1, sizeof v1, &c), 0);
    ASSERT_EQ(c.by, 5);
    ASSERT_U64_EQ(c.key_retention, 0);
    ASSERT(strcmp(c.key, "k") == 0);
    unsigned char v3[sizeof v1];
    memcpy(v3, v1, sizeof v1);
    v3[1] = 3;
    ASSERT_EQ(fsm_cmd_decode(v3, sizeof v3, &c), ERR_VERSION);
    unsigned char e[FSM_CMD_MAX];
    size_t n = enc_k("abc", 9, 777, e);
    ASSERT(n > 0);
    ASSERT_EQ(fsm_cmd_decode(e, n, &c), 0);
    ASSERT_U64_EQ(c.key_retention, 777);
    return 0;
}

/* --log-retention: the op log keeps the newest N indexes, GET /log's
 * window starts at fsm_log_first, and the rows survive a reopen. */
TEST(log_retention)
{
    struct fsm *f = fresh_fsm("r.db");
    ASSERT(f != NULL);
    fsm_set_retention(f, 100);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc("", 1, e);
    ASSERT_U64_EQ(fsm_log_first(f), 0);
    for (uint64_t i = 1; i <= 250; i++) {
        ASSERT_EQ(fsm_apply(f, i, e, n, &r), 0);
        ASSERT_U64_EQ(r.entry, i);
        if (i % 7 == 0)
            ASSERT_EQ(fsm_flush(f), 0);
    }
    ASSERT_U64_EQ(fsm_count(f), 100);
    ASSERT_U64_EQ(fsm_log_first(f), 151);
    struct fsm_entry es[10];
    unsigned k;
    uint64_t next;
    ASSERT_EQ(fsm_log(f, 1, 10, es, &k, &next), 0);
    ASSERT_EQ(k, 10);
    ASSERT_U64_EQ(es[0].index, 151);
    ASSERT_EQ(es[0].value, 151);
    fsm_close(f); /* flushes the open batch */
    f = open_fsm("r.db");
    ASSERT(f != NULL);
    ASSERT_U64_EQ(fsm_last_applied(f), 250);
    ASSERT_U64_EQ(fsm_count(f), 100);
    ASSERT_U64_EQ(fsm_log_first(f), 151);
    fsm_close(f);
    return 0;
}

/* Key expiry is a function of the entries alone: two FSMs with different
 * local settings apply the same entries and give the same results; a retry
 * within K indexes is a duplicate, one at i + K or later applies again. */
TEST(key_expiry_deterministic)
{
    struct fsm *a, *b;
    ASSERT_EQ(fresh_pair(&a, &b), 0);
    fsm_set_retention(a, 10);
    fsm_set_retention(b, 0);
    const uint64_t K = 50;
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result ra, rb;
    int dups = 0, reapplied = 0;
    for (uint64_t i = 1; i <= 400; i++) {
        char key[32];
        /* key j is first sent at index 10 j, retried at 10 j + 5 * j % 97 */
        uint64_t j = i / 10, first = 10 * j;
        uint64_t retry = first + (5 * j) % 97;
        if (i == first && j > 0)
            snprintf(key, sizeof key, "key-%llu", (unsigned long long)j);
        else if (i % 10 != 0 && j > 0 && i == retry)
            snprintf(key, sizeof key, "key-%llu", (unsigned long long)j);
        else if (i % 10 == 3 && i > 100 && (i - 3) / 10 >= 10)
            snprintf(key, sizeof key, "key-%llu",
                     (unsigned long long)((i - 3) / 10 - 9)); /* ~90 later */
        else
            key[0] = '\0';
        size_t n = enc_k(key, 1, K, e);
        ASSERT_EQ(fsm_apply(a, i, e, n, &ra), 0);
        ASSERT_EQ(fsm_apply(b, i, e, n, &rb), 0);
        ASSERT_EQ(ra.duplicate, rb.duplicate);
        ASSERT_EQ(ra.value, rb.value);
        ASSERT_U64_EQ(ra.index, rb.index);
        if (ra.duplicate) {
            dups++;
            ASSERT(i < ra.index + K); /* remembered for K indexes */
        } else if (key[0] && i != first) {
            reapplied++; /* a retry after its key expired */
        }
        if (i % 13 == 0)
            fsm_flush(a);
    }
    ASSERT(dups > 0);
    ASSERT(reapplied > 0);
    ASSERT_EQ(fsm_value(a), fsm_value(b));
    /* Same keys remembered on both, none older than K. */
    for (uint64_t j = 1; j <= 40; j++) {
        char key[32];
        snprintf(key, sizeof key, "key-%llu", (unsigned long long)j);
        int la = fsm_lookup(a, key, &ra), lb = fsm_lookup(b, key, &rb);
        ASSERT_EQ(la, lb);
        if (la == 0) {
            ASSERT_U64_EQ(ra.index, rb.index);
            ASSERT(ra.index > 400 - K);
        }
    }
    /* The exact rule: applied at index i, a retry at i + K - 1 is a
     * duplicate, at i + K it applies again. */
    size_t n = enc_k("edge", 1, K, e);
    ASSERT_EQ(fsm_apply(a, 1000, e, n, &ra), 0);
    ASSERT(!ra.duplicate);
    ASSERT_EQ(fsm_apply(a, 1000 + K - 1, e, n, &ra), 0);
    ASSERT(ra.duplicate);
    ASSERT_U64_EQ(ra.index, 1000);
    ASSERT_EQ(fsm_apply(a, 1000 + K, e, n, &ra), 0);
    ASSERT(!ra.duplicate);
    ASSERT_U64_EQ(ra.index, 1000 + K);
    fsm_close(a);
    fsm_close(b);
    return 0;
}

/* A snapshot carries the retained window only: its size does not grow with
 * history, and a restore reproduces the window and the live keys. */
TEST(snapshot_bounded_window)
{
    struct fsm *a, *b;
    ASSERT_EQ(fresh_pair(&a, &b), 0);
    fsm_set_retention(a, 200);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t sizes[2];
    const uint64_t ends[2] = {1000, 20000};
    void *buf = NULL;
    size_t len = 0;
    for (int round = 0; round < 2; round++) {
        uint64_t from = round == 0 ? 1 : ends[round - 1] + 1;
        ASSERT_EQ(apply_range(a, from, ends[round], 1, 1, 300), 0);
        free(buf);
        ASSERT_EQ(fsm_snapshot(a, &buf, &len), 0);
        sizes[round] = len;
    }
    ASSERT(sizes[1] < sizes[0] + sizes[0] / 5); /* same window, same size */
    ASSERT_EQ(fsm_restore(b, buf, len), 0);
    ASSERT_U64_EQ(fsm_count(b), 200);
    ASSERT_U64_EQ(fsm_log_first(b), 20000 - 199);
    ASSERT_U64_EQ(fsm_last_applied(b), 20000);
    ASSERT_EQ(fsm_value(b), 20000);
    ASSERT_EQ(fsm_lookup(b, "k19701", &r), 0);            /* 20000 - 300 + 1 */
    ASSERT_EQ(fsm_lookup(b, "k19700", &r), ERR_NOTFOUND); /* expired */
    /* b keeps applying with the same results as a. */
    size_t n = enc_k("k19999", 1, 300, e);
    struct fsm_result rb;
    ASSERT_EQ(fsm_apply(a, 20001, e, n, &r), 0);
    ASSERT_EQ(fsm_apply(b, 20001, e, n, &rb), 0);
    ASSERT(r.duplicate && rb.duplicate);
    ASSERT_EQ(r.value, rb.value);
    free(buf);
    fsm_close(a);
    fsm_close(b);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (fp != NULL) {
        fputs(text, fp);
        fclose(fp);
    }
}

/* synchronous=OFF guard: a state file left "dirty" under another boot id
 * (the machine went down with unsynced writes) is moved aside and the FSM
 * starts empty; a clean one, or a dirty one of this boot (a process
 * crash), is kept. */
TEST(unsynced_state_after_reboot_is_set_aside)
{
    fresh_dir();
    char p[300], lock[320], cmd[400];
    path_of(p, sizeof p, "g.db");
    snprintf(lock, sizeof lock, "%s-lock", p);
    struct fsm *f = open_fsm("g.db");
    ASSERT(f != NULL);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc("", 3, e);
    ASSERT_EQ(fsm_apply(f, 1, e, n, &r), 0);
    fsm_close(f);
    char mark[160] = "";
    FILE *mf = fopen(lock, "r");
    ASSERT(mf != NULL);
    ASSERT(fgets(mark, sizeof mark, mf) != NULL);
    fclose(mf);
    ASSERT(strstr(mark, " clean\n") != NULL); /* fsm_close synced it */
    /* Clean close under another boot: kept. */
    write_file(lock, "nftraft-state v1 00000000-old-boot clean\n");
    f = open_fsm("g.db");
    ASSERT(f != NULL);
    ASSERT_EQ(fsm_value(f), 3);
    fsm_close(f);
    /* Dirty under another boot: set aside. */
    write_file(lock, "nftraft-state v1 00000000-old-boot dirty\n");
    f = open_fsm("g.db");
    ASSERT(f != NULL);
    ASSERT_EQ(fsm_value(f), 0);
    ASSERT_U64_EQ(fsm_last_applied(f), 0);
    fsm_close(f);
    snprintf(cmd, sizeof cmd, "ls %s/g.db.unsynced-* >/dev/null 2>&1", dir);
    ASSERT_EQ(system(cmd), 0);
    return 0;
}

TEST(apply_throughput)
{
    struct fsm *f = fresh_fsm("s.db");
    ASSERT(f != NULL);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc("", 1, e);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 1; i <= 20000; i++)
        ASSERT_EQ(fsm_apply(f, i, e, n, &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s =
        (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("  (figure) fsm_apply: %.0f applies/s\n", 20000 / s);
    ASSERT_EQ(fsm_value(f), 20000);
    fsm_close(f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
    return 0;
}

/* Found by tests/fuzz (fuzz_fsm_entry, fuzz_fsm_snapshot): a container
 * header claiming billions of elements made msgpack-c allocate for all of
 * them up front (ASan: out of memory asking for 0x4000000008 bytes) before
 * seeing that the bytes were not there. Now malformed, nothing allocated. */
TEST(huge_container_counts)
{
    struct fsm_cmd d;
    const unsigned char entry[] = {0x97, 0x01, 0x01, 0xcf, 0x7f, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xdf, 0xff,
                                   0xff, 0x02, 0x01, 0x79, 0x2d, 0x31};
    ASSERT_EQ(fsm_cmd_decode(entry, sizeof entry, &d), ERR_MALFORMED);
    const unsigned char arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    ASSERT_EQ(fsm_cmd_decode(arr, sizeof arr, &d), ERR_MALFORMED);
    const unsigned char str[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 0x01};
    ASSERT_EQ(fsm_cmd_decode(str, sizeof str, &d), ERR_MALFORMED);
    struct fsm *f = fresh_fsm("huge.db");
    ASSERT(f != NULL);
    unsigned char snap[] = {0x95, 0x01, 0x00, 0x05, 0xdd,
                            0x7f, 0xff, 0xff, 0xff, 0x90};
    ASSERT_EQ(fsm_restore(f, snap, sizeof snap), ERR_MALFORMED);
    ASSERT_EQ(fsm_value(f), 0);
    fsm_close(f);
    return 0;
}

/* ---- the PostgreSQL promotion record ---- */

static size_t enc_pg(uint64_t term, uint64_t primary, uint32_t tl, uint64_t lsn,
                     const char *host, int port, unsigned char *buf)
{
    struct fsm_pg r = {.term = term,
                       .primary = primary,
                       .timeline = tl,
                       .lsn = lsn,
                       .port = port};
    snprintf(r.host, sizeof r.host, "%s", host);
    size_t len = 0;
    if (fsm_pg_encode(&r, buf, FSM_CMD_MAX, &len) != 0)
        return 0;
    return len;
}

TEST(pg_codec)
{
    unsigned char buf[FSM_CMD_MAX + 8];
    size_t n = enc_pg(5, 2, 3, 0x3000060, "127.0.0.1", 5433, buf);
    ASSERT(n > 0);
    struct fsm_pg d;
    ASSERT_EQ(fsm_pg_decode(buf, n, &d), 0);
    ASSERT_U64_EQ(d.term, 5);
    ASSERT_U64_EQ(d.primary, 2);
    ASSERT_EQ(d.timeline, 3);
    ASSERT_U64_EQ(d.lsn, 0x3000060);
    ASSERT_STR_EQ(d.host, "127.0.0.1");
    ASSERT_EQ(d.port, 5433);
    /* Not an increment, and an increment is not a pg record. */
    struct fsm_cmd c;
    ASSERT_EQ(fsm_cmd_decode(buf, n, &c), ERR_VERSION);
    unsigned char e[FSM_CMD_MAX];
    size_t en = enc("", 1, e);
    ASSERT_EQ(fsm_pg_decode(e, en, &d), ERR_VERSION);
    /* Truncations, padding, garbage. */
    for (size_t cut = 0; cut < n; cut++)
        ASSERT(fsm_pg_decode(buf, cut, &d) != 0);
    memset(buf + n, 0, 8);
    ASSERT_EQ(fsm_pg_decode(buf, n + 7, &d), 0);
    ASSERT_EQ(fsm_pg_decode(buf, n + 8, &d), ERR_MALFORMED);
    /* The fence record: primary 0, no address. */
    n = enc_pg(6, 0, 3, 0x3000060, "", 0, buf);
    ASSERT(n > 0);
    ASSERT_EQ(fsm_pg_decode(buf, n, &d), 0);
    ASSERT_U64_EQ(d.primary, 0);
    /* Invalid records are refused by the encoder. */
    ASSERT_EQ(enc_pg(0, 2, 1, 0, "h", 1, buf), 0);     /* term 0 */
    ASSERT_EQ(enc_pg(1, 2, 0, 0, "h", 1, buf), 0);     /* timeline 0 */
    ASSERT_EQ(enc_pg(1, 2, 1, 0, "", 1, buf), 0);      /* no host */
    ASSERT_EQ(enc_pg(1, 2, 1, 0, "h", 0, buf), 0);     /* no port */
    ASSERT_EQ(enc_pg(1, 2, 1, 0, "h", 65536, buf), 0); /* port range */
    ASSERT_EQ(enc_pg(1, 0, 1, 0, "h", 5433, buf), 0);  /* fence + host */
    struct fsm_pg big = {.term = 1, .primary = 1, .timeline = 1, .port = 1};
    memset(big.host, 'h', sizeof big.host); /* no terminator */
    ASSERT_EQ(fsm_pg_encode(&big, buf, sizeof buf, &n), ERR_INVALID);
    /* Hand-made: [1, 2, term 1, primary 1, tl 1, lsn 0, "h", port 0]. */
    static const unsigned char noport[] = {0x99, 1, 2,    1,   1, 0,
                                           1,    0, 0xa1, 'h', 0};
    ASSERT_EQ(fsm_pg_decode(noport, sizeof noport, &d), ERR_MALFORMED);
    static const unsigned char nul[] = {0x99, 1, 2, 1, 1, 0, 1, 0, 0xa1, 0, 1};
    ASSERT_EQ(fsm_pg_decode(nul, sizeof nul, &d), ERR_MALFORMED);
    static const unsigned char v2[] = {0x99, 2, 2, 1, 1, 0, 1, 0, 0xa1, 'h', 1};
    ASSERT_EQ(fsm_pg_decode(v2, sizeof v2, &d), ERR_VERSION);
    static const unsigned char ok[] = {0x99, 1, 2, 1, 1, 0, 1, 0, 0xa1, 'h', 1};
    ASSERT_EQ(fsm_pg_decode(ok, sizeof ok, &d), 0);
    /* A primary's record fences nobody; a fence names whom it fences. */
    static const unsigned char fenced[] = {0x99, 1, 2,    1,   1, 2,
                                           1,    0, 0xa1, 'h', 1};
    ASSERT_EQ(fsm_pg_decode(fenced, sizeof fenced, &d), ERR_MALFORMED);
    static const unsigned char fence[] = {0x99, 1, 2, 1, 0, 2, 1, 0, 0xa0, 0};
    ASSERT_EQ(fsm_pg_decode(fence, sizeof fence, &d), 0);
    ASSERT_U64_EQ(d.fenced, 2);
    ASSERT_EQ(fsm_pg_encode(&d, buf, 4, &n), ERR_TOOBIG);
    return 0;
}

struct pg_seen {
    unsigned calls;
    struct fsm_pg last;
};

static void pg_seen_cb(void *data, const struct fsm_pg *rec)
{
    struct pg_seen *s = data;
    s->calls++;
    s->last = *rec;
}

/* The newest record by term is kept (same term: the later entry), an
 * older-term one is a no-op, the hook sees each stored record, the record
 * survives a reopen, and a replay changes nothing. */
TEST(pg_apply_newest)
{
    struct fsm *f = fresh_fsm("pg.db");
    ASSERT(f != NULL);
    struct pg_seen seen = {0};
    fsm_on_pg(f, pg_seen_cb, &seen);
    struct fsm_pg rec;
    ASSERT_EQ(fsm_pg_record(f, &rec), ERR_NOTFOUND);
    ASSERT_EQ(apply_range(f, 1, 3, 1, 0, 0), 0);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc_pg(2, 1, 1, 100, "127.0.0.1", 5433, e);
    ASSERT_EQ(fsm_apply(f, 4, e, n, &r), 0);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.value, 3); /* the counter is untouched */
    ASSERT_EQ(fsm_value(f), 3);
    ASSERT_U64_EQ(fsm_last_applied(f), 4);
    ASSERT_EQ(seen.calls, 1);
    ASSERT_U64_EQ(seen.last.index, 4);
    ASSERT_EQ(fsm_pg_record(f, &rec), 0);
    ASSERT_U64_EQ(rec.primary, 1);
    ASSERT_U64_EQ(rec.index, 4);
    /* Same term, later entry: the fence replaces it. */
    struct fsm_pg fence = {.term = 3, .fenced = 1, .timeline = 1, .lsn = 100};
    ASSERT_EQ(fsm_pg_encode(&fence, e, sizeof e, &n), 0);
    ASSERT_EQ(fsm_apply(f, 5, e, n, &r), 0);
    ASSERT_EQ(fsm_pg_record(f, &rec), 0);
    ASSERT_U64_EQ(rec.primary, 0);
    ASSERT_U64_EQ(rec.fenced, 1);
    n = enc_pg(3, 2, 2, 200, "127.0.0.2", 5434, e);
    ASSERT_EQ(fsm_apply(f, 6, e, n, &r), 0);
    ASSERT_EQ(seen.calls, 3);
    /* An older term is applied as a no-op. */
    n = enc_pg(2, 3, 1, 150, "127.0.0.3", 5435, e);
    ASSERT_EQ(fsm_apply(f, 7, e, n, &r), 0);
    ASSERT_U64_EQ(fsm_last_applied(f), 7);
    ASSERT_EQ(seen.calls, 3);
    ASSERT_EQ(fsm_pg_record(f, &rec), 0);
    ASSERT_U64_EQ(rec.term, 3);
    ASSERT_U64_EQ(rec.primary, 2);
    ASSERT_EQ(rec.timeline, 2);
    ASSERT_U64_EQ(rec.lsn, 200);
    ASSERT_STR_EQ(rec.host, "127.0.0.2");
    ASSERT_EQ(rec.port, 5434);
    ASSERT_U64_EQ(rec.index, 6);
    /* A replay of an applied index changes nothing. */
    n = enc_pg(9, 3, 1, 150, "127.0.0.3", 5435, e);
    ASSERT_EQ(fsm_apply(f, 6, e, n, &r), 0);
    ASSERT_EQ(seen.calls, 3);
    fsm_close(f);
    f = open_fsm("pg.db");
    ASSERT(f != NULL);
    ASSERT_EQ(fsm_pg_record(f, &rec), 0);
    ASSERT_U64_EQ(rec.term, 3);
    ASSERT_U64_EQ(rec.primary, 2);
    ASSERT_STR_EQ(rec.host, "127.0.0.2");
    ASSERT_U64_EQ(rec.index, 6);
    ASSERT_U64_EQ(fsm_last_applied(f), 7);
    fsm_close(f);
    return 0;
}

/* A snapshot carries the record; a version-1 snapshot (none) still
 * restores and clears it; a bad record refuses the whole snapshot. */
TEST(pg_snapshot)
{
    struct fsm *a, *b;
    ASSERT_EQ(fresh_pair(&a, &b), 0);
    struct pg_seen seen = {0};
    fsm_on_pg(b, pg_seen_cb, &seen);
    ASSERT_EQ(apply_range(a, 1, 10, 0, 0, 0), 0);
    void *buf;
    size_t len;
    /* No record yet: version 1, as the previous release wrote it. */
    ASSERT_EQ(fsm_snapshot(a, &buf, &len), 0);
    ASSERT(len > 2 && ((unsigned char *)buf)[0] == 0x95 &&
           ((unsigned char *)buf)[1] == 1);
    free(buf);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc_pg(4, 1, 2, 0x5000028, "10.0.0.1", 5433, e);
    ASSERT_EQ(fsm_apply(a, 11, e, n, &r), 0);
    ASSERT_EQ(fsm_snapshot(a, &buf, &len), 0);
    ASSERT(len > 2 && ((unsigned char *)buf)[0] == 0x96 &&
           ((unsigned char *)buf)[1] == 2);
    ASSERT_EQ(fsm_restore(b, buf, len), 0);
    free(buf);
    struct fsm_pg rec;
    ASSERT_EQ(fsm_pg_record(b, &rec), 0);
    ASSERT_U64_EQ(rec.term, 4);
    ASSERT_U64_EQ(rec.lsn, 0x5000028);
    ASSERT_STR_EQ(rec.host, "10.0.0.1");
    ASSERT_U64_EQ(rec.index, 11);
    ASSERT_EQ(seen.calls, 1);
    ASSERT_EQ(fsm_value(b), 55);
    /* Version 1: [1, value 7, last_applied 20, [], []]: no record. */
    static const unsigned char v1[] = {0x95, 1, 7, 20, 0x90, 0x90};
    ASSERT_EQ(fsm_restore(b, v1, sizeof v1), 0);
    ASSERT_EQ(fsm_value(b), 7);
    ASSERT_U64_EQ(fsm_last_applied(b), 20);
    ASSERT_EQ(fsm_pg_record(b, &rec), ERR_NOTFOUND);
    /* Version 2 with a record whose index is past last_applied, or an
     * invalid record: refused, nothing changes. */
    static const unsigned char late[] = {0x96, 2, 8, 30, 0x90, 0x90, 0x98, 1,
                                         1,    0, 1, 0,  0xa1, 'h',  1,    31};
    ASSERT_EQ(fsm_restore(b, late, sizeof late), ERR_MALFORMED);
    static const unsigned char bad[] = {0x96, 2, 8, 30, 0x90, 0x90, 0x98, 1,
                                        1,    0, 0, 0,  0xa1, 'h',  1,    29};
    ASSERT_EQ(fsm_restore(b, bad, sizeof bad), ERR_MALFORMED);
    ASSERT_EQ(fsm_value(b), 7);
    static const unsigned char good[] = {0x96, 2, 8, 30, 0x90, 0x90, 0x98, 1,
                                         1,    0, 1, 0,  0xa1, 'h',  1,    29};
    ASSERT_EQ(fsm_restore(b, good, sizeof good), 0);
    ASSERT_EQ(fsm_pg_record(b, &rec), 0);
    ASSERT_U64_EQ(rec.index, 29);
    static const unsigned char v2nil[] = {0x96, 2, 9, 35, 0x90, 0x90, 0xc0};
    ASSERT_EQ(fsm_restore(b, v2nil, sizeof v2nil), 0);
    ASSERT_U64_EQ(fsm_last_applied(b), 35);
    ASSERT_EQ(fsm_pg_record(b, &rec), ERR_NOTFOUND);
    static const unsigned char v3[] = {0x96, 3, 8, 40, 0x90, 0x90, 0xc0};
    ASSERT_EQ(fsm_restore(b, v3, sizeof v3), ERR_VERSION);
    fsm_close(a);
    fsm_close(b);
    return 0;
}

/* A state file of schema 2 (before the pg record) opens, upgrades, and
 * keeps its state. */
TEST(pg_schema_upgrade)
{
    fresh_dir();
    char p[300];
    path_of(p, sizeof p, "old.db");
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(p, &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db,
                     "CREATE TABLE state(id INTEGER PRIMARY KEY CHECK (id = 1),"
                     " value INTEGER NOT NULL, last_applied INTEGER NOT NULL);"
                     "INSERT INTO state VALUES (1, 42, 9);"
                     "CREATE TABLE oplog(idx INTEGER PRIMARY KEY, term INTEGER"
                     " NOT NULL, by INTEGER NOT NULL, value INTEGER NOT NULL,"
                     " node INTEGER NOT NULL, time INTEGER NOT NULL);"
                     "CREATE TABLE dedup(key TEXT PRIMARY KEY, idx INTEGER NOT"
                     " NULL, value INTEGER NOT NULL);"
                     "CREATE INDEX dedup_idx ON dedup(idx);"
                     "PRAGMA user_version = 2;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    struct fsm *f = open_fsm("old.db");
    ASSERT(f != NULL);
    ASSERT_EQ(fsm_value(f), 42);
    ASSERT_U64_EQ(fsm_last_applied(f), 9);
    struct fsm_pg rec;
    ASSERT_EQ(fsm_pg_record(f, &rec), ERR_NOTFOUND);
    unsigned char e[FSM_CMD_MAX];
    struct fsm_result r;
    size_t n = enc_pg(1, 1, 1, 5, "127.0.0.1", 5433, e);
    ASSERT_EQ(fsm_apply(f, 10, e, n, &r), 0);
    fsm_close(f);
    f = open_fsm("old.db");
    ASSERT(f != NULL);
    ASSERT_EQ(fsm_pg_record(f, &rec), 0);
    ASSERT_U64_EQ(rec.index, 10);
    fsm_close(f);
    return 0;
}

TEST_LIST(TEST_ENTRY(codec_roundtrip), TEST_ENTRY(codec_rejects),
          TEST_ENTRY(huge_container_counts),
          TEST_ENTRY(apply_dedupe_overflow_replay), TEST_ENTRY(log_paging),
          TEST_ENTRY(snapshot_restore),
          TEST_ENTRY(snapshot_view_is_pinned_while_applying),
          TEST_ENTRY(corrupt_file_untouched),
          TEST_ENTRY(second_opener_is_refused), TEST_ENTRY(codec_versions),
          TEST_ENTRY(log_retention), TEST_ENTRY(key_expiry_deterministic),
          TEST_ENTRY(snapshot_bounded_window),
          TEST_ENTRY(unsynced_state_after_reboot_is_set_aside),
          TEST_ENTRY(apply_throughput), TEST_ENTRY(pg_codec),
          TEST_ENTRY(pg_apply_newest), TEST_ENTRY(pg_snapshot),
          TEST_ENTRY(pg_schema_upgrade))
