/* main_nftraft.c - the operator CLI: git-style subcommands to run a local
 * cluster (up/down), inspect it (status, get) and write to it (increment). */
#include "cmd/chain.h"
#include "dstack/compose.h"
#include "core/version.h"
#include "dstack/kmsauth.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 32
#define DEFAULT_DIR "./.nftraft"

static void usage_main(FILE *o)
{
    fprintf(o,
"usage: nftraft <command> [options]\n"
"\n"
"Commands:\n"
"  up          start a local cluster of nftraftd nodes\n"
"  down        stop a cluster started with 'up --detach'\n"
"  status      show every node's role, term and indexes (or one node's)\n"
"  get         read the counter\n"
"  increment   add to the counter\n"
"  compose-hash  dstack compose hash of an app-compose or docker-compose file\n"
"  kms-auth    dstack-compatible KMS auth webhook (real chain or --mock)\n"
"  members, mint, register, set-endpoints, deactivate, evict, readmit,\n"
"  transfer, vote, elect, heartbeat, cluster-size, deploy\n"
"              chain operations on the membership contract\n"
"\n"
"'nftraft <command> --help' describes a command's options.\n");
}

static int bad_usage(const char *cmd, const char *msg, const char *usage)
{
    fprintf(stderr, "nftraft %s: %s\nusage: %s\n", cmd, msg, usage);
    return 2;
}

/* ---- HTTP (blocking is fine in the CLI) ---- */

struct buf {
    char *p;
    size_t n;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    char *p = realloc(b->p, b->n + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->n, ptr, n);
    b->p = p;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* Returns the HTTP status (0 on transport error, message in *err). The
 * caller frees *body. */
static long http(const char *method, const char *url, const char *body,
                 const char *key, long timeout_ms, char **out, char *err,
                 size_t errlen)
{
    CURL *c = curl_easy_init();
    struct buf b = {0};
    struct curl_slist *h = NULL;
    char ebuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    if (c == NULL) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return 0;
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    if (key != NULL) {
        char kh[256];
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        h = curl_slist_append(h, kh);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    } else {
        snprintf(err, errlen, "%s: %s", url,
                 ebuf[0] ? ebuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (status == 0)
        free(b.p), b.p = NULL;
    *out = b.p;
    return status;
}

/* ---- cluster directory ---- */

struct node_info {
    int id;
    char http[64], raft[64], url[96], dir[PATH_MAX];
    pid_t pid;
};

static int node_dir(char *out, size_t n, const char *dir, int id)
{
    return snprintf(out, n, "%s/node%d", dir, id) >= (int)n ? -1 : 0;
}

/* Read DIR/nodes ("id url" lines written by 'up'); returns the count. */
static int read_nodes(const char *dir, struct node_info *nodes)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/nodes", dir);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    while (n < MAX_NODES &&
           fscanf(f, "%d %95s %d", &nodes[n].id, nodes[n].url,
                  &nodes[n].pid) == 3)
        n++;
    fclose(f);
    return n;
}

static bool pid_is_nftraftd(pid_t pid)
{
    char p[64], cmd[256] = "";
    snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return false;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    cmd[n] = '\0';
    return strstr(cmd, "nftraftd") != NULL;
}

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void tail_log(const char *path, int lines)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, path);
    if (system(cmd) != 0)
        fprintf(stderr, "(cannot read %s)\n", path);
}

