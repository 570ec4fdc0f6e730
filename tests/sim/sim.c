/* sim.c - deterministic cluster simulation of the replicated counter.
 *
 * Runs 3 or 5 raft servers in one process on raft's own in-memory test
 * fixture (raft/fixture.h: simulated time, network and disk), each server
 * with the project's real state machine: fsm/raftfsm.c over fsm/fsm.c, one
 * SQLite file per server under <dir>/seed-<S>/s<i>.db (paths depend only on
 * --dir, the seed and the server).
 *
 * Schedule. Everything is drawn from one PRNG seeded by the seed number; no
 * wall clock is read. Odd seeds run 3 servers, even seeds 5. Before each of
 * the K fixture steps (one step = one tick, disk completion or message
 * delivery) the schedule may:
 *   - crash a server (raft_fixture_kill: no ticks, no messages) or revive
 *     one; a crashed server's SQLite store may be closed and reopened
 *     ("store reopen", checked to come back identical); the fixture cannot
 *     restart a raft instance from its persisted log, so that is left out;
 *   - partition a pair of servers (both directions, either silently
 *     dropping with saturate or failing sends with disconnect), isolate one
 *     server, open a one-way message-loss window, heal one or all;
 *   - change a server's network latency (this reorders its messages); disk
 *     latency is drawn once per server and seed (2-16 ms): changing it would
 *     complete appends out of order, which no real disk does and raft_io
 *     does not allow (raft then counts garbage as persisted);
 *   - change a server's next randomized election timeout;
 *   - submit an increment through raft_apply on a live leader: a new one
 *     (unique `by` = op number + 1; 40% carry an idempotency key) or a retry
 *     of a keyed one whose outcome is unknown or already acknowledged.
 * Snapshots: every server uses a small threshold (8-24 entries) and trailing
 * (2-8), so snapshots are taken often and lagging servers get InstallSnapshot.
 * After the K steps the network is healed, every server revived, and the
 * cluster stepped until all servers applied everything (the final checks).
 * A cluster that does not converge within 120 simulated seconds prints a
 * "sim: STALL" line (liveness, not one of the invariants below; --strict
 * counts it as a violation) and the final checks cover what each server
 * applied.
 *
 * Invariants, checked after every step:
 *   1. at most one leader per term (over the whole run, not only at once);
 *   2. state machines agree on every applied index: each server's op-log
 *      rows (index, term, by, value, node, time) equal the first row any
 *      server applied at that index, and a store's last applied index never
 *      goes back;
 *   3. every acknowledged increment (apply callback status 0, FSM status 0)
 *      is in the op log at the index the FSM reported, with its `by` and the
 *      value it reported; after the final convergence it is on every server;
 *   4. idempotency: an increment is in the op log at most once; every
 *      acknowledgement of the same key reports the same index and value; an
 *      increment without a key is never reported as a duplicate.
 * The fixture itself aborts on two simultaneous leaders of one term or a
 * leader overwriting its log; the abort handler then prints the seed/step.
 *
 * A violation prints "sim: VIOLATION seed=S step=K servers=N: what" and how
 * to replay it; the seed's SQLite files are kept. The same seed and step
 * count replay the same run exactly.
 *
 * Test-only mutation: built with -DSIM_MUTATION_ACK_BEFORE_COMMIT (the
 * nftraft_sim_mutant target), the client records an acknowledgement when
 * raft_apply accepts the entry instead of when raft reports it applied.
 * `./run.sh test` requires that binary to report violations.
 *
 * Usage: nftraft_sim [--seeds N | --seed S] [--steps K] [--dir D]
 *                    [--fail-fast] [--strict] [-v] [--trace]
 * -v prints one line per seed (ops, acks, crashes, ...); --trace adds raft's
 * own diagnostics (the fixture's tracer) and the FSM's info logs.
 * Exit status 0 when no violation, 1 on violations, 2 on bad usage. */
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"
#include "fsm/fsm.h"
#include "fsm/raftfsm.h"

#include <raft.h>
#include <raft/fixture.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_MAX 5
#define SIM_CONVERGE_MS 120000 /* simulated time allowed to converge */

/* One raft_apply of an op; owned by the sim, freed at the end of a seed
 * (after raft_fixture_close, so raft never holds a freed request). */
struct sim_attempt {
    struct raft_apply req;
    struct sim *sim;
    unsigned op;
    bool done;
    struct list link; /* in sim.attempts */
};

