/* fuzz_rlp.c - nftraft only encodes RLP (transactions it signs), so the
 * input is a program of encoder calls (byte strings, uint64s, 32-byte
 * integers, nested lists); the encoding is then decoded by a strict
 * decoder written here and must give back exactly the items written, with
 * canonical (minimal) lengths and integers. */
#include "chain/rlp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 256
#define MAX_DEPTH 8

/* What the program wrote, in order: a list start (kind 'L', with its item
 * count filled in at the end), or a string's bytes ('S'). */
struct item {
    char kind;
    const uint8_t *p;
    size_t n;
    uint8_t buf[32];
    size_t count;
};

static size_t be_len(const uint8_t *p, size_t n, size_t *out)
{
    if (n == 0 || n > 8 || p[0] == 0)
        return 0; /* not minimal */
    size_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    *out = v;
    return 1;
}

/* Decode one item at p[0..n); check it against items[*k]; advance. Returns
 * the bytes used, or 0 on any mismatch. */
static size_t check(const uint8_t *p, size_t n, const struct item *items,
                    size_t n_items, size_t *k)
{
    if (n == 0 || *k >= n_items)
        return 0;
    const struct item *it = &items[(*k)++];
    uint8_t b = p[0];
    size_t hdr, len;
    if (b < 0x80) {
        hdr = 0, len = 1;
    } else if (b <= 0xb7) {
        hdr = 1, len = b - 0x80;
        if (len == 1 && (n < 2 || p[1] < 0x80))
            return 0; /* a single byte < 0x80 is its own encoding */
    } else if (b < 0xc0) {
        size_t ll = b - 0xb7;
        if (n < 1 + ll || !be_len(p + 1, ll, &len) || len < 56)
            return 0;
        hdr = 1 + ll;
    } else if (b <= 0xf7) {
        hdr = 1, len = b - 0xc0;
    } else {
        size_t ll = b - 0xf7;
        if (n < 1 + ll || !be_len(p + 1, ll, &len) || len < 56)
            return 0;
        hdr = 1 + ll;
    }
    if (len > n - hdr)
        return 0;
    if (b < 0xc0) {
        if (it->kind != 'S' || it->n != len ||
            (len && memcmp(it->p, p + hdr, len) != 0))
            return 0;
        return hdr + len;
    }
    if (it->kind != 'L')
        return 0;
    size_t off = 0;
    for (size_t i = 0; i < it->count; i++) {
        size_t used = check(p + hdr + off, len - off, items, n_items, k);
        if (used == 0)
            return 0;
        off += used;
    }
    return off == len ? hdr + len : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
    struct rlp r = {0};
    struct item items[MAX_ITEMS];
    size_t n_items = 0, depth = 0, marks[MAX_DEPTH], open_item[MAX_DEPTH];
    size_t i = 0;
    /* One top-level list holds everything the program writes. */
    items[n_items] = (struct item){.kind = 'L'};
    open_item[depth] = n_items++;
    marks[depth++] = rlp_list_begin(&r);
    while (i < size && n_items < MAX_ITEMS) {
        uint8_t op = d[i++];
        struct item *parent = &items[open_item[depth - 1]];
        switch (op % 5) {
        case 0: { /* byte string of length op/5 (from the input) */
            size_t n = op / 5;
            if (n > size - i)
                n = size - i;
            items[n_items] = (struct item){.kind = 'S', .p = d + i, .n = n};
            rlp_bytes(&r, d + i, n);
            i += n;
            break;
        }
        case 1: { /* uint64: minimal big-endian, 0 = empty */
            uint64_t v = 0;
            for (int k = 0; k < 8 && i < size; k++)
                v = v << 8 | d[i++];
            struct item *it = &items[n_items];
            *it = (struct item){.kind = 'S'};
            for (int k = 7; k >= 0; k--)
                if (it->n || (v >> (8 * k)) & 0xff)
                    it->buf[it->n++] = (uint8_t)(v >> (8 * k));
            it->p = it->buf;
            rlp_uint(&r, v);
            break;
        }
        case 2: { /* 32-byte integer: leading zeros stripped */
            uint8_t w[32] = {0};
            for (int k = 0; k < 32 && i < size; k++)
                w[k] = d[i++];
            struct item *it = &items[n_items];
            *it = (struct item){.kind = 'S'};
            size_t z = 0;
            while (z < 32 && w[z] == 0)
                z++;
            memcpy(it->buf, w + z, 32 - z);
            it->n = 32 - z;
            it->p = it->buf;
            rlp_u256(&r, w);
            break;
        }
        case 3: /* open a list */
            if (depth == MAX_DEPTH)
                continue;
            items[n_items] = (struct item){.kind = 'L'};
            parent->count++;
            open_item[depth] = n_items++;
            marks[depth++] = rlp_list_begin(&r);
            continue;
        default: /* close a list */
            if (depth > 1) {
                depth--;
                rlp_list_end(&r, marks[depth]);
            }
            continue;
        }
        parent->count++;
        n_items++;
    }
    while (depth > 0) {
        depth--;
        rlp_list_end(&r, marks[depth]);
    }
    if (!r.oom) {
        size_t k = 0;
        if (check(r.p, r.len, items, n_items, &k) != r.len || k != n_items)
            abort();
    }
    rlp_free(&r);
    return 0;
}
