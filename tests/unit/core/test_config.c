/* test_config.c - nftraftd flag and environment parsing (core/config). */
#include "core/config.h"
#include "core/err.h"
#include "harness.h"

#include <unistd.h>

#define SECRET "--cluster-secret-file", "/tmp/secret"
#define PEERS                                                                  \
    "1=127.0.0.1:9101=http://127.0.0.1:9001,"                                  \
    "2=127.0.0.1:9102=http://127.0.0.1:9002/,"                                 \
    "3=127.0.0.1:9103=http://127.0.0.1:9003"
#define ADDR "0x5FbDB2315678afecb367f032d93F642f64180aa3"

/* A NULL-terminated argv: "nftraftd" and the given arguments. */
#define ARGV(...) ((char *[]){"nftraftd", __VA_ARGS__, NULL})
/* The flags every command line below starts with. */
#define NODE(http, raft) "--data-dir", "/tmp/x", "--http", http, "--raft", raft
#define NODE1 NODE("127.0.0.1:9001", "127.0.0.1:9101")
#define NODE2 NODE("127.0.0.1:9002", "127.0.0.1:9102")
/* A complete static-mode command line of node 1 or 2. */
#define STATIC1 NODE1, "--peers", PEERS, SECRET
#define STATIC2 NODE2, "--peers", PEERS, SECRET
/* Chain mode for node1 on RPC rpc (no wallet key yet). */
#define CHAIN1(rpc)                                                            \
    NODE1, "--rpc-url", rpc, "--contract", ADDR, "--instance-id", "node1"

static int parse(struct config *c, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    char err[256];
    unsetenv("ETH_RPC_URL");
    unsetenv("CONTRACT_ADDRESS");
    unsetenv("NFTRAFT_WALLET_KEY");
    int rv = config_parse(c, argc, argv, err, sizeof err);
    if (rv < 0)
        fprintf(stderr, "    (config: %s)\n", err);
    return rv;
}

TEST(static_ok)
{
    struct config c;
    ASSERT_EQ(parse(&c, ARGV(STATIC2)), 0);
    ASSERT_U64_EQ(c.id, 2);
    ASSERT_EQ(c.n_peers, 3);
    ASSERT_STR_EQ(c.peers[1].http, "http://127.0.0.1:9002");
    ASSERT_STR_EQ(c.advertise_url, "http://127.0.0.1:9002");
    ASSERT_STR_EQ(c.instance_id, "node2");
    ASSERT_EQ(c.election_timeout_ms, 300);
    ASSERT_EQ(c.heartbeat_timeout_ms, 40);
    ASSERT_EQ(c.install_snapshot_timeout_ms, 5000);
    ASSERT_EQ(parse(&c, ARGV(STATIC2, "--install-snapshot-timeout", "1500")),
              0);
    ASSERT_EQ(c.install_snapshot_timeout_ms, 1500);
    ASSERT_U64_EQ(c.log_retention, 10000);
    ASSERT_U64_EQ(c.key_retention, 100000);
    ASSERT_EQ(c.snapshot_threshold, 65536);
    ASSERT_EQ(parse(&c, ARGV(STATIC2, "--log-retention", "0", "--key-retention",
                             "500")),
              0);
    ASSERT_U64_EQ(c.log_retention, 0);
    ASSERT_U64_EQ(c.key_retention, 500);
    ASSERT_STR_EQ(c.bind_ip, ""); /* outgoing HTTP: the route's source */
    ASSERT_EQ(parse(&c, ARGV("--data-dir", "/tmp/x", "--http", "127.0.0.1:9002",
                             "--bind-outgoing", "--raft", "127.0.0.1:9102",
                             "--peers", PEERS, SECRET)),
              0);
    ASSERT_STR_EQ(c.bind_ip, "127.0.0.1"); /* the --raft host */
    return 0;
}

TEST(help_and_version)
{
    struct config c;
    ASSERT_EQ(parse(&c, ARGV("--help")), CONFIG_HELP);
    ASSERT_EQ(parse(&c, ARGV("--version")), CONFIG_VERSION);
    return 0;
}