/* One client increment and what the client was told about it. */
struct sim_op {
    int64_t by;
    char key[40];      /* "" when the op has no idempotency key */
    bool submitted;    /* raft_apply accepted it at least once */
    unsigned inflight; /* accepted attempts whose callback has not fired */
    bool acked;
    bool ack_has_value; /* the ack carries the FSM's value and index */
    bool verified;      /* checked against the reference op log */
    int64_t ack_value;
    uint64_t ack_index;
};

/* The first op-log row any server applied at an index. */
struct sim_row {
    bool set;
    unsigned server;
    struct fsm_entry e;
};

struct sim_server {
    struct fsm *state;
    struct raftfsm rf;
    char path[700];
    uint64_t seen;       /* op-log rows compared up to this index */
    bool part[SIM_MAX];  /* drop messages from this server to j */
    bool disc[SIM_MAX];  /* sends from this server to j fail */
    bool fdisc[SIM_MAX]; /* disconnect currently applied in the fixture */
};

struct sim {
    /* options */
    unsigned steps;
    const char *dir;
    bool verbose;
    bool trace;
    /* the seed being run */
    uint64_t seed;
    uint64_t rng;
    unsigned n;
    unsigned step;
    bool in_final;
    bool strict;  /* a stall (no convergence) counts as a violation */
    bool stalled; /* the cluster did not converge after healing */
    struct raft_fixture f;
    bool f_init;
    struct sim_server srv[SIM_MAX];
    struct sim_op *ops;
    unsigned n_ops, cap_ops;
    struct sim_row *rows;
    uint64_t cap_rows;
    raft_id *leader_of; /* term -> leader id, 0 when none seen */
    uint64_t cap_terms;
    struct list attempts; /* every struct sim_attempt of the seed */
    char seed_dir[600];
    bool failed;
    /* statistics of the seed */
    unsigned n_acks, n_kills, n_parts, n_reopens;
    raft_term max_term;
};

/* The one file-scope variable: what the SIGABRT handler prints when the
 * fixture's own election-safety check (or an assert) aborts the process. */
static const struct sim *volatile sim_current;

static void on_abort(int sig)
{
    const struct sim *s = sim_current;
    if (s != NULL) {
        char line[200];
        int len = snprintf(line, sizeof line,
                           "\nsim: VIOLATION seed=%llu step=%u servers=%u: "
                           "crashed (signal %d: a fixture safety check, "
                           "an assert or a memory error)\n",
                           (unsigned long long)s->seed, s->step, s->n, sig);
        if (len > 0 && write(2, line, (size_t)len) < 0)
            _exit(134);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- deterministic randomness (splitmix64) ---- */

static uint64_t rnd64(struct sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static unsigned rnd(struct sim *s, unsigned n)
{
    return (unsigned)(rnd64(s) % n);
}

/* ---- reporting ---- */

static void violation(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct sim *s, const char *fmt, ...)
{
    if (s->failed)
        return; /* the first one per seed is the one to replay */
    s->failed = true;
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sim: VIOLATION seed=%llu step=%u%s servers=%u: %s\n",
            (unsigned long long)s->seed, s->step,
            s->in_final ? " (final check)" : "", s->n, what);
    fprintf(stderr,
            "sim: replay with: ./run.sh sim --seed %llu --steps %u "
            "(state files kept in %s)\n",
            (unsigned long long)s->seed, s->steps, s->seed_dir);
}

/* ---- growable arrays ---- */

static void *grow(void *p, uint64_t *cap, uint64_t need, size_t size)
{
    if (need < *cap)
        return p;
    uint64_t c = *cap ? *cap : 64;
    while (c <= need)
        c *= 2;
    char *q = realloc(p, c * size);
    if (q == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    memset(q + *cap * size, 0, (c - *cap) * size);
    *cap = c;
    return q;
}

static struct sim_op *new_op(struct sim *s, bool keyed)
{
    uint64_t cap = s->cap_ops;
    s->ops = grow(s->ops, &cap, s->n_ops, sizeof *s->ops);
    s->cap_ops = (unsigned)cap;
    struct sim_op *op = &s->ops[s->n_ops];
    memset(op, 0, sizeof *op);
    op->by = (int64_t)s->n_ops + 1; /* unique per seed */
    if (keyed)
        snprintf(op->key, sizeof op->key, "seed%llu-op%u",
                 (unsigned long long)s->seed, s->n_ops);
    s->n_ops++;
    return op;
}

/* ---- network model: desired partitions + liveness -> fixture ---- */

/* Undo every disconnect (the fixture's saturate/kill/revive need connected
 * pairs). */
static void net_reconnect_all(struct sim *s)
{
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned j = 0; j < s->n; j++)
            if (s->srv[i].fdisc[j]) {
                raft_fixture_reconnect(&s->f, i, j);
                s->srv[i].fdisc[j] = false;
            }
}

/* Make the fixture match the model: a pair drops messages when partitioned
 * or when either end is dead; then apply the disconnects. */
static void net_apply(struct sim *s)
{
    net_reconnect_all(s);
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned j = 0; j < s->n; j++) {
            if (i == j)
                continue;
            bool want = s->srv[i].part[j] || !raft_fixture_alive(&s->f, i) ||
                        !raft_fixture_alive(&s->f, j);
            bool cur = raft_fixture_saturated(&s->f, i, j);
            if (want && !cur)
                raft_fixture_saturate(&s->f, i, j);
            else if (!want && cur)
                raft_fixture_desaturate(&s->f, i, j);
        }
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned j = 0; j < s->n; j++)
            if (i != j && s->srv[i].disc[j]) {
                raft_fixture_disconnect(&s->f, i, j);
                s->srv[i].fdisc[j] = true;
            }
}

