/* chaincli.h - the CLI's chain subcommands (what the seed does with cast):
 * members, mint, register, set-endpoints, deactivate, evict, readmit,
 * transfer, vote, elect, heartbeat, cluster-size, deploy. */
#ifndef NFTRAFT_CHAINCLI_H
#define NFTRAFT_CHAINCLI_H

#include <stddef.h>
#include <stdint.h>

/* True when cmd is one of the chain subcommands. */
int chaincli_is_command(const char *cmd);

/* Run `nftraft <cmd> ...` (argv[0] is cmd); returns the exit code. */
int chaincli_main(int argc, char **argv);

/* An instance id as the contract stores it: "0x" + up to 32 bytes of hex
 * (right-padded), or a name of at most 32 bytes (UTF-8, right-padded, as
 * Solidity's bytes32("node1")). ERR_INVALID otherwise. */
int chaincli_instance_id(const char *s, uint8_t out[32]);

/* An instance id for people: the name when the bytes are a printable
 * ASCII name (no space, not starting with "0x") right-padded with zeros, as
 * chaincli_instance_id() encodes names ("node1"); otherwise "0x" + 64 hex
 * digits. Both forms read back with chaincli_instance_id(). */
void chaincli_instance_text(const uint8_t id[32], char out[67]);

/* One member as the contract's v2 view activeNodes() returns it. */
struct chaincli_node {
    uint64_t token;
    uint8_t instance[32];
    uint8_t owner[20];
    uint8_t node_key[20];
    uint32_t epoch;
    char raft[257]; /* endpoints: at most 256 bytes on chain */
    char http[257];
};

/* Decode activeNodes()'s answer d[0..len) (untrusted): an array of
 * (uint256 tokenId, bytes32 instanceId, address owner, address nodeKey,
 * uint32 epoch, string raftEndpoint, string httpEndpoint). At most cap
 * entries into out, *n set. 0, ERR_MALFORMED (bad offsets, lengths,
 * padding, an epoch above 2^32-1), ERR_TOOBIG (more than cap entries, an
 * endpoint above 256 bytes). */
int chaincli_decode_nodes(const uint8_t *d, size_t len,
                          struct chaincli_node *out, size_t cap, size_t *n);

#endif