TEST(bad_flags)
{
    struct config c;
    char **cases[] = {
        ARGV("--http", "127.0.0.1:1"), /* missing flags */
        ARGV("--bogus"),
        ARGV("--data-dir"), /* no value */
        ARGV(NODE("127.0.0.1:9001", "localhost:9101"), "--peers", PEERS,
             SECRET),
        ARGV(NODE("127.0.0.1:70000", "127.0.0.1:9101"), "--peers", PEERS,
             SECRET),
        ARGV(NODE("127.0.0.1:9001", "127.0.0.1:9999"), "--peers", PEERS,
             SECRET), /* not in --peers */
        ARGV(NODE1, "--peers", "1=127.0.0.1:9101", SECRET),
        ARGV(NODE1, "--peers",
             "1=127.0.0.1:9101=http://a:1,1=127.0.0.1:9102=http://b:1",
             SECRET), /* a duplicate id */
        ARGV(STATIC1, "--election-timeout", "100", "--heartbeat-timeout", "80"),
        ARGV(STATIC1, "--snapshot-threshold", "-5"),
        ARGV(NODE1, "--rpc-url", "http://127.0.0.1:8545", "--contract",
             "0x1234", "--instance-id", "node1", "--wallet-key", "/k"),
        ARGV(CHAIN1("http://127.0.0.1:8545")), /* no wallet key */
        ARGV(STATIC1, "--join"),
        ARGV(STATIC1, "--install-snapshot-timeout", "5"),
        ARGV("stray"),
        ARGV(NODE1, "--peers", PEERS, "--log-retention", "-1"),
        ARGV(NODE1, "--peers", PEERS, "--key-retention", "lots"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parse(&c, cases[i]) != ERR_INVALID)
            FAILF("case %zu was accepted", i);
    }
    return 0;
}

TEST(chain_env)
{
    struct config c;
    char **argv = ARGV(NODE("0.0.0.0:8080", "127.0.0.1:9101"), "--instance-id",
                       "node1", "--peers", PEERS);
    char err[256];
    setenv("ETH_RPC_URL", "http://127.0.0.1:8545", 1);
    setenv("CONTRACT_ADDRESS", ADDR, 1);
    setenv("NFTRAFT_WALLET_KEY", "0x01", 1);
    int rv = config_parse(&c, 11, argv, err, sizeof err);
    unsetenv("ETH_RPC_URL");
    unsetenv("CONTRACT_ADDRESS");
    unsetenv("NFTRAFT_WALLET_KEY");
    if (rv != 0)
        fprintf(stderr, "    (config: %s)\n", err);
    ASSERT_EQ(rv, 0);
    ASSERT_STR_EQ(c.rpc_url, "http://127.0.0.1:8545");
    ASSERT_STR_EQ(c.advertise_url, "http://127.0.0.1:8080");
    ASSERT(c.chain);
    ASSERT_EQ(c.n_peers, 3); /* the address book */
    ASSERT_U64_EQ(c.id, 0);  /* the token id comes from the contract */
    return 0;
}