static json_t *get_json(const char *url, long timeout_ms)
{
    char *body = NULL, err[256];
    long st = http("GET", url, NULL, NULL, timeout_ms, &body, err, sizeof err);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

static int stop_pids(struct node_info *nodes, int n, int timeout_s)
{
    for (int i = 0; i < n; i++)
        if (nodes[i].pid > 0 && pid_is_nftraftd(nodes[i].pid))
            kill(nodes[i].pid, SIGTERM);
    int killed = 0;
    for (int waited = 0;; waited++) {
        int alive = 0;
        for (int i = 0; i < n; i++) {
            if (nodes[i].pid <= 0)
                continue;
            waitpid(nodes[i].pid, NULL, WNOHANG);
            if (kill(nodes[i].pid, 0) == 0 && pid_is_nftraftd(nodes[i].pid))
                alive++;
        }
        if (alive == 0)
            break;
        if (waited >= timeout_s * 10) {
            for (int i = 0; i < n; i++)
                if (nodes[i].pid > 0 && pid_is_nftraftd(nodes[i].pid)) {
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
    "[--rpc-url URL --contract ADDR --wallet-key FILE]";

static void up_help(void)
{
    printf("usage: %s\n\n"
"Start N local nftraftd nodes: node i serves HTTP on 127.0.0.1:P+i-1 and raft\n"
"on 127.0.0.1:P+100+i-1, with data in DIR/node<i>/ (its log in node.log).\n"
"Waits until a leader is elected and prints each node's URL and role.\n"
"Without --detach it stays in the foreground and Ctrl-C stops every node;\n"
"with --detach it returns and 'nftraft down --dir DIR' stops them.\n"
"An existing DIR is reused: the nodes restart from their data.\n\n"
"  --nodes N               number of nodes (1..%d, default 3)\n"
"  --chain anvil|none      anvil: start anvil from the project's npm install\n"
"                          (1 s blocks, state kept in DIR/anvil-state.json),\n"
"                          deploy the KMS factory and the NFT, mint one NFT\n"
"                          to each of N anvil dev accounts, register N\n"
"                          instances (node1..nodeN) and give each node its\n"
"                          account's key: the contract is the membership and\n"
"                          leader arbiter. none: static membership.\n"
"                          (default anvil)\n"
"  --anvil-port P          anvil's port (default 8545)\n"
"  --enable-fault-switch   pass --enable-fault-switch to the nodes (tests)\n"
"  --rpc-url URL --contract ADDR --wallet-key FILE\n"
"                          an existing chain instead of anvil: no deployment;\n"
"                          instances node1..nodeN must be registered and\n"
"                          active, and every node signs with FILE's key (the\n"
"                          owner of their tokens)\n"
"  --spare K               chain mode: K more slots in every node's address\n"
"                          book (ports after the N nodes), each with a key\n"
"                          (the next dev account) and DIR/node<i>/cmdline\n"
"                          (with --join), not minted, registered or started:\n"
"                          mint + register it on chain, then start it\n"
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
"  --chain-confirmations N passed to every node (default: 0 on the anvil up\n"
"                          starts, nftraftd's default 2 on an existing chain;\n"
"                          an anvil that mines only on transactions needs 0)\n"
"\n"
"It prints each step as it happens (anvil, keys, deploy, mint, register,\n"
"nodes, elect) with its duration. Every node serves a live dashboard of the\n"
"cluster at its URL (GET /).\n"
"\n"
"Where --chain anvil finds its tools: anvil and cast on PATH first, then in\n"
"$NFTRAFT_ROOT/contracts/node_modules/.bin, then beside this binary (its own\n"
"directory, then ../contracts/node_modules/.bin), then in the source tree it\n"
"was built from; it prints which it used. The contracts are deployed with\n"
"contracts/scripts/deploy-local.sh (and the forge/cast of that contracts/\n"
"npm install) from $NFTRAFT_ROOT, the binary's parent directory or that\n"
"source tree, the first that has it.\n",
           UP_USAGE, MAX_NODES, DEFAULT_DIR);
}

static int self_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return -1;
    exe[k] = '\0';
    snprintf(out, n, "%s", dirname(exe));
    return 0;
}


/* ---- the embedded chain for `up --chain anvil` ---- */

/* Where `up` looks for the project's files: $NFTRAFT_ROOT, the binary's
 * parent directory (build/ in the source tree), then the source tree the
 * binary was built from (a build directory elsewhere). */
static int root_candidates(char roots[3][PATH_MAX], const char *why[3])
{
    int n = 0;
    const char *env = getenv("NFTRAFT_ROOT");
    if (env != NULL && *env) {
        snprintf(roots[n], PATH_MAX, "%s", env);
        why[n++] = "NFTRAFT_ROOT";
    }
    char bin[PATH_MAX];
    if (self_dir(bin, sizeof bin) == 0) {
        snprintf(roots[n], PATH_MAX, "%.*s/..", PATH_MAX - 4, bin);
        why[n++] = "beside the binary";
    }
#ifdef NFTRAFT_SOURCE_DIR
    snprintf(roots[n], PATH_MAX, "%s", NFTRAFT_SOURCE_DIR);
    why[n++] = "the source tree it was built from";
#endif
    return n;
}

static bool is_exe(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

/* Find tool (anvil, cast): on PATH, then in <root>/contracts/node_modules/
 * .bin for each root_candidates() root (and the binary's own directory
 * before the source tree). 0 with the path in out and where it was found
 * in *why, or -1. */
static int find_tool(const char *tool, char *out, size_t n, const char **why)
{
    const char *path = getenv("PATH");
    while (path != NULL && *path) {
        size_t len = strcspn(path, ":");
        if (len > 0) {
            if (snprintf(out, n, "%.*s/%s", (int)len, path, tool) < (int)n &&
                is_exe(out)) {
                *why = "on PATH";
                return 0;
            }
        }
        path += len + (path[len] == ':');
    }
    char roots[3][PATH_MAX], bin[PATH_MAX];
    const char *whys[3];
    int k = root_candidates(roots, whys);
    for (int i = 0; i < k; i++) {
        if (strcmp(whys[i], "beside the binary") == 0 &&
            self_dir(bin, sizeof bin) == 0) {
            if (snprintf(out, n, "%s/%s", bin, tool) < (int)n &&
                is_exe(out)) {
                *why = whys[i];
                return 0;
            }
        }
        if (snprintf(out, n, "%s/contracts/node_modules/.bin/%s", roots[i],
                     tool) < (int)n &&
            is_exe(out)) {
            *why = whys[i];
            return 0;
        }
    }
    return -1;
}

/* The first root that has contracts/scripts/deploy-local.sh. */
static int find_root(char *out, size_t n)
{
    char roots[3][PATH_MAX], p[PATH_MAX + 64];
    const char *whys[3];
    int k = root_candidates(roots, whys);
    for (int i = 0; i < k; i++) {
        snprintf(p, sizeof p, "%s/contracts/scripts/deploy-local.sh",
                 roots[i]);
        if (access(p, X_OK) == 0) {
            snprintf(out, n, "%s", roots[i]);
            return 0;
        }
    }
    return -1;
}

/* `up` reports each step as it happens: "up: <step> <what> ... (1.2 s)". */
static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double step_begin(const char *step, const char *what)
{
    printf("up: %-9s %s ... ", step, what);
    fflush(stdout);
    return mono_s();
}

static void step_end(double t0, const char *result)
{
    printf("%s (%.1f s)\n", result, mono_s() - t0);
    fflush(stdout);
}

/* Run a command, capture the first line of its stdout. */
static int capture(const char *cmd, char *out, size_t n)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    out[0] = '\0';
    if (fgets(out, (int)n, p) == NULL)
        out[0] = '\0';
    char rest[256];
    while (fgets(rest, sizeof rest, p) != NULL)
        ;
    int st = pclose(p);
    out[strcspn(out, "\r\n")] = '\0';
    return st == 0 && out[0] ? 0 : -1;
}

/* Run argv with NFTRAFT_WALLET_KEY=key; 0 when it exits 0. */
static int run_with_key(const char *const *argv, const char *key)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("NFTRAFT_WALLET_KEY", key, 1);
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0)
            dup2(nul, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static bool rpc_alive(const char *rpc)
{
    char *body = NULL, err[256];
    long st = http("POST", rpc,
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                   "\"eth_blockNumber\",\"params\":[]}",
                   NULL, 1000, &body, err, sizeof err);
    free(body);
    return st == 200;
}

struct chain_setup {
    char rpc[64], nft[64], kms[64];
    char keys[MAX_NODES + 1][80];      /* owners: dev accounts 1..N (0 deploys) */
    char node_keys[MAX_NODES + 1][80]; /* node i's own key: account
                                          NODE_KEY_BASE + i */
    pid_t anvil;
};

/* Node keys are anvil dev accounts above the owners' (anvil funds
 * ANVIL_ACCOUNTS of them), so nodes pay for their votes and heartbeats
 * while the owners' keys only mint and register. */
#define NODE_KEY_BASE (MAX_NODES + 1)
#define ANVIL_ACCOUNTS "66" /* >= NODE_KEY_BASE + MAX_NODES + 1 */

static const char MNEMONIC[] =
    "test test test test test test test test test test test junk";

/* Start (or restart from its state file) anvil, and on first use deploy,
 * mint and register; the result is kept in DIR/chain.env. */
static int chain_up(const char *dir, int nodes, int spare, int port, int base,
                    struct chain_setup *cs)
{
    char root[PATH_MAX], anvil[PATH_MAX + 64], cast[PATH_MAX + 64];
    char cmd[4 * PATH_MAX + 512];
    const char *why_anvil, *why_cast;
    if (find_tool("anvil", anvil, sizeof anvil, &why_anvil) != 0 ||
        find_tool("cast", cast, sizeof cast, &why_cast) != 0) {
        fprintf(stderr,
                "nftraft up: anvil and cast not found on PATH, in "
                "$NFTRAFT_ROOT/contracts/node_modules/.bin, beside the "
                "binary or in the source tree: put Foundry on PATH, set "
                "NFTRAFT_ROOT to the source tree, or run ./run.sh deps (npm "
                "ci in contracts/)\n");
        return -1;
    }
    printf("up: using anvil %s (%s)\nup: using cast  %s (%s)\n", anvil,
           why_anvil, cast, why_cast);
    if (find_root(root, sizeof root) != 0) {
        fprintf(stderr, "nftraft up: contracts/scripts/deploy-local.sh not "
                        "found in $NFTRAFT_ROOT, beside the binary or in the "
                        "source tree: set NFTRAFT_ROOT to the source tree\n");
        return -1;
    }
    if (!port_free(port)) {
        fprintf(stderr, "nftraft up: anvil port %d is in use; pick another "
                        "--anvil-port\n", port);
        return -1;
    }
    snprintf(cs->rpc, sizeof cs->rpc, "http://127.0.0.1:%d", port);
    char state[PATH_MAX + 32], logp[PATH_MAX + 32], ports[16];
    snprintf(state, sizeof state, "%s/anvil-state.json", dir);
    snprintf(logp, sizeof logp, "%s/anvil.log", dir);
    snprintf(ports, sizeof ports, "%d", port);
    double t0 = step_begin("anvil", cs->rpc);
    pid_t pid = fork();
    if (pid == 0) {
        setsid(); /* its own group: the npm wrapper and anvil stop together */
        int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lfd >= 0) {
            dup2(lfd, 1);
            dup2(lfd, 2);
        }
        execl(anvil, anvil, "--host", "127.0.0.1", "--port", ports,
              "--block-time", "1", "--accounts", ANVIL_ACCOUNTS, "--state",
              state, (char *)NULL);
        _exit(127);
    }
    cs->anvil = pid;
    char pidp[PATH_MAX + 32];
    snprintf(pidp, sizeof pidp, "%s/anvil.pid", dir);
    FILE *pf = fopen(pidp, "w");
    if (pf) {
        fprintf(pf, "%d\n", (int)pid);
        fclose(pf);
    }
    for (int i = 0; i < 150 && !rpc_alive(cs->rpc); i++)
        usleep(100000);
    if (!rpc_alive(cs->rpc)) {
        step_end(t0, "failed");
        fprintf(stderr, "nftraft up: anvil did not start; see %s\n", logp);
        return -1;
    }
    step_end(t0, "ready");
    t0 = step_begin("keys", "deriving the anvil dev accounts' keys");
    for (int i = 0; i <= nodes + spare + nodes; i++) {
        bool node_key = i > nodes + spare;
        int n = node_key ? i - nodes - spare : i; /* node_keys[1..nodes] */
        char *out = node_key ? cs->node_keys[n] : cs->keys[i];
        snprintf(cmd, sizeof cmd,
                 "'%s' wallet private-key --mnemonic '%s' --mnemonic-index %d",
                 cast, MNEMONIC, node_key ? NODE_KEY_BASE + n : i);
        if (capture(cmd, out, sizeof cs->keys[0]) != 0) {
            step_end(t0, "failed");
            fprintf(stderr, "nftraft up: cannot derive dev key %d\n", i);
            return -1;
        }
    }
    step_end(t0, "done");
    char envp[PATH_MAX + 32];
    snprintf(envp, sizeof envp, "%s/chain.env", dir);
    FILE *ef = fopen(envp, "r");
    if (ef != NULL) { /* restart: the chain state has the contracts */
        char line[256];
        while (fgets(line, sizeof line, ef)) {
            line[strcspn(line, "\n")] = '\0';
            if (!strncmp(line, "NFT=", 4))
                snprintf(cs->nft, sizeof cs->nft, "%.63s", line + 4);
            if (!strncmp(line, "KMS=", 4))
                snprintf(cs->kms, sizeof cs->kms, "%.63s", line + 4);
        }
        fclose(ef);
        if (cs->nft[0]) {
            printf("up: deploy    skipped: contract %s from %s (anvil "
                   "restarted from its state)\n", cs->nft, envp);
            return 0;
        }
    }
    t0 = step_begin("deploy", "KMS factory and DstackMembershipNFT");
    snprintf(cmd, sizeof cmd,
             "'%s/contracts/scripts/deploy-local.sh' '%s' '%s' >'%s/deploy.out' "
             "2>'%s/deploy.log'",
             root, cs->rpc, cs->keys[0], dir, dir);
    char outp[PATH_MAX + 32], line[256];
    snprintf(outp, sizeof outp, "%s/deploy.out", dir);
    FILE *of = system(cmd) == 0 ? fopen(outp, "r") : NULL;
    while (of != NULL && fgets(line, sizeof line, of)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "NFT=", 4))
            snprintf(cs->nft, sizeof cs->nft, "%.63s", line + 4);
        if (!strncmp(line, "KMS=", 4))
            snprintf(cs->kms, sizeof cs->kms, "%.63s", line + 4);
    }
    if (of)
        fclose(of);
    if (!cs->nft[0] || !cs->kms[0]) {
        step_end(t0, "failed");
        fprintf(stderr, "nftraft up: deployment failed; see %s/deploy.log\n",
                dir);
        return -1;
    }
    step_end(t0, cs->nft);
    char self[PATH_MAX + 16];
    self_dir(self, sizeof self);
    strcat(self, "/nftraft");
    char what[64];
    snprintf(what, sizeof what, "%d NFT%s, one to each node's account", nodes,
             nodes > 1 ? "s" : "");
    t0 = step_begin("mint", what);
    for (int i = 1; i <= nodes; i++) {
        char addr[64], name[16];
        snprintf(cmd, sizeof cmd, "'%s' wallet address --private-key %s", cast,
                 cs->keys[i]);
        snprintf(name, sizeof name, "node%d", i);
        const char *mint[] = {self, "mint", "--rpc-url", cs->rpc,
                              "--contract", cs->nft, "--to", addr, "--name",
                              name, NULL};
        if (capture(cmd, addr, sizeof addr) != 0 ||
            run_with_key(mint, cs->keys[0]) != 0) {
            step_end(t0, "failed");
            fprintf(stderr, "nftraft up: minting token %d failed\n", i);
            return -1;
        }
    }
    step_end(t0, "done");
    snprintf(what, sizeof what, "instances node1..node%d", nodes);
    t0 = step_begin("register", what);
    for (int i = 1; i <= nodes; i++) {
        char name[16], tok[16], key_addr[64], raft[32], http[48];
        snprintf(name, sizeof name, "node%d", i);
        snprintf(tok, sizeof tok, "%d", i);
        snprintf(raft, sizeof raft, "127.0.0.1:%d", base + 100 + i - 1);
        snprintf(http, sizeof http, "http://127.0.0.1:%d", base + i - 1);
        snprintf(cmd, sizeof cmd, "'%s' wallet address --private-key %s", cast,
                 cs->node_keys[i]);
        /* The owner registers the node with its own key and endpoints. */
        const char *reg[] = {self, "register", "--rpc-url", cs->rpc,
                             "--contract", cs->nft, "--instance-id", name,
                             "--token", tok, "--node-key", key_addr,
                             "--raft-endpoint", raft, "--http-endpoint", http,
                             NULL};
        if (capture(cmd, key_addr, sizeof key_addr) != 0 ||
            run_with_key(reg, cs->keys[i]) != 0) {
            step_end(t0, "failed");
            fprintf(stderr, "nftraft up: registering node%d failed\n", i);
            return -1;
        }
    }
    step_end(t0, "done");
    ef = fopen(envp, "w");
    if (ef) {
        fprintf(ef, "RPC=%s\nNFT=%s\nKMS=%s\n", cs->rpc, cs->nft, cs->kms);
        fclose(ef);
    }
    return 0;
}

static void stop_anvil(const char *dir)
{
    char pidp[PATH_MAX + 32];
    snprintf(pidp, sizeof pidp, "%s/anvil.pid", dir);
    FILE *f = fopen(pidp, "r");
    int pid = 0;
    if (f == NULL)
        return;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid > 1) {
        kill(-pid, SIGTERM); /* anvil writes its state on SIGTERM */
        for (int i = 0; i < 50 && kill(-pid, 0) == 0; i++) {
            waitpid(pid, NULL, WNOHANG);
            usleep(100000);
        }
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, WNOHANG);
    }
    unlink(pidp);
}