static unsigned n_alive(struct sim *s)
{
    unsigned k = 0;
    for (unsigned i = 0; i < s->n; i++)
        k += raft_fixture_alive(&s->f, i);
    return k;
}

/* ---- client ---- */

#ifndef SIM_MUTATION_ACK_BEFORE_COMMIT
static void record_ack(struct sim *s, struct sim_op *op, int64_t value,
                       uint64_t index, bool duplicate)
{
    s->n_acks++;
    if (duplicate && op->key[0] == '\0')
        violation(s, "op %lld (no key) acknowledged as a duplicate",
                  (long long)op->by);
    if (op->acked && op->ack_has_value &&
        (op->ack_value != value || op->ack_index != index))
        violation(s,
                  "key %s acknowledged twice with different results: "
                  "index %llu value %lld, then index %llu value %lld",
                  op->key, (unsigned long long)op->ack_index,
                  (long long)op->ack_value, (unsigned long long)index,
                  (long long)value);
    if (!op->acked || !op->ack_has_value) {
        op->acked = true;
        op->ack_has_value = true;
        op->ack_value = value;
        op->ack_index = index;
        op->verified = false;
    }
}

#endif

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct sim_attempt *a = req->data;
    struct sim *s = a->sim;
    struct sim_op *op = &s->ops[a->op];
    a->done = true;
    op->inflight--;
    if (status != 0)
        return; /* outcome unknown to the client (e.g. leadership lost) */
    const struct fsm_result *res = result;
    if (res != NULL && res->entry != req->index)
        return; /* result slot reused (as net/api.c: outcome unknown) */
    if (res == NULL || res->status != 0) {
        violation(s, "op %lld: entry applied but the FSM rejected it (%d)",
                  (long long)op->by, res ? res->status : -1);
        return;
    }
#ifndef SIM_MUTATION_ACK_BEFORE_COMMIT
    record_ack(s, op, res->value, res->index, res->duplicate);
#endif
}

/* Submit a new increment or retry a keyed one on a random live leader. */
static void client_submit(struct sim *s)
{
    unsigned leaders[SIM_MAX], nl = 0;
    for (unsigned i = 0; i < s->n; i++)
        if (raft_fixture_alive(&s->f, i) &&
            raft_state(raft_fixture_get(&s->f, i)) == RAFT_LEADER)
            leaders[nl++] = i;
    if (nl == 0)
        return;
    unsigned li = leaders[rnd(s, nl)];
    struct raft *r = raft_fixture_get(&s->f, li);

    struct sim_op *op = NULL;
    if (rnd(s, 4) == 0) { /* retry a keyed op, if there is one */
        unsigned cand = 0;
        for (unsigned k = 0; k < s->n_ops; k++)
            cand += s->ops[k].key[0] != '\0' && s->ops[k].submitted;
        if (cand > 0) {
            unsigned pick = rnd(s, cand);
            for (unsigned k = 0; k < s->n_ops; k++)
                if (s->ops[k].key[0] != '\0' && s->ops[k].submitted &&
                    pick-- == 0) {
                    op = &s->ops[k];
                    break;
                }
        }
    }
    if (op == NULL)
        op = new_op(s, rnd(s, 10) < 4);

    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.by = op->by;
    cmd.node = r->id;
    cmd.term = raft_current_term(r);
    cmd.time_ms = (int64_t)raft_fixture_time(&s->f);
    snprintf(cmd.key, sizeof cmd.key, "%s", op->key);
    unsigned char enc[FSM_CMD_MAX];
    size_t len;
    if (fsm_cmd_encode(&cmd, enc, sizeof enc, &len) != 0) {
        violation(s, "cannot encode op %lld", (long long)op->by);
        return;
    }
    size_t padded = (len + 7) / 8 * 8; /* as core/node.c does */
    struct raft_buffer buf = {.base = raft_malloc(padded), .len = padded};
    struct sim_attempt *a = calloc(1, sizeof *a);
    if (buf.base == NULL || a == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    memset(buf.base, 0, padded);
    memcpy(buf.base, enc, len);
    a->sim = s;
    a->op = (unsigned)(op - s->ops);
    a->req.data = a;
    int rv = raft_apply(r, &a->req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        free(a);
        return;
    }
    list_insert_head(&s->attempts, &a->link);
    op->submitted = true;
    op->inflight++;
#ifdef SIM_MUTATION_ACK_BEFORE_COMMIT
    /* The mutation under test: acknowledge on submission. The index is
     * where the entry went in the leader's log; no value is known yet. */
    if (!op->acked) {
        s->n_acks++;
        op->acked = true;
        op->ack_index = a->req.index;
    }
#endif
}

/* ---- stores ---- */

static int store_open(struct sim *s, unsigned i)
{
    char err[512];
    int rv = fsm_open(&s->srv[i].state, s->srv[i].path, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "sim: %s\n", err);
        return rv;
    }
    return 0;
}