TEST(u64)
{
    uint64_t v;
    ASSERT_EQ(config_parse_u64("42", 0, 100, &v), 0);
    ASSERT_U64_EQ(v, 42);
    ASSERT_EQ(config_parse_u64("101", 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64("-1", 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64("+1", 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64(" 1", 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64("1x", 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64("", 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64(NULL, 0, 100, &v), ERR_INVALID);
    ASSERT_EQ(config_parse_u64("18446744073709551616", 0, UINT64_MAX, &v),
              ERR_INVALID);
    return 0;
}

TEST(raft_port_auth)
{
    struct config c;
    /* neither a secret nor --insecure-no-auth; both; a secret in chain
     * mode; too few raft connections */
    ASSERT_EQ(parse(&c, ARGV(NODE1, "--peers", PEERS)), ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--insecure-no-auth")), ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(CHAIN1("http://127.0.0.1:8545"), "--wallet-key",
                             "/k", SECRET)),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--max-raft-connections", "1")),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(NODE1, "--peers", PEERS, "--insecure-no-auth")),
              0);
    ASSERT(c.insecure_no_auth);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--max-raft-message", "2097152",
                             "--max-raft-connections", "8")),
              0);
    ASSERT_STR_EQ(c.cluster_secret_file, "/tmp/secret");
    ASSERT_U64_EQ(c.max_raft_message, 2097152);
    ASSERT_EQ(c.max_raft_connections, 8);
    return 0;
}

TEST(rpc_safety)
{
    ASSERT(config_rpc_is_safe("https://mainnet.base.org/key/abc"));
    ASSERT(config_rpc_is_safe("http://127.0.0.1:8545"));
    ASSERT(config_rpc_is_safe("http://127.0.0.2/rpc"));
    ASSERT(config_rpc_is_safe("http://localhost:8545"));
    ASSERT(config_rpc_is_safe("http://[::1]:8545"));
    ASSERT(config_rpc_is_safe("http://user:pw@127.0.0.1:8545"));
    ASSERT(!config_rpc_is_safe("http://10.0.0.5:8545"));
    ASSERT(!config_rpc_is_safe("http://anvil:8545"));
    ASSERT(!config_rpc_is_safe("http://127.0.0.1.evil.example:8545"));
    ASSERT(!config_rpc_is_safe("http://localhost.evil.example/"));
    ASSERT(!config_rpc_is_safe("http://127.0.0.1@evil.example/"));
    ASSERT(!config_rpc_is_safe("ftp://127.0.0.1/"));
    struct config c;
    ASSERT_EQ(
        parse(&c, ARGV(CHAIN1("http://10.1.2.3:8545"), "--wallet-key", "/k")),
        ERR_INVALID);
    ASSERT_EQ(
        parse(&c, ARGV(CHAIN1("http://10.1.2.3:8545"), "--wallet-key", "/k",
                       "--allow-insecure-rpc", "--chain-confirmations", "5")),
        0);
    ASSERT_EQ(c.chain_confirmations, 5);
    return 0;
}

/* ---- the option table ---- */

/* A valid static-mode command line plus one flag and value (value may be
 * NULL); the error message in err. */
static int parse_with(struct config *c, const char *flag, const char *value,
                      char *err, size_t errlen)
{
    char **argv = ARGV(STATIC2, (char *)flag, (char *)value);
    int argc = value ? 13 : flag ? 12 : 11;
    unsetenv("ETH_RPC_URL");
    unsetenv("CONTRACT_ADDRESS");
    unsetenv("NFTRAFT_WALLET_KEY");
    err[0] = '\0';
    return config_parse(c, argc, argv, err, errlen);
}

static uint64_t field_u64(const struct config *c, const struct config_option *o)
{
    const char *f = (const char *)c + o->offset;
    if (o->size == sizeof(uint32_t)) {
        uint32_t v;
        memcpy(&v, f, sizeof v);
        return v;
    }
    uint64_t v;
    memcpy(&v, f, sizeof v);
    return v;
}

/* Expect value of --name rejected with a message naming the flag. */
static int rejects(const struct config_option *o, const char *value)
{
    struct config c;
    char flag[64], err[256], want[80];
    snprintf(flag, sizeof flag, "--%s", o->name);
    snprintf(want, sizeof want, "--%s: ", o->name);
    if (parse_with(&c, flag, value, err, sizeof err) != ERR_INVALID)
        FAILF("%s %s was accepted", flag, value);
    if (strncmp(err, want, strlen(want)) != 0)
        FAILF("%s %s: message '%s' does not start with '%s'", flag, value, err,
              want);
    return 0;
}

TEST(table_numbers)
{
    size_t n;
    const struct config_option *t = config_options(&n);
    struct config c;
    char err[256], v[32], flag[64];
    ASSERT(n > 30);
    ASSERT_EQ(parse_with(&c, NULL, NULL, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) { /* every default is applied */
        const struct config_option *o = &t[i];
        bool has = o->dflt >= o->min && o->dflt <= o->max;
        if (o->kind == CONFIG_UINT && has && strcmp(o->name, "id") != 0)
            ASSERT_U64_EQ(field_u64(&c, o), o->dflt);
        if (o->kind == CONFIG_STR && o->dflt_str != NULL)
            ASSERT_STR_EQ((const char *)&c + o->offset, o->dflt_str);
    }
    for (size_t i = 0; i < n; i++) {
        const struct config_option *o = &t[i];
        if (o->kind != CONFIG_UINT)
            continue;
        snprintf(flag, sizeof flag, "--%s", o->name);
        uint64_t ok = o->dflt >= o->min && o->dflt <= o->max ? o->dflt : 2;
        snprintf(v, sizeof v, "%llu", (unsigned long long)ok);
        if (parse_with(&c, flag, v, err, sizeof err) != 0)
            FAILF("%s %s (its default) rejected: %s", flag, v, err);
        ASSERT_U64_EQ(field_u64(&c, o), ok);
        if (o->min > 0) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)o->min - 1);
            if (rejects(o, v) != 0)
                return 1;
        }
        if (o->max < UINT64_MAX) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)o->max + 1);
            if (rejects(o, v) != 0)
                return 1;
        }
        if (rejects(o, "-1") != 0 || rejects(o, "12x") != 0 ||
            rejects(o, "") != 0)
            return 1;
    }
    return 0;
}

