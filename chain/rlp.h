/* rlp.h - Recursive Length Prefix encoding (Ethereum's serialization). */
#ifndef NFTRAFT_RLP_H
#define NFTRAFT_RLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rlp {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

/* Append one byte string / one unsigned integer (minimal big-endian; 0 is
 * the empty string) / one 32-byte big-endian integer (leading zeros
 * stripped). */
void rlp_bytes(struct rlp *r, const uint8_t *d, size_t n);
void rlp_uint(struct rlp *r, uint64_t v);
void rlp_u256(struct rlp *r, const uint8_t w[32]);

/* Lists: remember rlp_list_begin's mark, append the items, then
 * rlp_list_end(mark) puts the list header in front of them. */
size_t rlp_list_begin(struct rlp *r);
void rlp_list_end(struct rlp *r, size_t mark);

/* Free the buffer (the struct may be reused after). */
void rlp_free(struct rlp *r);

#endif
