/* cluster.c - `nftraft up` and `nftraft down` (see cluster.h). `up` is a
 * sequence of steps over one struct up: parse, check, plan the node slots,
 * the chain, start the nodes, wait for a leader, report, then stay in the
 * foreground or return. */
#include "cmd/cluster.h"
#include "cmd/cli.h"
#include "cmd/devchain.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_NODES CLI_MAX_NODES
#define DEFAULT_DIR CLI_DEFAULT_DIR
#define MAX_EXTRA 14

static void tail_log(const char *path, int lines)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, path);
    if (system(cmd) != 0)
        fprintf(stderr, "(cannot read %s)\n", path);
}

static int stop_pids(struct cli_node *nodes, int n, int timeout_s)
{
    for (int i = 0; i < n; i++)
        if (nodes[i].pid > 0 && cli_pid_is_nftraftd(nodes[i].pid))
            kill(nodes[i].pid, SIGTERM);
    int killed = 0;
    for (int waited = 0;; waited++) {
        int alive = 0;
        for (int i = 0; i < n; i++) {
            if (nodes[i].pid <= 0)
                continue;
            waitpid(nodes[i].pid, NULL, WNOHANG);
            if (kill(nodes[i].pid, 0) == 0 && cli_pid_is_nftraftd(nodes[i].pid))
                alive++;
        }
        if (alive == 0)
            break;
        if (waited >= timeout_s * 10) {
            for (int i = 0; i < n; i++)
                if (nodes[i].pid > 0 && cli_pid_is_nftraftd(nodes[i].pid)) {
                    kill(nodes[i].pid, SIGKILL);
                    killed++;
                }
            break;
        }
        usleep(100000);
    }
    return killed;
}

/* ---- up ---- */

static volatile sig_atomic_t g_stop; /* signal flag */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static const char UP_USAGE[] =
    "nftraft up [--nodes N] [--chain none] [--base-port P] [--dir DIR] "
    "[--detach] [--election-timeout MS] [--heartbeat-timeout MS] "
    "[--snapshot-threshold N] [--snapshot-trailing N] [--log-retention N] "
    "[--key-retention N] [--log-level L] [--chain-confirmations N] "
    "[--anvil-port P] [--enable-fault-switch] [--spare K] "
    "[--pg [--pg-base-port P] [--pg-bin DIR]] "
    "[--rpc-url URL --contract ADDR --wallet-key FILE] [--rpc-url2 URL]";

static void up_help(void)
{
    printf(
        "usage: %s\n\n"
        "Start N local nftraftd nodes: node i serves HTTP on 127.0.0.1:P+i-1 "
        "and raft\n"
        "on 127.0.0.1:P+100+i-1, with data in DIR/node<i>/ (its log in "
        "node.log).\n"
        "Waits until a leader is elected and prints each node's URL and role.\n"
        "Without --detach it stays in the foreground and Ctrl-C stops every "
        "node;\n"
        "with --detach it returns and 'nftraft down --dir DIR' stops them.\n"
        "An existing DIR is reused: the nodes restart from their data.\n\n"
        "  --nodes N               number of nodes (1..%d, default 3)\n"
        "  --chain anvil|none      anvil: start anvil from the project's npm "
        "install\n"
        "                          (1 s blocks, state kept in "
        "DIR/anvil-state.json),\n"
        "                          deploy the KMS factory and the NFT, mint "
        "one NFT\n"
        "                          to each of N anvil dev accounts, register "
        "N\n"
        "                          instances (node1..nodeN) and give each node "
        "its\n"
        "                          account's key: the contract is the "
        "membership and\n"
        "                          leader arbiter. none: static membership.\n"
        "                          (default anvil)\n"
        "  --anvil-port P          anvil's port (default 8545)\n"
        "  --enable-fault-switch   pass --enable-fault-switch to the nodes "
        "(tests)\n"
        "  --rpc-url URL --contract ADDR --wallet-key FILE\n"
        "                          an existing chain instead of anvil: no "
        "deployment;\n"
        "                          instances node1..nodeN must be registered "
        "and\n"
        "                          active, and every node signs with FILE's "
        "key (the\n"
        "                          owner of their tokens)\n"
        "  --rpc-url2 URL          chain mode: a second, independent RPC "
        "endpoint of\n"
        "                          the same chain, passed to every node as a "
        "second\n"
        "                          --rpc-url (each poll reads both and adopts "
        "the\n"
        "                          view only when they agree)\n"
        "  --spare K               chain mode: K more slots in every node's "
        "address\n"
        "                          book (ports after the N nodes), each with a "
        "key\n"
        "                          (the next dev account) and "
        "DIR/node<i>/cmdline\n"
        "                          (with --join), not minted, registered or "
        "started:\n"
        "                          mint + register it on chain, then start it\n"
        "  --pg                    every node runs a PostgreSQL (nftraftd "
        "--pg): "
        "the raft\n"
        "                          leader's is the primary, the others "
        "stream from it;\n"
        "                          a random password in DIR/pg.password "
        "(role nftraft);\n"
        "                          prints the psql command line of the "
        "primary\n"
        "  --pg-base-port P        node i's PostgreSQL on 127.0.0.1:P+i-1 "
        "(default 5433)\n"
        "  --pg-bin DIR            PostgreSQL's programs (default: "
        "nftraftd's)\n"
        "  --base-port P           first HTTP port (default 8081)\n"
        "  --dir DIR               cluster directory (default %s)\n"
        "  --detach                return once the leader is elected\n"
        "  --election-timeout MS   passed to every node (default: nftraftd's)\n"
        "  --heartbeat-timeout MS  passed to every node\n"
        "  --snapshot-threshold N  passed to every node\n"
        "  --snapshot-trailing N   passed to every node\n"
        "  --log-retention N       passed to every node\n"
        "  --key-retention N       passed to every node\n"
        "  --log-level LEVEL       passed to every node\n"
        "  --chain-confirmations N passed to every node (default: 0 on the "
        "anvil up\n"
        "                          starts, nftraftd's default 2 on an existing "
        "chain;\n"
        "                          an anvil that mines only on transactions "
        "needs 0)\n"
        "\n"
        "It prints each step as it happens (anvil, keys, deploy, mint, "
        "register,\n"
        "nodes, elect) with its duration. Every node serves a live dashboard "
        "of the\n"
        "cluster at its URL (GET /).\n"
        "\n"
        "Where --chain anvil finds its tools: anvil and cast on PATH first, "
        "then in\n"
        "$NFTRAFT_ROOT/contracts/node_modules/.bin, then beside this binary "
        "(its own\n"
        "directory, then ../contracts/node_modules/.bin), then in the source "
        "tree it\n"
        "was built from; it prints which it used. The contracts are deployed "
        "with\n"
        "contracts/scripts/deploy-local.sh (and the forge/cast of that "
        "contracts/\n"
        "npm install) from $NFTRAFT_ROOT, the binary's parent directory or "
        "that\n"
        "source tree, the first that has it.\n",
        UP_USAGE, MAX_NODES, DEFAULT_DIR);
}

