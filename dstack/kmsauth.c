/* kmsauth.c - POST /bootAuth/app, POST /bootAuth/kms and GET / as dstack's
 * auth-eth-bun answers them (the reference; hono + zod + viem): the same
 * Content-Type rule and validation, left-padding of hex fields, bodies and
 * status codes byte for byte, strings read from the contract as viem reads
 * them (leading NUL bytes dropped, invalid UTF-8 replaced by U+FFFD, a BOM
 * dropped) up to KMSAUTH_MAX_STRING bytes, fail-closed on any backend
 * failure, no caching, ETH_CHAIN_ID and ETH_FINALITY_CONFIRMATIONS; and
 * --mock as dstack's auth-mock answers (zod's 400 bodies, its reasons,
 * defaults and MOCK_* environment). */
#include "dstack/kmsauth.h"
#include "core/strbuf.h"
#include "chain/abi.h"
#include "dstack/compose.h"
#include "chain/eip55.h"
#include "chain/hex.h"
#include "chain/kms.h"
#include "chain/rpc.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/log.h"
#include "net/httpd.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ADVISORIES 128
/* The longest reason or gatewayAppId passed through (bytes as the contract
 * returns them); longer ones fail closed with a log line. The RPC client
 * itself caps an eth_call answer at 1 MiB. */
#define KMSAUTH_MAX_STRING (64u * 1024u)

static const char INVALID_BODY[] =
    "{\"isAllowed\":false,\"reason\":\"invalid authorization request\","
    "\"gatewayAppId\":\"\"}";
static const char MALFORMED_TEXT[] = "Malformed JSON in request body";
static const char UNAVAILABLE_BODY[] =
    "{\"isAllowed\":false,\"gatewayAppId\":\"\",\"reason\":\"authorization "
    "backend unavailable\"}";

struct kmsauth {
    struct httpd *httpd;
    struct httpc *httpc;
    struct rpc *rpc;
    int closing; /* closes still to complete after kmsauth_stop */
    bool mock;
    char rpc_url[512], rpc_origin[512];
    uint8_t kms[20];
    char kms_env[128]; /* KMS_CONTRACT_ADDR as given: GET / prints it so */
    bool chain_id_set;
    uint64_t chain_id;
    uint64_t confirmations;
    char mock_policy[32];
    char *mock_gateway, *mock_devices, *mock_mrs, *mock_impl, *mock_kms,
        *mock_rpc;          /* copies of the config's strings */
    char mock_chain_id[40]; /* parseInt(MOCK_CHAIN_ID) as JSON */
};

/* new TextDecoder("utf-8").decode(s[0..n)): a leading BOM dropped, each
 * maximal invalid subpart replaced by U+FFFD (the WHATWG decoder). The
 * result is valid UTF-8 (NUL bytes possible). */
static void text_decode(const uint8_t *s, size_t n, struct strbuf *out)
{
    size_t i = 0;
    if (n - i >= 3 && s[i] == 0xef && s[i + 1] == 0xbb && s[i + 2] == 0xbf)
        i += 3;
    uint32_t cp = 0;
    int need = 0, seen = 0;
    uint8_t lo = 0x80, hi = 0xbf;
    while (i < n) {
        uint8_t c = s[i];
        if (need == 0) {
            i++;
            if (c < 0x80) {
                strbuf_put(out, &c, 1);
            } else if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
                cp = c & 0x1f;
            } else if (c >= 0xe0 && c <= 0xef) {
                lo = c == 0xe0 ? 0xa0 : 0x80;
                hi = c == 0xed ? 0x9f : 0xbf;
                need = 2;
                cp = c & 0x0f;
            } else if (c >= 0xf0 && c <= 0xf4) {
                lo = c == 0xf0 ? 0x90 : 0x80;
                hi = c == 0xf4 ? 0x8f : 0xbf;
                need = 3;
                cp = c & 0x07;
            } else {
                strbuf_utf8(out, 0xfffd);
            }
            continue;
        }
        if (c < lo || c > hi) { /* error; c is processed again */
            need = seen = 0;
            lo = 0x80;
            hi = 0xbf;
            strbuf_utf8(out, 0xfffd);
            continue;
        }
        i++;
        lo = 0x80;
        hi = 0xbf;
        cp = cp << 6 | (c & 0x3f);
        if (++seen == need) {
            strbuf_utf8(out, cp);
            need = seen = 0;
        }
    }
    if (need != 0)
        strbuf_utf8(out, 0xfffd);
    if (out->p == NULL)
        strbuf_put(out, "", 0);
}

/* A string the contract returned, as viem's decodeString gives it: leading
 * zero bytes trimmed (at least one byte kept), then text_decode. */
static void viem_string(const uint8_t *s, size_t n, struct strbuf *out)
{
    size_t i = 0;
    while (n > 0 && i < n - 1 && s[i] == 0)
        i++;
    text_decode(s + i, n - i, out);
}

/* JSON.stringify of the valid UTF-8 string s[0..n). */
static void sb_json_string(struct strbuf *b, const char *s, size_t n)
{
    strbuf_put(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char u[8];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (esc != NULL) {
            strbuf_put(b, s + start, i - start);
            strbuf_puts(b, esc);
            start = i + 1;
        }
    }
    strbuf_put(b, s + start, n - start);
    strbuf_put(b, "\"", 1);
}

