/* devchain.c - anvil, deployment, mint and registration for
 * `nftraft up --chain anvil` (see devchain.h). */
#include "cmd/devchain.h"
#include "chain/hex.h"
#include "chain/membership.h"
#include "chain/rpc.h"
#include "chain/sender.h"
#include "chain/wallet.h"
#include "core/err.h"
#include "core/httpc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* Node keys are anvil dev accounts above the owners' (anvil funds
 * ANVIL_ACCOUNTS of them), so nodes pay for their votes and heartbeats
 * while the owners' keys only mint and register. */
#define NODE_KEY_BASE (CLI_MAX_NODES + 1)
#define ANVIL_ACCOUNTS "66" /* >= NODE_KEY_BASE + CLI_MAX_NODES + 1 */

static const char MNEMONIC[] =
    "test test test test test test test test test test test junk";

/* The tools and files devchain_up works with. */
struct tools {
    char root[PATH_MAX], anvil[PATH_MAX + 64], cast[PATH_MAX + 64];
};
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
    if (cli_self_dir(bin, sizeof bin) == 0) {
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
            cli_self_dir(bin, sizeof bin) == 0) {
            if (snprintf(out, n, "%s/%s", bin, tool) < (int)n && is_exe(out)) {
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
        if (snprintf(p, sizeof p, "%s/contracts/scripts/deploy-local.sh",
                     roots[i]) >= (int)sizeof p ||
            access(p, X_OK) != 0)
            continue;
        if (snprintf(out, n, "%s", roots[i]) < (int)n)
            return 0;
    }
    return -1;
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

static bool rpc_alive(const char *rpc)
{
    char *body = NULL, err[256];
    long st = cli_http("POST", rpc,
                       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                       "\"eth_blockNumber\",\"params\":[]}",
                       NULL, 1000, &body, err, sizeof err);
    free(body);
    return st == 200;
}

/* anvil, cast and the project root, or -1 with the reason on stderr. */
static int find_tools(struct tools *t)
{
    const char *why_anvil, *why_cast;
    if (find_tool("anvil", t->anvil, sizeof t->anvil, &why_anvil) != 0 ||
        find_tool("cast", t->cast, sizeof t->cast, &why_cast) != 0) {
        fprintf(stderr,
                "nftraft up: anvil and cast not found on PATH, in "
                "$NFTRAFT_ROOT/contracts/node_modules/.bin, beside the "
                "binary or in the source tree: put Foundry on PATH, set "
                "NFTRAFT_ROOT to the source tree, or run ./run.sh deps (npm "
                "ci in contracts/)\n");
        return -1;
    }
    printf("up: using anvil %s (%s)\nup: using cast  %s (%s)\n", t->anvil,
           why_anvil, t->cast, why_cast);
    if (find_root(t->root, sizeof t->root) != 0) {
        fprintf(stderr, "nftraft up: contracts/scripts/deploy-local.sh not "
                        "found in $NFTRAFT_ROOT, beside the binary or in the "
                        "source tree: set NFTRAFT_ROOT to the source tree\n");
        return -1;
    }
    return 0;
}

/* Fork anvil (its own process group) with its pid in DIR/anvil.pid and
 * wait up to 15 s for its RPC. */
static int start_anvil(const char *dir, int port, const struct tools *t,
                       struct devchain *dc)
{
    if (!cli_port_free(port)) {
        fprintf(stderr,
                "nftraft up: anvil port %d is in use; pick another "
                "--anvil-port\n",
                port);
        return -1;
    }
    snprintf(dc->rpc, sizeof dc->rpc, "http://127.0.0.1:%d", port);
    char state[PATH_MAX + 32], logp[PATH_MAX + 32], ports[16];
    snprintf(state, sizeof state, "%s/anvil-state.json", dir);
    snprintf(logp, sizeof logp, "%s/anvil.log", dir);
    snprintf(ports, sizeof ports, "%d", port);
    double t0 = cli_step_begin("anvil", dc->rpc);
    pid_t pid = fork();
    if (pid == 0) {
        setsid(); /* its own group: the npm wrapper and anvil stop together */
        int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lfd >= 0) {
            dup2(lfd, 1);
            dup2(lfd, 2);
        }
        execl(t->anvil, t->anvil, "--host", "127.0.0.1", "--port", ports,
              "--block-time", "1", "--accounts", ANVIL_ACCOUNTS, "--state",
              state, (char *)NULL);
        _exit(127);
    }
    dc->anvil = pid;
    char pidp[PATH_MAX + 32];
    snprintf(pidp, sizeof pidp, "%s/anvil.pid", dir);
    FILE *pf = fopen(pidp, "w");
    if (pf) {
        fprintf(pf, "%d\n", (int)pid);
        fclose(pf);
    }
    for (int i = 0; i < 150 && !rpc_alive(dc->rpc); i++)
        usleep(100000);
    if (!rpc_alive(dc->rpc)) {
        cli_step_end(t0, "failed");
        fprintf(stderr, "nftraft up: anvil did not start; see %s\n", logp);
        return -1;
    }
    cli_step_end(t0, "ready");
    return 0;
}

