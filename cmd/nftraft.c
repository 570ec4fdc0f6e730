/* nftraft.c - the operator CLI: git-style subcommands to run a local
 * cluster (up/down, cmd/cluster.h), inspect it and write to it
 * (status/get/increment, cmd/counter.h), dstack's compose hash and KMS auth
 * webhook (cmd/compose.h, cmd/kmsauth.h) and the membership contract's
 * operations (cmd/chain.h). This file only dispatches. */
#include "cmd/chain.h"
#include "cmd/cluster.h"
#include "cmd/compose.h"
#include "cmd/counter.h"
#include "cmd/kmsauth.h"
#include "core/version.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage_main(FILE *o)
{
    fprintf(o, "usage: nftraft <command> [options]\n"
               "\n"
               "Commands:\n"
               "  up          start a local cluster of nftraftd nodes\n"
               "  down        stop a cluster started with 'up --detach'\n"
               "  status      show every node's role, term and indexes (or one "
               "node's)\n"
               "  get         read the counter\n"
               "  increment   add to the counter\n"
               "  pg status   each node's PostgreSQL (nodes run with --pg)\n"
               "  compose-hash  dstack compose hash of an app-compose or "
               "docker-compose file\n"
               "  kms-auth    dstack-compatible KMS auth webhook (real chain "
               "or --mock)\n"
               "  members, mint, register, set-endpoints, deactivate, evict, "
               "readmit,\n"
               "  transfer, vote, elect, heartbeat, cluster-size, deploy\n"
               "              chain operations on the membership contract\n"
               "\n"
               "'nftraft <command> --help' describes a command's options.\n");
}

/* The subcommands with their own entry point (argv[0] is the command). */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} COMMANDS[] = {
    {"up", cluster_up},
    {"down", cluster_down},
    {"status", counter_status},
    {"get", counter_get},
    {"increment", counter_increment},
    {"pg", counter_pg},
    {"compose-hash", compose_cmd},
    {"kms-auth", kmsauth_cmd},
};

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
    int rv = 0;
    bool found = false;
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS && !found; i++)
        if ((found = strcmp(cmd, COMMANDS[i].name) == 0))
            rv = COMMANDS[i].run(argc - 1, argv + 1);
    if (!found && (found = chaincli_is_command(cmd)))
        rv = chaincli_main(argc - 1, argv + 1);
    if (!found) {
        fprintf(stderr, "nftraft: unknown command '%s'\n", cmd);
        usage_main(stderr);
        rv = 2;
    }
    curl_global_cleanup();
    return rv;
}
