/* chain.h - `nftraft <chain command>`: the CLI's chain subcommands (what the
 * seed does with cast): members, mint, register, set-endpoints, deactivate,
 * evict, readmit, transfer, vote, elect, heartbeat, cluster-size, deploy. */
#ifndef NFTRAFT_CMD_CHAIN_H
#define NFTRAFT_CMD_CHAIN_H

#include <stddef.h>
#include <stdint.h>

/* True when cmd is one of the chain subcommands. */
int chaincli_is_command(const char *cmd);

/* Run `nftraft <cmd> ...` (argv[0] is cmd); returns the exit code. */
int chaincli_main(int argc, char **argv);

#endif