/* Close and reopen the SQLite store of (dead) server i: what a process
 * restart does to the state machine. */
static void store_reopen(struct sim *s, unsigned i)
{
    struct sim_server *sv = &s->srv[i];
    if (sv->rf.snap != NULL)
        return; /* a snapshot holds a read view of the store */
    int64_t value = fsm_value(sv->state);
    uint64_t last = fsm_last_applied(sv->state);
    uint64_t count = fsm_count(sv->state);
    fsm_close(sv->state);
    sv->state = NULL;
    if (store_open(s, i) != 0) {
        violation(s, "server %u: store does not reopen", i + 1);
        exit(1); /* the raft instance has no store left to apply to */
    }
    sv->rf.state = sv->state;
    s->n_reopens++;
    if (fsm_value(sv->state) != value || fsm_last_applied(sv->state) != last ||
        fsm_count(sv->state) != count)
        violation(s,
                  "server %u: reopened store differs: value %lld->%lld "
                  "last_applied %llu->%llu rows %llu->%llu",
                  i + 1, (long long)value, (long long)fsm_value(sv->state),
                  (unsigned long long)last,
                  (unsigned long long)fsm_last_applied(sv->state),
                  (unsigned long long)count,
                  (unsigned long long)fsm_count(sv->state));
}

/* ---- the schedule ---- */

static void schedule(struct sim *s)
{
    unsigned x = rnd(s, 1000);
    unsigned i = rnd(s, s->n), j = rnd(s, s->n);
    struct raft_fixture *f = &s->f;
    if (x < 5) { /* crash: usually keep a majority alive */
        if (raft_fixture_alive(f, i) &&
            (n_alive(s) > s->n / 2 + 1 || rnd(s, 4) == 0)) {
            net_reconnect_all(s);
            raft_fixture_kill(f, i);
            net_apply(s);
            s->n_kills++;
        }
    } else if (x < 13) { /* revive */
        if (!raft_fixture_alive(f, i)) {
            net_reconnect_all(s);
            raft_fixture_revive(f, i);
            net_apply(s);
        }
    } else if (x < 18) { /* partition a pair, both ways */
        if (i != j) {
            bool d = rnd(s, 2);
            s->srv[i].part[j] = s->srv[j].part[i] = !d;
            s->srv[i].disc[j] = s->srv[j].disc[i] = d;
            net_apply(s);
            s->n_parts++;
        }
    } else if (x < 20) { /* isolate one server */
        for (unsigned k = 0; k < s->n; k++)
            if (k != i)
                s->srv[i].part[k] = s->srv[k].part[i] = true;
        net_apply(s);
        s->n_parts++;
    } else if (x < 25) { /* one-way message loss window */
        if (i != j) {
            s->srv[i].part[j] = true;
            net_apply(s);
        }
    } else if (x < 33) { /* heal one server's links */
        for (unsigned k = 0; k < s->n; k++) {
            s->srv[i].part[k] = s->srv[k].part[i] = false;
            s->srv[i].disc[k] = s->srv[k].disc[i] = false;
        }
        net_apply(s);
    } else if (x < 36) { /* heal everything */
        for (unsigned a = 0; a < s->n; a++)
            for (unsigned b = 0; b < s->n; b++)
                s->srv[a].part[b] = s->srv[a].disc[b] = false;
        net_apply(s);
    } else if (x < 44) { /* network latency: reorders messages */
        raft_fixture_set_network_latency(f, i, 1 + rnd(s, 120));
    } else if (x < 48) { /* election timing */
        raft_fixture_set_randomized_election_timeout(f, i, 1000 + rnd(s, 1000));
    } else if (x < 51) { /* store reopen on a crashed server */
        if (!raft_fixture_alive(f, i))
            store_reopen(s, i);
    } else if (x < 140) {
        client_submit(s);
    }
}