/* keys[0..nodes+spare] (deployer and owners) and node_keys[1..nodes]. */
static int derive_keys(int nodes, int spare, const struct tools *t,
                       struct devchain *dc)
{
    char cmd[2 * PATH_MAX];
    double t0 = cli_step_begin("keys", "deriving the anvil dev accounts' keys");
    for (int i = 0; i <= nodes + spare + nodes; i++) {
        bool node_key = i > nodes + spare;
        int n = node_key ? i - nodes - spare : i; /* node_keys[1..nodes] */
        char *out = node_key ? dc->node_keys[n] : dc->keys[i];
        snprintf(cmd, sizeof cmd,
                 "'%s' wallet private-key --mnemonic '%s' --mnemonic-index %d",
                 t->cast, MNEMONIC, node_key ? NODE_KEY_BASE + n : i);
        if (capture(cmd, out, sizeof dc->keys[0]) != 0) {
            cli_step_end(t0, "failed");
            fprintf(stderr, "nftraft up: cannot derive dev key %d\n", i);
            return -1;
        }
    }
    cli_step_end(t0, "done");
    return 0;
}

/* NFT= and KMS= lines of a file into dc (the others are ignored). */
static void read_addresses(FILE *f, struct devchain *dc)
{
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "NFT=", 4))
            snprintf(dc->nft, sizeof dc->nft, "%.63s", line + 4);
        if (!strncmp(line, "KMS=", 4))
            snprintf(dc->kms, sizeof dc->kms, "%.63s", line + 4);
    }
}

/* A restart: true when DIR/chain.env names the contract (anvil's state
 * has it). */
static bool load_env(const char *dir, struct devchain *dc)
{
    char envp[PATH_MAX + 32];
    snprintf(envp, sizeof envp, "%s/chain.env", dir);
    FILE *ef = fopen(envp, "r");
    if (ef == NULL)
        return false;
    read_addresses(ef, dc);
    fclose(ef);
    if (!dc->nft[0])
        return false;
    printf("up: deploy    skipped: contract %s from %s (anvil "
           "restarted from its state)\n",
           dc->nft, envp);
    return true;
}

static void save_env(const char *dir, const struct devchain *dc)
{
    char envp[PATH_MAX + 32];
    snprintf(envp, sizeof envp, "%s/chain.env", dir);
    FILE *ef = fopen(envp, "w");
    if (ef) {
        fprintf(ef, "RPC=%s\nNFT=%s\nKMS=%s\n", dc->rpc, dc->nft, dc->kms);
        fclose(ef);
    }
}

/* contracts/scripts/deploy-local.sh with the deployer's key; its output
 * in DIR/deploy.out, its log in DIR/deploy.log. */
