/* chain.c - chain subcommands over the project's Ethereum client: each
 * runs a libuv loop until its calls or transaction complete. */
#include "cmd/chain.h"
#include "chain/membership.h"
#include "chain/hex.h"
#include "chain/rpc.h"
#include "chain/sender.h"
#include "chain/wallet.h"
#include "core/err.h"
#include "core/httpc.h"

#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const COMMANDS[] = {
    "members",    "mint",  "register",  "set-endpoints",
    "deactivate", "evict", "readmit",   "transfer",
    "vote",       "elect", "heartbeat", "cluster-size",
    "deploy",     NULL};

#define MAX_ENDPOINT MEMBERSHIP_MAX_ENDPOINT

int chaincli_is_command(const char *cmd)
{
    for (int i = 0; COMMANDS[i]; i++)
        if (strcmp(cmd, COMMANDS[i]) == 0)
            return 1;
    return 0;
}

static const char NEED_KEY[] = "this command signs a transaction: give "
                               "--wallet-key FILE, --private-key HEX or "
                               "NFTRAFT_WALLET_KEY";

struct ctx {
    uv_loop_t loop;
    struct httpc *http;
    struct rpc *rpc;
    struct wallet *w;
    struct sender *sender;
    uint8_t contract[20];
    uint64_t chain_id;
    bool done;
    int err;
    char msg[1024];
    struct membership mc; /* the contract, over rpc (and sender) */
};

