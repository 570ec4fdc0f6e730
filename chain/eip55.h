/* eip55.h - EIP-55 mixed-case checksummed Ethereum addresses, as dstack's
 * servers (viem, ethers) print them. */
#ifndef NFTRAFT_EIP55_H
#define NFTRAFT_EIP55_H

#include <stddef.h>
#include <stdint.h>

/* Write "0x" + 40 hex digits of addr into out[43], each letter uppercase
 * when the matching nibble of keccak256(lowercase hex) is >= 8. */
void eip55_encode(const uint8_t addr[20], char out[43]);

/* Parse "0x" + 40 hex digits. All-lowercase and all-uppercase digits are
 * accepted as they are; mixed case must carry a valid checksum.
 * 0, ERR_MALFORMED (not an address), ERR_INVALID (bad checksum). */
int eip55_decode(const char *s, size_t len, uint8_t addr[20]);

#endif
