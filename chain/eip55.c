/* eip55.c - EIP-55 checksummed addresses: hex letters are uppercased where
 * the keccak256 of the lowercase hex (without 0x) has a nibble >= 8. */
#include "chain/eip55.h"
#include "chain/hex.h"
#include "chain/keccak.h"
#include "core/err.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* The checksummed form of the 40 lowercase hex digits lower[0..40). */
static void checksum(const char lower[40], char out[40])
{
    uint8_t h[32];
    keccak256(lower, 40, h);
    for (int i = 0; i < 40; i++) {
        int nib = i % 2 == 0 ? h[i / 2] >> 4 : h[i / 2] & 0x0f;
        char c = lower[i];
        out[i] = c >= 'a' && c <= 'f' && nib >= 8 ? (char)(c - 'a' + 'A') : c;
    }
}

void eip55_encode(const uint8_t addr[20], char out[43])
{
    char lower[43];
    hex_encode(addr, 20, 0, lower);
    out[0] = '0';
    out[1] = 'x';
    checksum(lower, out + 2);
    out[42] = '\0';
}

int eip55_decode(const char *s, size_t len, uint8_t addr[20])
{
    if (len != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return ERR_MALFORMED;
    char lower[40], want[40];
    bool has_lower = false, has_upper = false;
    for (int i = 0; i < 40; i++) {
        unsigned char c = (unsigned char)s[2 + i];
        if (!isxdigit(c))
            return ERR_MALFORMED;
        has_lower |= c >= 'a' && c <= 'f';
        has_upper |= c >= 'A' && c <= 'F';
        lower[i] = (char)tolower(c);
    }
    size_t n;
    if (hex_decode(lower, 40, addr, 20, &n) != 0 || n != 20)
        return ERR_MALFORMED;
    if (has_lower && has_upper) {
        checksum(lower, want);
        if (memcmp(want, s + 2, 40) != 0)
            return ERR_INVALID;
    }
    return 0;
}
