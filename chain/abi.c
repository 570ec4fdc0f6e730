/* abi.c - head/tail ABI encoding and strict decoding. */
#include "chain/abi.h"
#include "chain/keccak.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct abi_val abi_address(const uint8_t addr[20])
{
    struct abi_val v = {.kind = ABI_ADDRESS};
    memcpy(v.word + 12, addr, 20);
    return v;
}

struct abi_val abi_bool(bool b)
{
    struct abi_val v = {.kind = ABI_BOOL};
    v.word[31] = b ? 1 : 0;
    return v;
}

struct abi_val abi_uint64(uint64_t x)
{
    struct abi_val v = {.kind = ABI_UINT};
    for (int i = 0; i < 8; i++)
        v.word[31 - i] = (uint8_t)(x >> (8 * i));
    return v;
}

struct abi_val abi_bytes32(const uint8_t b[32])
{
    struct abi_val v = {.kind = ABI_BYTES32};
    memcpy(v.word, b, 32);
    return v;
}

struct abi_val abi_string(const char *s)
{
    struct abi_val v = {
        .kind = ABI_STRING, .data = (const uint8_t *)s, .len = strlen(s)};
    return v;
}

struct abi_val abi_bytes(const uint8_t *b, size_t len)
{
    struct abi_val v = {.kind = ABI_BYTES, .data = b, .len = len};
    return v;
}

struct abi_val abi_string_array(const char *const *s, size_t n)
{
    struct abi_val v = {.kind = ABI_STRING_ARRAY, .strs = s, .n_strs = n};
    return v;
}

struct abi_val abi_tuple(const struct abi_val *items, size_t n)
{
    struct abi_val v = {.kind = ABI_TUPLE, .items = items, .n_items = n};
    return v;
}

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static uint8_t *grow(struct buf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->len;
    memset(at, 0, n);
    b->len += n;
    return at;
}

static void put_u64_word(uint8_t *w, uint64_t x)
{
    memset(w, 0, 32);
    for (int i = 0; i < 8; i++)
        w[31 - i] = (uint8_t)(x >> (8 * i));
}

static bool is_dynamic(const struct abi_val *v)
{
    if (v->kind == ABI_STRING || v->kind == ABI_BYTES ||
        v->kind == ABI_STRING_ARRAY)
        return true;
    if (v->kind == ABI_TUPLE)
        for (size_t i = 0; i < v->n_items; i++)
            if (is_dynamic(&v->items[i]))
                return true;
    return false;
}

static size_t head_size(const struct abi_val *v)
{
    if (v->kind == ABI_TUPLE && !is_dynamic(v)) {
        size_t n = 0;
        for (size_t i = 0; i < v->n_items; i++)
            n += head_size(&v->items[i]);
        return n;
    }
    return 32;
}

static void encode_list(struct buf *b, const struct abi_val *vals, size_t n);

static void encode_bytes(struct buf *b, const uint8_t *d, size_t len)
{
    uint8_t *w = grow(b, 32);
    if (w)
        put_u64_word(w, len);
    uint8_t *p = grow(b, (len + 31) / 32 * 32);
    if (p && len)
        memcpy(p, d, len);
}

/* The encoding of one value in place (static) or as its tail (dynamic). */
static void encode_value(struct buf *b, const struct abi_val *v)
{
    switch (v->kind) {
    case ABI_ADDRESS:
    case ABI_BOOL:
    case ABI_UINT:
    case ABI_BYTES32: {
        uint8_t *w = grow(b, 32);
        if (w)
            memcpy(w, v->word, 32);
        return;
    }
    case ABI_STRING:
    case ABI_BYTES:
        encode_bytes(b, v->data, v->len);
        return;
    case ABI_STRING_ARRAY: {
        uint8_t *w = grow(b, 32);
        if (w)
            put_u64_word(w, v->n_strs);
        struct abi_val *items =
            calloc(v->n_strs ? v->n_strs : 1, sizeof *items);
        if (items == NULL) {
            b->oom = true;
            return;
        }
        for (size_t i = 0; i < v->n_strs; i++)
            items[i] = abi_string(v->strs[i]);
        encode_list(b, items, v->n_strs);
        free(items);
        return;
    }
    case ABI_TUPLE:
        encode_list(b, v->items, v->n_items);
        return;
    }
}

static void encode_list(struct buf *b, const struct abi_val *vals, size_t n)
{
    size_t heads = 0;
    for (size_t i = 0; i < n; i++)
        heads += head_size(&vals[i]);
    size_t base = b->len;
    if (grow(b, heads) == NULL)
        return;
    size_t at = base;
    for (size_t i = 0; i < n; i++) {
        if (is_dynamic(&vals[i])) {
            size_t offset = b->len - base;
            put_u64_word(b->p + at, offset);
            encode_value(b, &vals[i]);
            at += 32;
        } else {
            struct buf tmp = {0};
            encode_value(&tmp, &vals[i]);
            if (tmp.oom || b->oom) {
                free(tmp.p);
                b->oom = true;
                return;
            }
            memcpy(b->p + at, tmp.p, tmp.len);
            at += tmp.len;
            free(tmp.p);
        }
        if (b->oom)
            return;
    }
}

