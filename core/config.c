/* config.c - flags and environment into one validated struct config,
 * driven by one table of options (OPTIONS). */
#include "core/config.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(char *errmsg, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, errlen, fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

int config_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
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
            rv = fail(errmsg, errlen, "--peers: bad id '%s' (want >= 1)", item);
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

/* --http HOST:PORT */
static int parse_http(struct config *cfg, const char *v, char *errmsg,
                      size_t errlen)
{
    (void)errmsg;
    (void)errlen;
    return parse_host_port(v, cfg->http_host, sizeof cfg->http_host,
                           &cfg->http_port);
}

/* --peers: parse_peers's own messages. */
static int parse_peers_opt(struct config *cfg, const char *v, char *errmsg,
                           size_t errlen)
{
    int rv = parse_peers(cfg, v, errmsg, errlen);
    return rv == 0 || rv == ERR_NOMEM ? rv : ERR_INVALID;
}

/* --rpc-url, up to twice: the first replaces ETH_RPC_URL, the second is
 * rpc_url2 (both must then agree before the view is adopted). */
static int parse_rpc_url(struct config *cfg, const char *v, char *errmsg,
                         size_t errlen)
{
    if (cfg->n_rpc_url_flags == 2)
        return fail(errmsg, errlen, "--rpc-url: given more than twice");
    char *field = cfg->n_rpc_url_flags == 0 ? cfg->rpc_url : cfg->rpc_url2;
    if (check_url(v) != 0 || copy(field, CONFIG_URL_MAX, v) != 0)
        return fail(errmsg, errlen, "--rpc-url: bad URL '%s'", v);
    cfg->n_rpc_url_flags++;
    return 0;
}

/* --bind-outgoing: bind_ip is filled from --raft once every flag is read. */
static int parse_bind(struct config *cfg, const char *v, char *errmsg,
                      size_t errlen)
{
    (void)v;
    (void)errmsg;
    (void)errlen;
    cfg->bind_ip[0] = '?';
    return 0;
}

/* --pg-listen IPV4:PORT: an address peers and clients reach (not
 * 0.0.0.0: it is advertised to the other nodes as well). */
static int parse_pg_listen(struct config *cfg, const char *v, char *errmsg,
                           size_t errlen)
{
    (void)errmsg;
    (void)errlen;
    if (check_ipv4_addr(v) != 0 || strncmp(v, "0.0.0.0:", 8) == 0)
        return ERR_INVALID;
    return parse_host_port(v, cfg->pg_host, sizeof cfg->pg_host, &cfg->pg_port);
}

/* --pg-user: a plain user name. */
static int check_user(const char *v)
{
    if (!*v || strlen(v) > 32 || *v == '-')
        return ERR_INVALID;
    for (const char *p = v; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789_.-",
                    *p))
            return ERR_INVALID;
    return 0;
}

static int check_log_level(const char *v)
{
    return strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") &&
                   strcmp(v, "error")
               ? ERR_INVALID
               : 0;
}

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define UINT(f, lo, hi, d)                                                     \
    .kind = CONFIG_UINT, FIELD(f), .min = (lo), .max = (hi), .dflt = (d)
#define STR(f) .kind = CONFIG_STR, FIELD(f)
#define FLAG(f) .kind = CONFIG_FLAG, FIELD(f)

