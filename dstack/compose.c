/* compose.c - dstack compose hash: JavaScript-compatible canonical JSON of
 * an app-compose document and its SHA-256 (the CLI is cmd/compose.c). */
#include "dstack/compose.h"
#include "core/strbuf.h"
#include "core/err.h"

#include <jansson.h>
#include <math.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb {
    struct strbuf buf;
    /* compose_js_reencode: lone surrogates as U+FFFD (what TextEncoder
     * makes of them), non-finite numbers as +-1e308 (still numbers). */
    bool wellformed;
};

static void put(struct sb *b, const char *s, size_t n)
{
    strbuf_put(&b->buf, s, n);
}

static void puts_(struct sb *b, const char *s)
{
    strbuf_puts(&b->buf, s);
}

void compose_js_number(double x, char out[40])
{
    if (isnan(x) || isinf(x)) {
        snprintf(out, 40, "%s",
                 isnan(x) ? "NaN"
                 : x > 0  ? "Infinity"
                          : "-Infinity");
        return;
    }
    if (x == 0) {
        snprintf(out, 40, "0"); /* also -0 */
        return;
    }
    char digits[32], e[40];
    int n = 0, k = 0;
    bool neg = x < 0;
    double ax = fabs(x);
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, ax);
        if (strtod(e, NULL) == ax)
            break;
    }
    /* e is "d.ddde+XX" or "de+XX" */
    char *ep = strchr(e, 'e');
    int exp10 = atoi(ep + 1);
    for (char *q = e; q < ep; q++)
        if (*q >= '0' && *q <= '9')
            digits[k++] = *q;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    n = exp10 + 1;
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (k <= n && n <= 21) {
        memcpy(out + o, digits, (size_t)k);
        o += (size_t)k;
        for (int i = 0; i < n - k; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, digits, (size_t)n);
        o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, digits + n, (size_t)(k - n));
        o += (size_t)(k - n);
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)k);
        o += (size_t)k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(k - 1));
            o += (size_t)(k - 1);
        }
        o += (size_t)snprintf(out + o, 40 - o, "e%c%d", n - 1 >= 0 ? '+' : '-',
                              abs(n - 1));
    }
    out[o] = '\0';
}

/* JSON.stringify of a number: non-finite ones are null. */
static void put_number(struct sb *b, double x)
{
    char out[40];
    if (isnan(x) || isinf(x)) {
        puts_(b, !b->wellformed ? "null" : x > 0 ? "1e308" : "-1e308");
        return;
    }
    compose_js_number(x, out);
    puts_(b, out);
}

/* ---- JSON.parse: values as JavaScript holds them ---- */

#define MAX_DEPTH 512

enum jt { JV_NULL, JV_TRUE, JV_FALSE, JV_NUM, JV_STR, JV_ARR, JV_OBJ };

/* A string as UTF-16 code units (lone surrogates possible). */
struct u16 {
    uint16_t *u;
    size_t n, cap;
};

struct jv {
    enum jt t;
    double num;
    struct u16 str;    /* JV_STR */
    struct jv **items; /* JV_ARR elements, JV_OBJ values */
    struct u16 *keys;  /* JV_OBJ keys, in insertion order */
    size_t n, cap;
};

static void jv_free(struct jv *v)
{
    if (v == NULL)
        return;
    free(v->str.u);
    for (size_t i = 0; i < v->n; i++) {
        jv_free(v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i].u);
    }
    free(v->items);
    free(v->keys);
    free(v);
}

static bool u16_push(struct u16 *s, uint16_t c)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        uint16_t *u = realloc(s->u, cap * sizeof *u);
        if (u == NULL)
            return false;
        s->u = u;
        s->cap = cap;
    }
    s->u[s->n++] = c;
    return true;
}

