/* compose.c - dstack compose hash: JavaScript-compatible canonical JSON of
 * an app-compose document, SHA-256, and the `nftraft compose-hash` CLI. */
#include "chain/compose.h"
#include "core/err.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct sb *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Next code point of UTF-8 s (jansson validated it); advances *i. */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    int extra;
    if (c < 0x80) {
        cp = c;
        extra = 0;
    } else if ((c & 0xe0) == 0xc0) {
        cp = c & 0x1f;
        extra = 1;
    } else if ((c & 0xf0) == 0xe0) {
        cp = c & 0x0f;
        extra = 2;
    } else {
        cp = c & 0x07;
        extra = 3;
    }
    (*i)++;
    while (extra-- > 0 && *i < n)
        cp = (cp << 6) | (s[(*i)++] & 0x3f);
    return cp;
}

/* JSON.stringify string escaping (ES2019: U+2028/2029 and non-ASCII raw). */
static void put_string(struct sb *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (esc != NULL) {
            put(b, s + start, i - start);
            puts_(b, esc);
            start = i + 1;
        }
    }
    put(b, s + start, n - start);
    put(b, "\"", 1);
}

void compose_js_number(double x, char out[40])
{
    if (isnan(x) || isinf(x)) {
        snprintf(out, 40, "%s", isnan(x) ? "NaN" : x > 0 ? "Infinity"
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
        o += (size_t)snprintf(out + o, 40 - o, "e%c%d",
                              n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    out[o] = '\0';
}

/* JSON.stringify of a number: non-finite ones are null. */
static void put_number(struct sb *b, double x)
{
    char out[40];
    if (isnan(x) || isinf(x)) {
        puts_(b, "null");
        return;
    }
    compose_js_number(x, out);
    puts_(b, out);
}

/* Compare keys as JavaScript's default sort does: by UTF-16 code units. */
static int utf16_cmp(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), i = 0, j = 0;
    uint16_t pa = 0, pb = 0; /* pending low surrogates */
    for (;;) {
        uint16_t ua, ub;
        bool ea = pa == 0 && i >= na, eb = pb == 0 && j >= nb;
        if (ea || eb)
            return ea && eb ? 0 : ea ? -1 : 1;
        if (pa) {
            ua = pa;
            pa = 0;
        } else {
            uint32_t cp = next_cp((const unsigned char *)a, na, &i);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                ua = (uint16_t)(0xd800 + (cp >> 10));
                pa = (uint16_t)(0xdc00 + (cp & 0x3ff));
            } else {
                ua = (uint16_t)cp;
            }
        }
        if (pb) {
            ub = pb;
            pb = 0;
        } else {
            uint32_t cp = next_cp((const unsigned char *)b, nb, &j);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                ub = (uint16_t)(0xd800 + (cp >> 10));
                pb = (uint16_t)(0xdc00 + (cp & 0x3ff));
            } else {
                ub = (uint16_t)cp;
            }
        }
        if (ua != ub)
            return ua < ub ? -1 : 1;
    }
}

static int key_cmp(const void *x, const void *y)
{
    return utf16_cmp(*(const char *const *)x, *(const char *const *)y);
}

static int put_value(struct sb *b, json_t *v, int depth)
{
    if (depth > 256)
        return ERR_TOOBIG;
    switch (json_typeof(v)) {
    case JSON_NULL: puts_(b, "null"); return 0;
    case JSON_TRUE: puts_(b, "true"); return 0;
    case JSON_FALSE: puts_(b, "false"); return 0;
    case JSON_INTEGER: put_number(b, (double)json_integer_value(v)); return 0;
    case JSON_REAL: put_number(b, json_real_value(v)); return 0;
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_ARRAY: {
        put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                put(b, ",", 1);
            int rv = put_value(b, json_array_get(v, i), depth + 1);
            if (rv)
                return rv;
        }
        put(b, "]", 1);
        return 0;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v), k = 0;
        const char **keys = malloc(sizeof *keys * (n ? n : 1));
        if (keys == NULL)
            return ERR_NOMEM;
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) keys[k++] = key;
        qsort(keys, n, sizeof *keys, key_cmp);
        put(b, "{", 1);
        int rv = 0;
        for (size_t i = 0; i < n && rv == 0; i++) {
            if (i)
                put(b, ",", 1);
            put_string(b, keys[i], strlen(keys[i]));
            put(b, ":", 1);
            rv = put_value(b, json_object_get(v, keys[i]), depth + 1);
        }
        put(b, "}", 1);
        free(keys);
        return rv;
    }
    }
    return ERR_MALFORMED;
}