static const struct config_option OPTIONS[] = {
    {"data-dir", "DIR", STR(data_dir), .nonempty = true, .error = "bad path",
     .section = "Required:",
     .help = "raft log, snapshots and state.db live here"},
    {"http", "HOST:PORT", .kind = CONFIG_CUSTOM, .parse = parse_http,
     .error = "'%s' is not HOST:PORT",
     .help = "HTTP API listen address (e.g. 127.0.0.1:8081)"},
    {"raft", "IPV4:PORT", STR(raft_addr), .check = check_ipv4_addr,
     .error = "'%s' is not an IPv4 a.b.c.d:port",
     .help = "raft listen/advertised address (IPv4 only)"},

    {"peers", "ID=RAFT=URL,...", .kind = CONFIG_CUSTOM,
     .parse = parse_peers_opt, .section = "Membership (one of):",
     .help = "static membership (local mode without a chain);\n"
             "every node gets the same list. In chain mode:\n"
             "the address book (token id -> raft address, URL)"},
    {"rpc-url", "URL", .kind = CONFIG_CUSTOM, FIELD(rpc_url),
     .parse = parse_rpc_url, .env = "ETH_RPC_URL",
     .help = "Ethereum JSON-RPC URL      (env ETH_RPC_URL)\n"
             "given twice: two independent endpoints; each\n"
             "poll reads both at one block and adopts the\n"
             "view only when they agree (transactions go\n"
             "through the first)"},
    {"contract", "ADDR", STR(contract), .env = "CONTRACT_ADDRESS",
     .error = "bad address",
     .help = "DstackMembershipNFT address (env CONTRACT_ADDRESS)\n"
             "chain mode: raft voters = the contract's active\n"
             "instances; raft follows the on-chain leader; a\n"
             "raft peer must sign a handshake with the node\n"
             "key registered for the active token it claims\n"
             "as id (the owner's key on a v1 registration)"},
    {"join", NULL, FLAG(join),
     .help = "chain mode: never bootstrap; wait for the raft\n"
             "leader to add this node (a node registered after\n"
             "the cluster started)"},
    {"chain-poll", "MS", UINT(chain_poll_ms, 100, 600000, 1000), .unit = "ms",
     .help = "how often the contract is read (default %D)"},
    {"chain-confirmations", "N", UINT(chain_confirmations, 0, 1000, 2),
     .unit = "blocks",
     .help = "read the contract at block head-N, every call of\n"
             "a poll pinned to that one block (default %D; on\n"
             "a real chain use its finality depth, e.g. 10 on\n"
             "Base; nftraft up on its own anvil passes 0); an\n"
             "answer from a block older than one already read\n"
             "is ignored"},
    {"allow-insecure-rpc", NULL, FLAG(allow_insecure_rpc),
     .help = "accept a plain http:// --rpc-url to a host that\n"
             "is not loopback (refused by default)"},
    {"leader-ping-timeout", "MS", UINT(leader_ping_ms, 50, 60000, 1000),
     .unit = "ms",
     .help = "follower's ping of the on-chain leader's /status\n"
             "before it votes no-confidence (default %D)"},

    {"id", "N", UINT(id, 1, UINT64_MAX, 0), .error = "'%s' is not >= 1",
     .section = "Identity:",
     .help = "raft id = NFT token id (static mode: default is\n"
             "the peer whose raft address equals --raft)"},
    {"instance-id", "ID", STR(instance_id), .nonempty = true,
     .error = "bad value",
     .help = "instance id (0x-hex up to 32 bytes, or a short\n"
             "name like node1); default node<ID>"},
    {"wallet-key", "FILE", STR(wallet_key_file), .error = "path too long",
     .help = "file holding the node's secp256k1 key (hex)\n"
             "(or env NFTRAFT_WALLET_KEY): signs transactions\n"
             "and the raft handshake: the node key registered\n"
             "for its token (registerNode), or its owner's"},
    {"advertise-url", "URL", STR(advertise_url), .check = check_url,
     .error = "bad URL",
     .help = "this node's HTTP URL as peers reach it\n"
             "(default http://HOST:PORT of --http)"},

    {"election-timeout", "MS", UINT(election_timeout_ms, 10, 60000, 300),
     .unit = "ms", .section = "Tuning:",
     .help = "raft election timeout (default %D; raft\n"
             "randomizes it to 1-2x)"},
    {"heartbeat-timeout", "MS", UINT(heartbeat_timeout_ms, 1, 60000, 40),
     .unit = "ms", .help = "raft heartbeat interval (default %D)"},
    /* Each raft snapshot also closes the open segment, whose KAIO context
     * is torn down on the loop (io_destroy: 10-40 ms here, still so in raft
     * 0.22): with 1024 that was the whole p99, with 16384 still most of the
     * tail at concurrency 16-64. etcd's own default is 100000. */
    {"snapshot-threshold", "N", UINT(snapshot_threshold, 1, 100000000, 65536),
     .error = "want >= 1", .help = "entries between snapshots (default %D)"},
    {"snapshot-trailing", "N", UINT(snapshot_trailing, 0, 100000000, 4096),
     .error = "want >= 0",
     .help = "entries kept after a snapshot (default %D)"},
    /* Bounded state: snapshots carry this window, and raft 0.22 takes them
     * on the loop. */
    {"log-retention", "N", UINT(log_retention, 0, 1000000000, 10000),
     .unit = "rows",
     .help = "op-log rows kept: the newest N indexes (default\n"
             "%D; 0 keeps all). GET /log starts there"},
    {"key-retention", "N", UINT(key_retention, 0, 1000000000, 100000),
     .unit = "indexes",
     .help = "an Idempotency-Key is remembered for N log\n"
             "indexes after the entry that applied it\n"
             "(default %D; 0 = forever). The leader's\n"
             "value is written in each entry"},
    {"install-snapshot-timeout", "MS",
     UINT(install_snapshot_timeout_ms, 100, 600000, 5000), .unit = "ms",
     .help = "leader resends a snapshot a follower has not\n"
             "acknowledged after MS (default %D; raft's own\n"
             "30000 stalls a follower that was busy taking its\n"
             "own snapshot when the first one arrived)"},
    {"max-body", "BYTES", UINT(max_body, 64, 64 << 20, 65536),
     .help = "largest accepted request body (default %D)"},
    {"forward-timeout", "MS", UINT(forward_timeout_ms, 10, 600000, 5000),
     .help = "follower->leader forwarding timeout (default %D)"},
    {"apply-timeout", "MS", UINT(apply_timeout_ms, 10, 600000, 10000),
     .help = "answer 'outcome unknown' after MS (default %D)"},
    {"max-http-conns", "N", UINT(max_http_conns, 1, 100000, 512),
     .help = "open HTTP connections; more get 503 (default %D)"},
    {"max-forwards", "N", UINT(max_forwards, 1, 100000, 256),
     .help = "requests forwarded to the leader at once; more\n"
             "get 503 (default %D)"},
    {"http2", NULL, FLAG(http2),
     .help = "accept cleartext HTTP/2 on the API (h2c upgrade,\n"
             "prior knowledge); off by default: h2o 2.2 has no\n"
             "stream-reset rate limit"},
    {"max-fee-gwei", "G", UINT(max_fee_gwei, 1, 1000000, 100),
     .help = "ceiling on a transaction's max fee per gas; a\n"
             "stuck transaction is reported, not bumped past\n"
             "it (default %D)"},
    {"log-level", "LEVEL", STR(log_level), .dflt_str = "info",
     .check = check_log_level, .error = "want debug|info|warn|error",
     .help = "debug|info|warn|error (default %D)"},
    {"bind-outgoing", NULL, .kind = CONFIG_CUSTOM, .parse = parse_bind,
     .help = "outgoing HTTP (forwarding, leader pings, chain\n"
             "RPC) leaves from the --raft host; raft's own\n"
             "connects follow the route (one address per\n"
             "network namespace gives the same source)"},

    {"pg", NULL, FLAG(pg), .section = "PostgreSQL (see README \"PostgreSQL\"):",
     .help = "run a PostgreSQL next to the node: the raft\n"
             "leader's is the primary, the others stream\n"
             "from it (needs --pg-listen, --pg-password-file)"},
    {"pg-listen", "IPV4:PORT", .kind = CONFIG_CUSTOM, .parse = parse_pg_listen,
     .error = "'%s' is not an IPv4 a.b.c.d:port (not 0.0.0.0)",
     .help = "PostgreSQL's listen address, as peers and\n"
             "clients reach it (e.g. 127.0.0.1:5433)"},
    {"pg-bin", "DIR", STR(pg_bin), .nonempty = true,
     .dflt_str = "/usr/lib/postgresql/15/bin", .error = "bad path",
     .help = "PostgreSQL's programs (default %D)"},
    {"pg-user", "NAME", STR(pg_user), .check = check_user,
     .error = "'%s' is not a user name",
     .help = "OS user PostgreSQL runs as (default: postgres\n"
             "when nftraftd runs as root, else nftraftd's own)"},
    {"pg-password-file", "FILE", STR(pg_password_file), .nonempty = true,
     .error = "bad path",
     .help = "file holding the password of the PostgreSQL\n"
             "role nftraft (clients, replication); the same\n"
             "on every node (nftraft up --pg writes one)"},

    {"cluster-secret-file", "FILE", STR(cluster_secret_file), .nonempty = true,
     .error = "bad path", .section = "Raft port:",
     .help = "static mode: file holding the cluster secret\n"
             "(64 hex digits, the same on every node; nftraft\n"
             "up writes one); a raft peer must answer a\n"
             "challenge with an HMAC of it before raft reads\n"
             "a byte from it. Required in static mode."},
    {"max-raft-message", "BYTES",
     UINT(max_raft_message, 1 << 20, (uint64_t)1 << 32, (uint64_t)64 << 20),
     .help = "largest raft message payload accepted (default\n"
             "%D); every incoming message is checked\n"
             "before raft decodes it, a bad one closes the\n"
             "connection"},
    {"max-raft-connections", "N", UINT(max_raft_connections, 4, 4096, 64),
     .help = "incoming raft connections at once (default %D;\n"
             "at most half of them still in the handshake)"},

    {"enable-fault-switch", NULL, FLAG(fault_switch), .section = "Testing:",
     .help = "expose POST /fault (test-only; off by default):\n"
             "lets a test make this node's HTTP API stall"},
    {"insecure-no-auth", NULL, FLAG(insecure_no_auth),
     .help = "static mode WITHOUT the raft handshake: anyone\n"
             "who reaches the raft port can speak raft. For\n"
             "tests only; logged as a warning at start"},

    {"help", NULL, .kind = CONFIG_ACTION, .dflt = CONFIG_HELP, .section = "",
     .help = "this text"},
    {"version", NULL, .kind = CONFIG_ACTION, .dflt = CONFIG_VERSION,
     .help = "print the version"},
};

