/* cluster.h - `nftraft up` and `nftraft down`: a local cluster of nftraftd
 * processes in a cluster directory (DIR/node<i>/, DIR/nodes), with its own
 * anvil chain (cmd/devchain.h), an existing chain, or static membership. */
#ifndef NFTRAFT_CMD_CLUSTER_H
#define NFTRAFT_CMD_CLUSTER_H

/* `nftraft up ...` (argv[0] is "up"): start the nodes, wait for a ready
 * leader, print the cluster; with --detach return, else stay until
 * SIGINT/SIGTERM and stop them. Returns the exit code (0, 1 failure, 2 bad
 * usage). */
int cluster_up(int argc, char **argv);

/* `nftraft down ...`: stop the nodes (and anvil) of a cluster directory.
 * Returns the exit code. */
int cluster_down(int argc, char **argv);

#endif
