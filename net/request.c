/* request.c - strict parsing of HTTP API input. */
#include "net/request.h"
#include "chain/hex.h"
#include "core/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int request_parse_increment(const void *body, size_t len, int64_t *by,
                            char *err, size_t errlen)
{
    *by = 1;
    const char *b = body;
    size_t i = 0;
    while (i < len &&
           (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t'))
        i++;
    if (i == len)
        return 0;
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        snprintf(err, errlen, "malformed JSON body: %s", je.text);
        return ERR_MALFORMED;
    }
    int rv = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(j)) {
        snprintf(err, errlen, "body must be a JSON object like {\"by\": 1}");
        rv = ERR_INVALID;
        goto out;
    }
    json_object_foreach(j, k, v)
    {
        if (strcmp(k, "by") != 0) {
            snprintf(err, errlen, "unknown field \"%.64s\" (only \"by\")", k);
            rv = ERR_INVALID;
            goto out;
        }
    }
    v = json_object_get(j, "by");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            snprintf(err, errlen,
                     "\"by\" must be an integer from 1 to 9223372036854775807");
            rv = ERR_INVALID;
            goto out;
        }
        *by = (int64_t)json_integer_value(v);
    }
out:
    json_decref(j);
    return rv;
}

int request_check_key(const char *key, size_t len, size_t max, char *out,
                      char *err, size_t errlen)
{
    if (len == 0 || len > max) {
        snprintf(err, errlen, "Idempotency-Key must be 1..%zu bytes", max);
        return ERR_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        if (key[i] < 0x21 || key[i] > 0x7e) {
            snprintf(err, errlen,
                     "Idempotency-Key must be printable ASCII without spaces");
            return ERR_INVALID;
        }
    }
    memcpy(out, key, len);
    out[len] = '\0';
    return 0;
}

int request_check_method(const char *m, size_t len)
{
    if (len == 0 || len > 32)
        return ERR_INVALID;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)m[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                  (c >= 'A' && c <= 'Z') ||
                  (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok)
            return ERR_INVALID;
    }
    return 0;
}

int request_check_target(const char *target, size_t n)
{
    const unsigned char *p = (const unsigned char *)target;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return ERR_INVALID;
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlongs */
            hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf; /* <= U+10FFFF */
        } else {
            return ERR_INVALID;
        }
        if (n - i <= k || p[i + 1] < lo || p[i + 1] > hi)
            return ERR_INVALID;
        for (size_t j = 2; j <= k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return ERR_INVALID;
        i += k + 1;
    }
    return 0;
}

/* Whether line[0..len) is header `name` (case-insensitive, then ':'). */
static bool is_header(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

const char *request_framing_problem(const char *head, size_t len)
{
    const char *end = head + len;
    const char *nl = memchr(head, '\n', len);
    unsigned cl = 0, te = 0;
    while (nl != NULL) {
        const char *p = nl + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        size_t n = (size_t)(nl - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* end of the head */
        cl += is_header(p, n, "content-length");
        te += is_header(p, n, "transfer-encoding");
    }
    if (cl > 1)
        return "more than one Content-Length header";
    if (te > 1)
        return "more than one Transfer-Encoding header";
    if (cl && te)
        return "both Content-Length and Transfer-Encoding";
    return NULL;
}

int request_query_value(const char *q, size_t len, const char *name, char *out,
                        size_t cap)
{
    const char *end = q + len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - q) == nlen && memcmp(q, name, nlen) == 0) {
            size_t o = 0;
            for (const char *p = eq ? eq + 1 : pe; p < pe; p++) {
                char ch = *p;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    if (pe - p < 3 || hex_nibble(p[1]) < 0 ||
                        hex_nibble(p[2]) < 0)
                        return ERR_MALFORMED;
                    ch = (char)(hex_nibble(p[1]) * 16 + hex_nibble(p[2]));
                    p += 2;
                    if (ch == '\0')
                        return ERR_MALFORMED;
                }
                if (o + 1 >= cap)
                    return ERR_TOOBIG;
                out[o++] = ch;
            }
            if (cap == 0)
                return ERR_TOOBIG;
            out[o] = '\0';
            return 0;
        }
        q = pe + 1;
    }
    return ERR_NOTFOUND;
}