/* ---- invariants ---- */

static void check_row(struct sim *s, unsigned i, const struct fsm_entry *e)
{
    s->rows = grow(s->rows, &s->cap_rows, e->index, sizeof *s->rows);
    struct sim_row *ref = &s->rows[e->index];
    if (!ref->set) {
        ref->set = true;
        ref->server = i;
        ref->e = *e;
        return;
    }
    const struct fsm_entry *o = &ref->e;
    if (o->term != e->term || o->by != e->by || o->value != e->value ||
        o->node != e->node || o->time_ms != e->time_ms)
        violation(s,
                  "state machines disagree at index %llu: server %u applied "
                  "term=%llu by=%lld value=%lld, server %u applied "
                  "term=%llu by=%lld value=%lld",
                  (unsigned long long)e->index, ref->server + 1,
                  (unsigned long long)o->term, (long long)o->by,
                  (long long)o->value, i + 1, (unsigned long long)e->term,
                  (long long)e->by, (long long)e->value);
}

/* Compare server i's op-log rows in [from, to] with the reference. */
static void check_log(struct sim *s, unsigned i, uint64_t from, uint64_t to)
{
    struct fsm_entry rows[64];
    while (from <= to && !s->failed) {
        unsigned n;
        uint64_t next;
        if (fsm_log(s->srv[i].state, from, 64, rows, &n, &next) != 0) {
            violation(s, "server %u: op log unreadable: %s", i + 1,
                      fsm_errmsg(s->srv[i].state));
            return;
        }
        if (n == 0)
            break;
        for (unsigned k = 0; k < n && rows[k].index <= to; k++)
            check_row(s, i, &rows[k]);
        from = next;
    }
}

static void check_ack(struct sim *s, struct sim_op *op)
{
    if (!op->acked || op->verified || op->ack_index >= s->cap_rows ||
        !s->rows[op->ack_index].set)
        return;
    const struct fsm_entry *e = &s->rows[op->ack_index].e;
    char told[64] = "no value";
    if (op->ack_has_value)
        snprintf(told, sizeof told, "value %lld", (long long)op->ack_value);
    if (e->by != op->by || (op->ack_has_value && e->value != op->ack_value))
        violation(s,
                  "acknowledged increment by=%lld (index %llu, %s) "
                  "but index %llu holds by=%lld value=%lld",
                  (long long)op->by, (unsigned long long)op->ack_index, told,
                  (unsigned long long)op->ack_index, (long long)e->by,
                  (long long)e->value);
    op->verified = true;
}

static void check_step(struct sim *s)
{
    /* What the node's loop does once per iteration: commit the FSMs'
     * batch of applies. */
    for (unsigned i = 0; i < s->n; i++)
        if (s->srv[i].state != NULL)
            raftfsm_flush(&s->srv[i].rf);
    /* 1. one leader per term, over the whole run */
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = raft_fixture_get(&s->f, i);
        if (raft_state(r) != RAFT_LEADER)
            continue;
        raft_term t = raft_current_term(r);
        if (t > s->max_term)
            s->max_term = t;
        s->leader_of = grow(s->leader_of, &s->cap_terms, t, sizeof(raft_id));
        if (s->leader_of[t] == 0)
            s->leader_of[t] = r->id;
        else if (s->leader_of[t] != r->id)
            violation(s, "two leaders in term %llu: servers %llu and %llu",
                      (unsigned long long)t,
                      (unsigned long long)s->leader_of[t],
                      (unsigned long long)r->id);
    }
    /* 2. every newly applied row agrees with the reference */
    for (unsigned i = 0; i < s->n; i++) {
        struct sim_server *sv = &s->srv[i];
        uint64_t la = fsm_last_applied(sv->state);
        if (la < sv->seen) {
            violation(s, "server %u: last applied went back from %llu to %llu",
                      i + 1, (unsigned long long)sv->seen,
                      (unsigned long long)la);
            return;
        }
        if (la > raft_last_applied(raft_fixture_get(&s->f, i))) {
            violation(s, "server %u: store applied %llu, raft only %llu", i + 1,
                      (unsigned long long)la,
                      (unsigned long long)raft_last_applied(
                          raft_fixture_get(&s->f, i)));
            return;
        }
        if (la > sv->seen) {
            check_log(s, i, sv->seen + 1, la);
            sv->seen = la;
        }
    }
    /* 3. acknowledgements match what was applied */
    for (unsigned k = 0; k < s->n_ops && !s->failed; k++)
        check_ack(s, &s->ops[k]);
}