static bool js_falsy(json_t *v)
{
    return json_is_null(v) || json_is_false(v) ||
           (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_number(v) && json_number_value(v) == 0);
}

/* dstack SDK normalization (normalize=True). */
static void normalize_doc(json_t *doc)
{
    const char *runner = json_string_value(json_object_get(doc, "runner"));
    if (runner != NULL && strcmp(runner, "bash") == 0)
        json_object_del(doc, "docker_compose_file");
    else if (runner != NULL && (strcmp(runner, "docker-compose") == 0 ||
                                strcmp(runner, "nerdctl-compose") == 0))
        json_object_del(doc, "bash_script");
    json_t *pre = json_object_get(doc, "pre_launch_script");
    if (pre != NULL && js_falsy(pre))
        json_object_del(doc, "pre_launch_script");
}

int compose_canonical(const char *json, size_t len, bool normalize,
                      char **out, char *errmsg, size_t errlen)
{
    json_error_t je;
    /* JavaScript numbers are doubles; duplicate keys: the last one wins. */
    json_t *doc =
        json_loadb(json, len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    if (doc == NULL) {
        snprintf(errmsg, errlen, "invalid JSON at line %d column %d: %s",
                 je.line, je.column, je.text);
        return ERR_MALFORMED;
    }
    if (normalize && json_is_object(doc))
        normalize_doc(doc);
    struct sb b = {0};
    int rv = put_value(&b, doc, 0);
    json_decref(doc);
    if (rv == 0 && b.oom)
        rv = ERR_NOMEM;
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s", rv == ERR_NOMEM ? "out of memory"
                                                       : "document too deep");
        free(b.p);
        return rv;
    }
    *out = b.p ? b.p : strdup("");
    return *out ? 0 : ERR_NOMEM;
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

/* ---- CLI ---- */

static const char USAGE[] =
    "nftraft compose-hash [--app-compose] FILE [--raw] [--print-app-compose]\n"
    "       nftraft compose-hash --docker-compose FILE [--name N] [--kms] "
    "[--gateway] [--allowed-env NAME]... [--manifest-version N] [--raw] "
    "[--print-app-compose]";