TEST(table_messages)
{
    static const char *const cases[][3] = {
        {"--election-timeout", "5", "--election-timeout: want 10..60000 ms"},
        {"--snapshot-threshold", "0", "--snapshot-threshold: want >= 1"},
        {"--forward-timeout", "9", "--forward-timeout: want 10..600000"},
        {"--log-retention", "x", "--log-retention: want 0..1000000000 rows"},
        {"--max-raft-message", "1",
         "--max-raft-message: want 1048576..4294967296"},
        {"--id", "0", "--id: '0' is not >= 1"},
        {"--log-level", "loud", "--log-level: want debug|info|warn|error"},
        {"--raft", "localhost:1",
         "--raft: 'localhost:1' is not an IPv4 a.b.c.d:port"},
        {"--http", "nohost", "--http: 'nohost' is not HOST:PORT"},
        {"--rpc-url", "ftp://x", "--rpc-url: bad URL 'ftp://x'"},
        {"--data-dir", "", "--data-dir: bad path"},
        {"--peers", "1=2", "--peers: '1=2' is not ID=RAFTADDR=HTTPURL"},
        {"--bogus", NULL, "unknown flag '--bogus'"},
    };
    struct config c;
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ASSERT_EQ(parse_with(&c, cases[i][0], cases[i][1], err, sizeof err),
                  ERR_INVALID);
        ASSERT_STR_EQ(err, cases[i][2]);
    }
    ASSERT_EQ(parse_with(&c, "--log-level", "debug", err, sizeof err), 0);
    ASSERT_STR_EQ(c.log_level, "debug");
    return 0;
}

TEST(table_help)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    config_usage(f);
    fclose(f);
    /* One line per option: continuation lines joined with a space. */
    for (char *p = text; (p = strstr(p, "\n      ")) != NULL;) {
        size_t sp = strspn(p + 1, " ");
        if (sp != 28) {
            p++;
            continue;
        }
        *p = ' ';
        memmove(p + 1, p + 29, strlen(p + 29) + 1);
    }
    size_t n;
    const struct config_option *t = config_options(&n);
    for (size_t i = 0; i < n; i++) {
        char flag[96], dflt[64];
        snprintf(flag, sizeof flag, "  --%s%s%s", t[i].name,
                 t[i].arg ? " " : "", t[i].arg ? t[i].arg : "");
        if (strstr(text, flag) == NULL)
            FAILF("--help does not list '%s'", flag);
        if (t[i].help == NULL || strstr(t[i].help, "%D") == NULL)
            continue;
        if (t[i].kind == CONFIG_UINT)
            snprintf(dflt, sizeof dflt, "default %llu",
                     (unsigned long long)t[i].dflt);
        else
            snprintf(dflt, sizeof dflt, "default %s", t[i].dflt_str);
        if (strstr(text, dflt) == NULL)
            FAILF("--help does not show --%s's '%s'", t[i].name, dflt);
    }
    ASSERT(strstr(text, "%D") == NULL);
    free(text);
    return 0;
}