/* ---- convergence and the final checks ---- */

static bool converged(struct sim *s)
{
    unsigned li = raft_fixture_leader_index(&s->f);
    if (li >= s->n)
        return false;
    struct raft *l = raft_fixture_get(&s->f, li);
    raft_index last = raft_last_index(l);
    if (raft_commit_index(l) != last)
        return false;
    for (unsigned i = 0; i < s->n; i++)
        if (raft_last_applied(raft_fixture_get(&s->f, i)) != last)
            return false;
    struct list *pos;
    LIST_FOREACH(pos, &s->attempts)
        if (!LIST_CONTAINER_OF(pos, struct sim_attempt, link)->done)
            return false;
    return true;
}

/* No convergence SIM_CONVERGE_MS after healing everything: liveness, not
 * one of the safety invariants, reported (a violation with --strict). */
static void report_stall(struct sim *s)
{
    char st[400];
    size_t off = 0;
    for (unsigned i = 0; i < s->n && off < sizeof st; i++) {
        struct raft *r = raft_fixture_get(&s->f, i);
        int w = snprintf(st + off, sizeof st - off,
                         " [server %u %s term %llu last %llu commit "
                         "%llu applied %llu]",
                         i + 1, raft_state_name(raft_state(r)),
                         (unsigned long long)raft_current_term(r),
                         (unsigned long long)raft_last_index(r),
                         (unsigned long long)raft_commit_index(r),
                         (unsigned long long)raft_last_applied(r));
        off += w > 0 ? (size_t)w : 0;
    }
    fprintf(stderr,
            "sim: STALL seed=%llu servers=%u: no convergence %u s "
            "after healing everything:%s\n",
            (unsigned long long)s->seed, s->n, SIM_CONVERGE_MS / 1000, st);
    if (s->strict)
        violation(s, "no convergence (--strict)");
}

/* Server i's whole op log against the reference (count: scratch room for
 * n_ops + 1 counters): each op applied at most once, every acknowledged one
 * there with its answer, the same state as server 1 unless stalled. */
static void check_server_log(struct sim *s, unsigned i, unsigned *count)
{
    struct fsm *s0 = s->srv[0].state;
    struct fsm *st = s->srv[i].state;
    uint64_t la = fsm_last_applied(st);
    if (!s->stalled &&
        (fsm_value(st) != fsm_value(s0) || la != fsm_last_applied(s0)))
        violation(s,
                  "after convergence server %u has value %lld at %llu, "
                  "server 1 value %lld at %llu",
                  i + 1, (long long)fsm_value(st),
                  (unsigned long long)fsm_last_applied(st),
                  (long long)fsm_value(s0),
                  (unsigned long long)fsm_last_applied(s0));
    memset(count, 0, (s->n_ops + 1) * sizeof *count);
    struct fsm_entry rows[64];
    uint64_t from = 1;
    for (;;) {
        unsigned n;
        uint64_t next;
        if (fsm_log(st, from, 64, rows, &n, &next) != 0 || n == 0)
            break;
        for (unsigned k = 0; k < n; k++) {
            check_row(s, i, &rows[k]);
            int64_t by = rows[k].by;
            if (by >= 1 && by <= (int64_t)s->n_ops)
                count[by]++;
            else
                violation(s, "server %u: unknown increment by=%lld", i + 1,
                          (long long)by);
        }
        from = next;
    }
    for (unsigned k = 0; k < s->n_ops && !s->failed; k++) {
        struct sim_op *op = &s->ops[k];
        if (count[op->by] > 1)
            violation(s,
                      "server %u: increment by=%lld%s%s applied %u "
                      "times",
                      i + 1, (long long)op->by, op->key[0] ? " key=" : "",
                      op->key, count[op->by]);
        else if (op->acked && op->ack_index <= la && count[op->by] == 0)
            violation(s,
                      "server %u: acknowledged increment by=%lld "
                      "(index %llu) is not in the op log",
                      i + 1, (long long)op->by,
                      (unsigned long long)op->ack_index);
        else if (op->acked && op->ack_has_value && op->key[0] &&
                 op->ack_index <= la) {
            struct fsm_result r;
            if (fsm_lookup(st, op->key, &r) != 0 || r.index != op->ack_index ||
                r.value != op->ack_value)
                violation(s,
                          "server %u: key %s not recorded as "
                          "acknowledged (index %llu value %lld)",
                          i + 1, op->key, (unsigned long long)op->ack_index,
                          (long long)op->ack_value);
        }
    }
}

