/* config.c - flags and environment into one validated struct config. */
#include "core/config.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *errmsg, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, errlen, fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

int config_parse_u64(const char *s, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return ERR_INVALID;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return ERR_INVALID;
    *out = v;
    return 0;
}

/* "a.b.c.d:port" (IPv4 only: canonical/raft 0.15 takes no host names). */
static int check_ipv4_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || (size_t)(colon - s) >= 16)
        return ERR_INVALID;
    char host[16];
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    struct in_addr a;
    uint64_t port;
    if (inet_pton(AF_INET, host, &a) != 1 ||
        config_parse_u64(colon + 1, 1, 65535, &port) != 0)
        return ERR_INVALID;
    return 0;
}

static int copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return ERR_TOOBIG;
    memcpy(dst, src, n + 1);
    return 0;
}

static int check_url(const char *s)
{
    return (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)
               ? 0
               : ERR_INVALID;
}

/* --peers ID=RAFTADDR=HTTPURL,... */
static int parse_peers(struct config *cfg, const char *spec, char *errmsg,
                       size_t errlen)
{
    char *dup = strdup(spec);
    if (dup == NULL)
        return ERR_NOMEM;
    int rv = 0;
    char *save = NULL;
    for (char *item = strtok_r(dup, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        if (cfg->n_peers == CONFIG_MAX_PEERS) {
            rv = fail(errmsg, errlen, "--peers: more than %d peers",
                      CONFIG_MAX_PEERS);
            break;
        }
        struct config_peer *p = &cfg->peers[cfg->n_peers];
        char *eq1 = strchr(item, '=');
        char *eq2 = eq1 ? strchr(eq1 + 1, '=') : NULL;
        if (eq1 == NULL || eq2 == NULL) {
            rv = fail(errmsg, errlen,
                      "--peers: '%s' is not ID=RAFTADDR=HTTPURL", item);
            break;
        }
        *eq1 = *eq2 = '\0';
        uint64_t id;
        if (config_parse_u64(item, 1, UINT64_MAX, &id) != 0) {
            rv = fail(errmsg, errlen, "--peers: bad id '%s' (want >= 1)",
                      item);
            break;
        }
        if (check_ipv4_addr(eq1 + 1) != 0 ||
            copy(p->raft, sizeof p->raft, eq1 + 1) != 0) {
            rv = fail(errmsg, errlen,
                      "--peers: bad raft address '%s' (want IPv4 a.b.c.d:port)",
                      eq1 + 1);
            break;
        }
        const char *url = eq2 + 1;
        size_t ul = strlen(url);
        while (ul > 0 && url[ul - 1] == '/')
            ul--;
        if (check_url(url) != 0 || ul >= sizeof p->http) {
            rv = fail(errmsg, errlen, "--peers: bad HTTP URL '%s'", url);
            break;
        }
        memcpy(p->http, url, ul);
        p->http[ul] = '\0';
        p->id = id;
        for (unsigned i = 0; i < cfg->n_peers; i++) {
            if (cfg->peers[i].id == id ||
                strcmp(cfg->peers[i].raft, p->raft) == 0) {
                rv = fail(errmsg, errlen,
                          "--peers: duplicate id %llu or raft address %s",
                          (unsigned long long)id, p->raft);
                goto out;
            }
        }
        cfg->n_peers++;
    }
out:
    free(dup);
    return rv;
}

void config_usage(void *stream)
{
    fprintf((FILE *)stream,
"usage: nftraftd --data-dir DIR --http HOST:PORT --raft IPV4:PORT [options]\n"
"\n"
"A node of an nftraft cluster: a raft-replicated counter with an HTTP API.\n"
"\n"
"Required:\n"
"  --data-dir DIR            raft log, snapshots and state.db live here\n"
"  --http HOST:PORT          HTTP API listen address (e.g. 127.0.0.1:8081)\n"
"  --raft IPV4:PORT          raft listen/advertised address (IPv4 only)\n"
"\n"
"Membership (one of):\n"
"  --peers ID=RAFT=URL,...   static membership (local mode without a chain);\n"
"                            every node gets the same list. In chain mode:\n"
"                            the address book (token id -> raft address, URL)\n"
"  --rpc-url URL             Ethereum JSON-RPC URL      (env ETH_RPC_URL)\n"
"  --contract ADDR           DstackMembershipNFT address (env CONTRACT_ADDRESS)\n"
"                            chain mode: raft voters = the contract's active\n"
"                            instances; raft follows the on-chain leader; a\n"
"                            raft peer must sign a handshake with the node\n"
"                            key registered for the active token it claims\n"
"                            as id (the owner's key on a v1 registration)\n"
"  --join                    chain mode: never bootstrap; wait for the raft\n"
"                            leader to add this node (a node registered after\n"
"                            the cluster started)\n"
"  --chain-poll MS           how often the contract is read (default 1000)\n"
"  --chain-confirmations N   read the contract at block head-N, every call of\n"
"                            a poll pinned to that one block (default 2; on\n"
"                            a real chain use its finality depth, e.g. 10 on\n"
"                            Base; nftraft up on its own anvil passes 0); an\n"
"                            answer from a block older than one already read\n"
"                            is ignored\n"
"  --allow-insecure-rpc      accept a plain http:// --rpc-url to a host that\n"
"                            is not loopback (refused by default)\n"
"  --leader-ping-timeout MS  follower's ping of the on-chain leader's /status\n"
"                            before it votes no-confidence (default 1000)\n"
"\n"
"Identity:\n"
"  --id N                    raft id = NFT token id (static mode: default is\n"
"                            the peer whose raft address equals --raft)\n"
"  --instance-id ID          instance id (0x-hex up to 32 bytes, or a short\n"
"                            name like node1); default node<ID>\n"
"  --wallet-key FILE         file holding the node's secp256k1 key (hex)\n"
"                            (or env NFTRAFT_WALLET_KEY): signs transactions\n"
"                            and the raft handshake: the node key registered\n"
"                            for its token (registerNode), or its owner's\n"
"  --advertise-url URL       this node's HTTP URL as peers reach it\n"
"                            (default http://HOST:PORT of --http)\n"
"\n"
"Tuning:\n"
"  --election-timeout MS     raft election timeout (default 300; raft\n"
"                            randomizes it to 1-2x)\n"
"  --heartbeat-timeout MS    raft heartbeat interval (default 40)\n"
"  --snapshot-threshold N    entries between snapshots (default 65536)\n"
"  --snapshot-trailing N     entries kept after a snapshot (default 4096)\n"
"  --log-retention N         op-log rows kept: the newest N indexes (default\n"
"                            10000; 0 keeps all). GET /log starts there\n"
"  --key-retention N         an Idempotency-Key is remembered for N log\n"
"                            indexes after the entry that applied it\n"
"                            (default 100000; 0 = forever). The leader's\n"
"                            value is written in each entry\n"
"  --install-snapshot-timeout MS\n"
"                            leader resends a snapshot a follower has not\n"
"                            acknowledged after MS (default 5000; raft's own\n"
"                            30000 stalls a follower that was busy taking its\n"
"                            own snapshot when the first one arrived)\n"
"  --max-body BYTES          largest accepted request body (default 65536)\n"
"  --forward-timeout MS      follower->leader forwarding timeout (default 5000)\n"
"  --apply-timeout MS        answer 'outcome unknown' after MS (default 10000)\n"
"  --max-http-conns N        open HTTP connections; more get 503 (default 512)\n"
"  --max-forwards N          requests forwarded to the leader at once; more\n"
"                            get 503 (default 256)\n"
"  --http2                   accept cleartext HTTP/2 on the API (h2c upgrade,\n"
"                            prior knowledge); off by default: h2o 2.2 has no\n"
"                            stream-reset rate limit\n"
"  --max-fee-gwei G          ceiling on a transaction's max fee per gas; a\n"
"                            stuck transaction is reported, not bumped past\n"
"                            it (default 100)\n"
"  --log-level LEVEL         debug|info|warn|error (default info)\n"
"  --bind-outgoing           outgoing HTTP (forwarding, leader pings, chain\n"
"                            RPC) leaves from the --raft host; raft's own\n"
"                            connects follow the route (one address per\n"
"                            network namespace gives the same source)\n"
"\n"
"Raft port:\n"
"  --cluster-secret-file FILE  static mode: file holding the cluster secret\n"
"                            (64 hex digits, the same on every node; nftraft\n"
"                            up writes one); a raft peer must answer a\n"
"                            challenge with an HMAC of it before raft reads\n"
"                            a byte from it. Required in static mode.\n"
"  --max-raft-message BYTES  largest raft message payload accepted (default\n"
"                            67108864); every incoming message is checked\n"
"                            before raft decodes it, a bad one closes the\n"
"                            connection\n"
"  --max-raft-connections N  incoming raft connections at once (default 64;\n"
"                            at most half of them still in the handshake)\n"
"\n"
"Testing:\n"
"  --enable-fault-switch     expose POST /fault (test-only; off by default):\n"
"                            lets a test make this node's HTTP API stall\n"
"  --insecure-no-auth        static mode WITHOUT the raft handshake: anyone\n"
"                            who reaches the raft port can speak raft. For\n"
"                            tests only; logged as a warning at start\n"
"\n"
"  --help                    this text\n"
"  --version                 print the version\n"
"\n"
"SIGINT/SIGTERM stop the node cleanly (exit 0). Exit 1: runtime or\n"
"configuration error; exit 2: bad flags.\n");
}

bool config_rpc_is_safe(const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return true;
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *h = url + 7, *at = strpbrk(h, "@/");
    if (at != NULL && *at == '@') /* user:password@host */
        h = at + 1;
    size_t n = strcspn(h, ":/?#");
    if (h[0] == '[') /* [::1] */
        return strncmp(h, "[::1]", 5) == 0;
    if (n == 9 && strncmp(h, "localhost", 9) == 0)
        return true;
    return strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == n;
}

const struct config_peer *config_peer(const struct config *cfg, uint64_t id)
{
    for (unsigned i = 0; i < cfg->n_peers; i++)
        if (cfg->peers[i].id == id)
            return &cfg->peers[i];
    return NULL;
}

static int parse_host_port(const char *s, char *host, size_t hcap, int *port)
{
    const char *colon = strrchr(s, ':');
    uint64_t p;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= hcap ||
        config_parse_u64(colon + 1, 1, 65535, &p) != 0)
        return ERR_INVALID;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

enum {
    OPT_DATA_DIR = 256, OPT_HTTP, OPT_RAFT, OPT_PEERS, OPT_RPC, OPT_CONTRACT,
    OPT_ID, OPT_INSTANCE, OPT_WALLET, OPT_ADVERTISE, OPT_ELECTION,
    OPT_HEARTBEAT, OPT_SNAP_THRESHOLD, OPT_SNAP_TRAILING, OPT_MAX_BODY,
    OPT_FWD_TIMEOUT, OPT_APPLY_TIMEOUT, OPT_LOG_LEVEL, OPT_FAULT, OPT_BIND_OUT, OPT_HELP,
    OPT_VERSION, OPT_JOIN, OPT_CHAIN_POLL, OPT_PING, OPT_SNAP_TIMEOUT,
    OPT_SECRET, OPT_INSECURE, OPT_MAX_RAFT_MSG, OPT_MAX_RAFT_CONNS,
    OPT_CONFIRMATIONS, OPT_INSECURE_RPC,
    OPT_MAX_CONNS, OPT_MAX_FWD, OPT_HTTP2, OPT_MAX_FEE,
    OPT_LOG_RETENTION, OPT_KEY_RETENTION,
};

int config_parse(struct config *cfg, int argc, char **argv, char *errmsg,
                 size_t errlen)
{
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"http", required_argument, NULL, OPT_HTTP},
        {"raft", required_argument, NULL, OPT_RAFT},
        {"peers", required_argument, NULL, OPT_PEERS},
        {"rpc-url", required_argument, NULL, OPT_RPC},
        {"contract", required_argument, NULL, OPT_CONTRACT},
        {"id", required_argument, NULL, OPT_ID},
        {"instance-id", required_argument, NULL, OPT_INSTANCE},
        {"wallet-key", required_argument, NULL, OPT_WALLET},
        {"advertise-url", required_argument, NULL, OPT_ADVERTISE},
        {"election-timeout", required_argument, NULL, OPT_ELECTION},
        {"heartbeat-timeout", required_argument, NULL, OPT_HEARTBEAT},
        {"snapshot-threshold", required_argument, NULL, OPT_SNAP_THRESHOLD},
        {"snapshot-trailing", required_argument, NULL, OPT_SNAP_TRAILING},
        {"install-snapshot-timeout", required_argument, NULL, OPT_SNAP_TIMEOUT},
        {"log-retention", required_argument, NULL, OPT_LOG_RETENTION},
        {"key-retention", required_argument, NULL, OPT_KEY_RETENTION},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"forward-timeout", required_argument, NULL, OPT_FWD_TIMEOUT},
        {"apply-timeout", required_argument, NULL, OPT_APPLY_TIMEOUT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"enable-fault-switch", no_argument, NULL, OPT_FAULT},
        {"bind-outgoing", no_argument, NULL, OPT_BIND_OUT},
        {"join", no_argument, NULL, OPT_JOIN},
        {"chain-poll", required_argument, NULL, OPT_CHAIN_POLL},
        {"leader-ping-timeout", required_argument, NULL, OPT_PING},
        {"chain-confirmations", required_argument, NULL, OPT_CONFIRMATIONS},
        {"allow-insecure-rpc", no_argument, NULL, OPT_INSECURE_RPC},
        {"cluster-secret-file", required_argument, NULL, OPT_SECRET},
        {"insecure-no-auth", no_argument, NULL, OPT_INSECURE},
        {"max-raft-message", required_argument, NULL, OPT_MAX_RAFT_MSG},
        {"max-raft-connections", required_argument, NULL, OPT_MAX_RAFT_CONNS},
        {"max-http-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"max-forwards", required_argument, NULL, OPT_MAX_FWD},
        {"http2", no_argument, NULL, OPT_HTTP2},
        {"max-fee-gwei", required_argument, NULL, OPT_MAX_FEE},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(cfg, 0, sizeof *cfg);
    cfg->election_timeout_ms = 300;
    cfg->heartbeat_timeout_ms = 40;
    /* Each raft snapshot also closes the open segment, whose KAIO context
     * is torn down on the loop (io_destroy: 10-40 ms here, still so in raft
     * 0.22): with 1024 that was the whole p99, with 16384 still most of the
     * tail at concurrency 16-64. etcd's own default is 100000. */
    cfg->snapshot_threshold = 65536;
    cfg->snapshot_trailing = 4096;
    /* Bounded state: snapshots carry this window, and raft 0.22 takes
     * them on the loop. */
    cfg->log_retention = 10000;
    cfg->key_retention = 100000;
    cfg->install_snapshot_timeout_ms = 5000;
    cfg->max_body = 65536;
    cfg->max_raft_message = (uint64_t)64 << 20;
    cfg->max_raft_connections = 64;
    cfg->forward_timeout_ms = 5000;
    cfg->apply_timeout_ms = 10000;
    cfg->chain_poll_ms = 1000;
    cfg->chain_confirmations = 2;
    cfg->leader_ping_ms = 1000;
    cfg->max_http_conns = 512;
    cfg->max_forwards = 256;
    cfg->max_fee_gwei = 100;
    snprintf(cfg->log_level, sizeof cfg->log_level, "info");
    const char *env;
    if ((env = getenv("ETH_RPC_URL")) != NULL && *env)
        snprintf(cfg->rpc_url, sizeof cfg->rpc_url, "%s", env);
    if ((env = getenv("CONTRACT_ADDRESS")) != NULL && *env)
        snprintf(cfg->contract, sizeof cfg->contract, "%.42s", env);
    if ((env = getenv("NFTRAFT_WALLET_KEY")) != NULL && *env)
        cfg->wallet_key_env = true;

    int c;
    uint64_t v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case OPT_DATA_DIR:
            if (copy(cfg->data_dir, sizeof cfg->data_dir, a) != 0 || !*a)
                return fail(errmsg, errlen, "--data-dir: bad path");
            break;
        case OPT_HTTP:
            if (parse_host_port(a, cfg->http_host, sizeof cfg->http_host,
                                &cfg->http_port) != 0)
                return fail(errmsg, errlen,
                            "--http: '%s' is not HOST:PORT", a);
            break;
        case OPT_RAFT:
            if (check_ipv4_addr(a) != 0 ||
                copy(cfg->raft_addr, sizeof cfg->raft_addr, a) != 0)
                return fail(errmsg, errlen,
                            "--raft: '%s' is not an IPv4 a.b.c.d:port", a);
            break;
        case OPT_PEERS: {
            int rv = parse_peers(cfg, a, errmsg, errlen);
            if (rv != 0)
                return rv == ERR_NOMEM ? rv : ERR_INVALID;
            break;
        }
        case OPT_RPC:
            if (check_url(a) != 0 ||
                copy(cfg->rpc_url, sizeof cfg->rpc_url, a) != 0)
                return fail(errmsg, errlen, "--rpc-url: bad URL '%s'", a);
            break;
        case OPT_CONTRACT:
            if (copy(cfg->contract, sizeof cfg->contract, a) != 0)
                return fail(errmsg, errlen, "--contract: bad address");
            break;
        case OPT_ID:
            if (config_parse_u64(a, 1, UINT64_MAX, &cfg->id) != 0)
                return fail(errmsg, errlen, "--id: '%s' is not >= 1", a);
            break;
        case OPT_INSTANCE:
            if (copy(cfg->instance_id, sizeof cfg->instance_id, a) != 0 || !*a)
                return fail(errmsg, errlen, "--instance-id: bad value");
            break;
        case OPT_WALLET:
            if (copy(cfg->wallet_key_file, sizeof cfg->wallet_key_file, a))
                return fail(errmsg, errlen, "--wallet-key: path too long");
            break;
        case OPT_ADVERTISE:
            if (check_url(a) != 0 ||
                copy(cfg->advertise_url, sizeof cfg->advertise_url, a) != 0)
                return fail(errmsg, errlen, "--advertise-url: bad URL");
            break;
        case OPT_ELECTION:
            if (config_parse_u64(a, 10, 60000, &v) != 0)
                return fail(errmsg, errlen,
                            "--election-timeout: want 10..60000 ms");
            cfg->election_timeout_ms = (unsigned)v;
            break;
        case OPT_HEARTBEAT:
            if (config_parse_u64(a, 1, 60000, &v) != 0)
                return fail(errmsg, errlen,
                            "--heartbeat-timeout: want 1..60000 ms");
            cfg->heartbeat_timeout_ms = (unsigned)v;
            break;
        case OPT_SNAP_THRESHOLD:
            if (config_parse_u64(a, 1, 100000000, &v) != 0)
                return fail(errmsg, errlen, "--snapshot-threshold: want >= 1");
            cfg->snapshot_threshold = (unsigned)v;
            break;
        case OPT_SNAP_TRAILING:
            if (config_parse_u64(a, 0, 100000000, &v) != 0)
                return fail(errmsg, errlen, "--snapshot-trailing: want >= 0");
            cfg->snapshot_trailing = (unsigned)v;
            break;
        case OPT_LOG_RETENTION:
            if (config_parse_u64(a, 0, 1000000000, &v) != 0)
                return fail(errmsg, errlen,
                            "--log-retention: want 0..1000000000 rows");
            cfg->log_retention = v;
            break;
        case OPT_KEY_RETENTION:
            if (config_parse_u64(a, 0, 1000000000, &v) != 0)
                return fail(errmsg, errlen,
                            "--key-retention: want 0..1000000000 indexes");
            cfg->key_retention = v;
            break;
        case OPT_SNAP_TIMEOUT:
            if (config_parse_u64(a, 100, 600000, &v) != 0)
                return fail(errmsg, errlen,
                            "--install-snapshot-timeout: want 100..600000 ms");
            cfg->install_snapshot_timeout_ms = (unsigned)v;
            break;
        case OPT_MAX_BODY:
            if (config_parse_u64(a, 64, 64 << 20, &v) != 0)
                return fail(errmsg, errlen, "--max-body: want 64..67108864");
            cfg->max_body = (size_t)v;
            break;
        case OPT_FWD_TIMEOUT:
            if (config_parse_u64(a, 10, 600000, &v) != 0)
                return fail(errmsg, errlen, "--forward-timeout: want 10..600000");
            cfg->forward_timeout_ms = (unsigned)v;
            break;
        case OPT_APPLY_TIMEOUT:
            if (config_parse_u64(a, 10, 600000, &v) != 0)
                return fail(errmsg, errlen, "--apply-timeout: want 10..600000");
            cfg->apply_timeout_ms = (unsigned)v;
            break;
        case OPT_LOG_LEVEL:
            if (strcmp(a, "debug") && strcmp(a, "info") && strcmp(a, "warn") &&
                strcmp(a, "error"))
                return fail(errmsg, errlen,
                            "--log-level: want debug|info|warn|error");
            snprintf(cfg->log_level, sizeof cfg->log_level, "%s", a);
            break;
        case OPT_FAULT:
            cfg->fault_switch = true;
            break;
        case OPT_BIND_OUT:
            cfg->bind_ip[0] = '?'; /* filled from --raft once parsed */
            break;
        case OPT_JOIN:
            cfg->join = true;
            break;
        case OPT_CHAIN_POLL:
            if (config_parse_u64(a, 100, 600000, &v) != 0)
                return fail(errmsg, errlen, "--chain-poll: want 100..600000 ms");
            cfg->chain_poll_ms = (unsigned)v;
            break;
        case OPT_PING:
            if (config_parse_u64(a, 50, 60000, &v) != 0)
                return fail(errmsg, errlen,
                            "--leader-ping-timeout: want 50..60000 ms");
            cfg->leader_ping_ms = (unsigned)v;
            break;
        case OPT_CONFIRMATIONS:
            if (config_parse_u64(a, 0, 1000, &v) != 0)
                return fail(errmsg, errlen,
                            "--chain-confirmations: want 0..1000 blocks");
            cfg->chain_confirmations = (unsigned)v;
            break;
        case OPT_INSECURE_RPC:
            cfg->allow_insecure_rpc = true;
            break;
        case OPT_SECRET:
            if (!a[0] || strlen(a) >= sizeof cfg->cluster_secret_file)
                return fail(errmsg, errlen, "--cluster-secret-file: bad path");
            snprintf(cfg->cluster_secret_file, sizeof cfg->cluster_secret_file,
                     "%s", a);
            break;
        case OPT_INSECURE:
            cfg->insecure_no_auth = true;
            break;
        case OPT_MAX_RAFT_MSG:
            if (config_parse_u64(a, 1 << 20, (uint64_t)1 << 32, &v) != 0)
                return fail(errmsg, errlen,
                            "--max-raft-message: want 1048576..4294967296");
            cfg->max_raft_message = v;
            break;
        case OPT_MAX_RAFT_CONNS:
            if (config_parse_u64(a, 4, 4096, &v) != 0)
                return fail(errmsg, errlen,
                            "--max-raft-connections: want 4..4096");
            cfg->max_raft_connections = (unsigned)v;
            break;
        case OPT_MAX_CONNS:
            if (config_parse_u64(a, 1, 100000, &v) != 0)
                return fail(errmsg, errlen, "--max-http-conns: want 1..100000");
            cfg->max_http_conns = (unsigned)v;
            break;
        case OPT_MAX_FWD:
            if (config_parse_u64(a, 1, 100000, &v) != 0)
                return fail(errmsg, errlen, "--max-forwards: want 1..100000");
            cfg->max_forwards = (unsigned)v;
            break;
        case OPT_HTTP2:
            cfg->http2 = true;
            break;
        case OPT_MAX_FEE:
            if (config_parse_u64(a, 1, 1000000, &cfg->max_fee_gwei) != 0)
                return fail(errmsg, errlen, "--max-fee-gwei: want 1..1000000");
            break;
        case OPT_HELP:
            return CONFIG_HELP;
        case OPT_VERSION:
            return CONFIG_VERSION;
        case ':':
            return fail(errmsg, errlen, "%s needs a value", argv[optind - 1]);
        default:
            return fail(errmsg, errlen, "unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail(errmsg, errlen, "unexpected argument '%s'", argv[optind]);
    if (!cfg->data_dir[0] || !cfg->http_port || !cfg->raft_addr[0])
        return fail(errmsg, errlen,
                    "--data-dir, --http and --raft are required");
    if (cfg->heartbeat_timeout_ms * 2 > cfg->election_timeout_ms)
        return fail(errmsg, errlen,
                    "--heartbeat-timeout must be at most half of "
                    "--election-timeout");
    if (cfg->bind_ip[0]) { /* --bind-outgoing: the host of --raft */
        size_t hl = (size_t)(strrchr(cfg->raft_addr, ':') - cfg->raft_addr);
        memcpy(cfg->bind_ip, cfg->raft_addr, hl); /* < 16: checked above */
        cfg->bind_ip[hl] = '\0';
    }
    bool chain = cfg->rpc_url[0] || cfg->contract[0];
    cfg->chain = chain;
    if (cfg->n_peers == 0 && !chain)
        return fail(errmsg, errlen,
                    "give --peers (static mode) or --rpc-url and --contract");
    if (chain && (!cfg->rpc_url[0] || !cfg->contract[0]))
        return fail(errmsg, errlen,
                    "chain mode needs both --rpc-url and --contract");
    if (chain && !cfg->allow_insecure_rpc && !config_rpc_is_safe(cfg->rpc_url))
        return fail(errmsg, errlen,
                    "--rpc-url %s: plain http:// to a host that is not on "
                    "this machine lets anyone on the path forge membership "
                    "answers; use https:// or --allow-insecure-rpc",
                    cfg->rpc_url);
    if (chain && !cfg->instance_id[0])
        return fail(errmsg, errlen, "chain mode needs --instance-id");
    if (chain && !cfg->wallet_key_file[0] && !cfg->wallet_key_env)
        return fail(errmsg, errlen,
                    "chain mode needs --wallet-key FILE or NFTRAFT_WALLET_KEY");
    if (cfg->join && !chain)
        return fail(errmsg, errlen, "--join is for chain mode");
    if (chain && (cfg->cluster_secret_file[0] || cfg->insecure_no_auth))
        return fail(errmsg, errlen,
                    "--cluster-secret-file and --insecure-no-auth are for "
                    "static mode (chain mode authenticates raft peers by "
                    "their keys)");
    if (!chain && cfg->cluster_secret_file[0] && cfg->insecure_no_auth)
        return fail(errmsg, errlen,
                    "give --cluster-secret-file or --insecure-no-auth, not "
                    "both");
    if (!chain && !cfg->cluster_secret_file[0] && !cfg->insecure_no_auth)
        return fail(errmsg, errlen,
                    "static mode needs --cluster-secret-file FILE (the raft "
                    "handshake secret shared by the cluster; nftraft up "
                    "writes one)");
    if (cfg->contract[0]) {
        size_t n = strlen(cfg->contract);
        bool ok = n == 42 && cfg->contract[0] == '0' &&
                  (cfg->contract[1] == 'x' || cfg->contract[1] == 'X');
        for (size_t i = 2; ok && i < n; i++)
            ok = strchr("0123456789abcdefABCDEF", cfg->contract[i]) != NULL;
        if (!ok)
            return fail(errmsg, errlen,
                        "--contract: '%s' is not a 0x-prefixed 20-byte address",
                        cfg->contract);
    }
    if (cfg->n_peers > 0 && !chain) {
        if (cfg->id == 0) {
            for (unsigned i = 0; i < cfg->n_peers; i++)
                if (strcmp(cfg->peers[i].raft, cfg->raft_addr) == 0)
                    cfg->id = cfg->peers[i].id;
            if (cfg->id == 0)
                return fail(errmsg, errlen,
                            "--raft %s is not in --peers; give --id",
                            cfg->raft_addr);
        }
        const struct config_peer *self = config_peer(cfg, cfg->id);
        if (self == NULL)
            return fail(errmsg, errlen, "--id %llu is not in --peers",
                        (unsigned long long)cfg->id);
        if (strcmp(self->raft, cfg->raft_addr) != 0)
            return fail(errmsg, errlen,
                        "--raft %s differs from this node's --peers entry %s",
                        cfg->raft_addr, self->raft);
        if (!cfg->advertise_url[0])
            snprintf(cfg->advertise_url, sizeof cfg->advertise_url, "%s",
                     self->http);
    }
    if (!cfg->advertise_url[0]) {
        const char *h = cfg->http_host;
        if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
            h = "127.0.0.1";
        snprintf(cfg->advertise_url, sizeof cfg->advertise_url,
                 "http://%s:%d", h, cfg->http_port);
    }
    if (!cfg->instance_id[0] && cfg->id != 0)
        snprintf(cfg->instance_id, sizeof cfg->instance_id, "node%llu",
                 (unsigned long long)cfg->id);
    return 0;
}