/* DIR/cluster.secret: the static-mode raft handshake secret (64 hex
 * digits, mode 0600), written once and reused by later `up`s of DIR. */
static int ensure_secret(const char *dir, char *path, size_t cap)
{
    snprintf(path, cap, "%s/cluster.secret", dir);
    if (access(path, R_OK) == 0)
        return 0;
    uint8_t raw[32];
    char hex[65];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        fprintf(stderr, "nftraft up: no randomness for the cluster secret\n");
        return 1;
    }
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, hex, 64) != 64 || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "nftraft up: cannot write %s: %s\n", path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    return 0;
}

static int cmd_up(int argc, char **argv)
{
    static const struct option opts[] = {
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
        {"contract", required_argument, NULL, 'K'},
        {"wallet-key", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int nodes = 3, base = 8081, c, anvil_port = 8545, spare = 0;
    const char *ext_rpc = NULL, *ext_contract = NULL, *ext_key = NULL;
    bool detach = false, chain = true, fault = false;
    const char *dir = DEFAULT_DIR, *extra[14] = {0}, *confirmations = NULL;
    int n_extra = 0;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            nodes = (int)strtol(optarg, &end, 10);
            if (*end || nodes < 1 || nodes > MAX_NODES)
                return bad_usage("up", "--nodes wants 1..32", UP_USAGE);
            break;
        case 'c':
            if (strcmp(optarg, "none") != 0 && strcmp(optarg, "anvil") != 0)
                return bad_usage("up", "--chain wants anvil or none",
                                 UP_USAGE);
            chain = strcmp(optarg, "anvil") == 0;
            break;
        case 'A':
            anvil_port = (int)strtol(optarg, &end, 10);
            if (*end || anvil_port < 1024 || anvil_port > 65535)
                return bad_usage("up", "--anvil-port wants 1024..65535",
                                 UP_USAGE);
            break;
        case 'F':
            fault = true;
            break;
        case 'R': ext_rpc = optarg; break;
        case 'K': ext_contract = optarg; break;
        case 'W': ext_key = optarg; break;
        case 'N':
            (void)strtol(optarg, &end, 10);
            if (*end || !*optarg || optarg[0] == '-' || strlen(optarg) > 4)
                return bad_usage("up", "--chain-confirmations wants 0..1000",
                                 UP_USAGE);
            confirmations = optarg;
            break;
        case 'S':
            spare = (int)strtol(optarg, &end, 10);
            if (*end || spare < 0 || spare > 8)
                return bad_usage("up", "--spare wants 0..8", UP_USAGE);
            break;
        case 'p':
            base = (int)strtol(optarg, &end, 10);
            if (*end || base < 1024 || base > 65535 - 100 - MAX_NODES)
                return bad_usage("up", "--base-port wants 1024..65400",
                                 UP_USAGE);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'D':
            detach = true;
            break;
        case 'e':
        case 'b':
        case 's':
        case 't':
        case 'r':
        case 'k':
        case 'l':
            if (n_extra + 2 > 14)
                return bad_usage("up", "too many options", UP_USAGE);
            extra[n_extra++] = c == 'e'   ? "--election-timeout"
                               : c == 'b' ? "--heartbeat-timeout"
                               : c == 's' ? "--snapshot-threshold"
                               : c == 't' ? "--snapshot-trailing"
                               : c == 'r' ? "--log-retention"
                               : c == 'k' ? "--key-retention"
                                          : "--log-level";
            extra[n_extra++] = optarg;
            break;
        case 'h':
            up_help();
            return 0;
        case ':':
            return bad_usage("up", "an option needs a value", UP_USAGE);
        default:
            return bad_usage("up", "unknown option", UP_USAGE);
        }
    }
    if (optind < argc)
        return bad_usage("up", "unexpected argument", UP_USAGE);

    char bindir[PATH_MAX], daemon[PATH_MAX + 16];
    if (self_dir(bindir, sizeof bindir) != 0) {
        fprintf(stderr, "nftraft up: cannot find my own directory\n");
        return 1;
    }
    snprintf(daemon, sizeof daemon, "%s/nftraftd", bindir);
    if (access(daemon, X_OK) != 0) {
        fprintf(stderr, "nftraft up: %s not found (build it first)\n",
                daemon);
        return 1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "nftraft up: cannot create %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    struct node_info old[MAX_NODES];
    int n_old = read_nodes(dir, old);
    for (int i = 0; i < n_old; i++) {
        if (old[i].pid > 0 && kill(old[i].pid, 0) == 0 &&
            pid_is_nftraftd(old[i].pid)) {
            fprintf(stderr,
                    "nftraft up: a cluster is already running in %s (node %d "
                    "pid %d); stop it with 'nftraft down --dir %s'\n",
                    dir, old[i].id, (int)old[i].pid, dir);
            return 1;
        }
    }
    bool external = ext_rpc || ext_contract || ext_key;
    if (external && !(ext_rpc && ext_contract && ext_key))
        return bad_usage("up", "an existing chain needs --rpc-url, --contract "
                               "and --wallet-key", UP_USAGE);
    if (external && access(ext_key, R_OK) != 0) {
        fprintf(stderr, "nftraft up: cannot read --wallet-key %s\n", ext_key);
        return 1;
    }
    if (external)
        chain = true;
    if (spare > 0 && (!chain || external))
        return bad_usage("up", "--spare is for --chain anvil", UP_USAGE);
    if (nodes + spare > MAX_NODES)
        return bad_usage("up", "--nodes + --spare is above 32", UP_USAGE);
    struct node_info ns[MAX_NODES];
    char peers[MAX_NODES * 96] = "";
    for (int i = 0; i < nodes + spare; i++) {
        struct node_info *x = &ns[i];
        memset(x, 0, sizeof *x);
        x->id = i + 1;
        snprintf(x->http, sizeof x->http, "127.0.0.1:%d", base + i);
        snprintf(x->raft, sizeof x->raft, "127.0.0.1:%d", base + 100 + i);
        snprintf(x->url, sizeof x->url, "http://127.0.0.1:%d", base + i);
        if (node_dir(x->dir, sizeof x->dir, dir, x->id) != 0) {
            fprintf(stderr, "nftraft up: --dir too long\n");
            return 1;
        }
        if (!port_free(base + i) || !port_free(base + 100 + i)) {
            fprintf(stderr,
                    "nftraft up: port %d or %d is in use; pick another "
                    "--base-port\n",
                    base + i, base + 100 + i);
            return 1;
        }
        size_t l = strlen(peers);
        snprintf(peers + l, sizeof peers - l, "%s%d=%s=%s", i ? "," : "",
                 x->id, x->raft, x->url);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    static struct chain_setup chs;
    if (external) {
        snprintf(chs.rpc, sizeof chs.rpc, "%.63s", ext_rpc);
        snprintf(chs.nft, sizeof chs.nft, "%.63s", ext_contract);
        snprintf(chs.kms, sizeof chs.kms, "(not used)");
    } else if (chain && chain_up(dir, nodes, spare, anvil_port, base, &chs) != 0) {
        stop_anvil(dir);
        return 1;
    }
    /* Static mode: one cluster secret for the raft handshake, kept across
     * restarts of the same directory. */
    static char secretp[PATH_MAX + 32];
    if (!chain && ensure_secret(dir, secretp, sizeof secretp) != 0) {
        stop_anvil(dir);
        return 1;
    }
    char what[96];
    snprintf(what, sizeof what, "%d nftraftd on 127.0.0.1:%d-%d, waiting for "
             "a ready leader", nodes, base, base + nodes - 1);
    double t_nodes = step_begin("nodes", what);
    for (int i = 0; i < nodes + spare; i++) {
        struct node_info *x = &ns[i];
        bool is_spare = i >= nodes;
        if (mkdir(x->dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "nftraft up: cannot create %s: %s\n", x->dir,
                    strerror(errno));
            stop_pids(ns, i, 10);
            return 1;
        }
        char logp[PATH_MAX + 16];
        snprintf(logp, sizeof logp, "%s/node.log", x->dir);
        const char *args[40] = {daemon,    "--data-dir", x->dir, "--http",
                                x->http,   "--raft",     x->raft};
        int k = 7;
        /* Static mode and an existing chain need the address book; on its
         * own anvil every node (and a spare, once its owner registers it
         * with endpoints) is found from the contract's registrations. */
        if (!chain || external) {
            args[k++] = "--peers";
            args[k++] = peers;
        }
        char keyp[PATH_MAX + 32], inst[16];
        if (external) { /* every node signs with the given owner key */
            snprintf(keyp, sizeof keyp, "%s", ext_key);
        } else if (chain) { /* node i signs with dev account i's key */
            snprintf(keyp, sizeof keyp, "%s/wallet.key", x->dir);
            int kf = open(keyp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            /* A node signs with its own key; a spare slot with its
             * owner's (its owner registers it later, node key = owner). */
            const char *k = is_spare ? chs.keys[i + 1] : chs.node_keys[i + 1];
            if (kf < 0 || write(kf, k, strlen(k)) < 0) {
                fprintf(stderr, "nftraft up: cannot write %s\n", keyp);
                stop_pids(ns, i, 10);
                stop_anvil(dir);
                return 1;
            }
            close(kf);
        }
        if (chain) {
            snprintf(inst, sizeof inst, "node%d", x->id);
            args[k++] = "--rpc-url";
            args[k++] = chs.rpc;
            args[k++] = "--contract";
            args[k++] = chs.nft;
            args[k++] = "--wallet-key";
            args[k++] = keyp;
            args[k++] = "--instance-id";
            args[k++] = inst;
            /* Its own anvil (one node, never reorgs): 0 unless given; an
             * existing chain: the daemon's default unless given. */
            if (confirmations != NULL || !external) {
                args[k++] = "--chain-confirmations";
                args[k++] = confirmations ? confirmations : "0";
            }
        }
        if (!chain) {
            args[k++] = "--cluster-secret-file";
            args[k++] = secretp;
        }
        if (fault)
            args[k++] = "--enable-fault-switch";
        if (is_spare)
            args[k++] = "--join";
        for (int e = 0; e < n_extra; e++)
            args[k++] = extra[e];
        args[k] = NULL;
        /* Record how to restart this node by hand (one argument a line). */
        char cmdp[PATH_MAX + 16];
        snprintf(cmdp, sizeof cmdp, "%s/cmdline", x->dir);
        FILE *cf = fopen(cmdp, "w");
        for (int a = 0; cf && args[a]; a++)
            fprintf(cf, "%s\n", args[a]);
        if (cf)
            fclose(cf);
        if (is_spare)
            continue; /* a slot: its owner registers it, then starts it */
        pid_t pid = fork();
        if (pid == 0) {
            setsid(); /* survives the CLI with --detach; own Ctrl-C handling */
            int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
            int nul = open("/dev/null", O_RDWR);
            if (lfd >= 0)
                dup2(lfd, 2);
            if (nul >= 0) {
                dup2(nul, 0);
                dup2(nul, 1);
            }
            execv(daemon, (char *const *)args);
            fprintf(stderr, "exec %s: %s\n", daemon, strerror(errno));
            _exit(127);
        }
        if (pid < 0) {
            fprintf(stderr, "nftraft up: fork: %s\n", strerror(errno));
            stop_pids(ns, i, 10);
            return 1;
        }
        x->pid = pid;
    }
    char np[PATH_MAX + 16];
    snprintf(np, sizeof np, "%s/nodes", dir);
    FILE *nf = fopen(np, "w");
    for (int i = 0; nf && i < nodes; i++)
        fprintf(nf, "%d %s %d\n", ns[i].id, ns[i].url, (int)ns[i].pid);
    if (nf)
        fclose(nf);

    /* Wait for a ready leader. */
    int leader = 0;
    for (int t = 0; t < 300 && !leader && !g_stop; t++) {
        for (int i = 0; i < nodes; i++) {
            int st;
            if (waitpid(ns[i].pid, &st, WNOHANG) == ns[i].pid) {
                char logp[PATH_MAX + 16];
                snprintf(logp, sizeof logp, "%s/node.log", ns[i].dir);
                step_end(t_nodes, "failed");
                fprintf(stderr,
                        "nftraft up: node %d exited during start-up; the end "
                        "of %s:\n",
                        ns[i].id, logp);
                tail_log(logp, 15);
                ns[i].pid = 0;
                stop_pids(ns, nodes, 10);
                stop_anvil(dir);
                return 1;
            }
            char url[160];
            snprintf(url, sizeof url, "%s/status", ns[i].url);
            json_t *j = get_json(url, 500);
            if (j && json_is_true(json_object_get(j, "ready")))
                leader = ns[i].id;
            json_decref(j);
        }
        if (!leader)
            usleep(100000);
    }
    if (!leader) {
        step_end(t_nodes, "failed");
        fprintf(stderr, "nftraft up: no leader elected within 30 s; logs in "
                        "%s/node*/node.log\n", dir);
        stop_pids(ns, nodes, 10);
        stop_anvil(dir);
        return 1;
    }
    snprintf(what, sizeof what, "leader node %d", leader);
    step_end(t_nodes, what);
    uint64_t chain_leader = 0;
    double t_elect = chain ? step_begin("elect", "the contract names the "
                                                 "raft leader")
                           : 0;
    for (int t = 0; chain && t < 150 && !chain_leader && !g_stop; t++) {
        /* The raft leader elects itself on chain within a block or two. */
        char url[160];
        snprintf(url, sizeof url, "%s/status", ns[leader - 1].url);
        json_t *j = get_json(url, 1000);
        json_t *cl = json_object_get(json_object_get(j, "chain"), "leader");
        chain_leader = (uint64_t)json_integer_value(json_object_get(cl, "token_id"));
        json_decref(j);
        if (!chain_leader)
            usleep(100000);
    }
    if (chain) {
        snprintf(what, sizeof what, "token %llu",
                 (unsigned long long)chain_leader);
        step_end(t_elect, chain_leader ? what : "not yet");
    }
    printf("nftraft: %d-node cluster up (data in %s)\n", nodes, dir);
    if (chain)
        printf("  chain   %s (%s)  contract %s  KMS %s\n", chs.rpc,
               external ? "existing chain" : "anvil, 1 s blocks", chs.nft,
               chs.kms);
    for (int i = 0; i < nodes; i++)
        printf("  node %d  %-24s raft %-16s pid %-7d %s%s\n", ns[i].id,
               ns[i].url, ns[i].raft, (int)ns[i].pid,
               ns[i].id == leader ? "leader" : "follower",
               chain && (uint64_t)ns[i].id == chain_leader
                   ? " (on-chain leader)"
                   : "");
    printf("  dashboard %s/ (every node serves one)\n", ns[0].url);
    if (chain && !chain_leader)
        printf("  no on-chain leader yet (the raft leader elects itself on "
               "the next blocks)\n");
    for (int i = nodes; i < nodes + spare; i++)
        printf("  spare %d %-24s raft %-16s (mint token %d, register "
               "node%d with --node-key, --raft-endpoint %s and "
               "--http-endpoint %s, then start it from %s/cmdline)\n",
               ns[i].id, ns[i].url, ns[i].raft, ns[i].id, ns[i].id,
               ns[i].raft, ns[i].url, ns[i].dir);
    fflush(stdout);
    if (detach) {
        printf("stop it with: nftraft down --dir %s\n", dir);
        return 0;
    }
    printf("Ctrl-C stops the cluster.\n");
    fflush(stdout);
    while (!g_stop) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p > 0) {
            for (int i = 0; i < nodes; i++)
                if (ns[i].pid == p) {
                    fprintf(stderr,
                            "nftraft up: node %d (pid %d) exited (%s %d); "
                            "the others keep running\n",
                            ns[i].id, (int)p,
                            WIFSIGNALED(st) ? "signal" : "status",
                            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                    ns[i].pid = 0;
                }
        } else if (errno == ECHILD) {
            fprintf(stderr, "nftraft up: every node has exited\n");
            return 1;
        }
    }
    printf("\nstopping the cluster...\n");
    int killed = stop_pids(ns, nodes, 10);
    stop_anvil(dir);
    printf("stopped%s\n", killed ? " (some nodes needed SIGKILL)" : "");
    return 0;
}

/* ---- down ---- */

static int cmd_down(int argc, char **argv)
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
            return bad_usage("down", "unknown option or missing value", usage);
    }
    if (optind < argc)
        return bad_usage("down", "unexpected argument", usage);
    struct node_info ns[2 * MAX_NODES];
    int n = read_nodes(dir, ns);
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
        if (pid > 1 && !known && pid_is_nftraftd(pid)) {
            memset(&ns[n], 0, sizeof ns[n]);
            ns[n].id = id;
            ns[n++].pid = pid;
        }
    }
    int running = 0;
    for (int i = 0; i < n; i++)
        if (ns[i].pid > 0 && kill(ns[i].pid, 0) == 0 &&
            pid_is_nftraftd(ns[i].pid))
            running++;
        else
            ns[i].pid = 0;
    int killed = stop_pids(ns, n, 10);
    stop_anvil(dir);
    printf("stopped %d node(s) in %s%s\n", running, dir,
           killed ? " (some needed SIGKILL)" : "");
    return 0;
}