static void final_checks(struct sim *s)
{
    s->in_final = true;
    for (unsigned a = 0; a < s->n; a++) {
        for (unsigned b = 0; b < s->n; b++)
            s->srv[a].part[b] = s->srv[a].disc[b] = false;
        raft_fixture_set_network_latency(&s->f, a, 15);
    }
    net_reconnect_all(s);
    for (unsigned i = 0; i < s->n; i++)
        if (!raft_fixture_alive(&s->f, i))
            raft_fixture_revive(&s->f, i);
    net_apply(s);
    raft_time start = raft_fixture_time(&s->f);
    while (!converged(s) && !s->failed) {
        if (raft_fixture_time(&s->f) - start > SIM_CONVERGE_MS) {
            report_stall(s); /* counted; the checks below then cover
                              * what each server has */
            s->stalled = true;
            break;
        }
        raft_fixture_step(&s->f);
        check_step(s);
    }
    if (s->failed)
        return;

    /* Every server: the whole op log against the reference; count each op. */
    unsigned *count = calloc(s->n_ops + 1, sizeof *count);
    if (count == NULL)
        exit(2);
    for (unsigned i = 0; i < s->n && !s->failed; i++)
        check_server_log(s, i, count);
    free(count);
    for (unsigned k = 0; k < s->n_ops && !s->failed; k++) {
        s->ops[k].verified = false;
        check_ack(s, &s->ops[k]);
        if (s->ops[k].acked && !s->ops[k].verified && !s->failed)
            violation(s,
                      "acknowledged increment by=%lld: index %llu holds "
                      "no increment",
                      (long long)s->ops[k].by,
                      (unsigned long long)s->ops[k].ack_index);
    }
}

/* ---- one seed ---- */

static void remove_files(const char *path)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-lock", "-journal"};
    char p[720];
    for (size_t k = 0; k < sizeof sfx / sizeof sfx[0]; k++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[k]);
        unlink(p);
    }
}

static int setup(struct sim *s)
{
    snprintf(s->seed_dir, sizeof s->seed_dir, "%s/seed-%llu", s->dir,
             (unsigned long long)s->seed);
    if (mkdir(s->seed_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "sim: cannot create %s: %s\n", s->seed_dir,
                strerror(errno));
        return ERR_IO;
    }
    if (raft_fixture_init(&s->f) != 0)
        return ERR_NOMEM;
    s->f_init = true;
    for (unsigned i = 0; i < s->n; i++) {
        struct sim_server *sv = &s->srv[i];
        snprintf(sv->path, sizeof sv->path, "%s/s%u.db", s->seed_dir, i + 1);
        remove_files(sv->path);
        if (store_open(s, i) != 0)
            return ERR_IO;
        raftfsm_init(&sv->rf, sv->state);
        if (raft_fixture_grow(&s->f, &sv->rf.fsm) != 0)
            return ERR_NOMEM;
        struct raft *r = raft_fixture_get(&s->f, i);
        raftfsm_bind(&sv->rf, r, NULL);
        if (!s->trace)
            r->tracer = NULL; /* the fixture's tracer prints raft's info */
        raft_set_snapshot_threshold(r, 8 + rnd(s, 17));
        raft_set_snapshot_trailing(r, 2 + rnd(s, 7));
        raft_fixture_set_randomized_election_timeout(&s->f, i,
                                                     1000 + rnd(s, 1000));
        raft_fixture_set_network_latency(&s->f, i, 5 + rnd(s, 30));
        raft_fixture_set_disk_latency(&s->f, i, 2 + rnd(s, 15));
    }
    struct raft_configuration conf;
    if (raft_fixture_configuration(&s->f, s->n, &conf) != 0)
        return ERR_NOMEM;
    int rv = raft_fixture_bootstrap(&s->f, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 || raft_fixture_start(&s->f) != 0) {
        fprintf(stderr, "sim: cannot bootstrap/start the fixture\n");
        return ERR_INTERNAL;
    }
    return 0;
}

static void teardown(struct sim *s)
{
    if (s->f_init)
        raft_fixture_close(&s->f);
    s->f_init = false;
    for (unsigned i = 0; i < s->n; i++) {
        if (s->srv[i].state != NULL)
            fsm_close(s->srv[i].state);
        s->srv[i].state = NULL;
        if (!s->failed)
            remove_files(s->srv[i].path);
    }
    if (!s->failed)
        rmdir(s->seed_dir);
    struct list *pos, *tmp;
    LIST_FOREACH_SAFE(pos, tmp, &s->attempts) {
        list_remove(pos);
        free(LIST_CONTAINER_OF(pos, struct sim_attempt, link));
    }
    free(s->ops);
    free(s->rows);
    free(s->leader_of);
}