int abi_encode_call(const char *signature, const struct abi_val *args, size_t n,
                    uint8_t **out, size_t *len)
{
    struct buf b = {0};
    uint8_t *sel = grow(&b, 4);
    if (sel)
        keccak_selector(signature, sel);
    encode_list(&b, args, n);
    if (b.oom) {
        free(b.p);
        return ERR_NOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- decoding ---- */

static int word_at(const uint8_t *d, size_t len, size_t off, const uint8_t **w)
{
    if (off > len || len - off < 32)
        return ERR_MALFORMED;
    *w = d + off;
    return 0;
}

static int u64_of(const uint8_t *w, uint64_t *v)
{
    for (int i = 0; i < 24; i++)
        if (w[i] != 0)
            return ERR_OVERFLOW;
    uint64_t x = 0;
    for (int i = 24; i < 32; i++)
        x = x << 8 | w[i];
    *v = x;
    return 0;
}

int abi_get_bool(const uint8_t *d, size_t len, size_t slot, bool *v)
{
    const uint8_t *w;
    uint64_t x;
    if (word_at(d, len, slot * 32, &w) != 0 || u64_of(w, &x) != 0 || x > 1)
        return ERR_MALFORMED;
    *v = x == 1;
    return 0;
}

int abi_get_uint64(const uint8_t *d, size_t len, size_t slot, uint64_t *v)
{
    const uint8_t *w;
    if (word_at(d, len, slot * 32, &w) != 0)
        return ERR_MALFORMED;
    return u64_of(w, v);
}

int abi_get_address(const uint8_t *d, size_t len, size_t slot, uint8_t out[20])
{
    const uint8_t *w;
    if (word_at(d, len, slot * 32, &w) != 0)
        return ERR_MALFORMED;
    for (int i = 0; i < 12; i++)
        if (w[i] != 0)
            return ERR_MALFORMED;
    memcpy(out, w + 12, 20);
    return 0;
}

int abi_get_bytes32(const uint8_t *d, size_t len, size_t slot, uint8_t out[32])
{
    const uint8_t *w;
    if (word_at(d, len, slot * 32, &w) != 0)
        return ERR_MALFORMED;
    memcpy(out, w, 32);
    return 0;
}

/* Offset in the head slot, then a length word there: the payload. */
static int dynamic_at(const uint8_t *d, size_t len, size_t slot,
                      const uint8_t **payload, uint64_t *count)
{
    const uint8_t *w;
    uint64_t off, n;
    if (word_at(d, len, slot * 32, &w) != 0 || u64_of(w, &off) != 0 ||
        off > len || word_at(d, len, (size_t)off, &w) != 0 ||
        u64_of(w, &n) != 0)
        return ERR_MALFORMED;
    *payload = d + off + 32;
    *count = n;
    return 0;
}

int abi_get_string(const uint8_t *d, size_t len, size_t slot, char *out,
                   size_t cap)
{
    const uint8_t *p;
    uint64_t n;
    if (dynamic_at(d, len, slot, &p, &n) != 0 || n > (uint64_t)(d + len - p))
        return ERR_MALFORMED;
    if (n >= cap)
        return ERR_TOOBIG;
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    return 0;
}

int abi_get_words(const uint8_t *d, size_t len, size_t slot,
                  const uint8_t **words, size_t *n)
{
    const uint8_t *p;
    uint64_t count;
    if (dynamic_at(d, len, slot, &p, &count) != 0 ||
        count > (uint64_t)(d + len - p) / 32)
        return ERR_MALFORMED;
    *words = p;
    *n = (size_t)count;
    return 0;
}

void abi_revert_reason(const uint8_t *d, size_t len, char *out, size_t cap)
{
    uint8_t err_sel[4], panic_sel[4];
    keccak_selector("Error(string)", err_sel);
    keccak_selector("Panic(uint256)", panic_sel);
    if (len < 4) {
        snprintf(out, cap, "reverted without a reason");
        return;
    }
    if (memcmp(d, err_sel, 4) == 0 &&
        abi_get_string(d + 4, len - 4, 0, out, cap) == 0)
        return;
    uint64_t code;
    if (memcmp(d, panic_sel, 4) == 0 &&
        abi_get_uint64(d + 4, len - 4, 0, &code) == 0) {
        snprintf(out, cap, "panic 0x%02llx", (unsigned long long)code);
        return;
    }
    snprintf(out, cap, "custom error 0x%02x%02x%02x%02x", d[0], d[1], d[2],
             d[3]);
}