static int deploy(const char *dir, const struct tools *t, struct devchain *dc)
{
    char cmd[4 * PATH_MAX + 512];
    double t0 = cli_step_begin("deploy", "KMS factory and DstackMembershipNFT");
    snprintf(
        cmd, sizeof cmd,
        "'%s/contracts/scripts/deploy-local.sh' '%s' '%s' >'%s/deploy.out' "
        "2>'%s/deploy.log'",
        t->root, dc->rpc, dc->keys[0], dir, dir);
    char outp[PATH_MAX + 32];
    snprintf(outp, sizeof outp, "%s/deploy.out", dir);
    FILE *of = system(cmd) == 0 ? fopen(outp, "r") : NULL;
    if (of != NULL) {
        read_addresses(of, dc);
        fclose(of);
    }
    if (!dc->nft[0] || !dc->kms[0]) {
        cli_step_end(t0, "failed");
        fprintf(stderr, "nftraft up: deployment failed; see %s/deploy.log\n",
                dir);
        return -1;
    }
    cli_step_end(t0, dc->nft);
    return 0;
}

/* ---- mint and register, in process through chain/membership ---- */

/* The contract from this process: one loop and RPC client, a sender per
 * signing key (keys[0] the deployer, keys[i] owner i). */
struct chainctx {
    uv_loop_t loop;
    struct httpc *http;
    struct rpc *rpc;
    uint64_t chain_id;
    uint8_t contract[20];
    struct wallet *w[CLI_MAX_NODES + 1];
    struct sender *s[CLI_MAX_NODES + 1];
    bool done;
    int err;
    char msg[512];
};

static void ctx_u64_cb(void *data, int err, uint64_t v, const char *msg)
{
    struct chainctx *c = data;
    c->done = true;
    c->err = err;
    c->chain_id = v;
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "");
}

static void ctx_tx_cb(void *data, int err, const uint8_t hash[32],
                      uint64_t block, const char *msg)
{
    struct chainctx *c = data;
    (void)hash;
    (void)block;
    c->done = true;
    c->err = err;
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "");
}

/* rv: what the call that takes ctx_*_cb returned; then its answer. */
static int ctx_wait(struct chainctx *c, int rv)
{
    if (rv != 0) {
        snprintf(c->msg, sizeof c->msg, "%s", err_str(rv));
        return rv;
    }
    c->done = false;
    while (!c->done && uv_run(&c->loop, UV_RUN_ONCE))
        ;
    if (c->err != 0 && !c->msg[0])
        snprintf(c->msg, sizeof c->msg, "%s", err_str(c->err));
    return c->done ? c->err : ERR_SHUTDOWN;
}

/* The RPC client, the chain id and the contract address. */
static int ctx_open(struct chainctx *c, const struct devchain *dc)
{
    size_t n;
    memset(c, 0, sizeof *c);
    uv_loop_init(&c->loop);
    if (strlen(dc->nft) != 42 ||
        hex_decode(dc->nft, 42, c->contract, 20, &n) != 0 || n != 20) {
        snprintf(c->msg, sizeof c->msg, "bad contract address %s", dc->nft);
        return ERR_MALFORMED;
    }
    int rv = httpc_init(&c->http, &c->loop);
    if (rv == 0)
        rv = rpc_init(&c->rpc, &c->loop, c->http, dc->rpc, 10000, 2);
    if (rv != 0) {
        snprintf(c->msg, sizeof c->msg, "%s", err_str(rv));
        return rv;
    }
    return ctx_wait(c, rpc_chain_id(c->rpc, ctx_u64_cb, c));
}

/* The contract, written with key (hex) as signer slot i. */
static int ctx_signer(struct chainctx *c, int i, const char *key,
                      struct membership *m)
{
    int rv = 0;
    if (c->w[i] == NULL && (rv = wallet_from_hex(&c->w[i], key)) != 0) {
        snprintf(c->msg, sizeof c->msg, "dev key %d is not a key", i);
        return rv;
    }
    if (c->s[i] == NULL &&
        (rv = sender_init(&c->s[i], &c->loop, c->rpc, c->w[i], c->chain_id,
                          30000)) != 0) {
        snprintf(c->msg, sizeof c->msg, "%s", err_str(rv));
        return rv;
    }
    membership_init(m, c->rpc, c->s[i], c->contract);
    return 0;
}