/* Run one seed; returns the number of steps run (violations in s->failed). */
static unsigned run_seed(struct sim *s, uint64_t seed)
{
    const char *dir = s->dir;
    unsigned steps = s->steps;
    bool verbose = s->verbose, trace = s->trace, strict = s->strict;
    memset(s, 0, sizeof *s);
    s->trace = trace;
    s->strict = strict;
    s->dir = dir;
    s->steps = steps;
    s->verbose = verbose;
    s->seed = seed;
    s->rng = seed * 0x2545f4914f6cdd1dULL + 1;
    s->n = seed % 2 ? 3 : 5;
    list_init(&s->attempts);
    sim_current = s;
    unsigned done = 0;
    if (setup(s) != 0) {
        violation(s, "setup failed");
    } else {
        for (s->step = 1; s->step <= s->steps && !s->failed; s->step++) {
            schedule(s);
            raft_fixture_step(&s->f);
            check_step(s);
            done++;
        }
        s->step = done;
        if (!s->failed)
            final_checks(s);
    }
    if (s->verbose)
        fprintf(
            stderr,
            "sim: seed %llu servers %u steps %u time %llums: ops %u "
            "acks %u kills %u partitions %u reopens %u max leader term %llu "
            "%s\n",
            (unsigned long long)seed, s->n, done,
            (unsigned long long)raft_fixture_time(&s->f), s->n_ops, s->n_acks,
            s->n_kills, s->n_parts, s->n_reopens,
            (unsigned long long)s->max_term, s->failed ? "VIOLATION" : "ok");
    teardown(s);
    sim_current = NULL;
    return done;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: nftraft_sim [--seeds N | --seed S] [--steps K] "
                 "[--dir D] [--fail-fast] [--strict] [-v] [--trace]\n");
}

static bool parse_u64(const char *v, uint64_t *out)
{
    if (v == NULL || *v == '\0')
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] == '-')
        return false;
    *out = x;
    return true;
}

int main(int argc, char **argv)
{
    struct sim *s = calloc(1, sizeof *s);
    if (s == NULL)
        return 2;
    uint64_t seeds = 100, seed = 0, steps = 3000;
    const char *dir = "nftraft-sim.d";
    bool one = false, fail_fast = false, verbose = false, trace = false,
         strict = false;
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--seeds") == 0)
            ok = parse_u64(v, &seeds) && seeds >= 1, k++;
        else if (strcmp(a, "--seed") == 0)
            ok = parse_u64(v, &seed), one = true, k++;
        else if (strcmp(a, "--steps") == 0)
            ok = parse_u64(v, &steps) && steps >= 1 && steps <= 10000000, k++;
        else if (strcmp(a, "--dir") == 0)
            ok = v != NULL && *v != '\0', dir = v, k++;
        else if (strcmp(a, "--fail-fast") == 0)
            fail_fast = true;
        else if (strcmp(a, "-v") == 0)
            verbose = true;
        else if (strcmp(a, "--trace") == 0)
            trace = true;
        else if (strcmp(a, "--strict") == 0)
            strict = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(s);
            return 0;
        } else
            ok = false;
        if (!ok) {
            fprintf(stderr, "sim: bad or incomplete option '%s'\n", a);
            usage(stderr);
            free(s);
            return 2;
        }
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "sim: cannot create %s: %s\n", dir, strerror(errno));
        free(s);
        return 2;
    }
    log_set_level(trace ? LOG_INFO : LOG_ERROR);
    signal(SIGABRT, on_abort);
#ifndef __SANITIZE_ADDRESS__ /* ASan reports these itself, then aborts */
    signal(SIGSEGV, on_abort);
    signal(SIGBUS, on_abort);
#endif

    uint64_t first = one ? seed : 1, last = one ? seed : seeds;
    unsigned long long total_steps = 0, n_seeds = 0, violations = 0, stalls = 0;
    for (uint64_t sd = first; sd <= last; sd++) {
        s->dir = dir;
        s->steps = (unsigned)steps;
        s->verbose = verbose;
        s->trace = trace;
        s->strict = strict;
        total_steps += run_seed(s, sd);
        n_seeds++;
        stalls += s->stalled;
        if (s->failed) {
            violations++;
            if (fail_fast)
                break;
        }
    }
    if (stalls > 0)
        printf("sim: %llu seeds did not converge after healing (liveness, "
               "see STALL lines)\n",
               stalls);
    printf("sim: %llu seeds, %llu steps, %llu violations\n", n_seeds,
           total_steps, violations);
    free(s);
    return violations ? 1 : 0;
}
