/* keccak.h - Keccak-256 (Ethereum's hash: original Keccak padding). */
#ifndef NFTRAFT_KECCAK_H
#define NFTRAFT_KECCAK_H

#include <stddef.h>
#include <stdint.h>

void keccak256(const void *data, size_t len, uint8_t out[32]);

/* First 4 bytes of keccak256(signature), e.g. "transfer(address,uint256)". */
void keccak_selector(const char *signature, uint8_t out[4]);

#endif
