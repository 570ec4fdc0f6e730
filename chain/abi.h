/* abi.h - Solidity ABI encoding of calls and bounds-checked decoding of
 * return data (every length and offset from the RPC is untrusted). */
#ifndef NFTRAFT_ABI_H
#define NFTRAFT_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum abi_kind {
    ABI_ADDRESS,
    ABI_BOOL,
    ABI_UINT,
    ABI_BYTES32, /* static: one word */
    ABI_STRING,
    ABI_BYTES,
    ABI_STRING_ARRAY,
    ABI_TUPLE
};

/* One value to encode. Build with the helpers below; pointers are borrowed
 * until abi_encode_call() returns. */
struct abi_val {
    enum abi_kind kind;
    uint8_t word[32];
    const uint8_t *data; /* STRING, BYTES */
    size_t len;
    const char *const *strs; /* STRING_ARRAY */
    size_t n_strs;
    const struct abi_val *items; /* TUPLE */
    size_t n_items;
};

struct abi_val abi_address(const uint8_t addr[20]);
struct abi_val abi_bool(bool v);
struct abi_val abi_uint64(uint64_t v);
struct abi_val abi_bytes32(const uint8_t b[32]);
struct abi_val abi_string(const char *s);
struct abi_val abi_bytes(const uint8_t *b, size_t len);
struct abi_val abi_string_array(const char *const *s, size_t n);
struct abi_val abi_tuple(const struct abi_val *items, size_t n);

/* selector(signature) ++ encode(args). *out is malloc'd (caller frees).
 * ERR_NOMEM. */
int abi_encode_call(const char *signature, const struct abi_val *args, size_t n,
                    uint8_t **out, size_t *len);

/* Decoders over return data d[0..len): head slot `slot` (0-based). All
 * return 0 or ERR_MALFORMED (out of bounds, bad padding, bad bool),
 * ERR_OVERFLOW (uint above 2^64-1), ERR_TOOBIG (string above cap). */
int abi_get_bool(const uint8_t *d, size_t len, size_t slot, bool *v);
int abi_get_uint64(const uint8_t *d, size_t len, size_t slot, uint64_t *v);
int abi_get_address(const uint8_t *d, size_t len, size_t slot, uint8_t out[20]);
int abi_get_bytes32(const uint8_t *d, size_t len, size_t slot, uint8_t out[32]);
/* A dynamic string at head slot: NUL-terminated into out (cap bytes). */
int abi_get_string(const uint8_t *d, size_t len, size_t slot, char *out,
                   size_t cap);
/* A dynamic array of static words at head slot: *words points at the first
 * element (32 bytes each), *n is the count (bounded by len). */
int abi_get_words(const uint8_t *d, size_t len, size_t slot,
                  const uint8_t **words, size_t *n);

/* Human text for revert data: Error(string) -> the reason, Panic(uint256)
 * -> "panic 0x..", a custom error -> "custom error 0x<selector>". */
void abi_revert_reason(const uint8_t *d, size_t len, char *out, size_t cap);

#endif
