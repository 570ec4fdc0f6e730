/* membership.h - the typed binding of the membership contract
 * (contracts/src/DstackMembershipNFT.sol): instance ids, and the strict
 * decoding of its views. Every ABI signature of the contract is spelled
 * here and in membership.c, nowhere else. */
#ifndef NFTRAFT_MEMBERSHIP_H
#define NFTRAFT_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

/* An instance id as the contract stores it: "0x" + up to 32 bytes of hex
 * (right-padded), or a name of at most 32 bytes (UTF-8, right-padded, as
 * Solidity's bytes32("node1")). ERR_INVALID otherwise. */
int membership_instance_id(const char *s, uint8_t out[32]);

/* An instance id for people: the name when the bytes are a printable
 * ASCII name (no space, not starting with "0x") right-padded with zeros, as
 * membership_instance_id() encodes names ("node1"); otherwise "0x" + 64 hex
 * digits. Both forms read back with membership_instance_id(). */
void membership_instance_text(const uint8_t id[32], char out[67]);

/* One member as the contract's v2 view activeNodes() returns it. */
struct membership_node {
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
int membership_decode_nodes(const uint8_t *d, size_t len,
                          struct membership_node *out, size_t cap, size_t *n);

#endif
