/* kmsauth.c - `nftraft kms-auth` (see cmd/kmsauth.h): --host/--port/--mock
 * and the environment auth-eth-bun and auth-mock read, then the webhook on
 * its own loop until a signal. */
#include "cmd/kmsauth.h"
#include "core/log.h"
#include "dstack/kmsauth.h"

#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char USAGE[] =
    "nftraft kms-auth [--host HOST] [--port PORT] [--mock]";

static void help(void)
{
    printf("usage: %s\n\n"
           "dstack's KMS auth webhook (the API of auth-eth / auth-eth-bun):\n"
           "  POST /bootAuth/app   ask KMS.isAppAllowed(bootInfo) (forwarded "
           "to the app)\n"
           "  POST /bootAuth/kms   ask KMS.isKmsAllowed(bootInfo)\n"
           "  GET  /               status, contract, chain id, gateway app id\n"
           "Any RPC or contract failure answers 200 {isAllowed:false, reason:\n"
           "\"authorization backend unavailable\"} (fail closed); nothing is "
           "cached.\n"
           "Reasons and gatewayAppId pass through up to 65536 bytes (longer: "
           "fail\n"
           "closed, logged), decoded as viem decodes them.\n\n"
           "  --host HOST   listen address (env HOST, default 127.0.0.1)\n"
           "  --port PORT   listen port (env PORT, default 3000)\n"
           "  --mock        auth-mock: no chain, decisions from MOCK_POLICY\n"
           "                (allow-all, deny-kms, deny-app, deny-all, "
           "allowlist-device,\n"
           "                allowlist-mr with MOCK_ALLOWED_DEVICE_IDS /\n"
           "                MOCK_ALLOWED_MR_AGGREGATED); refused under\n"
           "                NODE_ENV=production\n\n"
           "Environment: ETH_RPC_URL (default http://localhost:8545), "
           "KMS_CONTRACT_ADDR\n"
           "(default the zero address), ETH_CHAIN_ID (fail closed when the RPC "
           "reports\n"
           "another chain), ETH_FINALITY_CONFIRMATIONS (default 0: read at "
           "head - N),\n"
           "Mock: MOCK_POLICY (unknown: allow-all, with a warning), "
           "MOCK_GATEWAY_APP_ID,\n"
           "MOCK_CHAIN_ID (parseInt, default 1337), MOCK_APP_IMPLEMENTATION,\n"
           "KMS_CONTRACT_ADDR and ETH_RPC_URL (printed by GET / only), as "
           "auth-mock.\n",
           USAGE);
}

/* An environment variable, NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* A port 1..65535 (digits only) into *port: 0, or -1. */
static int parse_port(const char *s, int *port)
{
    char *end;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* Flags (over HOST and PORT) into cfg: 0, -1 after --help, 2 after a usage
 * error. */
static int parse_flags(int argc, char **argv, struct kmsauth_config *cfg)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"mock", no_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *port_s = env("PORT") ? env("PORT") : "3000";
    cfg->host = env("HOST") ? env("HOST") : "127.0.0.1";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            cfg->host = optarg;
            break;
        case 'p':
            port_s = optarg;
            break;
        case 'm':
            cfg->mock = true;
            break;
        case 'h':
            help();
            return -1;
        default:
            fprintf(stderr, "nftraft kms-auth: %s\nusage: %s\n",
                    c == ':' ? "an option needs a value" : "unknown option",
                    USAGE);
            return 2;
        }
    }
    if (optind < argc || parse_port(port_s, &cfg->port) != 0) {
        fprintf(stderr, "nftraft kms-auth: bad port or argument\nusage: %s\n",
                USAGE);
        return 2;
    }
    return 0;
}

/* The environment the reference reads. */
static void read_env(struct kmsauth_config *cfg)
{
    cfg->kms_contract = env("KMS_CONTRACT_ADDR");
    cfg->rpc_url = env("ETH_RPC_URL");
    cfg->chain_id = env("ETH_CHAIN_ID");
    cfg->confirmations = env("ETH_FINALITY_CONFIRMATIONS");
    cfg->mock_policy = env("MOCK_POLICY");
    cfg->mock_gateway_app_id = env("MOCK_GATEWAY_APP_ID");
    cfg->mock_allowed_device_ids = env("MOCK_ALLOWED_DEVICE_IDS");
    cfg->mock_allowed_mr_aggregated = env("MOCK_ALLOWED_MR_AGGREGATED");
    cfg->mock_app_implementation = env("MOCK_APP_IMPLEMENTATION");
    cfg->mock_chain_id = env("MOCK_CHAIN_ID");
}

/* What the signal handlers stop. */
struct run {
    struct kmsauth *ka;
    uv_signal_t sigint, sigterm;
};

static void on_signal(uv_signal_t *s, int signum)
{
    struct run *r = s->data;
    LOGI("auth", "stopping (signal %d)", signum);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    kmsauth_stop(r->ka);
}

/* Serve on a new loop until SIGINT/SIGTERM: the exit code (0 or 1). */
static int serve(const struct kmsauth_config *cfg)
{
    uv_loop_t loop;
    struct run r = {0};
    char err[512];
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    if (kmsauth_start(&r.ka, &loop, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "nftraft kms-auth: %s\n", err);
        uv_run(&loop, UV_RUN_DEFAULT); /* release what was started */
        uv_loop_close(&loop);
        return 1;
    }
    uv_signal_init(&loop, &r.sigint);
    uv_signal_init(&loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    printf("nftraft kms-auth listening on http://%s:%d\n", cfg->host,
           kmsauth_port(r.ka));
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}

int kmsauth_cmd(int argc, char **argv)
{
    struct kmsauth_config cfg = {0};
    int rv = parse_flags(argc, argv, &cfg);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    log_init("kms-auth", getenv("NFTRAFT_LOG_LEVEL"));
    const char *node_env = getenv("NODE_ENV");
    if (cfg.mock && node_env && strcmp(node_env, "production") == 0) {
        fprintf(stderr, "nftraft kms-auth: auth-mock must not run with "
                        "NODE_ENV=production\n");
        return 1;
    }
    read_env(&cfg);
    return serve(&cfg);
}