static bool u16_eq(const struct u16 *a, const char *ascii)
{
    size_t n = strlen(ascii);
    if (a->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (a->u[i] != (uint16_t)ascii[i])
            return false;
    return true;
}

struct parser {
    const unsigned char *s;
    size_t n, i;
    int rv;
    char *err;
    size_t errlen;
};

static struct jv *perr(struct parser *p, int rv, const char *what)
{
    if (p->rv == 0) {
        p->rv = rv;
        if (rv == ERR_NOMEM)
            snprintf(p->err, p->errlen, "out of memory");
        else
            snprintf(p->err, p->errlen, "invalid JSON at byte %zu: %s", p->i,
                     what);
    }
    return NULL;
}

static void skip_ws(struct parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                           p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static struct jv *jv_new(struct parser *p, enum jt t)
{
    struct jv *v = calloc(1, sizeof *v);
    if (v == NULL)
        return perr(p, ERR_NOMEM, "");
    v->t = t;
    return v;
}

/* One UTF-8 sequence (strict: no overlongs, surrogates or > U+10FFFF). */
static int utf8_next(struct parser *p, uint32_t *cp)
{
    const unsigned char *s = p->s;
    unsigned char c = s[p->i];
    int need;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
        *cp = c;
        p->i++;
        return 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        *cp = c & 0x0f;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        *cp = c & 0x07;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return -1;
    }
    p->i++;
    for (int k = 0; k < need; k++) {
        if (p->i >= p->n || s[p->i] < lo || s[p->i] > hi)
            return -1;
        *cp = *cp << 6 | (s[p->i++] & 0x3f);
        lo = 0x80;
        hi = 0xbf;
    }
    return 0;
}

static int hexval(unsigned char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool parse_string(struct parser *p, struct u16 *out)
{
    p->i++; /* the opening quote */
    for (;;) {
        if (p->i >= p->n) {
            perr(p, ERR_MALFORMED, "unterminated string");
            return false;
        }
        unsigned char c = p->s[p->i];
        uint32_t cp;
        if (c == '"') {
            p->i++;
            return true;
        }
        if (c < 0x20) {
            perr(p, ERR_MALFORMED, "control character in a string");
            return false;
        }
        if (c == '\\') {
            if (p->i + 1 >= p->n) {
                perr(p, ERR_MALFORMED, "unterminated escape");
                return false;
            }
            char e = (char)p->s[p->i + 1];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *k = e ? strchr(from, e) : NULL;
            if (k != NULL) {
                cp = (unsigned char)to[k - from];
                p->i += 2;
            } else if (e == 'u' && p->i + 6 <= p->n) {
                cp = 0;
                for (int j = 2; j < 6; j++) {
                    int h = hexval(p->s[p->i + j]);
                    if (h < 0) {
                        perr(p, ERR_MALFORMED, "bad \\u escape");
                        return false;
                    }
                    cp = cp << 4 | (uint32_t)h;
                }
                p->i += 6; /* a lone surrogate stays as it is, as in JS */
            } else {
                perr(p, ERR_MALFORMED, "bad escape");
                return false;
            }
        } else if (utf8_next(p, &cp) != 0) {
            perr(p, ERR_MALFORMED, "not valid UTF-8");
            return false;
        }
        bool ok;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            ok = u16_push(out, (uint16_t)(0xd800 + (cp >> 10))) &&
                 u16_push(out, (uint16_t)(0xdc00 + (cp & 0x3ff)));
        } else {
            ok = u16_push(out, (uint16_t)cp);
        }
        if (!ok) {
            perr(p, ERR_NOMEM, "");
            return false;
        }
    }
}

static struct jv *parse_number(struct parser *p)
{
    size_t st = p->i;
    const unsigned char *s = p->s;
    if (p->i < p->n && s[p->i] == '-')
        p->i++;
    if (p->i < p->n && s[p->i] == '0') {
        p->i++;
    } else if (p->i < p->n && s[p->i] >= '1' && s[p->i] <= '9') {
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            p->i++;
    } else {
        return perr(p, ERR_MALFORMED, "unexpected character");
    }
    if (p->i < p->n && s[p->i] == '.') {
        size_t d = ++p->i;
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            p->i++;
        if (p->i == d)
            return perr(p, ERR_MALFORMED, "bad number");
    }
    if (p->i < p->n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-'))
            p->i++;
        size_t d = p->i;
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            p->i++;
        if (p->i == d)
            return perr(p, ERR_MALFORMED, "bad number");
    }
    char *text = malloc(p->i - st + 1);
    struct jv *v = text ? jv_new(p, JV_NUM) : perr(p, ERR_NOMEM, "");
    if (v != NULL) {
        memcpy(text, s + st, p->i - st);
        text[p->i - st] = '\0';
        /* Correctly rounded; beyond the double range: +-Infinity, as
         * JSON.parse gives (JSON.stringify then prints null). */
        v->num = strtod(text, NULL);
    }
    free(text);
    return v;
}

static bool push_item(struct parser *p, struct jv *c, struct jv *item,
                      struct u16 *key)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        struct jv **it = realloc(c->items, cap * sizeof *it);
        if (it != NULL)
            c->items = it;
        if (it != NULL && key != NULL) {
            struct u16 *k = realloc(c->keys, cap * sizeof *k);
            if (k == NULL)
                it = NULL;
            else
                c->keys = k;
        }
        if (it == NULL) {
            perr(p, ERR_NOMEM, "");
            return false;
        }
        c->cap = cap;
    }
    c->items[c->n] = item;
    if (key != NULL)
        c->keys[c->n] = *key;
    c->n++;
    return true;
}