/* {"isAllowed":..,"reason":"..","gatewayAppId":".."} as hono's c.json. */
static void respond_decision(struct httpd_req *r, bool allowed,
                             const char *reason, size_t reason_len,
                             const char *gw, size_t gw_len)
{
    struct strbuf b = {0};
    strbuf_puts(&b, allowed ? "{\"isAllowed\":true,\"reason\":"
                            : "{\"isAllowed\":false,\"reason\":");
    sb_json_string(&b, reason, reason_len);
    strbuf_puts(&b, ",\"gatewayAppId\":");
    sb_json_string(&b, gw, gw_len);
    strbuf_puts(&b, "}");
    if (b.oom)
        httpd_respond(r, 500, "application/json",
                      "{\"status\":\"error\",\"message\":"
                      "\"authorization backend unavailable\"}",
                      68, NULL);
    else
        httpd_respond(r, 200, "application/json", b.p, b.len, NULL);
    free(b.p);
}

/* A string result of the contract at head slot `slot`, decoded as viem
 * does into out; *raw_len gets its length in bytes. ERR_MALFORMED (bad
 * offset or length), ERR_TOOBIG (above KMSAUTH_MAX_STRING), ERR_NOMEM. */
static int contract_string(const uint8_t *d, size_t len, size_t slot,
                           struct strbuf *out, uint64_t *raw_len)
{
    uint64_t off, n = 0;
    if (abi_get_uint64(d, len, slot, &off) != 0 || off > len || len - off < 32)
        return ERR_MALFORMED;
    const uint8_t *w = d + off;
    for (int k = 0; k < 24; k++)
        if (w[k] != 0)
            return ERR_MALFORMED;
    for (int k = 24; k < 32; k++)
        n = n << 8 | w[k];
    if (n > len - off - 32)
        return ERR_MALFORMED;
    *raw_len = n;
    if (n > KMSAUTH_MAX_STRING)
        return ERR_TOOBIG;
    viem_string(w + 32, (size_t)n, out);
    return out->oom ? ERR_NOMEM : 0;
}

/* Why a contract string was refused, for the fail-closed log line. */
static const char *string_why(int rv, const char *what, uint64_t n, char *buf,
                              size_t cap)
{
    if (rv == ERR_TOOBIG)
        snprintf(buf, cap,
                 "%s of %" PRIu64 " bytes is above the %u-byte "
                 "cap (KMSAUTH_MAX_STRING)",
                 what, n, KMSAUTH_MAX_STRING);
    else
        snprintf(buf, cap, "%s: %s", what,
                 rv == ERR_NOMEM ? "out of memory" : "malformed ABI string");
    return buf;
}

#define WHY_MAX 160

/* The string `what` at head slot `slot` of a contract call's answer (err
 * and msg as the call reported them) into out: NULL, or why not (msg, or
 * string_why's text in why[WHY_MAX]). */
static const char *string_answer(int err, const char *msg, const uint8_t *d,
                                 size_t len, size_t slot, const char *what,
                                 struct strbuf *out, char *why)
{
    if (err != 0)
        return msg != NULL ? msg : "the call failed";
    uint64_t n = 0;
    int rv = contract_string(d, len, slot, out, &n);
    return rv == 0 ? NULL : string_why(rv, what, n, why, WHY_MAX);
}

/* One boot request on its way through the chain calls. */
struct boot {
    struct kmsauth *ka;
    struct httpd_req *http;
    bool kms_route;
    uint8_t app_id[20], instance_id[20];
    uint8_t compose[32], device[32], mr_agg[32], mr_sys[32], os_image[32];
    char tcb[4 * 128 + 1];
    char *advisories[MAX_ADVISORIES];
    size_t n_adv;
    size_t tcb_len;
    char block[24];
    bool allowed;
    struct strbuf reason; /* decoded as viem decodes, valid UTF-8 */
};

static void boot_free(struct boot *b)
{
    for (size_t i = 0; i < b->n_adv; i++)
        free(b->advisories[i]);
    free(b->reason.p);
    free(b);
}

static void boot_abort(void *data)
{
    ((struct boot *)data)->http = NULL;
}

static void respond_raw(struct httpd_req *r, int status, const char *body)
{
    httpd_respond(r, status, "application/json", body, strlen(body), NULL);
}

static void fail_closed(struct boot *b, const char *why)
{
    LOGW("auth", "%s boot denied (fail closed): %s",
         b->kms_route ? "kms" : "app", why);
    if (b->http != NULL) {
        httpd_on_abort(b->http, NULL, NULL);
        respond_raw(b->http, 200, UNAVAILABLE_BODY);
    }
    boot_free(b);
}

/* ---- validation (zod schema of auth-eth-bun) ---- */

/* A hex field of at most `size` bytes: optional 0x, 0..2*size hex digits;
 * left-padded with zeros to exactly size bytes. */
static bool hex_field(json_t *body, const char *name, size_t size,
                      bool required, uint8_t *out)
{
    json_t *v = json_object_get(body, name);
    memset(out, 0, size);
    if (v == NULL)
        return !required;
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= 2 && s[0] == '0' && s[1] == 'x') {
        s += 2;
        n -= 2;
    }
    if (n > 2 * size)
        return false;
    char padded[129];
    memset(padded, '0', 2 * size);
    memcpy(padded + 2 * size - n, s, n);
    padded[2 * size] = '\0';
    size_t got;
    return hex_decode(padded, 2 * size, out, size, &got) == 0 && got == size;
}

/* JavaScript's String length: UTF-16 code units of valid UTF-8. */
static size_t utf16_len(const char *s, size_t n)
{
    size_t units = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xc0) != 0x80)
            units += c >= 0xf0 ? 2 : 1;
    }
    return units;
}

