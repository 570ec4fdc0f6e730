/* wallet.c - secp256k1 keys (libsecp256k1 with its recovery module). */
#include "chain/wallet.h"
#include "chain/hex.h"
#include "chain/keccak.h"
#include "core/err.h"

#include <ctype.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wallet {
    secp256k1_context *ctx;
    uint8_t key[32];
    uint8_t addr[20];
};

static void address_of(const secp256k1_context *ctx,
                       const secp256k1_pubkey *pub, uint8_t addr[20])
{
    uint8_t ser[65];
    size_t n = sizeof ser;
    secp256k1_ec_pubkey_serialize(ctx, ser, &n, pub, SECP256K1_EC_UNCOMPRESSED);
    uint8_t h[32];
    keccak256(ser + 1, 64, h);
    memcpy(addr, h + 12, 20);
}

int wallet_from_hex(struct wallet **out, const char *hex)
{
    char buf[80];
    size_t n = 0;
    for (const char *p = hex; *p && n < sizeof buf - 1; p++)
        if (!isspace((unsigned char)*p))
            buf[n++] = *p;
    buf[n] = '\0';
    struct wallet *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ERR_NOMEM;
    size_t got;
    w->ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_pubkey pub;
    if (w->ctx == NULL || hex_decode(buf, n, w->key, 32, &got) != 0 ||
        got != 32 || !secp256k1_ec_seckey_verify(w->ctx, w->key) ||
        !secp256k1_ec_pubkey_create(w->ctx, &pub, w->key)) {
        memset(buf, 0, sizeof buf);
        wallet_free(w);
        return ERR_INVALID;
    }
    memset(buf, 0, sizeof buf);
    address_of(w->ctx, &pub, w->addr);
    *out = w;
    return 0;
}

int wallet_from_file(struct wallet **out, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ERR_IO;
    char buf[128] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int rv = wallet_from_hex(out, buf);
    memset(buf, 0, sizeof buf);
    return rv;
}

void wallet_free(struct wallet *w)
{
    if (w == NULL)
        return;
    if (w->ctx)
        secp256k1_context_destroy(w->ctx);
    memset(w->key, 0, sizeof w->key);
    free(w);
}

const uint8_t *wallet_address(const struct wallet *w)
{
    return w->addr;
}

int wallet_sign(const struct wallet *w, const uint8_t digest[32],
                uint8_t rs[64], int *recid)
{
    secp256k1_ecdsa_recoverable_signature sig;
    if (!secp256k1_ecdsa_sign_recoverable(w->ctx, &sig, digest, w->key, NULL,
                                          NULL))
        return ERR_INVALID;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(w->ctx, rs, recid,
                                                            &sig);
    return 0;
}

int wallet_recover(const uint8_t digest[32], const uint8_t rs[64], int recid,
                   uint8_t addr[20])
{
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_ecdsa_recoverable_signature sig;
    secp256k1_pubkey pub;
    int ok = ctx != NULL && recid >= 0 && recid <= 3 &&
             secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &sig, rs,
                                                                 recid) &&
             secp256k1_ecdsa_recover(ctx, &pub, &sig, digest);
    if (ok)
        address_of(ctx, &pub, addr);
    if (ctx)
        secp256k1_context_destroy(ctx);
    return ok ? 0 : ERR_INVALID;
}
