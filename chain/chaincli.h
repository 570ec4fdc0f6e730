/* chaincli.h - the CLI's chain subcommands (what the seed does with cast):
 * members, mint, register, deactivate, vote, elect, heartbeat,
 * cluster-size, deploy. */
#ifndef NFTRAFT_CHAINCLI_H
#define NFTRAFT_CHAINCLI_H

#include <stdint.h>

/* True when cmd is one of the chain subcommands. */
int chaincli_is_command(const char *cmd);

/* Run `nftraft <cmd> ...` (argv[0] is cmd); returns the exit code. */
int chaincli_main(int argc, char **argv);

/* An instance id as the contract stores it: "0x" + up to 32 bytes of hex
 * (right-padded), or a name of at most 32 bytes (UTF-8, right-padded, as
 * Solidity's bytes32("node1")). ERR_INVALID otherwise. */
int chaincli_instance_id(const char *s, uint8_t out[32]);

/* The inverse, for display: the name when id is 1..32 printable ASCII bytes
 * followed only by zero padding (and not itself "0x..."), else "0x" + 64
 * hex digits. Either form parses back to id with chaincli_instance_id.
 * out holds at least 67 bytes. */
void chaincli_instance_name(const uint8_t id[32], char out[67]);

#endif