#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

const struct config_option *config_options(size_t *n)
{
    *n = N_OPTIONS;
    return OPTIONS;
}

/* ---- --help ---- */

/* One option's lines: the flag in a 28-column margin, then its help with
 * %D replaced by the default. */
static void usage_option(FILE *f, const struct config_option *o)
{
    char head[64], dflt[32] = "";
    int n = snprintf(head, sizeof head, "  --%s%s%s", o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
    if (n <= 26)
        fprintf(f, "%-28s", head);
    else if (n <= 28)
        fprintf(f, "%s  ", head);
    else
        fprintf(f, "%s\n%28s", head, "");
    if (o->kind == CONFIG_UINT)
        snprintf(dflt, sizeof dflt, "%llu", (unsigned long long)o->dflt);
    else if (o->dflt_str != NULL)
        snprintf(dflt, sizeof dflt, "%s", o->dflt_str);
    for (const char *p = o->help; *p; p++) {
        if (p[0] == '%' && p[1] == 'D') {
            fputs(dflt, f);
            p++;
        } else if (*p == '\n') {
            fprintf(f, "\n%28s", "");
        } else {
            fputc(*p, f);
        }
    }
    fputc('\n', f);
}

void config_usage(void *stream)
{
    FILE *f = stream;
    fputs("usage: nftraftd --data-dir DIR --http HOST:PORT --raft IPV4:PORT "
          "[options]\n\n"
          "A node of an nftraft cluster: a raft-replicated counter with an "
          "HTTP API.\n",
          f);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct config_option *o = &OPTIONS[i];
        if (o->section != NULL)
            fprintf(f, "\n%s%s", o->section, o->section[0] ? "\n" : "");
        usage_option(f, o);
    }
    fputs("\nSIGINT/SIGTERM stop the node cleanly (exit 0). Exit 1: runtime "
          "or\nconfiguration error; exit 2: bad flags.\n",
          f);
}