/* A chain-mode command line with the given --rpc-url flags (NULL ends). */
static int parse_rpcs(struct config *c, const char *u1, const char *u2,
                      const char *u3, bool insecure, char *err, size_t len)
{
    char *argv[32] = {"nftraftd",
                      "--data-dir",
                      "/tmp/x",
                      "--http",
                      "127.0.0.1:9001",
                      "--raft",
                      "127.0.0.1:9101",
                      "--contract",
                      "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                      "--instance-id",
                      "node1",
                      "--wallet-key",
                      "/k"};
    int argc = 13;
    const char *urls[] = {u1, u2, u3};
    for (int i = 0; i < 3 && urls[i] != NULL; i++) {
        argv[argc++] = "--rpc-url";
        argv[argc++] = (char *)urls[i];
    }
    if (insecure)
        argv[argc++] = "--allow-insecure-rpc";
    argv[argc] = NULL;
    err[0] = '\0';
    return config_parse(c, argc, argv, err, len);
}

TEST(rpc_url_twice)
{
    struct config c;
    char err[256];
    unsetenv("ETH_RPC_URL");
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:8545", NULL, NULL, false, err,
                         sizeof err),
              0);
    ASSERT_STR_EQ(c.rpc_url, "http://127.0.0.1:8545");
    ASSERT_STR_EQ(c.rpc_url2, "");
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:8545", "https://u:p@rpc.example",
                         NULL, false, err, sizeof err),
              0);
    ASSERT_STR_EQ(c.rpc_url, "http://127.0.0.1:8545");
    ASSERT_STR_EQ(c.rpc_url2, "https://u:p@rpc.example");
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:1", "http://127.0.0.1:2",
                         "http://127.0.0.1:3", false, err, sizeof err),
              ERR_INVALID);
    ASSERT_STR_EQ(err, "--rpc-url: given more than twice");
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:1", "ftp://x", NULL, false, err,
                         sizeof err),
              ERR_INVALID);
    ASSERT_STR_EQ(err, "--rpc-url: bad URL 'ftp://x'");
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:1", "http://127.0.0.1:1", NULL,
                         false, err, sizeof err),
              ERR_INVALID);
    ASSERT(strstr(err, "the same URL") != NULL);
    /* the second endpoint passes the same safety check as the first */
    ASSERT_EQ(parse_rpcs(&c, "https://a.example", "http://10.1.2.3:8545", NULL,
                         false, err, sizeof err),
              ERR_INVALID);
    ASSERT(strstr(err, "--rpc-url http://10.1.2.3:8545: plain http://") !=
           NULL);
    ASSERT_EQ(parse_rpcs(&c, "https://a.example", "http://10.1.2.3:8545", NULL,
                         true, err, sizeof err),
              0);
    /* ETH_RPC_URL is replaced by the first flag, not counted as one */
    setenv("ETH_RPC_URL", "http://127.0.0.1:7000", 1);
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:8545", NULL, NULL, false, err,
                         sizeof err),
              0);
    ASSERT_STR_EQ(c.rpc_url, "http://127.0.0.1:8545");
    ASSERT_STR_EQ(c.rpc_url2, "");
    ASSERT_EQ(parse_rpcs(&c, "http://127.0.0.1:1", "http://127.0.0.1:2", NULL,
                         false, err, sizeof err),
              0);
    ASSERT_STR_EQ(c.rpc_url, "http://127.0.0.1:1");
    ASSERT_STR_EQ(c.rpc_url2, "http://127.0.0.1:2");
    ASSERT_EQ(parse_rpcs(&c, NULL, NULL, NULL, false, err, sizeof err), 0);
    ASSERT_STR_EQ(c.rpc_url, "http://127.0.0.1:7000");
    unsetenv("ETH_RPC_URL");
    return 0;
}