static void help(void)
{
    printf("usage: %s\n\n"
"Print dstack's compose hash (0x + 64 hex digits) of an app-compose JSON\n"
"document, computed as dstack's SDKs compute it: keys sorted recursively,\n"
"compact JSON, raw UTF-8, JavaScript string escaping and number printing,\n"
"then SHA-256. Normalization (as the SDKs' normalize=True) is on: runner\n"
"\"bash\" drops docker_compose_file, \"docker-compose\"/\"nerdctl-compose\"\n"
"drop bash_script, and an empty pre_launch_script is dropped.\n\n"
"  --app-compose FILE      hash this app-compose.json (also: a bare FILE)\n"
"  --docker-compose FILE   build the app-compose the seed builds around a\n"
"                          docker-compose.yml: runner docker-compose, the\n"
"                          file's text as docker_compose_file, manifest\n"
"                          version, and only the options given below (the\n"
"                          Python SDK drops unset fields)\n"
"  --name N                \"name\"\n"
"  --kms                   \"kms_enabled\": true\n"
"  --gateway               \"gateway_enabled\": true\n"
"  --allowed-env NAME      add NAME to \"allowed_envs\" (repeatable)\n"
"  --manifest-version N    \"manifest_version\" (default 2)\n"
"  --raw                   no normalization\n"
"  --print-app-compose     also print the canonical JSON that was hashed\n"
"\nExit status: 0, 1 (unreadable file or invalid JSON), 2 (bad usage).\n",
           USAGE);
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct sb b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        put(&b, buf, n);
    bool bad = ferror(f) || b.oom;
    fclose(f);
    if (bad) {
        free(b.p);
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    *len = b.len;
    return b.p ? b.p : strdup("");
}

int compose_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"app-compose", required_argument, NULL, 'a'},
        {"docker-compose", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"kms", no_argument, NULL, 'k'},
        {"gateway", no_argument, NULL, 'g'},
        {"allowed-env", required_argument, NULL, 'e'},
        {"manifest-version", required_argument, NULL, 'm'},
        {"raw", no_argument, NULL, 'r'},
        {"print-app-compose", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *app = NULL, *dc = NULL, *name = NULL;
    bool kms = false, gw = false, raw = false, print = false;
    long manifest = 2;
    json_t *envs = json_array();
    int c, rv = 2;
    char *end, err[512];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'a': app = optarg; break;
        case 'd': dc = optarg; break;
        case 'n': name = optarg; break;
        case 'k': kms = true; break;
        case 'g': gw = true; break;
        case 'e': json_array_append_new(envs, json_string(optarg)); break;
        case 'm':
            manifest = strtol(optarg, &end, 10);
            if (*end || manifest < 1 || manifest > 1000) {
                fprintf(stderr, "nftraft compose-hash: --manifest-version "
                                "wants a positive integer\nusage: %s\n",
                        USAGE);
                goto out;
            }
            break;
        case 'r': raw = true; break;
        case 'p': print = true; break;
        case 'h':
            help();
            rv = 0;
            goto out;
        default:
            fprintf(stderr, "nftraft compose-hash: %s\nusage: %s\n",
                    c == ':' ? "an option needs a value" : "unknown option",
                    USAGE);
            goto out;
        }
    }
    if (optind < argc && app == NULL && dc == NULL)
        app = argv[optind++];
    if (optind < argc || (app == NULL) == (dc == NULL)) {
        fprintf(stderr, "nftraft compose-hash: give one FILE (app-compose) "
                        "or --docker-compose FILE\nusage: %s\n", USAGE);
        goto out;
    }
    size_t len;
    char *text = read_file(app ? app : dc, &len, err, sizeof err);
    if (text == NULL) {
        fprintf(stderr, "nftraft compose-hash: %s\n", err);
        rv = 1;
        goto out;
    }
    char *doc_text = text;
    size_t doc_len = len;
    if (dc != NULL) {
        json_t *doc = json_object();
        json_t *s = json_stringn(text, len);
        if (s == NULL) {
            fprintf(stderr, "nftraft compose-hash: %s is not valid UTF-8\n",
                    dc);
            json_decref(doc);
            free(text);
            rv = 1;
            goto out;
        }
        json_object_set_new(doc, "runner", json_string("docker-compose"));
        json_object_set_new(doc, "docker_compose_file", s);
        json_object_set_new(doc, "manifest_version", json_integer(manifest));
        if (name)
            json_object_set_new(doc, "name", json_string(name));
        if (kms)
            json_object_set_new(doc, "kms_enabled", json_true());
        if (gw)
            json_object_set_new(doc, "gateway_enabled", json_true());
        if (json_array_size(envs) > 0)
            json_object_set(doc, "allowed_envs", envs);
        doc_text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(doc);
        doc_len = doc_text ? strlen(doc_text) : 0;
    }
    char *canon = NULL;
    int r = doc_text ? compose_canonical(doc_text, doc_len, !raw, &canon, err,
                                         sizeof err)
                     : ERR_NOMEM;
    if (doc_text != text)
        free(doc_text);
    free(text);
    if (r != 0) {
        fprintf(stderr, "nftraft compose-hash: %s: %s\n", app ? app : dc,
                r == ERR_NOMEM ? "out of memory" : err);
        rv = 1;
        goto out;
    }
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)canon, strlen(canon), d);
    if (print)
        printf("%s\n", canon);
    printf("0x");
    for (int i = 0; i < 32; i++)
        printf("%02x", d[i]);
    printf("\n");
    free(canon);
    rv = 0;
out:
    json_decref(envs);
    return rv;
}