/* Close in reverse order of open (the rpc client before the senders). */
static void ctx_close(struct chainctx *c)
{
    if (c->rpc)
        rpc_close(c->rpc);
    for (int i = 0; i <= CLI_MAX_NODES; i++)
        if (c->s[i])
            sender_close(c->s[i]);
    if (c->http)
        httpc_close(c->http, NULL, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    for (int i = 0; i <= CLI_MAX_NODES; i++)
        wallet_free(c->w[i]);
}

/* Token i (1..nodes) to owner i, named node<i>, minted by the deployer. */
static int mint(struct chainctx *c, int nodes, const struct devchain *dc)
{
    char what[64];
    snprintf(what, sizeof what, "%d NFT%s, one to each node's account", nodes,
             nodes > 1 ? "s" : "");
    double t0 = cli_step_begin("mint", what);
    struct membership m;
    int rv = ctx_signer(c, 0, dc->keys[0], &m);
    for (int i = 1; rv == 0 && i <= nodes; i++) {
        struct wallet *owner = NULL;
        char name[16];
        snprintf(name, sizeof name, "node%d", i);
        rv = wallet_from_hex(&owner, dc->keys[i]);
        if (rv == 0)
            rv = ctx_wait(c, membership_mint(&m, wallet_address(owner), name,
                                             ctx_tx_cb, c));
        wallet_free(owner);
        if (rv != 0) {
            cli_step_end(t0, "failed");
            fprintf(stderr, "nftraft up: minting token %d failed: %s\n", i,
                    c->msg);
            return -1;
        }
    }
    if (rv != 0) {
        cli_step_end(t0, "failed");
        fprintf(stderr, "nftraft up: minting failed: %s\n", c->msg);
        return -1;
    }
    cli_step_end(t0, "done");
    return 0;
}

/* Owner i registers instance node<i> for token i with node i's key and its
 * endpoints (raft on base+100+i-1, HTTP on base+i-1). */
static int register_nodes(struct chainctx *c, int nodes, int base,
                          const struct devchain *dc)
{
    char what[64];
    snprintf(what, sizeof what, "instances node1..node%d", nodes);
    double t0 = cli_step_begin("register", what);
    for (int i = 1; i <= nodes; i++) {
        char name[16], raft[32], http[48];
        uint8_t instance[32];
        struct wallet *node = NULL;
        struct membership m;
        snprintf(name, sizeof name, "node%d", i);
        snprintf(raft, sizeof raft, "127.0.0.1:%d", base + 100 + i - 1);
        snprintf(http, sizeof http, "http://127.0.0.1:%d", base + i - 1);
        int rv = membership_instance_id(name, instance);
        if (rv == 0)
            rv = wallet_from_hex(&node, dc->node_keys[i]);
        if (rv == 0)
            rv = ctx_signer(c, i, dc->keys[i], &m);
        if (rv == 0)
            rv =
                ctx_wait(c, membership_register_node(&m, (uint64_t)i, instance,
                                                     wallet_address(node), raft,
                                                     http, ctx_tx_cb, c));
        wallet_free(node);
        if (rv != 0) {
            cli_step_end(t0, "failed");
            fprintf(stderr, "nftraft up: registering node%d failed: %s\n", i,
                    c->msg);
            return -1;
        }
    }
    cli_step_end(t0, "done");
    return 0;
}

/* Mint and register on the contract just deployed. */
static int mint_and_register(int nodes, int base, const struct devchain *dc)
{
    struct chainctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "nftraft up: out of memory\n");
        return -1;
    }
    int rv = ctx_open(c, dc);
    if (rv != 0)
        fprintf(stderr, "nftraft up: cannot reach the chain at %s: %s\n",
                dc->rpc, c->msg);
    if (rv == 0 && mint(c, nodes, dc) != 0)
        rv = -1;
    if (rv == 0 && register_nodes(c, nodes, base, dc) != 0)
        rv = -1;
    ctx_close(c);
    free(c);
    return rv == 0 ? 0 : -1;
}

int devchain_up(const char *dir, int nodes, int spare, int port, int base,
                struct devchain *dc)
{
    struct tools t;
    if (find_tools(&t) != 0 || start_anvil(dir, port, &t, dc) != 0 ||
        derive_keys(nodes, spare, &t, dc) != 0)
        return -1;
    if (load_env(dir, dc))
        return 0;
    if (deploy(dir, &t, dc) != 0 || mint_and_register(nodes, base, dc) != 0)
        return -1;
    save_env(dir, dc);
    return 0;
}

void devchain_stop(const char *dir)
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
