/* keccak.c - Keccak-f[1600] sponge with rate 136 and padding 0x01..0x80. */
#include "chain/keccak.h"

#include <string.h>

static const uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
    0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
    0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
    0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
    0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
    0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
    0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
static const int ROT[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                            27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const int PI[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                           15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

static uint64_t rotl(uint64_t x, int n)
{
    return (x << n) | (x >> (64 - n));
}

static void keccakf(uint64_t s[25])
{
    uint64_t bc[5], t;
    for (int r = 0; r < 24; r++) {
        for (int i = 0; i < 5; i++)
            bc[i] = s[i] ^ s[i + 5] ^ s[i + 10] ^ s[i + 15] ^ s[i + 20];
        for (int i = 0; i < 5; i++) {
            t = bc[(i + 4) % 5] ^ rotl(bc[(i + 1) % 5], 1);
            for (int j = 0; j < 25; j += 5)
                s[j + i] ^= t;
        }
        t = s[1];
        for (int i = 0; i < 24; i++) {
            int j = PI[i];
            uint64_t x = s[j];
            s[j] = rotl(t, ROT[i]);
            t = x;
        }
        for (int j = 0; j < 25; j += 5) {
            for (int i = 0; i < 5; i++)
                bc[i] = s[j + i];
            for (int i = 0; i < 5; i++)
                s[j + i] ^= (~bc[(i + 1) % 5]) & bc[(i + 2) % 5];
        }
        s[0] ^= RC[r];
    }
}

static void absorb(uint64_t s[25], const uint8_t *block)
{
    for (int i = 0; i < 17; i++) {
        uint64_t lane = 0;
        for (int b = 7; b >= 0; b--)
            lane = lane << 8 | block[i * 8 + b];
        s[i] ^= lane;
    }
    keccakf(s);
}

void keccak256(const void *data, size_t len, uint8_t out[32])
{
    uint64_t s[25] = {0};
    const uint8_t *p = data;
    while (len >= 136) {
        absorb(s, p);
        p += 136;
        len -= 136;
    }
    uint8_t last[136] = {0};
    memcpy(last, p, len);
    last[len] ^= 0x01;
    last[135] ^= 0x80;
    absorb(s, last);
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 8; b++)
            out[i * 8 + b] = (uint8_t)(s[i] >> (8 * b));
}

void keccak_selector(const char *signature, uint8_t out[4])
{
    uint8_t h[32];
    keccak256(signature, strlen(signature), h);
    memcpy(out, h, 4);
}
