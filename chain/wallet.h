/* wallet.h - a node's secp256k1 key: address, signatures with recovery. */
#ifndef NFTRAFT_WALLET_H
#define NFTRAFT_WALLET_H

#include <stddef.h>
#include <stdint.h>

struct wallet;

/* From 32 bytes of hex (optional 0x, surrounding whitespace ignored).
 * ERR_INVALID for a malformed or out-of-range key; *out is freed with
 * wallet_free() (which wipes the key). */
int wallet_from_hex(struct wallet **out, const char *hex);
/* From a file holding the hex key. ERR_IO, ERR_INVALID. */
int wallet_from_file(struct wallet **out, const char *path);
void wallet_free(struct wallet *w);

/* The Ethereum address (keccak of the public key, last 20 bytes). */
const uint8_t *wallet_address(const struct wallet *w);

/* Sign a 32-byte digest: r, s (64 bytes, low-s) and the recovery id 0/1. */
int wallet_sign(const struct wallet *w, const uint8_t digest[32],
                uint8_t rs[64], int *recid);

/* The address that signed digest with (rs, recid). ERR_INVALID if none. */
int wallet_recover(const uint8_t digest[32], const uint8_t rs[64], int recid,
                   uint8_t addr[20]);

#endif