static bool parse_boot(struct boot *b, json_t *body)
{
    if (!json_is_object(body))
        return false;
    if (!hex_field(body, "mrAggregated", 32, true, b->mr_agg) ||
        !hex_field(body, "osImageHash", 32, true, b->os_image) ||
        !hex_field(body, "appId", 20, true, b->app_id) ||
        !hex_field(body, "composeHash", 32, true, b->compose) ||
        !hex_field(body, "instanceId", 20, true, b->instance_id) ||
        !hex_field(body, "deviceId", 32, true, b->device) ||
        !hex_field(body, "mrSystem", 32, false, b->mr_sys))
        return false;
    json_t *t = json_object_get(body, "tcbStatus");
    if (t != NULL) {
        if (!json_is_string(t) ||
            utf16_len(json_string_value(t), json_string_length(t)) > 128 ||
            json_string_length(t) >= sizeof b->tcb)
            return false;
        b->tcb_len = json_string_length(t);
        memcpy(b->tcb, json_string_value(t), b->tcb_len);
    }
    json_t *a = json_object_get(body, "advisoryIds");
    if (a != NULL) {
        if (!json_is_array(a) || json_array_size(a) > MAX_ADVISORIES)
            return false;
        for (size_t i = 0; i < json_array_size(a); i++) {
            json_t *s = json_array_get(a, i);
            if (!json_is_string(s) ||
                utf16_len(json_string_value(s), json_string_length(s)) > 256)
                return false;
            b->advisories[b->n_adv] = strdup(json_string_value(s));
            if (b->advisories[b->n_adv++] == NULL)
                return false;
        }
    }
    return true;
}

/* ---- the chain path ---- */

static void gateway_done(void *data, int err, const uint8_t *d, size_t len,
                         const char *msg)
{
    struct boot *b = data;
    struct strbuf gw = {0};
    char why[WHY_MAX];
    const char *fail =
        string_answer(err, msg, d, len, 0, "gatewayAppId()", &gw, why);
    if (fail != NULL) {
        free(gw.p);
        fail_closed(b, fail);
        return;
    }
    LOGI("auth", "%s boot %s reason=\"%.200s\"%s (%zu bytes) block=%s",
         b->kms_route ? "kms" : "app", b->allowed ? "allowed" : "denied",
         b->reason.p, b->reason.len > 200 ? "..." : "", b->reason.len,
         b->block);
    if (b->http != NULL) {
        httpd_on_abort(b->http, NULL, NULL);
        respond_decision(b->http, b->allowed, b->reason.p, b->reason.len, gw.p,
                         gw.len);
    }
    free(gw.p);
    boot_free(b);
}

static void decision_done(void *data, int err, const uint8_t *d, size_t len,
                          const char *msg)
{
    struct boot *b = data;
    char why[WHY_MAX];
    if (err != 0 || abi_get_bool(d, len, 0, &b->allowed) != 0) {
        fail_closed(b, err ? msg : "malformed decision answer");
        return;
    }
    const char *fail =
        string_answer(0, NULL, d, len, 1, "the reason", &b->reason, why);
    if (fail != NULL) {
        fail_closed(b, fail);
        return;
    }
    int rc =
        kms_gateway_app_id(b->ka->rpc, b->ka->kms, b->block, gateway_done, b);
    if (rc != 0)
        fail_closed(b, "cannot call gatewayAppId()");
}

static void ask_contract(struct boot *b)
{
    struct kms_boot_info bi = {.tcb = b->tcb, /* may hold NUL bytes */
                               .tcb_len = b->tcb_len,
                               .advisories = (const char *const *)b->advisories,
                               .n_advisories = b->n_adv};
    memcpy(bi.app_id, b->app_id, 20);
    memcpy(bi.instance_id, b->instance_id, 20);
    memcpy(bi.compose, b->compose, 32);
    memcpy(bi.device, b->device, 32);
    memcpy(bi.mr_agg, b->mr_agg, 32);
    memcpy(bi.mr_sys, b->mr_sys, 32);
    memcpy(bi.os_image, b->os_image, 32);
    int rv = kms_is_allowed(b->ka->rpc, b->ka->kms, b->block, b->kms_route, &bi,
                            decision_done, b);
    if (rv != 0)
        fail_closed(b, "cannot call the KMS contract");
}

static void head_done(void *data, int err, uint64_t head, const char *msg)
{
    struct boot *b = data;
    uint64_t n = b->ka->confirmations;
    if (err != 0) {
        fail_closed(b, msg);
        return;
    }
    if (head < n) {
        fail_closed(b, "chain head is below the finality confirmations");
        return;
    }
    snprintf(b->block, sizeof b->block, "0x%" PRIx64, head - n);
    ask_contract(b);
}

static void after_chain_id(struct boot *b)
{
    if (b->ka->confirmations == 0) {
        snprintf(b->block, sizeof b->block, "latest");
        ask_contract(b);
    } else if (rpc_block_number(b->ka->rpc, head_done, b) != 0) {
        fail_closed(b, "cannot ask the block number");
    }
}

static void chain_id_done(void *data, int err, uint64_t id, const char *msg)
{
    struct boot *b = data;
    if (err != 0) {
        fail_closed(b, msg);
        return;
    }
    if (id != b->ka->chain_id) {
        char why[128];
        snprintf(why, sizeof why,
                 "RPC chain id %" PRIu64 " != ETH_CHAIN_ID %" PRIu64, id,
                 b->ka->chain_id);
        fail_closed(b, why);
        return;
    }
    after_chain_id(b);
}

/* ---- request bodies (hono's validator('json')) ---- */

/* hono's JSON Content-Type test, case-sensitive:
 * ^application/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$ */
static bool json_content_type(const char *s, size_t n)
{
    const char *e = s + n, *p;
    if (n < 12 || memcmp(s, "application/", 12) != 0)
        return false;
    p = s + 12;
    const char *q = p;
    while (q < e && ((*q >= 'a' && *q <= 'z') || *q == '-' || *q == '.'))
        q++;
    if (q < e && *q == '+' && q > p)
        p = q + 1;
    if (e - p < 4 || memcmp(p, "json", 4) != 0)
        return false;
    p += 4;
    while (p < e) {
        if (*p++ != ';')
            return false;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        const char *k = p;
        while (p < e && (isalnum((unsigned char)*p) || *p == '-'))
            p++;
        if (p == k || p >= e || *p++ != '=')
            return false;
        const char *v = p;
        while (p < e && *p != ';')
            p++;
        if (p == v)
            return false;
    }
    return true;
}