TEST(pg_flags)
{
    struct config c;
    char err[256];
    ASSERT_EQ(parse(&c, ARGV(STATIC1)), 0);
    ASSERT(!c.pg);
    ASSERT_EQ(c.pg_port, 0);
    ASSERT_STR_EQ(c.pg_bin, "/usr/lib/postgresql/15/bin");
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg", "--pg-listen", "127.0.0.1:5433",
                             "--pg-password-file", "/tmp/pw")),
              0);
    ASSERT(c.pg);
    ASSERT_STR_EQ(c.pg_host, "127.0.0.1");
    ASSERT_EQ(c.pg_port, 5433);
    ASSERT_STR_EQ(c.pg_password_file, "/tmp/pw");
    ASSERT_STR_EQ(c.pg_user, geteuid() == 0 ? "postgres" : "");
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg", "--pg-listen", "10.0.0.2:6000",
                             "--pg-password-file", "/tmp/pw", "--pg-user",
                             "pg_run", "--pg-bin", "/opt/pg/bin")),
              0);
    ASSERT_STR_EQ(c.pg_user, "pg_run");
    ASSERT_STR_EQ(c.pg_bin, "/opt/pg/bin");
    static const char *const cases[][2] = {
        {"--pg-listen", "--pg-listen: 'localhost:5433' is not an IPv4 "
                        "a.b.c.d:port (not 0.0.0.0)"},
        {"--pg-listen", "--pg-listen: '0.0.0.0:5433' is not an IPv4 "
                        "a.b.c.d:port (not 0.0.0.0)"},
        {"--pg-listen", "--pg-listen: '127.0.0.1:0' is not an IPv4 "
                        "a.b.c.d:port (not 0.0.0.0)"},
        {"--pg-user", "--pg-user: 'a b' is not a user name"},
        {"--pg-user", "--pg-user: '-x' is not a user name"},
        {"--pg-bin", "--pg-bin: bad path"},
        {"--pg-password-file", "--pg-password-file: bad path"},
    };
    static const char *const values[] = {
        "localhost:5433", "0.0.0.0:5433", "127.0.0.1:0", "a b", "-x", "", ""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ASSERT_EQ(parse_with(&c, cases[i][0], values[i], err, sizeof err),
                  ERR_INVALID);
        ASSERT_STR_EQ(err, cases[i][1]);
    }
    /* What the flags need together. */
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg")), ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg", "--pg-listen", "127.0.0.1:5433")),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg", "--pg-password-file", "/tmp/pw")),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg-listen", "127.0.0.1:5433")),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg-password-file", "/tmp/pw")),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg", "--pg-listen", "127.0.0.1:9001",
                             "--pg-password-file", "/tmp/pw")),
              ERR_INVALID);
    ASSERT_EQ(parse(&c, ARGV(STATIC1, "--pg", "--pg-listen", "127.0.0.1:9101",
                             "--pg-password-file", "/tmp/pw")),
              ERR_INVALID);
    return 0;
}

TEST_LIST(TEST_ENTRY(pg_flags), TEST_ENTRY(static_ok),
          TEST_ENTRY(raft_port_auth), TEST_ENTRY(rpc_safety),
          TEST_ENTRY(help_and_version), TEST_ENTRY(bad_flags),
          TEST_ENTRY(chain_env), TEST_ENTRY(u64), TEST_ENTRY(table_numbers),
          TEST_ENTRY(table_messages), TEST_ENTRY(table_help),
          TEST_ENTRY(rpc_url_twice))