/* ---- status, get, increment ---- */

static const char *default_node(const char *dir, char *buf, size_t n)
{
    struct node_info ns[MAX_NODES];
    if (read_nodes(dir, ns) > 0) {
        snprintf(buf, n, "%s", ns[0].url);
        return buf;
    }
    return "http://127.0.0.1:8081";
}

static int print_status_row(const char *url)
{
    char u[256];
    snprintf(u, sizeof u, "%s/status", url);
    json_t *j = get_json(u, 2000);
    if (j == NULL) {
        printf("%-26s %-11s\n", url, "unreachable");
        return 1;
    }
    json_t *l = json_object_get(j, "leader");
    /* Chain mode: the contract's view as this node last read it. */
    char chain[64] = "-";
    json_t *c = json_object_get(j, "chain");
    if (json_is_object(c)) {
        json_t *cl = json_object_get(c, "leader");
        if (!json_is_true(json_object_get(c, "connected")))
            snprintf(chain, sizeof chain, "unreachable");
        else
            snprintf(chain, sizeof chain, "leader=%lld votes=%lld/%lld",
                     json_is_object(cl) ? (long long)json_integer_value(
                                              json_object_get(cl, "token_id"))
                                        : 0LL,
                     (long long)json_integer_value(
                         json_object_get(c, "votes_against_leader")),
                     (long long)json_integer_value(
                         json_object_get(c, "required_votes")));
    }
    printf("%-26s %-11s %6lld %7lld %7lld %7lld %9lld  %s\n", url,
           json_string_value(json_object_get(j, "role")),
           (long long)json_integer_value(json_object_get(j, "term")),
           l && json_is_object(l)
               ? (long long)json_integer_value(json_object_get(l, "id"))
               : 0LL,
           (long long)json_integer_value(json_object_get(j, "commit_index")),
           (long long)json_integer_value(json_object_get(j, "applied_index")),
           (long long)json_integer_value(json_object_get(j, "value")), chain);
    json_decref(j);
    return 0;
}