/* The request's JSON value as hono hands it to zod: {} without a JSON
 * Content-Type; the body decoded as TextDecoder does (BOM dropped, invalid
 * UTF-8 replaced), then parsed. NULL: the body is not JSON (the caller
 * answers 400 "Malformed JSON in request body"). JSON.parse's grammar and
 * values (compose_js_reencode): lone surrogates reach the contract as
 * U+FFFD, as viem's TextEncoder sends them. */
static json_t *request_json(struct httpd_req *r)
{
    size_t ctl = 0, len;
    const char *ct = httpd_header(r, "content-type", &ctl);
    if (ct == NULL || !json_content_type(ct, ctl))
        return json_object();
    const uint8_t *raw = httpd_body(r, &len);
    struct strbuf text = {0};
    char *strict = NULL, err[128];
    text_decode(raw, len, &text);
    json_t *j = NULL;
    if (!text.oom &&
        compose_js_reencode(text.p, text.len, &strict, err, sizeof err) == 0)
        j = json_loadb(
            strict, strlen(strict),
            JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    free(strict);
    free(text.p);
    return j;
}

static void respond_malformed(struct httpd_req *r)
{
    httpd_respond(r, 400, "text/plain;charset=UTF-8", MALFORMED_TEXT,
                  strlen(MALFORMED_TEXT), NULL);
}

/* ---- mock policy (auth-mock) ---- */

/* zod's name of a JSON value's type ("undefined" when absent). */
static const char *zod_type(const json_t *v)
{
    if (v == NULL)
        return "undefined";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static void zod_issue(struct strbuf *b, int *count, const char *expected,
                      const json_t *v, const char *key, long idx)
{
    char msg[64];
    if ((*count)++ > 0)
        strbuf_puts(b, ",");
    strbuf_puts(b, "{\"code\":\"invalid_type\",\"expected\":\"");
    strbuf_puts(b, expected);
    strbuf_puts(b, "\",\"received\":\"");
    strbuf_puts(b, zod_type(v));
    strbuf_puts(b, "\",\"path\":[");
    if (key != NULL)
        sb_json_string(b, key, strlen(key));
    if (idx >= 0) {
        snprintf(msg, sizeof msg, ",%ld", idx);
        strbuf_puts(b, msg);
    }
    if (v == NULL)
        snprintf(msg, sizeof msg, "Required");
    else
        snprintf(msg, sizeof msg, "Expected %s, received %s", expected,
                 zod_type(v));
    strbuf_puts(b, "],\"message\":\"");
    strbuf_puts(b, msg);
    strbuf_puts(b, "\"}");
}

/* auth-mock's zod schema: six required strings, optional tcbStatus,
 * advisoryIds (strings), mrSystem. Appends the issues; returns their
 * count. */
static int mock_validate(json_t *body, struct strbuf *b)
{
    static const char *const req[] = {"mrAggregated", "osImageHash",
                                      "appId",        "composeHash",
                                      "instanceId",   "deviceId"};
    int n = 0;
    if (!json_is_object(body)) {
        zod_issue(b, &n, "object", body, NULL, -1);
        return n;
    }
    for (size_t i = 0; i < 6; i++) {
        json_t *v = json_object_get(body, req[i]);
        if (!json_is_string(v))
            zod_issue(b, &n, "string", v, req[i], -1);
    }
    json_t *t = json_object_get(body, "tcbStatus");
    if (t != NULL && !json_is_string(t))
        zod_issue(b, &n, "string", t, "tcbStatus", -1);
    json_t *a = json_object_get(body, "advisoryIds");
    if (a != NULL && !json_is_array(a))
        zod_issue(b, &n, "array", a, "advisoryIds", -1);
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i)))
            zod_issue(b, &n, "string", json_array_get(a, i), "advisoryIds",
                      (long)i);
    json_t *m = json_object_get(body, "mrSystem");
    if (m != NULL && !json_is_string(m))
        zod_issue(b, &n, "string", m, "mrSystem", -1);
    return n;
}

/* Length of the JavaScript whitespace (String.prototype.trim) at s, 0 if
 * none. */
static size_t js_space(const unsigned char *s, size_t n)
{
    if (n >= 1 && (s[0] == ' ' || (s[0] >= 0x09 && s[0] <= 0x0d)))
        return 1;
    if (n >= 2 && s[0] == 0xc2 && s[1] == 0xa0)
        return 2;
    if (n < 3)
        return 0;
    uint32_t cp = (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 |
                  (s[2] & 0x3f);
    if ((s[0] & 0xf0) != 0xe0)
        return 0;
    return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
                   cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
                   cp == 0x3000 || cp == 0xfeff
               ? 3
               : 0;
}

/* ASCII toLowerCase (non-ASCII letters are left as they are). */
static void lower_ascii(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i] = (char)tolower((unsigned char)s[i]);
}

/* auth-mock's parseList(list).has(v): comma-split, trimmed, lowercased,
 * empty entries dropped (a 0x prefix in the list is kept). *empty tells
 * whether the list has no entry at all. */
static bool mock_in_list(const char *list, const char *v, size_t vlen,
                         bool *empty)
{
    *empty = true;
    bool found = false;
    const char *p = list;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p), k;
        const unsigned char *u = (const unsigned char *)p;
        while (n > 0 && (k = js_space(u, n)) > 0) {
            u += k;
            n -= k;
        }
        while (n > 0) { /* trailing: try each tail length 1..3 */
            size_t t = 0;
            for (size_t w = 1; w <= 3 && w <= n && t == 0; w++)
                if (js_space(u + n - w, w) == w)
                    t = w;
            if (t == 0)
                break;
            n -= t;
        }
        if (n > 0) {
            char *e = malloc(n);
            *empty = false;
            if (e != NULL) {
                memcpy(e, u, n);
                lower_ascii(e, n);
                found |= n == vlen && memcmp(e, v, n) == 0;
                free(e);
            }
        }
        if (c == NULL)
            return found;
        p = c + 1;
    }
}

