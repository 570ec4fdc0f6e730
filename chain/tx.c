/* tx.c - RLP payloads, signing hashes and signatures for transactions. */
#include "chain/tx.h"
#include "chain/keccak.h"
#include "chain/rlp.h"
#include "chain/wallet.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

/* The fields both encodings share, in each one's order. */
static void fields(struct rlp *r, const struct tx *t)
{
    if (!t->legacy) {
        rlp_uint(r, t->chain_id);
        rlp_uint(r, t->nonce);
        rlp_uint(r, t->max_priority_fee);
        rlp_uint(r, t->max_fee);
    } else {
        rlp_uint(r, t->nonce);
        rlp_uint(r, t->max_fee);
    }
    rlp_uint(r, t->gas_limit);
    rlp_bytes(r, t->to, 20);
    rlp_uint(r, t->value);
    rlp_bytes(r, t->data, t->data_len);
    if (!t->legacy)
        rlp_list_end(r, rlp_list_begin(r)); /* empty access list */
}

int tx_sign(const struct tx *t, const struct wallet *w, uint8_t **raw,
            size_t *len, uint8_t hash[32])
{
    struct rlp r = {0};
    uint8_t digest[32], rs[64];
    int recid;
    /* Signing payload (type 2: keccak(0x02 || rlp(fields))). */
    size_t m = rlp_list_begin(&r);
    fields(&r, t);
    if (t->legacy) {
        rlp_uint(&r, t->chain_id);
        rlp_uint(&r, 0);
        rlp_uint(&r, 0);
    }
    rlp_list_end(&r, m);
    if (r.oom) {
        rlp_free(&r);
        return ERR_NOMEM;
    }
    if (t->legacy) {
        keccak256(r.p, r.len, digest);
    } else {
        uint8_t *pre = malloc(r.len + 1);
        if (pre == NULL) {
            rlp_free(&r);
            return ERR_NOMEM;
        }
        pre[0] = 2;
        memcpy(pre + 1, r.p, r.len);
        keccak256(pre, r.len + 1, digest);
        free(pre);
    }
    rlp_free(&r);
    if (wallet_sign(w, digest, rs, &recid) != 0)
        return ERR_INVALID;
    /* Signed encoding. */
    m = rlp_list_begin(&r);
    fields(&r, t);
    if (t->legacy)
        rlp_uint(&r, (uint64_t)recid + t->chain_id * 2 + 35);
    else
        rlp_uint(&r, (uint64_t)recid);
    uint8_t word[32];
    memset(word, 0, 32);
    memcpy(word, rs, 32);
    rlp_u256(&r, word);
    memcpy(word, rs + 32, 32);
    rlp_u256(&r, word);
    rlp_list_end(&r, m);
    if (r.oom) {
        rlp_free(&r);
        return ERR_NOMEM;
    }
    size_t extra = t->legacy ? 0 : 1;
    uint8_t *out = malloc(r.len + extra);
    if (out == NULL) {
        rlp_free(&r);
        return ERR_NOMEM;
    }
    if (!t->legacy)
        out[0] = 2;
    memcpy(out + extra, r.p, r.len);
    *len = r.len + extra;
    rlp_free(&r);
    keccak256(out, *len, hash);
    *raw = out;
    return 0;
}