static struct jv *parse_value(struct parser *p, int depth)
{
    if (depth > MAX_DEPTH)
        return perr(p, ERR_TOOBIG, "nested deeper than 512 levels");
    skip_ws(p);
    if (p->i >= p->n)
        return perr(p, ERR_MALFORMED, "unexpected end");
    unsigned char c = p->s[p->i];
    static const struct {
        const char *word;
        enum jt t;
    } words[] = {{"null", JV_NULL}, {"true", JV_TRUE}, {"false", JV_FALSE}};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(words[k].word);
        if (p->n - p->i >= l && memcmp(p->s + p->i, words[k].word, l) == 0) {
            p->i += l;
            return jv_new(p, words[k].t);
        }
    }
    if (c == '"') {
        struct jv *v = jv_new(p, JV_STR);
        if (v != NULL && !parse_string(p, &v->str)) {
            jv_free(v);
            return NULL;
        }
        return v;
    }
    if (c != '[' && c != '{')
        return parse_number(p);
    bool obj = c == '{';
    struct jv *v = jv_new(p, obj ? JV_OBJ : JV_ARR);
    if (v == NULL)
        return NULL;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
        p->i++;
        return v;
    }
    for (;;) {
        struct u16 key = {0};
        if (obj) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"' || !parse_string(p, &key)) {
                free(key.u);
                jv_free(v);
                return perr(p, ERR_MALFORMED, "expected a key");
            }
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key.u);
                jv_free(v);
                return perr(p, ERR_MALFORMED, "expected ':'");
            }
            p->i++;
        }
        struct jv *item = parse_value(p, depth + 1);
        if (item == NULL) {
            free(key.u);
            jv_free(v);
            return NULL;
        }
        size_t dup = v->n;
        for (size_t k = 0; obj && k < v->n; k++)
            if (v->keys[k].n == key.n &&
                memcmp(v->keys[k].u, key.u, key.n * sizeof *key.u) == 0)
                dup = k;
        if (dup < v->n) { /* JSON.parse: the last value, first position */
            jv_free(v->items[dup]);
            v->items[dup] = item;
            free(key.u);
        } else if (!push_item(p, v, item, obj ? &key : NULL)) {
            free(key.u);
            jv_free(item);
            jv_free(v);
            return NULL;
        }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            return v;
        }
        jv_free(v);
        return perr(p, ERR_MALFORMED,
                    obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

/* ---- JSON.stringify of the SDK's sortObject(value) ---- */

/* An array index key ("0", "1", ... "4294967294", canonical): JavaScript
 * enumerates these first, in numeric order. *idx gets the number. */
static bool array_index(const struct u16 *k, uint64_t *idx)
{
    if (k->n == 0 || k->n > 10 || (k->n > 1 && k->u[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (k->u[i] < '0' || k->u[i] > '9')
            return false;
        x = x * 10 + (k->u[i] - '0');
    }
    *idx = x;
    return x <= 4294967294u;
}

/* Array.prototype.sort's default order: UTF-16 code units. */
static int u16_cmp(const struct u16 *a, const struct u16 *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++)
        if (a->u[i] != b->u[i])
            return a->u[i] < b->u[i] ? -1 : 1;
    return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

struct ent {
    const struct u16 *key;
    size_t pos; /* insertion position */
    bool is_idx;
    uint64_t idx;
};

/* Property enumeration order: array indices ascending, then the others in
 * `pos` order (insertion order, or sorted order for sortObject's result). */
static int enum_cmp(const void *x, const void *y)
{
    const struct ent *a = x, *b = y;
    if (a->is_idx != b->is_idx)
        return a->is_idx ? -1 : 1;
    if (a->is_idx)
        return a->idx < b->idx ? -1 : a->idx > b->idx ? 1 : 0;
    return a->pos < b->pos ? -1 : a->pos > b->pos ? 1 : 0;
}

static int key_sort_cmp(const void *x, const void *y)
{
    return u16_cmp(((const struct ent *)x)->key, ((const struct ent *)y)->key);
}

static void put_cp(struct sb *b, uint32_t cp)
{
    strbuf_utf8(&b->buf, cp);
}

/* The two-character escape JSON.stringify writes for c, or NULL. */
static const char *json_short_escape(uint16_t c)
{
    static const struct {
        char c;
        const char *esc;
    } ESC[] = {{'"', "\\\""}, {'\\', "\\\\"}, {'\b', "\\b"}, {'\f', "\\f"},
               {'\n', "\\n"}, {'\r', "\\r"},  {'\t', "\\t"}};
    for (size_t k = 0; k < sizeof ESC / sizeof ESC[0]; k++)
        if (c == (uint16_t)ESC[k].c)
            return ESC[k].esc;
    return NULL;
}

/* QuoteJSONString (ES2019 well-formed JSON.stringify), then UTF-8. */
static void put_u16(struct sb *b, const struct u16 *s)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < s->n; i++) {
        uint16_t c = s->u[i];
        char e[8];
        const char *short_escape = json_short_escape(c);
        if (short_escape != NULL) {
            puts_(b, short_escape);
            continue;
        }
        if (c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            puts_(b, e);
        } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s->n &&
                   s->u[i + 1] >= 0xdc00 && s->u[i + 1] <= 0xdfff) {
            put_cp(b, 0x10000 + ((uint32_t)(c - 0xd800) << 10) +
                          (s->u[i + 1] - 0xdc00));
            i++;
        } else if (c >= 0xd800 && c <= 0xdfff && b->wellformed) {
            put_cp(b, 0xfffd);
        } else if (c >= 0xd800 && c <= 0xdfff) {
            snprintf(e, sizeof e, "\\u%04x", c); /* a lone surrogate */
            puts_(b, e);
        } else {
            put_cp(b, c);
        }
    }
    put(b, "\"", 1);
}