/* DIR/NAME: `bytes` random bytes as hex digits and a newline, mode 0600,
 * written once and reused by later `up`s of DIR; what names it in errors. */
static int ensure_random_file(const char *dir, const char *name, size_t bytes,
                              const char *what, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    if (access(path, R_OK) == 0)
        return 0;
    uint8_t raw[32];
    char hex[65];
    if (bytes > sizeof raw || getrandom(raw, bytes, 0) != (ssize_t)bytes) {
        fprintf(stderr, "nftraft up: no randomness for the %s\n", what);
        return 1;
    }
    for (size_t i = 0; i < bytes; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * bytes] = '\n';
    ssize_t len = (ssize_t)(2 * bytes + 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, hex, (size_t)len) != len) {
        fprintf(stderr, "nftraft up: cannot write %s: %s\n", path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    return 0;
}

/* DIR/cluster.secret: the static-mode raft handshake secret (64 hex
 * digits). */
static int ensure_secret(const char *dir, char *path, size_t cap)
{
    return ensure_random_file(dir, "cluster.secret", 32, "cluster secret", path,
                              cap);
}

/* DIR/pg.password: the PostgreSQL role nftraft's password (32 hex
 * digits). */
static int ensure_pg_password(const char *dir, char *path, size_t cap)
{
    return ensure_random_file(dir, "pg.password", 16, "password", path, cap);
}

/* ---- up ---- */

struct up_opts {
    int nodes, base, anvil_port, spare, pg_base;
    bool pg;
    const char *pg_bin;
    const char *dir, *ext_rpc, *ext_contract, *ext_key, *confirmations;
    const char *rpc2; /* --rpc-url2: every node's second --rpc-url */
    const char *extra[MAX_EXTRA]; /* flags passed on to every node */
    int n_extra;
    bool detach, chain, fault, external;
};

/* Everything one `up` works with (large: allocated once). */
struct up {
    struct up_opts o;
    char daemon[PATH_MAX + 16];
    struct cli_node ns[MAX_NODES];
    char peers[MAX_NODES * 96]; /* --peers of every node */
    struct devchain chs;
    char secretp[PATH_MAX + 32]; /* static mode's cluster secret */
    char pgpassp[PATH_MAX + 32]; /* --pg: the password file */
    char pg_listen[MAX_NODES][32];
    int pg_primary_port;   /* --pg: the primary's port once known */
    int leader;            /* raft leader's id */
    uint64_t chain_leader; /* the contract's leader token */
    double t_nodes;        /* start of the "nodes" step */
};

static const struct option UP_OPTS[] = {
    {"nodes", required_argument, NULL, 'n'},
    {"chain", required_argument, NULL, 'c'},
    {"base-port", required_argument, NULL, 'p'},
    {"dir", required_argument, NULL, 'd'},
    {"detach", no_argument, NULL, 'D'},
    {"election-timeout", required_argument, NULL, 'e'},
    {"heartbeat-timeout", required_argument, NULL, 'b'},
    {"snapshot-threshold", required_argument, NULL, 's'},
    {"snapshot-trailing", required_argument, NULL, 't'},
    {"log-retention", required_argument, NULL, 'r'},
    {"key-retention", required_argument, NULL, 'k'},
    {"log-level", required_argument, NULL, 'l'},
    {"chain-confirmations", required_argument, NULL, 'N'},
    {"anvil-port", required_argument, NULL, 'A'},
    {"enable-fault-switch", no_argument, NULL, 'F'},
    {"spare", required_argument, NULL, 'S'},
    {"rpc-url", required_argument, NULL, 'R'},
    {"rpc-url2", required_argument, NULL, '2'},
    {"contract", required_argument, NULL, 'K'},
    {"wallet-key", required_argument, NULL, 'W'},
    {"pg", no_argument, NULL, 'P'},
    {"pg-base-port", required_argument, NULL, 'Q'},
    {"pg-bin", required_argument, NULL, 'B'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* The nftraftd flag an option of `up` passes on to every node, or NULL. */
static const char *passed_flag(int c)
{
    switch (c) {
    case 'e':
        return "--election-timeout";
    case 'b':
        return "--heartbeat-timeout";
    case 's':
        return "--snapshot-threshold";
    case 't':
        return "--snapshot-trailing";
    case 'r':
        return "--log-retention";
    case 'k':
        return "--key-retention";
    case 'l':
        return "--log-level";
    default:
        return NULL;
    }
}

/* A number in [min, max] with nothing after it into *out: 0, or -1. */
static int int_arg(const char *a, int min, int max, int *out)
{
    char *end;
    long v = strtol(a, &end, 10);
    if (*end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* One option of `up` into o: 0, or 2 after the usage error. */
static int up_option(int c, const char *a, struct up_opts *o)
{
    const char *flag = passed_flag(c);
    char *end;
    switch (c) {
    case 'n':
        if (int_arg(a, 1, MAX_NODES, &o->nodes) != 0)
            return cli_bad_usage("up", "--nodes wants 1..32", UP_USAGE);
        return 0;
    case 'c':
        if (strcmp(a, "none") != 0 && strcmp(a, "anvil") != 0)
            return cli_bad_usage("up", "--chain wants anvil or none", UP_USAGE);
        o->chain = strcmp(a, "anvil") == 0;
        return 0;
    case 'A':
        if (int_arg(a, 1024, 65535, &o->anvil_port) != 0)
            return cli_bad_usage("up", "--anvil-port wants 1024..65535",
                                 UP_USAGE);
        return 0;
    case 'F':
        o->fault = true;
        return 0;
    case 'P':
        o->pg = true;
        return 0;
    case 'Q':
        if (int_arg(a, 1024, 65535 - MAX_NODES, &o->pg_base) != 0)
            return cli_bad_usage("up", "--pg-base-port wants 1024..65500",
                                 UP_USAGE);
        return 0;
    case 'B':
        o->pg_bin = a;
        return 0;
    case 'R':
        o->ext_rpc = a;
        return 0;
    case '2':
        if (strncmp(a, "http://", 7) != 0 && strncmp(a, "https://", 8) != 0)
            return cli_bad_usage("up", "--rpc-url2 wants an http(s):// URL",
                                 UP_USAGE);
        o->rpc2 = a;
        return 0;
    case 'K':
        o->ext_contract = a;
        return 0;
    case 'W':
        o->ext_key = a;
        return 0;
    case 'N':
        (void)strtol(a, &end, 10);
        if (*end || !*a || a[0] == '-' || strlen(a) > 4)
            return cli_bad_usage("up", "--chain-confirmations wants 0..1000",
                                 UP_USAGE);
        o->confirmations = a;
        return 0;
    case 'S':
        if (int_arg(a, 0, 8, &o->spare) != 0)
            return cli_bad_usage("up", "--spare wants 0..8", UP_USAGE);
        return 0;
    case 'p':
        if (int_arg(a, 1024, 65535 - 100 - MAX_NODES, &o->base) != 0)
            return cli_bad_usage("up", "--base-port wants 1024..65400",
                                 UP_USAGE);
        return 0;
    case 'd':
        o->dir = a;
        return 0;
    case 'D':
        o->detach = true;
        return 0;
    case ':':
        return cli_bad_usage("up", "an option needs a value", UP_USAGE);
    }
    if (flag == NULL)
        return cli_bad_usage("up", "unknown option", UP_USAGE);
    if (o->n_extra + 2 > MAX_EXTRA)
        return cli_bad_usage("up", "too many options", UP_USAGE);
    o->extra[o->n_extra++] = flag;
    o->extra[o->n_extra++] = a;
    return 0;
}

/* Whether the port ranges [a, a + n) and [b, b + m) share a port. */
static bool overlap(int a, int n, int b, int m)
{
    return a < b + m && b < a + n;
}

/* argv into o: 0, -1 after --help, or 2 after a usage error. */
static int up_parse(int argc, char **argv, struct up_opts *o)
{
    *o = (struct up_opts){.nodes = 3,
                          .base = 8081,
                          .anvil_port = 8545,
                          .pg_base = 5433,
                          .dir = DEFAULT_DIR,
                          .chain = true};
    int c, rv;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", UP_OPTS, NULL)) != -1) {
        if (c == 'h') {
            up_help();
            return -1;
        }
        if ((rv = up_option(c, optarg, o)) != 0)
            return rv;
    }
    if (optind < argc)
        return cli_bad_usage("up", "unexpected argument", UP_USAGE);
    if (!o->pg && o->pg_bin != NULL)
        return cli_bad_usage("up", "--pg-bin needs --pg", UP_USAGE);
    /* The embedded anvil's port and PostgreSQL's must not be a node's:
     * nodes take [base, base + slots) and [base + 100, ...), PostgreSQL
     * [pg_base, pg_base + slots). */
    int slots = o->nodes + o->spare;
    bool anvil = o->chain && !(o->ext_rpc || o->ext_contract || o->ext_key);
    if (anvil && (overlap(o->anvil_port, 1, o->base, slots) ||
                  overlap(o->anvil_port, 1, o->base + 100, slots)))
        return cli_bad_usage("up",
                             "--anvil-port is one of the nodes' HTTP or raft "
                             "ports (--base-port P uses P.. and P+100..)",
                             UP_USAGE);
    if (o->pg && (overlap(o->pg_base, slots, o->base, slots) ||
                  overlap(o->pg_base, slots, o->base + 100, slots) ||
                  (anvil && overlap(o->pg_base, slots, o->anvil_port, 1))))
        return cli_bad_usage("up",
                             "--pg-base-port overlaps the nodes' HTTP or raft "
                             "ports or anvil's",
                             UP_USAGE);
    return 0;
}

/* nftraftd beside this binary, DIR created, no cluster running in it. */
static int up_check_dir(struct up *u)
{
    char bindir[PATH_MAX];
    if (cli_self_dir(bindir, sizeof bindir) != 0) {
        fprintf(stderr, "nftraft up: cannot find my own directory\n");
        return 1;
    }
    snprintf(u->daemon, sizeof u->daemon, "%s/nftraftd", bindir);
    if (access(u->daemon, X_OK) != 0) {
        fprintf(stderr, "nftraft up: %s not found (build it first)\n",
                u->daemon);
        return 1;
    }
    const char *dir = u->o.dir;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "nftraft up: cannot create %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    struct cli_node old[MAX_NODES];
    int n_old = cli_read_nodes(dir, old);
    for (int i = 0; i < n_old; i++) {
        if (old[i].pid > 0 && kill(old[i].pid, 0) == 0 &&
            cli_pid_is_nftraftd(old[i].pid)) {
            fprintf(stderr,
                    "nftraft up: a cluster is already running in %s (node %d "
                    "pid %d); stop it with 'nftraft down --dir %s'\n",
                    dir, old[i].id, (int)old[i].pid, dir);
            return 1;
        }
    }
    return 0;
}

/* The chain options fit together: an existing chain needs all three. */
static int up_check_chain(struct up_opts *o)
{
    o->external = o->ext_rpc || o->ext_contract || o->ext_key;
    if (o->external && !(o->ext_rpc && o->ext_contract && o->ext_key))
        return cli_bad_usage("up",
                             "an existing chain needs --rpc-url, "
                             "--contract and --wallet-key",
                             UP_USAGE);
    if (o->external && access(o->ext_key, R_OK) != 0) {
        fprintf(stderr, "nftraft up: cannot read --wallet-key %s\n",
                o->ext_key);
        return 1;
    }
    if (o->external)
        o->chain = true;
    if (o->rpc2 != NULL && !o->chain)
        return cli_bad_usage("up", "--rpc-url2 is for chain mode", UP_USAGE);
    if (o->spare > 0 && (!o->chain || o->external))
        return cli_bad_usage("up", "--spare is for --chain anvil", UP_USAGE);
    if (o->nodes + o->spare > MAX_NODES)
        return cli_bad_usage("up", "--nodes + --spare is above 32", UP_USAGE);
    return 0;
}

/* Node slots 1..nodes+spare: ports (free now), directories, --peers. */
static int up_plan(struct up *u)
{
    int base = u->o.base;
    u->peers[0] = '\0';
    for (int i = 0; i < u->o.nodes + u->o.spare; i++) {
        struct cli_node *x = &u->ns[i];
        memset(x, 0, sizeof *x);
        x->id = i + 1;
        snprintf(x->http, sizeof x->http, "127.0.0.1:%d", base + i);
        snprintf(x->raft, sizeof x->raft, "127.0.0.1:%d", base + 100 + i);
        snprintf(x->url, sizeof x->url, "http://127.0.0.1:%d", base + i);
        if (snprintf(x->dir, sizeof x->dir, "%s/node%d", u->o.dir, x->id) >=
            (int)sizeof x->dir) {
            fprintf(stderr, "nftraft up: --dir too long\n");
            return 1;
        }
        snprintf(u->pg_listen[i], sizeof u->pg_listen[i], "127.0.0.1:%d",
                 u->o.pg_base + i);
        if (u->o.pg && !cli_port_free(u->o.pg_base + i)) {
            fprintf(stderr,
                    "nftraft up: port %d is in use; pick another "
                    "--pg-base-port\n",
                    u->o.pg_base + i);
            return 1;
        }
        if (!cli_port_free(base + i) || !cli_port_free(base + 100 + i)) {
            fprintf(stderr,
                    "nftraft up: port %d or %d is in use; pick another "
                    "--base-port\n",
                    base + i, base + 100 + i);
            return 1;
        }
        size_t l = strlen(u->peers);
        snprintf(u->peers + l, sizeof u->peers - l, "%s%d=%s=%s", i ? "," : "",
                 x->id, x->raft, x->url);
    }
    return 0;
}

/* The chain the nodes use (an existing one, or anvil started here) and,
 * in static mode, the cluster secret kept across restarts of DIR. */
static int up_chain(struct up *u)
{
    struct up_opts *o = &u->o;
    if (o->external) {
        snprintf(u->chs.rpc, sizeof u->chs.rpc, "%.63s", o->ext_rpc);
        snprintf(u->chs.nft, sizeof u->chs.nft, "%.63s", o->ext_contract);
        snprintf(u->chs.kms, sizeof u->chs.kms, "(not used)");
    } else if (o->chain && devchain_up(o->dir, o->nodes, o->spare,
                                       o->anvil_port, o->base, &u->chs) != 0) {
        devchain_stop(o->dir);
        return 1;
    }
    if (!o->chain &&
        ensure_secret(o->dir, u->secretp, sizeof u->secretp) != 0) {
        devchain_stop(o->dir);
        return 1;
    }
    if (o->pg &&
        ensure_pg_password(o->dir, u->pgpassp, sizeof u->pgpassp) != 0) {
        devchain_stop(o->dir);
        return 1;
    }
    return 0;
}

/* The command line of node slot i. */
struct node_cmd {
    const char *args[56];
    char keyp[PATH_MAX + 32], inst[16];
};

/* Chain mode: node slot i's key file (on its own anvil: the node's own
 * key, a spare slot its owner's) and chain flags. */
static int chain_args(struct up *u, int i, struct node_cmd *nc, int *k)
{
    const struct up_opts *o = &u->o;
    if (o->external) { /* every node signs with the given owner key */
        snprintf(nc->keyp, sizeof nc->keyp, "%s", o->ext_key);
    } else {
        snprintf(nc->keyp, sizeof nc->keyp, "%s/wallet.key", u->ns[i].dir);
        int kf = open(nc->keyp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const char *key =
            i >= o->nodes ? u->chs.keys[i + 1] : u->chs.node_keys[i + 1];
        if (kf < 0 || write(kf, key, strlen(key)) < 0) {
            fprintf(stderr, "nftraft up: cannot write %s\n", nc->keyp);
            if (kf >= 0)
                close(kf);
            return -1;
        }
        close(kf);
    }
    snprintf(nc->inst, sizeof nc->inst, "node%d", u->ns[i].id);
    const char **a = nc->args;
    a[(*k)++] = "--rpc-url";
    a[(*k)++] = u->chs.rpc;
    if (o->rpc2 != NULL) {
        a[(*k)++] = "--rpc-url";
        a[(*k)++] = o->rpc2;
    }
    a[(*k)++] = "--contract";
    a[(*k)++] = u->chs.nft;
    a[(*k)++] = "--wallet-key";
    a[(*k)++] = nc->keyp;
    a[(*k)++] = "--instance-id";
    a[(*k)++] = nc->inst;
    /* Its own anvil (one node, never reorgs): 0 unless given; an existing
     * chain: the daemon's default unless given. */
    if (o->confirmations != NULL || !o->external) {
        a[(*k)++] = "--chain-confirmations";
        a[(*k)++] = o->confirmations ? o->confirmations : "0";
    }
    return 0;
}

/* nc->args for node slot i (NULL-terminated); -1 when its key file
 * cannot be written. */
static int node_args(struct up *u, int i, struct node_cmd *nc)
{
    const struct up_opts *o = &u->o;
    struct cli_node *x = &u->ns[i];
    const char **a = nc->args;
    int k = 0;
    a[k++] = u->daemon;
    a[k++] = "--data-dir";
    a[k++] = x->dir;
    a[k++] = "--http";
    a[k++] = x->http;
    a[k++] = "--raft";
    a[k++] = x->raft;
    /* Static mode and an existing chain need the address book; on its own
     * anvil every node (and a spare, once its owner registers it with
     * endpoints) is found from the contract's registrations. */
    if (!o->chain || o->external) {
        a[k++] = "--peers";
        a[k++] = u->peers;
    }
    if (o->chain && chain_args(u, i, nc, &k) != 0)
        return -1;
    if (!o->chain) {
        a[k++] = "--cluster-secret-file";
        a[k++] = u->secretp;
    }
    if (o->fault)
        a[k++] = "--enable-fault-switch";
    if (o->pg) {
        a[k++] = "--pg";
        a[k++] = "--pg-listen";
        a[k++] = u->pg_listen[i];
        a[k++] = "--pg-password-file";
        a[k++] = u->pgpassp;
        if (o->pg_bin != NULL) {
            a[k++] = "--pg-bin";
            a[k++] = o->pg_bin;
        }
    }
    if (i >= o->nodes)
        a[k++] = "--join";
    for (int e = 0; e < o->n_extra; e++)
        a[k++] = o->extra[e];
    a[k] = NULL;
    return 0;
}

/* Record how to restart node slot i by hand (one argument a line). */
static void write_cmdline(const struct cli_node *x, const struct node_cmd *nc)
{
    char cmdp[PATH_MAX + 16];
    snprintf(cmdp, sizeof cmdp, "%s/cmdline", x->dir);
    FILE *cf = fopen(cmdp, "w");
    for (int a = 0; cf && nc->args[a]; a++)
        fprintf(cf, "%s\n", nc->args[a]);
    if (cf)
        fclose(cf);
}

/* Fork the daemon in its own session (it survives the CLI with --detach),
 * stderr to DIR/node<i>/node.log. */
static pid_t spawn_node(const char *daemon, const struct cli_node *x,
                        const struct node_cmd *nc)
{
    char logp[PATH_MAX + 16];
    snprintf(logp, sizeof logp, "%s/node.log", x->dir);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDWR);
        if (lfd >= 0)
            dup2(lfd, 2);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execv(daemon, (char *const *)nc->args);
        fprintf(stderr, "exec %s: %s\n", daemon, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Every node slot: its directory, key and cmdline; the nodes (not the
 * spare slots, which their owners start) forked; DIR/nodes written. */
static int up_start_nodes(struct up *u)
{
    const struct up_opts *o = &u->o;
    char what[96];
    snprintf(what, sizeof what,
             "%d nftraftd on 127.0.0.1:%d-%d, waiting for "
             "a ready leader",
             o->nodes, o->base, o->base + o->nodes - 1);
    u->t_nodes = cli_step_begin("nodes", what);
    for (int i = 0; i < o->nodes + o->spare; i++) {
        struct cli_node *x = &u->ns[i];
        struct node_cmd nc;
        if (mkdir(x->dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "nftraft up: cannot create %s: %s\n", x->dir,
                    strerror(errno));
            stop_pids(u->ns, i, 10);
            return 1;
        }
        if (node_args(u, i, &nc) != 0) {
            stop_pids(u->ns, i, 10);
            devchain_stop(o->dir);
            return 1;
        }
        write_cmdline(x, &nc);
        if (i >= o->nodes)
            continue; /* a slot: its owner registers it, then starts it */
        x->pid = spawn_node(u->daemon, x, &nc);
        if (x->pid < 0) {
            fprintf(stderr, "nftraft up: fork: %s\n", strerror(errno));
            x->pid = 0;
            stop_pids(u->ns, i, 10);
            return 1;
        }
    }
    char np[PATH_MAX + 16];
    snprintf(np, sizeof np, "%s/nodes", o->dir);
    FILE *nf = fopen(np, "w");
    for (int i = 0; nf && i < o->nodes; i++)
        fprintf(nf, "%d %s %d\n", u->ns[i].id, u->ns[i].url, (int)u->ns[i].pid);
    if (nf)
        fclose(nf);
    return 0;
}

/* Wait up to 30 s for a node whose /status says ready; a node that exits
 * meanwhile fails the start with the end of its log. */
static int up_wait_leader(struct up *u)
{
    const struct up_opts *o = &u->o;
    u->leader = 0;
    for (int t = 0; t < 300 && !u->leader && !g_stop; t++) {
        for (int i = 0; i < o->nodes; i++) {
            struct cli_node *x = &u->ns[i];
            int st;
            if (waitpid(x->pid, &st, WNOHANG) == x->pid) {
                char logp[PATH_MAX + 16];
                snprintf(logp, sizeof logp, "%s/node.log", x->dir);
                cli_step_end(u->t_nodes, "failed");
                fprintf(stderr,
                        "nftraft up: node %d exited during start-up; the end "
                        "of %s:\n",
                        x->id, logp);
                tail_log(logp, 15);
                x->pid = 0;
                stop_pids(u->ns, o->nodes, 10);
                devchain_stop(o->dir);
                return 1;
            }
            char url[160];
            snprintf(url, sizeof url, "%s/status", x->url);
            json_t *j = cli_get_json(url, 500);
            if (j && json_is_true(json_object_get(j, "ready")))
                u->leader = x->id;
            json_decref(j);
        }
        if (!u->leader)
            usleep(100000);
    }
    if (!u->leader) {
        cli_step_end(u->t_nodes, "failed");
        fprintf(stderr,
                "nftraft up: no leader elected within 30 s; logs in "
                "%s/node*/node.log\n",
                o->dir);
        stop_pids(u->ns, o->nodes, 10);
        devchain_stop(o->dir);
        return 1;
    }
    char what[64];
    snprintf(what, sizeof what, "leader node %d", u->leader);
    cli_step_end(u->t_nodes, what);
    return 0;
}

/* Chain mode: wait up to 15 s for the raft leader to elect itself on
 * chain (it does within a block or two); not fatal. */
static void up_wait_chain_leader(struct up *u)
{
    u->chain_leader = 0;
    if (!u->o.chain)
        return;
    double t0 = cli_step_begin("elect", "the contract names the raft leader");
    for (int t = 0; t < 150 && !u->chain_leader && !g_stop; t++) {
        char url[160];
        snprintf(url, sizeof url, "%s/status", u->ns[u->leader - 1].url);
        json_t *j = cli_get_json(url, 1000);
        json_t *cl = json_object_get(json_object_get(j, "chain"), "leader");
        u->chain_leader =
            (uint64_t)json_integer_value(json_object_get(cl, "token_id"));
        json_decref(j);
        if (!u->chain_leader)
            usleep(100000);
    }
    char what[64];
    snprintf(what, sizeof what, "token %llu",
             (unsigned long long)u->chain_leader);
    cli_step_end(t0, u->chain_leader ? what : "not yet");
}

/* --pg: wait up to 60 s for the leader's PostgreSQL to be the primary
 * named by the record (bootstrap: initdb, start, members). Not fatal. */
static void up_wait_pg(struct up *u)
{
    if (!u->o.pg)
        return;
    double t0 = cli_step_begin("pg", "the leader's PostgreSQL is the primary");
    u->pg_primary_port = 0;
    for (int t = 0; t < 600 && !u->pg_primary_port && !g_stop; t++) {
        for (int i = 0; i < u->o.nodes && !u->pg_primary_port; i++) {
            char url[160];
            snprintf(url, sizeof url, "%s/status", u->ns[i].url);
            json_t *j = cli_get_json(url, 1000);
            json_t *pg = json_object_get(j, "pg");
            json_t *rec = json_object_get(pg, "record");
            const char *role = json_string_value(json_object_get(pg, "role"));
            /* the raft id (chain mode: token << 32 | epoch) */
            if (role != NULL && strcmp(role, "primary") == 0 &&
                json_integer_value(json_object_get(rec, "primary")) ==
                    json_integer_value(json_object_get(j, "id")))
                u->pg_primary_port =
                    (int)json_integer_value(json_object_get(pg, "port"));
            json_decref(j);
        }
        if (!u->pg_primary_port)
            usleep(100000);
    }
    char what[64];
    snprintf(what, sizeof what, "port %d", u->pg_primary_port);
    cli_step_end(t0, u->pg_primary_port ? what
                                        : "not yet (see nftraft pg "
                                          "status and node.log)");
}

/* The cluster as it came up: chain, nodes, dashboard, spare slots. */
static void up_report(const struct up *u)
{
    const struct up_opts *o = &u->o;
    const struct cli_node *ns = u->ns;
    bool chain = o->chain;
    printf("nftraft: %d-node cluster up (data in %s)\n", o->nodes, o->dir);
    if (chain)
        printf("  chain   %s (%s)  contract %s  KMS %s\n", u->chs.rpc,
               o->external ? "existing chain" : "anvil, 1 s blocks", u->chs.nft,
               u->chs.kms);
    for (int i = 0; i < o->nodes; i++)
        printf("  node %d  %-24s raft %-16s pid %-7d %s%s\n", ns[i].id,
               ns[i].url, ns[i].raft, (int)ns[i].pid,
               ns[i].id == u->leader ? "leader" : "follower",
               chain && (uint64_t)ns[i].id == u->chain_leader
                   ? " (on-chain leader)"
                   : "");
    printf("  dashboard %s/ (every node serves one)\n", ns[0].url);
    if (o->pg) {
        printf("  postgres  127.0.0.1:%d-%d (node i on %d+i-1), primary on "
               "port %d\n",
               o->pg_base, o->pg_base + o->nodes - 1, o->pg_base,
               u->pg_primary_port);
        printf("  psql      PGPASSWORD=$(cat %s) psql \"host=127.0.0.1 "
               "port=%d user=nftraft dbname=postgres\"\n",
               u->pgpassp,
               u->pg_primary_port ? u->pg_primary_port : o->pg_base);
    }
    if (chain && !u->chain_leader)
        printf("  no on-chain leader yet (the raft leader elects itself on "
               "the next blocks)\n");
    for (int i = o->nodes; i < o->nodes + o->spare; i++)
        printf("  spare %d %-24s raft %-16s (mint token %d, register "
               "node%d with --node-key, --raft-endpoint %s and "
               "--http-endpoint %s, then start it from %s/cmdline)\n",
               ns[i].id, ns[i].url, ns[i].raft, ns[i].id, ns[i].id, ns[i].raft,
               ns[i].url, ns[i].dir);
    fflush(stdout);
}

/* Without --detach: report nodes that exit until SIGINT/SIGTERM, then stop
 * the cluster. */
static int up_foreground(struct up *u)
{
    const struct up_opts *o = &u->o;
    printf("Ctrl-C stops the cluster.\n");
    fflush(stdout);
    while (!g_stop) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p > 0) {
            for (int i = 0; i < o->nodes; i++)
                if (u->ns[i].pid == p) {
                    fprintf(stderr,
                            "nftraft up: node %d (pid %d) exited (%s %d); "
                            "the others keep running\n",
                            u->ns[i].id, (int)p,
                            WIFSIGNALED(st) ? "signal" : "status",
                            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                    u->ns[i].pid = 0;
                }
        } else if (errno == ECHILD) {
            fprintf(stderr, "nftraft up: every node has exited\n");
            return 1;
        }
    }
    printf("\nstopping the cluster...\n");
    int killed = stop_pids(u->ns, o->nodes, 10);
    devchain_stop(o->dir);
    printf("stopped%s\n", killed ? " (some nodes needed SIGKILL)" : "");
    return 0;
}

static int up_run(struct up *u, int argc, char **argv)
{
    int rv = up_parse(argc, argv, &u->o);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    if ((rv = up_check_dir(u)) != 0 || (rv = up_check_chain(&u->o)) != 0 ||
        (rv = up_plan(u)) != 0)
        return rv;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rv = up_chain(u)) != 0 || (rv = up_start_nodes(u)) != 0 ||
        (rv = up_wait_leader(u)) != 0)
        return rv;
    up_wait_chain_leader(u);
    up_wait_pg(u);
    up_report(u);
    if (u->o.detach) {
        printf("stop it with: nftraft down --dir %s\n", u->o.dir);
        return 0;
    }
    return up_foreground(u);
}

int cluster_up(int argc, char **argv)
{
    struct up *u = calloc(1, sizeof *u);
    if (u == NULL) {
        fprintf(stderr, "nftraft up: out of memory\n");
        return 1;
    }
    int rv = up_run(u, argc, argv);
    free(u);
    return rv;
}

/* ---- down ---- */

int cluster_down(int argc, char **argv)
{
    static const char usage[] = "nftraft down [--dir DIR]";
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = DEFAULT_DIR;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'd')
            dir = optarg;
        else if (c == 'h') {
            printf("usage: %s\n\nStop the nodes of the cluster in DIR "
                   "(default %s): SIGTERM, then SIGKILL after 10 s.\n",
                   usage, DEFAULT_DIR);
            return 0;
        } else
            return cli_bad_usage("down", "unknown option or missing value",
                                 usage);
    }
    if (optind < argc)
        return cli_bad_usage("down", "unexpected argument", usage);
    struct cli_node ns[2 * MAX_NODES];
    int n = cli_read_nodes(dir, ns);
    if (n == 0) {
        fprintf(stderr, "nftraft down: no cluster in %s\n", dir);
        return 1;
    }
    /* Nodes started by hand (spare slots, restarts) hold their data dir's
     * LOCK, which records their pid. */
    for (int id = 1; id <= MAX_NODES && n < 2 * MAX_NODES; id++) {
        char lp[PATH_MAX + 32];
        snprintf(lp, sizeof lp, "%s/node%d/LOCK", dir, id);
        FILE *lf = fopen(lp, "r");
        int pid = 0;
        if (lf == NULL)
            continue;
        if (fscanf(lf, "%d", &pid) != 1)
            pid = 0;
        fclose(lf);
        bool known = false;
        for (int i = 0; i < n; i++)
            known |= ns[i].pid == pid;
        if (pid > 1 && !known && cli_pid_is_nftraftd(pid)) {
            memset(&ns[n], 0, sizeof ns[n]);
            ns[n].id = id;
            ns[n++].pid = pid;
        }
    }
    int running = 0;
    for (int i = 0; i < n; i++)
        if (ns[i].pid > 0 && kill(ns[i].pid, 0) == 0 &&
            cli_pid_is_nftraftd(ns[i].pid))
            running++;
        else
            ns[i].pid = 0;
    int killed = stop_pids(ns, n, 10);
    devchain_stop(dir);
    printf("stopped %d node(s) in %s%s\n", running, dir,
           killed ? " (some needed SIGKILL)" : "");
    return 0;
}
