/* redact.c - credential redaction in URLs (see redact.h for the rules). */
#include "core/redact.h"
#include "core/err.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define MASK "***"
#define KEY_MIN_LEN 16

struct out {
    char *p;
    size_t len, cap;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (o->len + 1 >= o->cap) {
            o->full = true;
            return;
        }
        o->p[o->len++] = s[i];
    }
}

/* A run of characters an API key is made of, long enough and mixed enough
 * (a digit, or upper and lower case) not to be a plain word. */
static bool looks_like_key(const char *s, size_t n)
{
    if (n < KEY_MIN_LEN)
        return false;
    bool digit = false, upper = false, lower = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isdigit(c))
            digit = true;
        else if (isupper(c))
            upper = true;
        else if (islower(c))
            lower = true;
        else if (strchr("._~+=%-", c) == NULL)
            return false;
    }
    return digit || (upper && lower);
}

static bool secret_name(const char *s, size_t n)
{
    static const char *const words[] = {"key",  "token", "secret",
                                        "pass", "auth",  "sig"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++)
            if (strncasecmp(s + i, words[w], wl) == 0)
                return true;
    }
    return false;
}

/* Copy s[0..n) or the mask when mask is set; counts masks in *count. */
static void part(struct out *o, const char *s, size_t n, bool mask, int *count)
{
    if (mask) {
        put(o, MASK, strlen(MASK));
        (*count)++;
    } else {
        put(o, s, n);
    }
}

int redact_url(const char *url, char *out, size_t cap)
{
    struct out o = {out, 0, cap, cap == 0};
    int count = 0;
    const char *p = url, *end = url + strlen(url);
    const char *sep = strstr(url, "://");
    if (sep != NULL) {
        put(&o, url, (size_t)(sep + 3 - url));
        p = sep + 3;
        const char *ae = p + strcspn(p, "/?#");
        const char *at = NULL;
        for (const char *q = p; q < ae; q++)
            if (*q == '@')
                at = q;
        if (at != NULL) {
            part(&o, p, 0, true, &count);
            p = at; /* the '@' and the host follow */
        }
        put(&o, p, (size_t)(ae - p));
        p = ae;
    }
    /* path: segments between '/' up to '?' or '#' */
    const char *pe = p + strcspn(p, "?#");
    while (p < pe) {
        if (*p == '/') {
            put(&o, "/", 1);
            p++;
            continue;
        }
        size_t n = strcspn(p, "/?#");
        part(&o, p, n, looks_like_key(p, n), &count);
        p += n;
    }
    /* query: name=value pairs between '&' up to '#' */
    if (p < end && *p == '?') {
        put(&o, "?", 1);
        p++;
        const char *qe = p + strcspn(p, "#");
        while (p < qe) {
            if (*p == '&') {
                put(&o, "&", 1);
                p++;
                continue;
            }
            size_t n = strcspn(p, "&#");
            const char *eq = memchr(p, '=', n);
            if (eq == NULL) {
                part(&o, p, n, looks_like_key(p, n), &count);
            } else {
                size_t kl = (size_t)(eq - p), vl = n - kl - 1;
                put(&o, p, kl + 1);
                part(&o, eq + 1, vl,
                     vl > 0 &&
                         (secret_name(p, kl) || looks_like_key(eq + 1, vl)),
                     &count);
            }
            p += n;
        }
    }
    if (p < end && *p == '#') {
        put(&o, "#", 1);
        p++;
        part(&o, p, (size_t)(end - p), looks_like_key(p, (size_t)(end - p)),
             &count);
    }
    if (cap > 0)
        out[o.len] = '\0';
    return o.full ? ERR_TOOBIG : count;
}