static void mock_decide(struct kmsauth *ka, struct httpd_req *r, bool kms,
                        json_t *body)
{
    const char *p = ka->mock_policy;
    const char *reason;
    bool allow;
    char buf[160];
    struct strbuf msg = {0};
    if (!strcmp(p, "deny-all")) {
        allow = false;
        reason = "mock policy: deny-all";
    } else if (!strcmp(p, "deny-kms")) {
        allow = !kms;
        reason = kms ? "mock policy: deny-kms"
                     : "mock app allowed (deny-kms policy)";
    } else if (!strcmp(p, "deny-app")) {
        allow = kms;
        reason = kms ? "mock KMS allowed (deny-app policy)"
                     : "mock policy: deny-app";
    } else if (!strcmp(p, "allowlist-device") || !strcmp(p, "allowlist-mr")) {
        bool dev = p[10] == 'd', empty = false;
        json_t *f = json_object_get(body, dev ? "deviceId" : "mrAggregated");
        const char *orig = json_string_value(f);
        size_t olen = json_string_length(f);
        char *v = malloc(olen + 1);
        if (v != NULL) {
            memcpy(v, orig, olen);
            lower_ascii(v, olen);
        }
        size_t off =
            v != NULL && olen >= 2 && v[0] == '0' && v[1] == 'x' ? 2 : 0;
        allow = v != NULL && mock_in_list(dev ? ka->mock_devices : ka->mock_mrs,
                                          v + off, olen - off, &empty);
        free(v);
        if (empty) {
            allow = false;
            snprintf(buf, sizeof buf, "mock policy: %s with empty list", p);
            strbuf_puts(&msg, buf);
        } else {
            strbuf_puts(&msg, dev ? "mock policy: device "
                                  : "mock policy: mrAggregated ");
            strbuf_put(&msg, orig, olen);
            strbuf_puts(&msg, allow ? " allowed" : " not in allowlist");
        }
        reason = NULL;
    } else {
        allow = true;
        reason = kms ? "mock KMS always allowed" : "mock app always allowed";
    }
    if (reason != NULL)
        strbuf_puts(&msg, reason);
    const char *gw = allow ? ka->mock_gateway : "";
    respond_decision(r, allow, msg.p ? msg.p : "", msg.len, gw, strlen(gw));
    free(msg.p);
}

/* ---- routes ---- */

static void handle_boot(struct kmsauth *ka, struct httpd_req *r, bool kms)
{
    json_t *body = request_json(r);
    if (body == NULL) {
        respond_malformed(r);
        return;
    }
    if (ka->mock) {
        struct strbuf b = {0};
        strbuf_puts(&b, "{\"success\":false,\"error\":{\"issues\":[");
        int n = mock_validate(body, &b);
        strbuf_puts(&b, "],\"name\":\"ZodError\"}}");
        if (n > 0)
            httpd_respond(r, 400, "application/json", b.p, b.len, NULL);
        else
            mock_decide(ka, r, kms, body);
        free(b.p);
        json_decref(body);
        return;
    }
    struct boot *b = calloc(1, sizeof *b);
    if (b == NULL) {
        json_decref(body);
        respond_raw(r, 500,
                    "{\"status\":\"error\",\"message\":"
                    "\"authorization backend unavailable\"}");
        return;
    }
    b->ka = ka;
    b->http = r;
    b->kms_route = kms;
    bool ok = parse_boot(b, body);
    json_decref(body);
    if (!ok) {
        boot_free(b);
        respond_raw(r, 400, INVALID_BODY);
        return;
    }
    httpd_on_abort(r, boot_abort, b);
    if (ka->chain_id_set) {
        if (rpc_chain_id(ka->rpc, chain_id_done, b) != 0)
            fail_closed(b, "cannot ask the chain id");
    } else {
        after_chain_id(b);
    }
}

/* hono's answer to a method no route takes. */
static void route_not_found(void *data, struct httpd_req *r)
{
    (void)data;
    httpd_respond(r, 404, "text/plain;charset=UTF-8", "404 Not Found", 13,
                  NULL);
}

static void route_app(void *data, struct httpd_req *r)
{
    handle_boot(data, r, false);
}

static void route_kms(void *data, struct httpd_req *r)
{
    handle_boot(data, r, true);
}

/* GET /: status, contract, chain id, gateway app id, app implementation. */
struct info {
    struct kmsauth *ka;
    struct httpd_req *http;
    uint64_t chain_id;
    struct strbuf gateway;
};

static void info_abort(void *data)
{
    ((struct info *)data)->http = NULL;
}

static void info_free(struct info *in)
{
    free(in->gateway.p);
    free(in);
}

static void info_fail(struct info *in, const char *why)
{
    LOGW("auth", "GET / failed: %s", why);
    if (in->http != NULL) {
        httpd_on_abort(in->http, NULL, NULL);
        respond_raw(in->http, 500,
                    "{\"status\":\"error\",\"message\":"
                    "\"authorization backend unavailable\"}");
    }
    info_free(in);
}

/* "key":"value", with JSON.stringify escaping. */
static void sb_field(struct strbuf *b, const char *key, const char *v, size_t n)
{
    sb_json_string(b, key, strlen(key));
    strbuf_puts(b, ":");
    sb_json_string(b, v, n);
    strbuf_puts(b, ",");
}