struct common {
    const char *node, *dir, *key;
    long long by;
    bool stale;
};

static int parse_common(const char *cmd, const char *usage, const char *help,
                        int argc, char **argv, struct common *o)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},
        {"dir", required_argument, NULL, 'd'},
        {"by", required_argument, NULL, 'b'},
        {"key", required_argument, NULL, 'k'},
        {"stale", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->dir = DEFAULT_DIR;
    o->by = 1;
    int c;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        bool allowed = strstr(usage, opts[0].name) != NULL;
        switch (c) {
        case 'n': o->node = optarg; break;
        case 'd': o->dir = optarg; break;
        case 'b':
            allowed = strstr(usage, "--by") != NULL;
            o->by = strtoll(optarg, &end, 10);
            if (*end || o->by < 1 || errno == ERANGE)
                return bad_usage(cmd, "--by wants an integer >= 1", usage);
            break;
        case 'k':
            allowed = strstr(usage, "--key") != NULL;
            o->key = optarg;
            break;
        case 's':
            allowed = strstr(usage, "--stale") != NULL;
            o->stale = true;
            break;
        case 'h':
            printf("usage: %s\n\n%s", usage, help);
            return -1;
        default:
            return bad_usage(cmd, "unknown option or missing value", usage);
        }
        if (!allowed)
            return bad_usage(cmd, "option not valid here", usage);
    }
    if (optind < argc)
        return bad_usage(cmd, "unexpected argument", usage);
    return 0;
}

