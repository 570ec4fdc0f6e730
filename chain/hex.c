/* hex.c - strict hex helpers. */
#include "chain/hex.h"
#include "core/err.h"

#include <string.h>

int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *s, size_t slen, uint8_t *out, size_t cap,
               size_t *len)
{
    if (slen >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        slen -= 2;
    }
    if (slen % 2 != 0)
        return ERR_MALFORMED;
    if (slen / 2 > cap)
        return ERR_TOOBIG;
    for (size_t i = 0; i < slen; i += 2) {
        int hi = hex_nibble(s[i]), lo = hex_nibble(s[i + 1]);
        if (hi < 0 || lo < 0)
            return ERR_MALFORMED;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *len = slen / 2;
    return 0;
}

void hex_encode(const uint8_t *data, size_t len, int prefix, char *out)
{
    static const char d[] = "0123456789abcdef";
    size_t o = 0;
    if (prefix) {
        out[o++] = '0';
        out[o++] = 'x';
    }
    for (size_t i = 0; i < len; i++) {
        out[o++] = d[data[i] >> 4];
        out[o++] = d[data[i] & 15];
    }
    out[o] = '\0';
}

int hex_quantity(const char *s, uint64_t *v)
{
    if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return ERR_MALFORMED;
    size_t n = strlen(s + 2);
    if (n == 0 || n > 16 || (n > 1 && s[2] == '0'))
        return ERR_MALFORMED;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hex_nibble(s[2 + i]);
        if (h < 0)
            return ERR_MALFORMED;
        x = x << 4 | (uint64_t)h;
    }
    *v = x;
    return 0;
}