static void info_impl_done(void *data, int err, const uint8_t *d, size_t len,
                           const char *msg)
{
    struct info *in = data;
    uint8_t impl[20];
    if (err != 0 || abi_get_address(d, len, 0, impl) != 0) {
        info_fail(in, err ? msg : "malformed appImplementation()");
        return;
    }
    char ih[43], cid[32];
    eip55_encode(impl, ih); /* viem returns addresses checksummed */
    if (in->http != NULL) {
        httpd_on_abort(in->http, NULL, NULL);
        struct strbuf b = {0};
        struct kmsauth *ka = in->ka;
        strbuf_puts(&b, "{\"status\":\"ok\",");
        sb_field(&b, "kmsContractAddr", ka->kms_env, strlen(ka->kms_env));
        sb_field(&b, "ethRpcUrl", ka->rpc_origin, strlen(ka->rpc_origin));
        sb_field(&b, "gatewayAppId", in->gateway.p, in->gateway.len);
        snprintf(cid, sizeof cid, "\"chainId\":%" PRIu64 ",", in->chain_id);
        strbuf_puts(&b, cid);
        sb_field(&b, "appAuthImplementation", ih, 42);
        strbuf_puts(&b, "\"appImplementation\":");
        sb_json_string(&b, ih, 42);
        strbuf_puts(&b, "}");
        if (b.oom)
            respond_raw(in->http, 500,
                        "{\"status\":\"error\",\"message\":"
                        "\"authorization backend "
                        "unavailable\"}");
        else
            httpd_respond(in->http, 200, "application/json", b.p, b.len, NULL);
        free(b.p);
    }
    info_free(in);
}

static void info_gateway_done(void *data, int err, const uint8_t *d, size_t len,
                              const char *msg)
{
    struct info *in = data;
    char why[WHY_MAX];
    const char *fail =
        string_answer(err, msg, d, len, 0, "gatewayAppId()", &in->gateway, why);
    if (fail != NULL) {
        info_fail(in, fail);
        return;
    }
    int rc = kms_app_implementation(in->ka->rpc, in->ka->kms, "latest",
                                    info_impl_done, in);
    if (rc != 0)
        info_fail(in, "cannot call appImplementation()");
}

static void info_chain_done(void *data, int err, uint64_t id, const char *msg)
{
    struct info *in = data;
    if (err != 0) {
        info_fail(in, msg);
        return;
    }
    in->chain_id = id;
    int rv = kms_gateway_app_id(in->ka->rpc, in->ka->kms, "latest",
                                info_gateway_done, in);
    if (rv != 0)
        info_fail(in, "cannot call gatewayAppId()");
}

static void route_info(void *data, struct httpd_req *r)
{
    struct kmsauth *ka = data;
    if (ka->mock) {
        struct strbuf b = {0};
        strbuf_puts(&b, "{\"status\":\"ok\",");
        sb_field(&b, "kmsContractAddr", ka->mock_kms, strlen(ka->mock_kms));
        sb_field(&b, "ethRpcUrl", ka->mock_rpc, strlen(ka->mock_rpc));
        sb_field(&b, "gatewayAppId", ka->mock_gateway,
                 strlen(ka->mock_gateway));
        strbuf_puts(&b, "\"chainId\":");
        strbuf_puts(&b, ka->mock_chain_id);
        strbuf_puts(&b, ",");
        sb_field(&b, "appAuthImplementation", ka->mock_impl,
                 strlen(ka->mock_impl));
        sb_field(&b, "appImplementation", ka->mock_impl, strlen(ka->mock_impl));
        strbuf_puts(&b, "\"note\":\"this is a mock backend - all "
                        "authentications will succeed\"}");
        if (b.oom)
            respond_raw(r, 500,
                        "{\"status\":\"error\",\"message\":"
                        "\"out of memory\"}");
        else
            httpd_respond(r, 200, "application/json", b.p, b.len, NULL);
        free(b.p);
        return;
    }
    struct info *in = calloc(1, sizeof *in);
    if (in == NULL) {
        respond_raw(r, 500,
                    "{\"status\":\"error\",\"message\":"
                    "\"authorization backend unavailable\"}");
        return;
    }
    in->ka = ka;
    in->http = r;
    httpd_on_abort(r, info_abort, in);
    if (rpc_chain_id(ka->rpc, info_chain_done, in) != 0)
        info_fail(in, "cannot ask the chain id");
}

/* ---- start-up ---- */

/* v, or dflt when v is NULL or empty (an unset environment variable). */
static const char *or_default(const char *v, const char *dflt)
{
    return v && *v ? v : dflt;
}

static int parse_u64_str(const char *s, uint64_t *v)
{
    char *end;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *v = x;
    return 0;
}

/* auth-eth-bun's parseNonNegativeInteger: 0 or [1-9][0-9]*, at most
 * 2^53 - 1 (Number.isSafeInteger). */
static int parse_safe_int(const char *s, uint64_t *v)
{
    if (s == NULL || s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (const char *q = s; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    if (strlen(s) > 16 || parse_u64_str(s, v) != 0 || *v > 9007199254740991ull)
        return -1;
    return 0;
}

/* JavaScript's parseInt(s) (radix from a 0x prefix) as JSON.stringify
 * prints it: NaN is null. */
static void js_parse_int(const char *s, char out[40])
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), k;
    while (n > 0 && (k = js_space(u, n)) > 0) {
        u += k;
        n -= k;
    }
    bool neg = false;
    if (n > 0 && (*u == '-' || *u == '+')) {
        neg = *u == '-';
        u++;
        n--;
    }
    int radix = 10;
    if (n >= 2 && u[0] == '0' && (u[1] == 'x' || u[1] == 'X')) {
        radix = 16;
        u += 2;
        n -= 2;
    }
    char digits[512];
    size_t d = 0;
    while (d < n && d < sizeof digits - 1 &&
           (radix == 16 ? isxdigit(u[d]) : isdigit(u[d]))) {
        digits[d] = (char)u[d];
        d++;
    }
    digits[d] = '\0';
    if (d == 0) {
        snprintf(out, 40, "null");
        return;
    }
    double v = 0;
    if (radix == 10) {
        v = strtod(digits, NULL);
    } else {
        for (size_t i = 0; i < d; i++)
            v = v * 16 + (isdigit((unsigned char)digits[i])
                              ? digits[i] - '0'
                              : tolower((unsigned char)digits[i]) - 'a' + 10);
    }
    compose_js_number(neg ? -v : v, out);
    if (strcmp(out, "Infinity") == 0 || strcmp(out, "-Infinity") == 0)
        snprintf(out, 40, "null");
}

