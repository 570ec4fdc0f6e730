/* counter.h - `nftraft status`, `nftraft get` and `nftraft increment`: read
 * a cluster's state and its counter, or add to it, over the nodes' HTTP
 * API. */
#ifndef NFTRAFT_CMD_COUNTER_H
#define NFTRAFT_CMD_COUNTER_H

/* Each runs `nftraft <command> ...` (argv[0] is the command) and returns
 * the exit code: 0 done (or --help), 1 the node failed or answered an
 * error, 2 bad usage. */
int counter_status(int argc, char **argv);
int counter_get(int argc, char **argv);
int counter_increment(int argc, char **argv);

/* `nftraft pg status`: the nodes' PostgreSQL (--pg) from their /status. */
int counter_pg(int argc, char **argv);

#endif