static void u64_cb(void *data, int err, uint64_t v, const char *msg)
{
    struct ctx *c = data;
    c->done = true;
    c->err = err;
    c->chain_id = v;
    if (msg)
        snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void tx_cb(void *data, int err, const uint8_t hash[32], uint64_t block,
                  const char *msg)
{
    struct ctx *c = data;
    c->done = true;
    c->err = err;
    char h[67];
    hex_encode(hash, 32, 1, h);
    if (err == 0)
        printf("transaction %s mined in block %" PRIu64 "\n", h, block);
    if (msg)
        snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void wait_done(struct ctx *c)
{
    c->done = false;
    while (!c->done && uv_run(&c->loop, UV_RUN_ONCE))
        ;
}

static void ctx_close(struct ctx *c)
{
    if (c->rpc)
        rpc_close(c->rpc);
    if (c->sender)
        sender_close(c->sender);
    if (c->http)
        httpc_close(c->http, NULL, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    wallet_free(c->w);
}

/* The sender, made on the first transaction (it needs the chain id). */
static int tx_begin(struct ctx *c)
{
    if (c->sender != NULL)
        return 0;
    if (c->w == NULL) {
        snprintf(c->msg, sizeof c->msg, "%s", NEED_KEY);
        return ERR_INVALID;
    }
    if (rpc_chain_id(c->rpc, u64_cb, c) != 0)
        return ERR_RPC;
    wait_done(c);
    if (c->err != 0)
        return c->err;
    if (sender_init(&c->sender, &c->loop, c->rpc, c->w, c->chain_id, 30000) !=
        0)
        return ERR_NOMEM;
    c->mc.sender = c->sender;
    return 0;
}

/* rv: what the membership_* call returned; then its transaction's end. */
static int tx_wait(struct ctx *c, int rv)
{
    if (rv != 0)
        return rv;
    wait_done(c);
    return c->err;
}

static void print_nodes(const struct membership_node *m, size_t n, bool v1)
{
    if (v1) {
        printf("(a v1 contract: no node keys, epochs or endpoints)\n");
        printf("%-6s %-34s %s\n", "token", "instance id", "owner");
    } else {
        printf("%-6s %-6s %-12s %-42s %-42s %-22s %s\n", "token", "epoch",
               "instance id", "owner", "node key", "raft endpoint",
               "http endpoint");
    }
    for (size_t i = 0; i < n; i++) {
        char ih[67], oh[43], kh[43];
        membership_instance_text(m[i].instance, ih);
        hex_encode(m[i].owner, 20, 1, oh);
        hex_encode(m[i].node_key, 20, 1, kh);
        if (v1)
            printf("%-6" PRIu64 " %-34s %s\n", m[i].token, ih, oh);
        else
            printf("%-6" PRIu64 " %-6" PRIu32 " %-12s %-42s %-42s %-22s %s\n",
                   m[i].token, m[i].epoch, ih, oh, kh,
                   m[i].raft[0] ? m[i].raft : "-",
                   m[i].http[0] ? m[i].http : "-");
    }
}

static void read_done(struct ctx *c, int err, const char *msg)
{
    c->done = true;
    c->err = err;
    if (msg)
        snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void nodes_cb(void *data, int err, const struct membership_node *m,
                     size_t n, const char *msg)
{
    struct ctx *c = data;
    read_done(c, err, msg);
    if (err == 0)
        print_nodes(m, n, c->mc.v1);
}

static void state_cb(void *data, int err, const struct membership_state *s,
                     const char *msg)
{
    struct ctx *c = data;
    read_done(c, err, msg);
    if (err != 0)
        return;
    char lh[43];
    hex_encode(s->leader, 20, 1, lh);
    printf("leader %s (token %" PRIu64 ", term %" PRIu64
           ", lease until %" PRIu64 ")\nvotes against the leader %" PRIu64
           " of %" PRIu64 " required; %" PRIu64
           " active members; heartbeat every %" PRIu64 " s\n",
           lh, s->leader_token, s->term, s->expiry, s->against, s->required,
           s->active, s->period);
}

static int print_members(struct ctx *c)
{
    int rv = tx_wait(c, membership_read_nodes(&c->mc, NULL, nodes_cb, c));
    if (rv == 0)
        rv = tx_wait(c, membership_read_state(&c->mc, NULL, state_cb, c));
    return rv;
}

#define USAGE_ERROR 1000 /* not an ERR_* code */

static void events_cb(void *data, int err,
                      const struct membership_leader_event *e, size_t n,
                      const char *msg)
{
    struct ctx *c = data;
    read_done(c, err, msg);
    if (err != 0)
        return;
    printf("leader changes (LeaderElected events):\n");
    for (size_t i = 0; i < n; i++) {
        char lh[43];
        hex_encode(e[i].leader, 20, 1, lh);
        printf("  block %-8" PRIu64 " token %-4" PRIu64 " %s\n", e[i].block,
               e[i].token, lh);
    }
}

static int print_history(struct ctx *c)
{
    return tx_wait(c, membership_leader_events(&c->mc, 10000, events_cb, c));
}

static const char USAGE[] =
    "nftraft members|mint|register|set-endpoints|deactivate|evict|readmit|"
    "transfer|vote|elect|heartbeat|cluster-size|deploy [options]";

static void help(void)
{
    printf(
        "usage: %s\n\n"
        "Chain operations on the DstackMembershipNFT contract (what the seed "
        "does\n"
        "with cast), through nftraft's own Ethereum client:\n"
        "  members [--history]                  active members (token, epoch, "
        "instance,\n"
        "                                       owner, node key, endpoints) "
        "and the\n"
        "                                       leader state (--history: "
        "every\n"
        "                                       LeaderElected event)\n"
        "  mint --to ADDR --name NAME           mintNodeAccess (contract "
        "owner)\n"
        "  register --instance-id ID --token N  registerInstance (token owner; "
        "the\n"
        "                                       node key is the owner, no "
        "endpoints)\n"
        "  register --instance-id ID --token N --node-key ADDR\n"
        "           --raft-endpoint HOST:PORT --http-endpoint URL\n"
        "                                       registerNode (token owner): "
        "the node's\n"
        "                                       own key acts for the token; a "
        "new or\n"
        "                                       re-activated instance starts a "
        "new epoch\n"
        "                                       (raft id = token << 32 | "
        "epoch)\n"
        "  set-endpoints --token N --raft-endpoint HOST:PORT --http-endpoint "
        "URL\n"
        "                                       setEndpoints (token owner or "
        "node key)\n"
        "  deactivate --token N                 deactivateInstance\n"
        "  evict --token N                      evict (contract owner): "
        "deactivate and\n"
        "                                       refuse re-registration until "
        "readmit\n"
        "  readmit --token N                    readmit (contract owner)\n"
        "  transfer --token N --to ADDR         safeTransferFrom(owner, ADDR, "
        "N) (the\n"
        "                                       token's instance is revoked)\n"
        "  vote --target ADDR [--clear] [--token N]   castVote / "
        "castVoteByToken\n"
        "  vote --token N --leader-token L [--clear]  castVoteByToken by token "
        "(owner\n"
        "                                       or node key of N)\n"
        "  elect [--token N]                    electLeader / "
        "electLeaderByToken\n"
        "  heartbeat                            leaderHeartbeat (the leader)\n"
        "  cluster-size                         updateClusterSize\n"
        "  deploy [--compose-hash H] [--own-proxy KMS]   "
        "contracts/scripts/deploy-local.sh\n\n"
        "Common options:\n"
        "  --rpc-url URL        (env ETH_RPC_URL, default "
        "http://127.0.0.1:8545)\n"
        "  --contract ADDR      the NFT (env CONTRACT_ADDRESS)\n"
        "  --wallet-key FILE    signing key file; or --private-key HEX; or "
        "env\n"
        "                       NFTRAFT_WALLET_KEY\n"
        "An instance id is 0x-hex (up to 32 bytes, right-padded) or a name of "
        "up to\n"
        "32 bytes (node1 = bytes32(\"node1\")). A revert prints its reason; "
        "exit 1.\n",
        USAGE);
}

static int parse_addr(const char *s, uint8_t out[20])
{
    size_t n;
    return s && strlen(s) == 42 && hex_decode(s, 42, out, 20, &n) == 0 &&
                   n == 20
               ? 0
               : ERR_INVALID;
}

/* Both endpoints given, 1..256 bytes (the contract's rule, checked here
 * first for a clearer message). Prints the problem; true when bad. */
static bool bad_endpoints(const char *cmd, const char *raft, const char *http)
{
    if (raft == NULL || http == NULL || !*raft || !*http ||
        strlen(raft) > MAX_ENDPOINT || strlen(http) > MAX_ENDPOINT) {
        fprintf(stderr,
                "nftraft %s: give --raft-endpoint HOST:PORT and "
                "--http-endpoint URL, each 1..%d bytes\n",
                cmd, MAX_ENDPOINT);
        return true;
    }
    return false;
}

static int deploy(const char *rpc, const char *key, const char *compose,
                  const char *own_kms)
{
    char exe[PATH_MAX], script[PATH_MAX + 64];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return 1;
    exe[k] = '\0';
    const char *root = getenv("NFTRAFT_ROOT");
    snprintf(script, sizeof script, "%s/contracts/scripts/deploy-local.sh",
             root ? root : strcat(dirname(exe), "/.."));
    if (access(script, X_OK) != 0) {
        fprintf(stderr, "nftraft deploy: %s not found (set NFTRAFT_ROOT)\n",
                script);
        return 1;
    }
    if (key == NULL) {
        fprintf(stderr, "nftraft deploy: give --private-key HEX or "
                        "NFTRAFT_WALLET_KEY\n");
        return 1;
    }
    const char *args[8];
    int n = 0;
    args[n++] = script;
    if (own_kms) {
        args[n++] = "--own-proxy";
        args[n++] = own_kms;
    }
    args[n++] = rpc;
    args[n++] = key;
    if (compose)
        args[n++] = compose;
    args[n] = NULL;
    execv(script, (char *const *)args);
    perror("nftraft deploy: exec");
    return 1;
}

int chaincli_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rpc-url", required_argument, NULL, 'r'},
        {"contract", required_argument, NULL, 'c'},
        {"wallet-key", required_argument, NULL, 'w'},
        {"private-key", required_argument, NULL, 'k'},
        {"to", required_argument, NULL, 't'},
        {"name", required_argument, NULL, 'n'},
        {"instance-id", required_argument, NULL, 'i'},
        {"token", required_argument, NULL, 'T'},
        {"target", required_argument, NULL, 'g'},
        {"clear", no_argument, NULL, 'C'},
        {"compose-hash", required_argument, NULL, 'H'},
        {"own-proxy", required_argument, NULL, 'o'},
        {"history", no_argument, NULL, 'y'},
        {"node-key", required_argument, NULL, 'K'},
        {"raft-endpoint", required_argument, NULL, 'R'},
        {"http-endpoint", required_argument, NULL, 'P'},
        {"leader-token", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    const char *rpc_url = getenv("ETH_RPC_URL");
    const char *contract = getenv("CONTRACT_ADDRESS");
    const char *key_file = NULL, *key_hex = getenv("NFTRAFT_WALLET_KEY");
    const char *to = NULL, *name = NULL, *instance = NULL, *target = NULL;
    const char *compose = NULL, *own = NULL;
    const char *node_key = NULL, *raft_ep = NULL, *http_ep = NULL;
    long long token = -1, leader_token = -1;
    bool clear = false, history = false;
    int o;
    char *end;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (o) {
        case 'r':
            rpc_url = optarg;
            break;
        case 'c':
            contract = optarg;
            break;
        case 'w':
            key_file = optarg;
            break;
        case 'k':
            key_hex = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'i':
            instance = optarg;
            break;
        case 'g':
            target = optarg;
            break;
        case 'C':
            clear = true;
            break;
        case 'H':
            compose = optarg;
            break;
        case 'o':
            own = optarg;
            break;
        case 'y':
            history = true;
            break;
        case 'K':
            node_key = optarg;
            break;
        case 'R':
            raft_ep = optarg;
            break;
        case 'P':
            http_ep = optarg;
            break;
        case 'T':
        case 'L': {
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1 || v > (long long)UINT32_MAX) {
                fprintf(stderr,
                        "nftraft %s: --%s wants an integer >= 1\n"
                        "usage: %s\n",
                        cmd, o == 'T' ? "token" : "leader-token", USAGE);
                return 2;
            }
            if (o == 'T')
                token = v;
            else
                leader_token = v;
            break;
        }
        case 'h':
            help();
            return 0;
        default:
            fprintf(stderr, "nftraft %s: %s\nusage: %s\n", cmd,
                    o == ':' ? "an option needs a value" : "unknown option",
                    USAGE);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nftraft %s: unexpected argument '%s'\nusage: %s\n",
                cmd, argv[optind], USAGE);
        return 2;
    }
    if (rpc_url == NULL || !*rpc_url)
        rpc_url = "http://127.0.0.1:8545";
    if (strcmp(cmd, "deploy") == 0)
        return deploy(rpc_url, key_hex, compose, own);

    static struct ctx c;
    memset(&c, 0, sizeof c);
    if (parse_addr(contract, c.contract) != 0) {
        fprintf(stderr,
                "nftraft %s: give --contract 0x<20-byte address> (or "
                "CONTRACT_ADDRESS)\n",
                cmd);
        return 2;
    }
    if (key_file != NULL || (key_hex != NULL && *key_hex)) {
        int rv = key_file ? wallet_from_file(&c.w, key_file)
                          : wallet_from_hex(&c.w, key_hex);
        if (rv != 0) {
            fprintf(stderr, "nftraft %s: %s\n", cmd,
                    key_file ? "cannot read a secp256k1 key from --wallet-key"
                             : "the private key is not 32 bytes of hex");
            return 1;
        }
    }
    uv_loop_init(&c.loop);
    if (httpc_init(&c.http, &c.loop) != 0 ||
        rpc_init(&c.rpc, &c.loop, c.http, rpc_url, 10000, 2) != 0) {
        fprintf(stderr, "nftraft %s: bad --rpc-url '%s'\n", cmd, rpc_url);
        ctx_close(&c);
        return 2;
    }
    membership_init(&c.mc, c.rpc, NULL, c.contract);
    int rv = 0;
    uint8_t buf[32], addr[20];
    if (strcmp(cmd, "members") == 0) {
        rv = print_members(&c);
        if (rv == 0 && history)
            rv = print_history(&c);
    } else if (strcmp(cmd, "mint") == 0) {
        if (parse_addr(to, addr) != 0 || name == NULL) {
            fprintf(stderr, "nftraft mint: give --to ADDR --name NAME\n");
            rv = USAGE_ERROR;
        } else {
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(&c, membership_mint(&c.mc, addr, name, tx_cb, &c));
        }
    } else if (strcmp(cmd, "register") == 0) {
        if (instance == NULL || membership_instance_id(instance, buf) != 0 ||
            token < 1) {
            fprintf(stderr, "nftraft register: give --instance-id ID (0x-hex "
                            "or a name of <= 32 bytes) --token N\n");
            rv = USAGE_ERROR;
        } else if (node_key == NULL && (raft_ep || http_ep)) {
            fprintf(stderr, "nftraft register: endpoints go with --node-key "
                            "ADDR (registerNode)\n");
            rv = USAGE_ERROR;
        } else if (node_key == NULL) {
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(&c, membership_register_instance(
                                     &c.mc, buf, (uint64_t)token, tx_cb, &c));
        } else if (parse_addr(node_key, addr) != 0 ||
                   bad_endpoints("register", raft_ep, http_ep)) {
            if (parse_addr(node_key, addr) != 0)
                fprintf(stderr, "nftraft register: --node-key wants 0x + 40 "
                                "hex digits\n");
            rv = USAGE_ERROR;
        } else {
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(&c, membership_register_node(
                                     &c.mc, (uint64_t)token, buf, addr, raft_ep,
                                     http_ep, tx_cb, &c));
        }
    } else if (strcmp(cmd, "set-endpoints") == 0) {
        if (token < 1 || bad_endpoints("set-endpoints", raft_ep, http_ep)) {
            if (token < 1)
                fprintf(stderr, "nftraft set-endpoints: give --token N\n");
            rv = USAGE_ERROR;
        } else {
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(
                    &c, membership_set_endpoints(&c.mc, (uint64_t)token,
                                                 raft_ep, http_ep, tx_cb, &c));
        }
    } else if (strcmp(cmd, "deactivate") == 0 || strcmp(cmd, "evict") == 0 ||
               strcmp(cmd, "readmit") == 0) {
        if (token < 1) {
            fprintf(stderr, "nftraft %s: give --token N\n", cmd);
            rv = USAGE_ERROR;
        } else {
            int (*fn)(struct membership *, uint64_t, sender_cb, void *) =
                cmd[0] == 'd'   ? membership_deactivate
                : cmd[0] == 'e' ? membership_evict
                                : membership_readmit;
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(&c, fn(&c.mc, (uint64_t)token, tx_cb, &c));
        }
    } else if (strcmp(cmd, "transfer") == 0) {
        if (token < 1 || parse_addr(to, addr) != 0) {
            fprintf(stderr, "nftraft transfer: give --token N --to ADDR\n");
            rv = USAGE_ERROR;
        } else if (c.w == NULL) {
            snprintf(c.msg, sizeof c.msg, "%s", NEED_KEY);
            rv = ERR_INVALID;
        } else {
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(&c, membership_transfer(&c.mc, wallet_address(c.w),
                                                     addr, (uint64_t)token,
                                                     tx_cb, &c));
        }
    } else if (strcmp(cmd, "vote") == 0 && leader_token >= 1) {
        if (token < 1 || target != NULL) {
            fprintf(stderr, "nftraft vote: --leader-token L goes with --token "
                            "N (and no --target)\n");
            rv = USAGE_ERROR;
        } else {
            if ((rv = tx_begin(&c)) == 0)
                rv =
                    tx_wait(&c, membership_vote_for_leader_token(
                                    &c.mc, (uint64_t)token,
                                    (uint64_t)leader_token, !clear, tx_cb, &c));
        }
    } else if (strcmp(cmd, "vote") == 0) {
        if (parse_addr(target, addr) != 0) {
            fprintf(stderr, "nftraft vote: give --target ADDR\n");
            rv = USAGE_ERROR;
        } else if (token >= 1) {
            if ((rv = tx_begin(&c)) == 0)
                rv = tx_wait(&c,
                             membership_vote_by_token(&c.mc, (uint64_t)token,
                                                      addr, !clear, tx_cb, &c));
        } else if ((rv = tx_begin(&c)) == 0) {
            rv = tx_wait(&c, membership_vote(&c.mc, addr, !clear, tx_cb, &c));
        }
    } else if ((rv = tx_begin(&c)) != 0) {
        /* elect, heartbeat, cluster-size: no arguments to check */
    } else if (strcmp(cmd, "elect") == 0) {
        rv = tx_wait(&c, token >= 1 ? membership_elect_by_token(
                                          &c.mc, (uint64_t)token, tx_cb, &c)
                                    : membership_elect(&c.mc, tx_cb, &c));
    } else if (strcmp(cmd, "heartbeat") == 0) {
        rv = tx_wait(&c, membership_heartbeat(&c.mc, tx_cb, &c));
    } else if (strcmp(cmd, "cluster-size") == 0) {
        rv = tx_wait(&c, membership_update_cluster_size(&c.mc, tx_cb, &c));
    }
    if (rv == USAGE_ERROR) {
        ctx_close(&c);
        return 2;
    }
    if (rv != 0)
        fprintf(stderr, "nftraft %s: %s%s\n", cmd,
                rv == ERR_REVERT ? "reverted: " : "",
                c.msg[0] ? c.msg : err_str(rv));
    ctx_close(&c);
    return rv == 0 ? 0 : 1;
}
