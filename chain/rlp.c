/* rlp.c - RLP encoding into a growing buffer. */
#include "chain/rlp.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *room(struct rlp *r, size_t n)
{
    if (r->oom)
        return NULL;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 128;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *p = realloc(r->p, cap);
        if (p == NULL) {
            r->oom = true;
            return NULL;
        }
        r->p = p;
        r->cap = cap;
    }
    return r->p + r->len;
}

/* Header for a string (base 0x80) or a list (base 0xc0) of length n. */
static size_t header(uint8_t *h, uint8_t base, size_t n)
{
    if (n < 56) {
        h[0] = (uint8_t)(base + n);
        return 1;
    }
    uint8_t be[8];
    size_t k = 0;
    for (size_t x = n; x; x >>= 8)
        be[k++] = (uint8_t)x;
    h[0] = (uint8_t)(base + 55 + k);
    for (size_t i = 0; i < k; i++)
        h[1 + i] = be[k - 1 - i];
    return 1 + k;
}

void rlp_bytes(struct rlp *r, const uint8_t *d, size_t n)
{
    if (n == 1 && d[0] < 0x80) {
        uint8_t *p = room(r, 1);
        if (p) {
            p[0] = d[0];
            r->len++;
        }
        return;
    }
    uint8_t h[9];
    size_t hl = header(h, 0x80, n);
    uint8_t *p = room(r, hl + n);
    if (p == NULL)
        return;
    memcpy(p, h, hl);
    if (n)
        memcpy(p + hl, d, n);
    r->len += hl + n;
}

void rlp_uint(struct rlp *r, uint64_t v)
{
    uint8_t be[8];
    size_t k = 0;
    for (uint64_t x = v; x; x >>= 8)
        k++;
    for (size_t i = 0; i < k; i++)
        be[i] = (uint8_t)(v >> (8 * (k - 1 - i)));
    rlp_bytes(r, be, k);
}

void rlp_u256(struct rlp *r, const uint8_t w[32])
{
    size_t i = 0;
    while (i < 32 && w[i] == 0)
        i++;
    rlp_bytes(r, w + i, 32 - i);
}

size_t rlp_list_begin(struct rlp *r)
{
    return r->len;
}

void rlp_list_end(struct rlp *r, size_t mark)
{
    uint8_t h[9];
    size_t n = r->len - mark;
    size_t hl = header(h, 0xc0, n);
    if (room(r, hl) == NULL)
        return;
    memmove(r->p + mark + hl, r->p + mark, n);
    memcpy(r->p + mark, h, hl);
    r->len += hl;
}

void rlp_free(struct rlp *r)
{
    free(r->p);
    memset(r, 0, sizeof *r);
}