static int cmd_status(int argc, char **argv)
{
    struct common o;
    int rv = parse_common(
        "status", "nftraft status [--node URL] [--dir DIR]",
        "Without --node: one line per node of the cluster in DIR (default\n"
        "./.nftraft): raft's role, term, leader, indexes and value, and in\n"
        "chain mode the contract's leader token and the votes against it\n"
        "as the node last read them. With --node: that node's /status as\n"
        "JSON.\n",
        argc, argv, &o);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    if (o.node != NULL) {
        char u[256], *body = NULL, err[256];
        snprintf(u, sizeof u, "%s/status", o.node);
        long st = http("GET", u, NULL, NULL, 3000, &body, err, sizeof err);
        if (st == 0) {
            fprintf(stderr, "nftraft status: %s\n", err);
            return 1;
        }
        printf("%s\n", body);
        free(body);
        return st == 200 ? 0 : 1;
    }
    struct node_info ns[MAX_NODES];
    int n = read_nodes(o.dir, ns);
    if (n == 0) {
        fprintf(stderr, "nftraft status: no cluster in %s (give --node URL)\n",
                o.dir);
        return 1;
    }
    printf("%-26s %-11s %6s %7s %7s %7s %9s  %s\n", "node", "role", "term",
           "leader", "commit", "applied", "value", "chain");
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += print_status_row(ns[i].url);
    return bad == n ? 1 : 0;
}

