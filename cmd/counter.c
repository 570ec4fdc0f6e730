/* counter.c - `nftraft status|get|increment` (see counter.h). */
#include "cmd/counter.h"
#include "cmd/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *default_node(const char *dir, char *buf, size_t n)
{
    struct cli_node ns[CLI_MAX_NODES];
    if (cli_read_nodes(dir, ns) > 0) {
        snprintf(buf, n, "%s", ns[0].url);
        return buf;
    }
    return "http://127.0.0.1:8081";
}

static int print_status_row(const char *url)
{
    char u[256];
    snprintf(u, sizeof u, "%s/status", url);
    json_t *j = cli_get_json(u, 2000);
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
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"stale", no_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->dir = CLI_DEFAULT_DIR;
    o->by = 1;
    int c;
    char *end;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        bool allowed = strstr(usage, opts[0].name) != NULL;
        switch (c) {
        case 'n':
            o->node = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'b':
            allowed = strstr(usage, "--by") != NULL;
            o->by = strtoll(optarg, &end, 10);
            if (*end || o->by < 1 || errno == ERANGE)
                return cli_bad_usage(cmd, "--by wants an integer >= 1", usage);
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
            return cli_bad_usage(cmd, "unknown option or missing value", usage);
        }
        if (!allowed)
            return cli_bad_usage(cmd, "option not valid here", usage);
    }
    if (optind < argc)
        return cli_bad_usage(cmd, "unexpected argument", usage);
    return 0;
}

int counter_status(int argc, char **argv)
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
        long st = cli_http("GET", u, NULL, NULL, 3000, &body, err, sizeof err);
        if (st == 0) {
            fprintf(stderr, "nftraft status: %s\n", err);
            return 1;
        }
        printf("%s\n", body);
        free(body);
        return st == 200 ? 0 : 1;
    }
    struct cli_node ns[CLI_MAX_NODES];
    int n = cli_read_nodes(o.dir, ns);
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

int counter_get(int argc, char **argv)
{
    struct common o;
    int rv = parse_common(
        "get", "nftraft get [--node URL] [--dir DIR] [--stale]",
        "Read the counter (linearizable unless --stale).\n", argc, argv, &o);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    char dflt[128], u[300], *body = NULL, err[256];
    snprintf(u, sizeof u, "%s/counter%s",
             o.node ? o.node : default_node(o.dir, dflt, sizeof dflt),
             o.stale ? "?stale=1" : "");
    long st = cli_http("GET", u, NULL, NULL, 10000, &body, err, sizeof err);
    return print_answer("get", st, body, err);
}

int counter_increment(int argc, char **argv)
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
    long st = cli_http("POST", u, b, o.key, 15000, &body, err, sizeof err);
    return print_answer("increment", st, body, err);
}

/* One node's line of `nftraft pg status`; *rec gets its record (a new
 * reference or NULL). 1 when it did not answer with a "pg" object. */
static int print_pg_row(const char *url, json_t **rec)
{
    char u[256];
    snprintf(u, sizeof u, "%s/status", url);
    json_t *j = cli_get_json(u, 2000);
    json_t *pg = json_object_get(j, "pg");
    if (!json_is_object(pg)) {
        printf("%-26s %-9s %s\n", url,
               j ? json_string_value(json_object_get(j, "role"))
                 : "unreachable",
               j ? "(no --pg)" : "");
        json_decref(j);
        return 1;
    }
    char addr[80], lag[24];
    snprintf(addr, sizeof addr, "%s:%lld",
             json_string_value(json_object_get(pg, "host")),
             (long long)json_integer_value(json_object_get(pg, "port")));
    long long lag_ms = json_integer_value(json_object_get(pg, "replay_lag_ms"));
    if (lag_ms < 0 ||
        strcmp(json_string_value(json_object_get(pg, "role")), "standby") != 0)
        snprintf(lag, sizeof lag, "-");
    else
        snprintf(lag, sizeof lag, "%lldms", lag_ms);
    const char *sync = json_string_value(json_object_get(pg, "sync_state"));
    const char *up = json_string_value(json_object_get(pg, "upstream"));
    printf("%-26s %-9s %-8s %-21s %3lld %-12s %-8s %-8s %s\n", url,
           json_string_value(json_object_get(j, "role")),
           json_string_value(json_object_get(pg, "role")), addr,
           (long long)json_integer_value(json_object_get(pg, "timeline")),
           json_string_value(json_object_get(pg, "lsn")), lag,
           sync && *sync ? sync : "-", up && *up ? up : "-");
    json_t *r = json_object_get(pg, "record");
    if (json_is_object(r) && *rec == NULL)
        *rec = json_incref(r);
    json_decref(j);
    return 0;
}

int counter_pg(int argc, char **argv)
{
    static const char usage[] = "nftraft pg status [--node URL] [--dir DIR]";
    if (argc < 2 || strcmp(argv[1], "status") != 0) {
        if (argc >= 2 &&
            (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            printf("usage: %s\n", usage);
            return 0;
        }
        return cli_bad_usage("pg", "the subcommand is 'status'", usage);
    }
    struct common o;
    int rv = parse_common(
        "pg status", "nftraft pg status [--node URL] [--dir DIR]",
        "The PostgreSQL of each node (nodes run with --pg), one line each:\n"
        "raft role, PostgreSQL role, its address, timeline, WAL position,\n"
        "replay lag, sync state (as the primary sees the standby) and the\n"
        "upstream it follows; then the newest promotion record. Without\n"
        "--node: every node of the cluster in DIR (default ./.nftraft).\n",
        argc - 1, argv + 1, &o);
    if (rv != 0)
        return rv < 0 ? 0 : rv;
    struct cli_node ns[CLI_MAX_NODES];
    int n = 0;
    if (o.node != NULL) {
        snprintf(ns[0].url, sizeof ns[0].url, "%s", o.node);
        n = 1;
    } else if ((n = cli_read_nodes(o.dir, ns)) == 0) {
        fprintf(stderr,
                "nftraft pg status: no cluster in %s (give --node URL)\n",
                o.dir);
        return 1;
    }
    printf("%-26s %-9s %-8s %-21s %3s %-12s %-8s %-8s %s\n", "node", "raft",
           "pg", "address", "tl", "lsn", "lag", "sync", "upstream");
    json_t *rec = NULL;
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += print_pg_row(ns[i].url, &rec);
    if (rec != NULL) {
        long long primary =
            (long long)json_integer_value(json_object_get(rec, "primary"));
        if (primary != 0)
            printf(
                "record: term %lld, primary node %lld at %s:%lld, "
                "timeline %lld, switch lsn %s\n",
                (long long)json_integer_value(json_object_get(rec, "term")),
                primary, json_string_value(json_object_get(rec, "host")),
                (long long)json_integer_value(json_object_get(rec, "port")),
                (long long)json_integer_value(json_object_get(rec, "timeline")),
                json_string_value(json_object_get(rec, "lsn")));
        else
            printf(
                "record: term %lld, no primary (fence of node %lld: a "
                "failover is under way)\n",
                (long long)json_integer_value(json_object_get(rec, "term")),
                (long long)json_integer_value(json_object_get(rec, "fenced")));
        json_decref(rec);
    }
    return bad == n ? 1 : 0;
}