/* ---- parsing ---- */

/* "--name: <the option's error>" into errmsg; ERR_INVALID. */
static int bad_value(const struct config_option *o, const char *v, char *errmsg,
                     size_t errlen)
{
    int n = snprintf(errmsg, errlen, "--%s: ", o->name);
    if (n < 0 || (size_t)n >= errlen)
        return ERR_INVALID;
    if (o->error != NULL)
        snprintf(errmsg + n, errlen - (size_t)n, o->error, v);
    else
        snprintf(errmsg + n, errlen - (size_t)n, "want %llu..%llu%s%s",
                 (unsigned long long)o->min, (unsigned long long)o->max,
                 o->unit ? " " : "", o->unit ? o->unit : "");
    return ERR_INVALID;
}

static void store_uint(struct config *cfg, const struct config_option *o,
                       uint64_t v)
{
    char *field = (char *)cfg + o->offset;
    if (o->size == sizeof(uint32_t)) {
        uint32_t x = (uint32_t)v;
        memcpy(field, &x, sizeof x);
    } else {
        memcpy(field, &v, sizeof v);
    }
}

/* Every default of the table and its environment variables. */
static void set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct config_option *o = &OPTIONS[i];
        char *field = (char *)cfg + o->offset;
        const char *env = o->env ? getenv(o->env) : NULL;
        if (o->kind == CONFIG_UINT && o->dflt >= o->min && o->dflt <= o->max)
            store_uint(cfg, o, o->dflt);
        else if (o->kind != CONFIG_UINT && o->size > 0 && env != NULL && *env)
            snprintf(field, o->size, "%.*s", (int)o->size - 1, env);
        else if (o->kind == CONFIG_STR && o->dflt_str != NULL)
            snprintf(field, o->size, "%s", o->dflt_str);
    }
    const char *key = getenv("NFTRAFT_WALLET_KEY");
    cfg->wallet_key_env = key != NULL && *key;
}