static bool has_key(const struct jv *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (u16_eq(&v->keys[i], name))
            return true;
    return false;
}

/* JSON.stringify(sorted ? sortObject(v) : v). sortObject sorts and recurses
 * into plain objects only: an object with an own "constructor" key fails
 * its `obj.constructor === Object` test and is kept as it is, children
 * included. In a sorted object, `result["__proto__"] = x` hits the
 * prototype setter: the key is gone from the output. */
static int put_value(struct sb *b, const struct jv *v, bool sorted)
{
    switch (v->t) {
    case JV_NULL:
        puts_(b, "null");
        return 0;
    case JV_TRUE:
        puts_(b, "true");
        return 0;
    case JV_FALSE:
        puts_(b, "false");
        return 0;
    case JV_NUM:
        put_number(b, v->num);
        return 0;
    case JV_STR:
        put_u16(b, &v->str);
        return 0;
    case JV_ARR:
        put(b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                put(b, ",", 1);
            int rv = put_value(b, v->items[i], sorted);
            if (rv)
                return rv;
        }
        put(b, "]", 1);
        return 0;
    case JV_OBJ:
        break;
    }
    bool sort = sorted && !has_key(v, "constructor");
    struct ent *e = malloc(sizeof *e * (v->n ? v->n : 1));
    if (e == NULL)
        return ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (sort && u16_eq(&v->keys[i], "__proto__"))
            continue;
        e[n].key = &v->keys[i];
        e[n].pos = i;
        e[n].is_idx = array_index(&v->keys[i], &e[n].idx);
        n++;
    }
    if (sort) {
        qsort(e, n, sizeof *e, key_sort_cmp);
        for (size_t i = 0; i < n; i++)
            e[i].pos = i;
    }
    qsort(e, n, sizeof *e, enum_cmp);
    put(b, "{", 1);
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        if (i)
            put(b, ",", 1);
        put_u16(b, e[i].key);
        put(b, ":", 1);
        size_t at = (size_t)(e[i].key - v->keys);
        rv = put_value(b, v->items[at], sort);
    }
    put(b, "}", 1);
    free(e);
    return rv;
}

/* ---- the SDK's normalization (preprocessAppCompose) ---- */

static bool js_falsy(const struct jv *v)
{
    return v->t == JV_NULL || v->t == JV_FALSE ||
           (v->t == JV_STR && v->str.n == 0) ||
           (v->t == JV_NUM && (v->num == 0 || isnan(v->num)));
}

static struct jv *obj_get(const struct jv *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (u16_eq(&o->keys[i], name))
            return o->items[i];
    return NULL;
}

static void obj_del(struct jv *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (u16_eq(&o->keys[i], name)) {
            jv_free(o->items[i]);
            free(o->keys[i].u);
            memmove(o->items + i, o->items + i + 1,
                    (o->n - i - 1) * sizeof *o->items);
            memmove(o->keys + i, o->keys + i + 1,
                    (o->n - i - 1) * sizeof *o->keys);
            o->n--;
            return;
        }
}

static bool u16_of_index(struct u16 *k, size_t i)
{
    char d[24];
    snprintf(d, sizeof d, "%zu", i);
    for (char *q = d; *q; q++)
        if (!u16_push(k, (uint16_t)*q))
            return false;
    return true;
}

