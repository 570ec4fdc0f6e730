/* devchain.h - the chain `nftraft up --chain anvil` runs for a local
 * cluster: anvil from the project's npm install (1 s blocks, state kept in
 * DIR/anvil-state.json), the KMS factory and DstackMembershipNFT deployed
 * with contracts/scripts/deploy-local.sh, then one NFT minted to each of N
 * dev accounts and instances node1..nodeN registered in this process
 * (chain/membership). */
#ifndef NFTRAFT_CMD_DEVCHAIN_H
#define NFTRAFT_CMD_DEVCHAIN_H

#include "cmd/cli.h"

#include <sys/types.h>

struct devchain {
    char rpc[64], nft[64], kms[64];
    char keys[CLI_MAX_NODES + 1][80];      /* owners: dev accounts 1..N (0
                                              deploys) */
    char node_keys[CLI_MAX_NODES + 1][80]; /* node i's own key */
    pid_t anvil;
};

/* Start (or restart from its state file) anvil on 127.0.0.1:port with its
 * pid in DIR/anvil.pid, derive the keys of nodes + spare owners and nodes
 * node keys, and on first use deploy, mint and register nodes 1..nodes
 * (raft on 127.0.0.1:base+100+i-1, HTTP on base+i-1); the contracts are
 * kept in DIR/chain.env for a restart. Prints each step as `up` does.
 * Returns 0, or -1 with the reason on stderr (anvil may be left running:
 * devchain_stop stops it). */
int devchain_up(const char *dir, int nodes, int spare, int port, int base,
                struct devchain *dc);

/* Stop the anvil whose pid is in DIR/anvil.pid (SIGTERM so it writes its
 * state, SIGKILL after 5 s) and remove the file; nothing when absent. */
void devchain_stop(const char *dir);

#endif
