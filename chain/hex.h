/* hex.h - strict hex encoding and decoding for chain data. */
#ifndef NFTRAFT_HEX_H
#define NFTRAFT_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of one hex digit (either case), or -1. */
int hex_nibble(char c);

/* Decode s (optional 0x prefix, even length, [0-9a-fA-F] only) into out
 * (cap bytes); *len gets the byte count. ERR_MALFORMED or ERR_TOOBIG. */
int hex_decode(const char *s, size_t slen, uint8_t *out, size_t cap,
               size_t *len);

/* Lowercase hex of data, with "0x" when prefix != 0, NUL-terminated into
 * out (needs 2*len + 3 bytes). */
void hex_encode(const uint8_t *data, size_t len, int prefix, char *out);

/* A JSON-RPC quantity ("0x" + 1..16 hex digits, no leading zeros except
 * "0x0") into *v. ERR_MALFORMED otherwise. */
int hex_quantity(const char *s, uint64_t *v);

#endif