/* One flag (its value v, NULL for CONFIG_FLAG and CONFIG_ACTION) into
 * cfg: 0, an ACTION's code, or ERR_INVALID/ERR_NOMEM with errmsg. */
static int apply_option(struct config *cfg, const struct config_option *o,
                        const char *v, char *errmsg, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    uint64_t n;
    int rv;
    switch (o->kind) {
    case CONFIG_UINT:
        if (config_parse_u64(v, o->min, o->max, &n) != 0)
            return bad_value(o, v, errmsg, errlen);
        store_uint(cfg, o, n);
        return 0;
    case CONFIG_STR:
        if ((o->nonempty && !*v) || (o->check && o->check(v) != 0) ||
            copy(field, o->size, v) != 0)
            return bad_value(o, v, errmsg, errlen);
        return 0;
    case CONFIG_FLAG:
        *(bool *)field = true;
        return 0;
    case CONFIG_CUSTOM:
        errmsg[0] = '\0';
        rv = o->parse(cfg, v, errmsg, errlen);
        if (rv != 0 && o->error != NULL)
            return bad_value(o, v, errmsg, errlen);
        return rv;
    case CONFIG_ACTION:
        return (int)o->dflt;
    }
    return 0;
}

/* The flags of argv into cfg: 0, CONFIG_HELP/VERSION, or an error. */
static int parse_flags(struct config *cfg, int argc, char **argv, char *errmsg,
                       size_t errlen)
{
    struct option opts[N_OPTIONS + 1];
    for (size_t i = 0; i < N_OPTIONS; i++)
        opts[i] = (struct option){
            OPTIONS[i].name, OPTIONS[i].arg ? required_argument : no_argument,
            NULL, 256 + (int)i};
    opts[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == ':')
            return fail(errmsg, errlen, "%s needs a value", argv[optind - 1]);
        if (c < 256 || c >= 256 + (int)N_OPTIONS)
            return fail(errmsg, errlen, "unknown flag '%s'", argv[optind - 1]);
        int rv = apply_option(cfg, &OPTIONS[c - 256], optarg, errmsg, errlen);
        if (rv != 0)
            return rv;
    }
    if (optind < argc)
        return fail(errmsg, errlen, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* ---- what the flags mean together ---- */

/* Required flags, timeouts, --bind-outgoing's address. */
static int check_basics(struct config *cfg, char *errmsg, size_t errlen)
{
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
    return 0;
}

/* Static mode or chain mode, and what each needs. */
static int check_mode(struct config *cfg, char *errmsg, size_t errlen)
{
    bool chain = cfg->rpc_url[0] || cfg->contract[0];
    cfg->chain = chain;
    if (cfg->n_peers == 0 && !chain)
        return fail(errmsg, errlen,
                    "give --peers (static mode) or --rpc-url and --contract");
    if (chain && (!cfg->rpc_url[0] || !cfg->contract[0]))
        return fail(errmsg, errlen,
                    "chain mode needs both --rpc-url and --contract");
    const char *unsafe =
        !chain || cfg->allow_insecure_rpc                        ? NULL
        : !config_rpc_is_safe(cfg->rpc_url)                      ? cfg->rpc_url
        : cfg->rpc_url2[0] && !config_rpc_is_safe(cfg->rpc_url2) ? cfg->rpc_url2
                                                                 : NULL;
    if (unsafe != NULL)
        return fail(errmsg, errlen,
                    "--rpc-url %s: plain http:// to a host that is not on "
                    "this machine lets anyone on the path forge membership "
                    "answers; use https:// or --allow-insecure-rpc",
                    unsafe);
    if (cfg->rpc_url2[0] && strcmp(cfg->rpc_url, cfg->rpc_url2) == 0)
        return fail(errmsg, errlen,
                    "--rpc-url given twice with the same URL (the second "
                    "must be another, independent endpoint)");
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
    return 0;
}

/* --pg and the flags that only make sense with it. */
static int check_pg(struct config *cfg, char *errmsg, size_t errlen)
{
    if (!cfg->pg) {
        if (cfg->pg_port || cfg->pg_password_file[0] || cfg->pg_user[0])
            return fail(errmsg, errlen,
                        "--pg-listen, --pg-user and --pg-password-file need "
                        "--pg");
        return 0;
    }
    if (!cfg->pg_port || !cfg->pg_password_file[0])
        return fail(errmsg, errlen,
                    "--pg needs --pg-listen IPV4:PORT and --pg-password-file "
                    "FILE");
    char raft_port[8];
    const char *colon = strrchr(cfg->raft_addr, ':');
    snprintf(raft_port, sizeof raft_port, "%d", cfg->pg_port);
    if (cfg->pg_port == cfg->http_port ||
        (colon != NULL && strcmp(colon + 1, raft_port) == 0))
        return fail(errmsg, errlen,
                    "--pg-listen: port %d is taken by --http or --raft",
                    cfg->pg_port);
    if (!cfg->pg_user[0] && geteuid() == 0)
        snprintf(cfg->pg_user, sizeof cfg->pg_user, "postgres");
    return 0;
}

/* --contract is 0x + 40 hex digits (when given). */
static int check_contract(const struct config *cfg, char *errmsg, size_t errlen)
{
    if (!cfg->contract[0])
        return 0;
    size_t n = strlen(cfg->contract);
    bool ok = n == 42 && cfg->contract[0] == '0' &&
              (cfg->contract[1] == 'x' || cfg->contract[1] == 'X');
    for (size_t i = 2; ok && i < n; i++)
        ok = strchr("0123456789abcdefABCDEF", cfg->contract[i]) != NULL;
    if (!ok)
        return fail(errmsg, errlen,
                    "--contract: '%s' is not a 0x-prefixed 20-byte address",
                    cfg->contract);
    return 0;
}

/* Static mode: this node's id and entry in --peers. */
static int resolve_self(struct config *cfg, char *errmsg, size_t errlen)
{
    if (cfg->n_peers == 0 || cfg->chain)
        return 0;
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
    return 0;
}

/* Defaults that depend on other flags: --advertise-url, --instance-id. */
static void derive_defaults(struct config *cfg)
{
    if (!cfg->advertise_url[0]) {
        const char *h = cfg->http_host;
        if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
            h = "127.0.0.1";
        snprintf(cfg->advertise_url, sizeof cfg->advertise_url, "http://%s:%d",
                 h, cfg->http_port);
    }
    if (!cfg->instance_id[0] && cfg->id != 0)
        snprintf(cfg->instance_id, sizeof cfg->instance_id, "node%llu",
                 (unsigned long long)cfg->id);
}

int config_parse(struct config *cfg, int argc, char **argv, char *errmsg,
                 size_t errlen)
{
    set_defaults(cfg);
    int rv = parse_flags(cfg, argc, argv, errmsg, errlen);
    if (rv == 0)
        rv = check_basics(cfg, errmsg, errlen);
    if (rv == 0)
        rv = check_mode(cfg, errmsg, errlen);
    if (rv == 0)
        rv = check_contract(cfg, errmsg, errlen);
    if (rv == 0)
        rv = check_pg(cfg, errmsg, errlen);
    if (rv == 0)
        rv = resolve_self(cfg, errmsg, errlen);
    if (rv == 0)
        derive_defaults(cfg);
    return rv;
}