static int print_answer(const char *cmd, long st, char *body, char *err)
{
    if (st == 0) {
        fprintf(stderr, "nftraft %s: %s\n", cmd, err);
        return 1;
    }
    if (st != 200) {
        fprintf(stderr, "nftraft %s: HTTP %ld: %s\n", cmd, st,
                body ? body : "");
        free(body);
        return 1;
    }
    printf("%s\n", body ? body : "");
    free(body);
    return 0;
}

static int cmd_get(int argc, char **argv)
{
    struct common o;
    int rv = parse_common("get", "nftraft get [--node URL] [--dir DIR] [--stale]",
                          "Read the counter (linearizable unless --stale).\n",
                          argc, argv, &o);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    char dflt[128], u[300], *body = NULL, err[256];
    snprintf(u, sizeof u, "%s/counter%s",
             o.node ? o.node : default_node(o.dir, dflt, sizeof dflt),
             o.stale ? "?stale=1" : "");
    long st = http("GET", u, NULL, NULL, 10000, &body, err, sizeof err);
    return print_answer("get", st, body, err);
}

static int cmd_increment(int argc, char **argv)
{
    struct common o;
    int rv = parse_common(
        "increment",
        "nftraft increment [--node URL] [--dir DIR] [--by N] [--key K]",
        "Add N (default 1) to the counter through any node. --key sets the\n"
        "Idempotency-Key: a retry with the same key is applied once.\n",
        argc, argv, &o);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    char dflt[128], u[300], b[64], *body = NULL, err[256];
    snprintf(u, sizeof u, "%s/increment",
             o.node ? o.node : default_node(o.dir, dflt, sizeof dflt));
    snprintf(b, sizeof b, "{\"by\": %lld}", o.by);
    long st = http("POST", u, b, o.key, 15000, &body, err, sizeof err);
    return print_answer("increment", st, body, err);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage_main(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("nftraft %s\n", NFTRAFT_VERSION);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rv;
    if (!strcmp(cmd, "up"))
        rv = cmd_up(argc - 1, argv + 1);
    else if (!strcmp(cmd, "down"))
        rv = cmd_down(argc - 1, argv + 1);
    else if (!strcmp(cmd, "status"))
        rv = cmd_status(argc - 1, argv + 1);
    else if (!strcmp(cmd, "get"))
        rv = cmd_get(argc - 1, argv + 1);
    else if (!strcmp(cmd, "increment"))
        rv = cmd_increment(argc - 1, argv + 1);
    else if (!strcmp(cmd, "compose-hash"))
        rv = compose_main(argc - 1, argv + 1);
    else if (!strcmp(cmd, "kms-auth"))
        rv = kmsauth_main(argc - 1, argv + 1);
    else if (chaincli_is_command(cmd))
        rv = chaincli_main(argc - 1, argv + 1);
    else {
        fprintf(stderr, "nftraft: unknown command '%s'\n", cmd);
        usage_main(stderr);
        rv = 2;
    }
    curl_global_cleanup();
    return rv;
}