/* `{...doc}`: an object stays (a shallow copy); an array or a string
 * becomes an object keyed by index (a string's values are its UTF-16 code
 * units, one per string); anything else becomes {}. */
static struct jv *spread(struct parser *p, struct jv *doc)
{
    if (doc->t == JV_OBJ)
        return doc;
    struct jv *o = jv_new(p, JV_OBJ);
    if (o == NULL) {
        jv_free(doc);
        return NULL;
    }
    size_t n = doc->t == JV_ARR ? doc->n : doc->t == JV_STR ? doc->str.n : 0;
    for (size_t i = 0; i < n; i++) {
        struct u16 key = {0};
        struct jv *item = doc->t == JV_ARR ? doc->items[i] : jv_new(p, JV_STR);
        bool ok = item != NULL && u16_of_index(&key, i) &&
                  (doc->t == JV_ARR || u16_push(&item->str, doc->str.u[i]));
        if (ok && doc->t == JV_ARR)
            doc->items[i] = NULL;
        if (!ok || !push_item(p, o, item, &key)) {
            if (doc->t == JV_STR)
                jv_free(item);
            free(key.u);
            jv_free(o);
            jv_free(doc);
            return perr(p, ERR_NOMEM, "");
        }
    }
    if (doc->t == JV_ARR)
        doc->n = 0;
    jv_free(doc);
    return o;
}

static void normalize_doc(struct jv *doc)
{
    const struct jv *r = obj_get(doc, "runner");
    bool bash = r && r->t == JV_STR && u16_eq(&r->str, "bash");
    bool compose = r && r->t == JV_STR &&
                   (u16_eq(&r->str, "docker-compose") ||
                    u16_eq(&r->str, "nerdctl-compose"));
    if (bash)
        obj_del(doc, "docker_compose_file");
    else if (compose)
        obj_del(doc, "bash_script");
    const struct jv *pre = obj_get(doc, "pre_launch_script");
    if (pre != NULL && js_falsy(pre))
        obj_del(doc, "pre_launch_script");
}

/* The one JSON value of json[0..len), nothing but white space after it;
 * NULL with p->rv and the message set. */
static struct jv *parse_doc(struct parser *p)
{
    struct jv *doc = parse_value(p, 0);
    if (doc != NULL) {
        skip_ws(p);
        if (p->i != p->n) {
            jv_free(doc);
            doc = perr(p, ERR_MALFORMED, "text after the JSON value");
        }
    }
    return doc;
}

/* doc written out into *out (malloc'd, "" at least), keys sorted or not;
 * frees doc. */
static int render_doc(struct sb *b, struct jv *doc, bool sorted, char **out,
                      char *errmsg, size_t errlen)
{
    int rv = put_value(b, doc, sorted);
    jv_free(doc);
    if (rv == 0 && b->buf.oom)
        rv = ERR_NOMEM;
    if (rv != 0) {
        snprintf(errmsg, errlen, "out of memory");
        free(b->buf.p);
        return rv;
    }
    *out = b->buf.p ? b->buf.p : strdup("");
    return *out ? 0 : ERR_NOMEM;
}

int compose_canonical(const char *json, size_t len, bool normalize, char **out,
                      char *errmsg, size_t errlen)
{
    struct parser p = {(const unsigned char *)json, len, 0, 0, errmsg, errlen};
    struct jv *doc = parse_doc(&p);
    if (doc != NULL && normalize) {
        doc = spread(&p, doc);
        if (doc != NULL)
            normalize_doc(doc);
    }
    if (doc == NULL)
        return p.rv ? p.rv : ERR_MALFORMED;
    struct sb b = {0};
    return render_doc(&b, doc, true, out, errmsg, errlen);
}

int compose_js_reencode(const char *json, size_t len, char **out, char *errmsg,
                        size_t errlen)
{
    struct parser p = {(const unsigned char *)json, len, 0, 0, errmsg, errlen};
    struct jv *doc = parse_doc(&p);
    if (doc == NULL)
        return p.rv ? p.rv : ERR_MALFORMED;
    struct sb b = {.wellformed = true};
    return render_doc(&b, doc, false, out, errmsg, errlen);
}

int compose_hash(const char *json, size_t len, bool normalize, char hex[65],
                 char *errmsg, size_t errlen)
{
    char *canon;
    int rv = compose_canonical(json, len, normalize, &canon, errmsg, errlen);
    if (rv != 0)
        return rv;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)canon, strlen(canon), d);
    free(canon);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}