/* auth-eth-bun's publicRpcEndpoint: `${url.protocol}//${url.host}` of the
 * WHATWG URL (scheme and host lowercased for special schemes, credentials,
 * path and a default port dropped), "configured" when it does not parse. */
static void rpc_origin(const char *url, char *out, size_t cap)
{
    static const struct {
        const char *scheme, *port;
    } special[] = {{"http", "80"}, {"https", "443"}, {"ws", "80"},
                   {"wss", "443"}, {"ftp", "21"},    {"file", NULL}};
    size_t sl = 0;
    while (isalnum((unsigned char)url[sl]) || url[sl] == '+' ||
           url[sl] == '-' || url[sl] == '.')
        sl++;
    if (sl == 0 || !isalpha((unsigned char)url[0]) || url[sl] != ':') {
        snprintf(out, cap, "configured");
        return;
    }
    char scheme[32];
    if (sl >= sizeof scheme) {
        snprintf(out, cap, "configured");
        return;
    }
    memcpy(scheme, url, sl);
    scheme[sl] = '\0';
    lower_ascii(scheme, sl);
    int sp = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(scheme, special[i].scheme) == 0)
            sp = i;
    const char *h = url + sl + 1;
    bool slashes = h[0] == '/' && h[1] == '/';
    if (sp >= 0)
        while (*h == '/' || *h == '\\')
            h++;
    else if (slashes)
        h += 2;
    else
        h = ""; /* an opaque path: no host */
    size_t al = strcspn(h, sp >= 0 ? "/?#\\" : "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < al; i++)
        if (h[i] == '@')
            at = h + i;
    if (at != NULL) {
        al -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    char host[256];
    if (al >= sizeof host || (sp >= 0 && sp != 5 && al == 0)) {
        snprintf(out, cap, "configured");
        return;
    }
    memcpy(host, h, al);
    host[al] = '\0';
    char *colon = host[0] == '[' ? strchr(host, ']') : host;
    colon = colon ? strrchr(colon, ':') : NULL;
    if (colon != NULL) {
        const char *port = colon + 1;
        for (const char *q = port; *q; q++)
            if (!isdigit((unsigned char)*q)) {
                snprintf(out, cap, "configured");
                return;
            }
        if (strlen(port) > 5 || atoi(port) > 65535) {
            snprintf(out, cap, "configured");
            return;
        }
        while (port[0] == '0' && port[1] != '\0')
            memmove(colon + 1, colon + 2, strlen(colon + 1));
        if (*port == '\0' || (sp >= 0 && special[sp].port &&
                              strcmp(port, special[sp].port) == 0))
            *colon = '\0';
    }
    if (sp >= 0)
        lower_ascii(host, strlen(host));
    snprintf(out, cap, "%s://%s", scheme, host);
}

/* Mock mode's settings into ka (defaults as auth-mock's); -1 out of
 * memory. */
static int set_mock(struct kmsauth *ka, const struct kmsauth_config *cfg)
{
    snprintf(ka->mock_policy, sizeof ka->mock_policy, "%s", "allow-all");
    const char *pol = or_default(cfg->mock_policy, "allow-all");
    static const char *policies[] = {"allow-all",        "deny-kms",
                                     "deny-app",         "deny-all",
                                     "allowlist-device", "allowlist-mr"};
    bool known = false;
    for (size_t i = 0; i < 6; i++)
        known |= strcmp(pol, policies[i]) == 0;
    if (known)
        snprintf(ka->mock_policy, sizeof ka->mock_policy, "%s", pol);
    else
        LOGW("auth", "unknown MOCK_POLICY \"%s\", falling back to allow-all",
             pol);
    ka->mock_gateway = strdup(or_default(
        cfg->mock_gateway_app_id, "0xmockgateway1234567890123456789012345678"));
    ka->mock_devices = strdup(or_default(cfg->mock_allowed_device_ids, ""));
    ka->mock_mrs = strdup(or_default(cfg->mock_allowed_mr_aggregated, ""));
    ka->mock_impl =
        strdup(or_default(cfg->mock_app_implementation,
                          "0xmockapp9876543210987654321098765432109"));
    ka->mock_kms = strdup(or_default(
        cfg->kms_contract, "0xmockcontract1234567890123456789012345678"));
    ka->mock_rpc = strdup(or_default(cfg->rpc_url, ""));
    js_parse_int(or_default(cfg->mock_chain_id, "1337"), ka->mock_chain_id);
    snprintf(ka->kms_env, sizeof ka->kms_env, "-");
    return ka->mock_gateway && ka->mock_devices && ka->mock_mrs &&
                   ka->mock_impl && ka->mock_kms && ka->mock_rpc
               ? 0
               : -1;
}

/* Chain mode's settings into ka (auth-eth-bun's checks and defaults):
 * 0, or ERR_INVALID with the reason in errmsg. */
static int set_chain(struct kmsauth *ka, const struct kmsauth_config *cfg,
                     char *errmsg, size_t errlen)
{
    const char *kms = or_default(cfg->kms_contract,
                                 "0x0000000000000000000000000000000000000000");
    /* viem's isAddress (strict): 0x + 40 hex digits, either all lowercase
     * or carrying a valid EIP-55 checksum. */
    char want[43];
    bool ok = strlen(kms) == 42 && kms[1] == 'x' &&
              eip55_decode(kms, 42, ka->kms) != ERR_MALFORMED;
    if (ok) {
        char lower[43];
        hex_encode(ka->kms, 20, 1, lower);
        eip55_encode(ka->kms, want);
        ok = strcmp(kms, lower) == 0 || strcmp(kms, want) == 0;
    }
    if (!ok || strlen(kms) >= sizeof ka->kms_env) {
        snprintf(errmsg, errlen,
                 "KMS_CONTRACT_ADDR '%s' is not an address (0x + 40 hex "
                 "digits, all lowercase or EIP-55 checksummed)",
                 kms);
        return ERR_INVALID;
    }
    snprintf(ka->kms_env, sizeof ka->kms_env, "%s", kms);
    snprintf(ka->rpc_url, sizeof ka->rpc_url, "%s",
             or_default(cfg->rpc_url, "http://localhost:8545"));
    rpc_origin(ka->rpc_url, ka->rpc_origin, sizeof ka->rpc_origin);
    const char *cid = cfg->chain_id;
    if (cid && *cid) {
        if (parse_safe_int(cid, &ka->chain_id) != 0) {
            snprintf(errmsg, errlen,
                     "ETH_CHAIN_ID must be a non-negative integer (no leading "
                     "zeros, at most 2^53 - 1), not '%s'",
                     cid);
            return ERR_INVALID;
        }
        ka->chain_id_set = true;
    }
    if (parse_safe_int(or_default(cfg->confirmations, "0"),
                       &ka->confirmations) != 0) {
        snprintf(errmsg, errlen, "bad ETH_FINALITY_CONFIRMATIONS");
        return ERR_INVALID;
    }
    return 0;
}

/* The routes of auth-eth-bun; every other method on its paths is 404. */
static int add_routes(struct kmsauth *ka)
{
    int rv = httpd_route(ka->httpd, "POST", "/bootAuth/app", route_app, ka);
    if (rv == 0)
        rv = httpd_route(ka->httpd, "POST", "/bootAuth/kms", route_kms, ka);
    if (rv == 0)
        rv = httpd_route(ka->httpd, "GET", "/", route_info, ka);
    static const char *const other[] = {"GET",    "POST",  "PUT",
                                        "DELETE", "PATCH", "OPTIONS"};
    static const char *const paths[] = {"/bootAuth/app", "/bootAuth/kms", "/"};
    for (size_t i = 0; i < 6 && rv == 0; i++)
        for (size_t k = 0; k < 3 && rv == 0; k++)
            if (strcmp(other[i], k < 2 ? "POST" : "GET") != 0)
                rv = httpd_route(ka->httpd, other[i], paths[k], route_not_found,
                                 ka);
    return rv;
}

static void release(struct kmsauth *ka)
{
    free(ka->mock_gateway);
    free(ka->mock_devices);
    free(ka->mock_mrs);
    free(ka->mock_impl);
    free(ka->mock_kms);
    free(ka->mock_rpc);
    free(ka);
}

static void closed(void *data)
{
    struct kmsauth *ka = data;
    if (--ka->closing == 0)
        release(ka);
}

int kmsauth_start(struct kmsauth **out, uv_loop_t *loop,
                  const struct kmsauth_config *cfg, char *errmsg, size_t errlen)
{
    *out = NULL;
    struct kmsauth *ka = calloc(1, sizeof *ka);
    if (ka == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    ka->mock = cfg->mock;
    int rv = 0;
    if (ka->mock && set_mock(ka, cfg) != 0) {
        snprintf(errmsg, errlen, "out of memory");
        rv = ERR_NOMEM;
    } else if (!ka->mock) {
        rv = set_chain(ka, cfg, errmsg, errlen);
    }
    if (rv != 0) {
        release(ka);
        return rv;
    }
    rv = httpc_init(&ka->httpc, loop);
    if (rv == 0 && !ka->mock)
        rv = rpc_init(&ka->rpc, loop, ka->httpc, ka->rpc_url, 5000, 0);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot start the chain client (%s)",
                 err_str(rv));
        kmsauth_stop(ka);
        return rv;
    }
    rv = httpd_init(&ka->httpd, loop, 256 * 1024, errmsg, errlen);
    if (rv == 0 && (rv = add_routes(ka)) != 0)
        snprintf(errmsg, errlen, "cannot add the routes (%s)", err_str(rv));
    if (rv == 0)
        rv = httpd_listen(ka->httpd, cfg->host, cfg->port, errmsg, errlen);
    if (rv != 0) {
        kmsauth_stop(ka);
        return rv;
    }
    LOGI("auth", "listening on %s:%d (%s) kms=%s rpc=%s", cfg->host,
         httpd_port(ka->httpd), ka->mock ? "mock" : "chain", ka->kms_env,
         ka->mock ? "-" : ka->rpc_url);
    *out = ka;
    return 0;
}

int kmsauth_port(const struct kmsauth *ka)
{
    return httpd_port(ka->httpd);
}

void kmsauth_stop(struct kmsauth *ka)
{
    if (ka->rpc)
        rpc_close(ka->rpc);
    ka->rpc = NULL;
    ka->closing = 1; /* held until both closes are started */
    if (ka->httpc != NULL) {
        ka->closing++;
        httpc_close(ka->httpc, closed, ka);
    }
    if (ka->httpd != NULL) {
        ka->closing++;
        httpd_close(ka->httpd, closed, ka);
    }
    closed(ka);
}
