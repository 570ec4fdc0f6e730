/* kmsauth.c - POST /bootAuth/app, POST /bootAuth/kms and GET / as dstack's
 * auth-eth-bun answers them: the same validation and left-padding of hex
 * fields, bodies and status codes, fail-closed on any backend failure, no
 * caching, ETH_CHAIN_ID and ETH_FINALITY_CONFIRMATIONS. */
#include "net/kmsauth.h"
#include "chain/abi.h"
#include "chain/hex.h"
#include "chain/rpc.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/log.h"
#include "net/httpd.h"

#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ADVISORIES 128

static const char INVALID_BODY[] =
    "{\"isAllowed\":false,\"reason\":\"invalid authorization request\","
    "\"gatewayAppId\":\"\"}";
static const char UNAVAILABLE_BODY[] =
    "{\"isAllowed\":false,\"gatewayAppId\":\"\",\"reason\":\"authorization "
    "backend unavailable\"}";

struct kmsauth {
    uv_loop_t loop;
    struct httpd *httpd;
    struct httpc *httpc;
    struct rpc *rpc;
    uv_signal_t sigint, sigterm;
    bool mock;
    char rpc_url[512], rpc_origin[512];
    uint8_t kms[20];
    char kms_hex[43];
    bool chain_id_set;
    uint64_t chain_id;
    uint64_t confirmations;
    char mock_policy[32], mock_gateway[256], mock_devices[4096],
        mock_mrs[4096], mock_impl[64];
    uint64_t mock_chain_id;
};

/* One boot request on its way through the chain calls. */
struct boot {
    struct kmsauth *ka;
    struct httpd_req *http;
    bool kms_route;
    uint8_t app_id[20], instance_id[20];
    uint8_t compose[32], device[32], mr_agg[32], mr_sys[32], os_image[32];
    char tcb[129];
    char *advisories[MAX_ADVISORIES];
    size_t n_adv;
    char block[24];
    bool allowed;
    char reason[1024];
};

static void boot_free(struct boot *b)
{
    for (size_t i = 0; i < b->n_adv; i++)
        free(b->advisories[i]);
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
        if (!json_is_string(t) || json_string_length(t) > 128 ||
            memchr(json_string_value(t), 0, json_string_length(t)))
            return false;
        snprintf(b->tcb, sizeof b->tcb, "%s", json_string_value(t));
    }
    json_t *a = json_object_get(body, "advisoryIds");
    if (a != NULL) {
        if (!json_is_array(a) || json_array_size(a) > MAX_ADVISORIES)
            return false;
        for (size_t i = 0; i < json_array_size(a); i++) {
            json_t *s = json_array_get(a, i);
            if (!json_is_string(s) || json_string_length(s) > 256)
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
    char gw[1024];
    if (err != 0 || abi_get_string(d, len, 0, gw, sizeof gw) != 0) {
        fail_closed(b, err ? msg : "malformed gatewayAppId() answer");
        return;
    }
    LOGI("auth", "%s boot %s reason=\"%s\" block=%s",
         b->kms_route ? "kms" : "app", b->allowed ? "allowed" : "denied",
         b->reason, b->block);
    if (b->http != NULL) {
        httpd_on_abort(b->http, NULL, NULL);
        json_t *j = json_pack("{s:b,s:s,s:s}", "isAllowed", b->allowed,
                              "reason", b->reason, "gatewayAppId", gw);
        httpd_respond_json(b->http, 200, j, NULL);
    }
    boot_free(b);
}

static void decision_done(void *data, int err, const uint8_t *d, size_t len,
                          const char *msg)
{
    struct boot *b = data;
    if (err != 0 || abi_get_bool(d, len, 0, &b->allowed) != 0 ||
        abi_get_string(d, len, 1, b->reason, sizeof b->reason) != 0) {
        fail_closed(b, err ? msg : "malformed decision answer");
        return;
    }
    uint8_t *call;
    size_t n;
    if (abi_encode_call("gatewayAppId()", NULL, 0, &call, &n) != 0) {
        fail_closed(b, "out of memory");
        return;
    }
    int rv = rpc_eth_call(b->ka->rpc, b->ka->kms, call, n, b->block,
                          gateway_done, b);
    free(call);
    if (rv != 0)
        fail_closed(b, "cannot call gatewayAppId()");
}

static void ask_contract(struct boot *b)
{
    struct abi_val f[9] = {
        abi_address(b->app_id),   abi_bytes32(b->compose),
        abi_address(b->instance_id), abi_bytes32(b->device),
        abi_bytes32(b->mr_agg),   abi_bytes32(b->mr_sys),
        abi_bytes32(b->os_image), abi_string(b->tcb),
        abi_string_array((const char *const *)b->advisories, b->n_adv)};
    struct abi_val t = abi_tuple(f, 9);
    const char *sig =
        b->kms_route ? "isKmsAllowed((address,bytes32,address,bytes32,bytes32,"
                       "bytes32,bytes32,string,string[]))"
                     : "isAppAllowed((address,bytes32,address,bytes32,bytes32,"
                       "bytes32,bytes32,string,string[]))";
    uint8_t *call;
    size_t n;
    if (abi_encode_call(sig, &t, 1, &call, &n) != 0) {
        fail_closed(b, "out of memory");
        return;
    }
    int rv = rpc_eth_call(b->ka->rpc, b->ka->kms, call, n, b->block,
                          decision_done, b);
    free(call);
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
        snprintf(why, sizeof why, "RPC chain id %" PRIu64 " != ETH_CHAIN_ID %"
                 PRIu64, id, b->ka->chain_id);
        fail_closed(b, why);
        return;
    }
    after_chain_id(b);
}

/* ---- mock policy (auth-mock) ---- */

static bool in_list(const char *list, const uint8_t *v, size_t n)
{
    char hexv[70];
    hex_encode(v, n, 0, hexv);
    char *dup = strdup(list), *save = NULL;
    bool found = false;
    for (char *t = dup ? strtok_r(dup, ",", &save) : NULL; t && !found;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))
            t += 2;
        for (char *p = t; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ')
            t[--l] = '\0';
        found = strcmp(t, hexv) == 0;
    }
    free(dup);
    return found;
}

static void mock_decide(struct kmsauth *ka, struct httpd_req *r, bool kms,
                        json_t *body)
{
    const char *p = ka->mock_policy;
    bool allow;
    uint8_t dev[32] = {0}, mr[32] = {0};
    hex_field(body, "deviceId", 32, false, dev);
    hex_field(body, "mrAggregated", 32, false, mr);
    if (!strcmp(p, "allow-all"))
        allow = true;
    else if (!strcmp(p, "deny-all"))
        allow = false;
    else if (!strcmp(p, "deny-kms"))
        allow = !kms;
    else if (!strcmp(p, "deny-app"))
        allow = kms;
    else if (!strcmp(p, "allowlist-device"))
        allow = in_list(ka->mock_devices, dev, 32);
    else
        allow = in_list(ka->mock_mrs, mr, 32);
    char reason[128];
    if (allow)
        snprintf(reason, sizeof reason, "%s",
                 kms ? "mock KMS always allowed" : "mock app always allowed");
    else
        snprintf(reason, sizeof reason, "denied by mock policy %s", p);
    httpd_respond_json(r, 200,
                       json_pack("{s:b,s:s,s:s}", "isAllowed", allow, "reason",
                                 reason, "gatewayAppId",
                                 allow ? ka->mock_gateway : ""),
                       NULL);
}

/* ---- routes ---- */

static void handle_boot(struct kmsauth *ka, struct httpd_req *r, bool kms)
{
    size_t len;
    const void *raw = httpd_body(r, &len);
    json_t *body = json_loadb(raw, len, 0, NULL);
    if (ka->mock) {
        if (!json_is_object(body))
            respond_raw(r, 400, INVALID_BODY);
        else
            mock_decide(ka, r, kms, body);
        json_decref(body);
        return;
    }
    struct boot *b = calloc(1, sizeof *b);
    if (b == NULL) {
        json_decref(body);
        respond_raw(r, 500, "{\"status\":\"error\",\"message\":"
                            "\"authorization backend unavailable\"}");
        return;
    }
    b->ka = ka;
    b->http = r;
    b->kms_route = kms;
    bool ok = body != NULL && parse_boot(b, body);
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
    char gateway[1024];
    int step;
};

static void info_abort(void *data)
{
    ((struct info *)data)->http = NULL;
}

static void info_fail(struct info *in, const char *why)
{
    LOGW("auth", "GET / failed: %s", why);
    if (in->http != NULL) {
        httpd_on_abort(in->http, NULL, NULL);
        respond_raw(in->http, 500, "{\"status\":\"error\",\"message\":"
                                   "\"authorization backend unavailable\"}");
    }
    free(in);
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
    char ih[43];
    hex_encode(impl, 20, 1, ih);
    if (in->http != NULL) {
        httpd_on_abort(in->http, NULL, NULL);
        httpd_respond_json(
            in->http, 200,
            json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "status", "ok",
                      "kmsContractAddr", in->ka->kms_hex, "ethRpcUrl",
                      in->ka->rpc_origin, "gatewayAppId", in->gateway,
                      "chainId", (json_int_t)in->chain_id,
                      "appAuthImplementation", ih, "appImplementation", ih),
            NULL);
    }
    free(in);
}

static void info_gateway_done(void *data, int err, const uint8_t *d,
                              size_t len, const char *msg)
{
    struct info *in = data;
    if (err != 0 ||
        abi_get_string(d, len, 0, in->gateway, sizeof in->gateway) != 0) {
        info_fail(in, err ? msg : "malformed gatewayAppId()");
        return;
    }
    uint8_t *call;
    size_t n;
    if (abi_encode_call("appImplementation()", NULL, 0, &call, &n) != 0) {
        info_fail(in, "out of memory");
        return;
    }
    int rv = rpc_eth_call(in->ka->rpc, in->ka->kms, call, n, "latest",
                          info_impl_done, in);
    free(call);
    if (rv != 0)
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
    uint8_t *call;
    size_t n;
    if (abi_encode_call("gatewayAppId()", NULL, 0, &call, &n) != 0) {
        info_fail(in, "out of memory");
        return;
    }
    int rv = rpc_eth_call(in->ka->rpc, in->ka->kms, call, n, "latest",
                          info_gateway_done, in);
    free(call);
    if (rv != 0)
        info_fail(in, "cannot call gatewayAppId()");
}

static void route_info(void *data, struct httpd_req *r)
{
    struct kmsauth *ka = data;
    if (ka->mock) {
        httpd_respond_json(
            r, 200,
            json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s}", "status", "ok",
                      "kmsContractAddr", ka->kms_hex, "ethRpcUrl", "",
                      "gatewayAppId", ka->mock_gateway, "chainId",
                      (json_int_t)ka->mock_chain_id, "appAuthImplementation",
                      ka->mock_impl, "appImplementation", ka->mock_impl,
                      "note",
                      "auth-mock: no chain; every decision comes from "
                      "MOCK_POLICY. Never use it in production."),
            NULL);
        return;
    }
    struct info *in = calloc(1, sizeof *in);
    if (in == NULL) {
        respond_raw(r, 500, "{\"status\":\"error\",\"message\":"
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

static const char USAGE[] =
    "nftraft kms-auth [--host HOST] [--port PORT] [--mock]";

static void help(void)
{
    printf("usage: %s\n\n"
"dstack's KMS auth webhook (the API of auth-eth / auth-eth-bun):\n"
"  POST /bootAuth/app   ask KMS.isAppAllowed(bootInfo) (forwarded to the app)\n"
"  POST /bootAuth/kms   ask KMS.isKmsAllowed(bootInfo)\n"
"  GET  /               status, contract, chain id, gateway app id\n"
"Any RPC or contract failure answers 200 {isAllowed:false, reason:\n"
"\"authorization backend unavailable\"} (fail closed); nothing is cached.\n\n"
"  --host HOST   listen address (env HOST, default 127.0.0.1)\n"
"  --port PORT   listen port (env PORT, default 3000)\n"
"  --mock        auth-mock: no chain, decisions from MOCK_POLICY\n"
"                (allow-all, deny-kms, deny-app, deny-all, allowlist-device,\n"
"                allowlist-mr with MOCK_ALLOWED_DEVICE_IDS /\n"
"                MOCK_ALLOWED_MR_AGGREGATED); refused under\n"
"                NODE_ENV=production\n\n"
"Environment: ETH_RPC_URL (default http://localhost:8545), KMS_CONTRACT_ADDR\n"
"(default the zero address), ETH_CHAIN_ID (fail closed when the RPC reports\n"
"another chain), ETH_FINALITY_CONFIRMATIONS (default 0: read at head - N),\n"
"MOCK_GATEWAY_APP_ID, MOCK_CHAIN_ID (1337), MOCK_APP_IMPLEMENTATION.\n",
           USAGE);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct kmsauth *ka = s->data;
    LOGI("auth", "stopping (signal %d)", signum);
    uv_close((uv_handle_t *)&ka->sigint, NULL);
    uv_close((uv_handle_t *)&ka->sigterm, NULL);
    if (ka->rpc)
        rpc_close(ka->rpc);
    ka->rpc = NULL;
    httpc_close(ka->httpc, NULL, NULL);
    httpd_close(ka->httpd, NULL, NULL);
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
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

int kmsauth_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"mock", no_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static struct kmsauth ka; /* one per process */
    memset(&ka, 0, sizeof ka);
    const char *host = env_or("HOST", "127.0.0.1");
    const char *port_s = env_or("PORT", "3000");
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'H': host = optarg; break;
        case 'p': port_s = optarg; break;
        case 'm': ka.mock = true; break;
        case 'h': help(); return 0;
        default:
            fprintf(stderr, "nftraft kms-auth: %s\nusage: %s\n",
                    c == ':' ? "an option needs a value" : "unknown option",
                    USAGE);
            return 2;
        }
    }
    uint64_t port;
    if (optind < argc || parse_u64_str(port_s, &port) != 0 || port < 1 ||
        port > 65535) {
        fprintf(stderr, "nftraft kms-auth: bad port or argument\nusage: %s\n",
                USAGE);
        return 2;
    }
    log_init("kms-auth", getenv("NFTRAFT_LOG_LEVEL"));
    const char *kms = env_or("KMS_CONTRACT_ADDR",
                             "0x0000000000000000000000000000000000000000");
    size_t n;
    if (strlen(kms) != 42 || hex_decode(kms, 42, ka.kms, 20, &n) != 0) {
        fprintf(stderr, "nftraft kms-auth: KMS_CONTRACT_ADDR '%s' is not a "
                        "0x-prefixed 20-byte address\n", kms);
        return 1;
    }
    hex_encode(ka.kms, 20, 1, ka.kms_hex);
    snprintf(ka.rpc_url, sizeof ka.rpc_url, "%s",
             env_or("ETH_RPC_URL", "http://localhost:8545"));
    {   /* "<scheme>//<host>": no credentials, no path */
        const char *s = strstr(ka.rpc_url, "://");
        const char *h = s ? s + 3 : ka.rpc_url;
        const char *at = strchr(h, '@'), *slash = strchr(h, '/');
        if (at && (!slash || at < slash))
            h = at + 1;
        size_t hl = slash ? (size_t)(slash - h) : strlen(h);
        snprintf(ka.rpc_origin, sizeof ka.rpc_origin, "%.*s//%.*s",
                 s ? (int)(s - ka.rpc_url + 1) : 0, ka.rpc_url, (int)hl, h);
    }
    const char *cid = getenv("ETH_CHAIN_ID");
    if (cid && *cid) {
        if (parse_u64_str(cid, &ka.chain_id) != 0) {
            fprintf(stderr, "nftraft kms-auth: bad ETH_CHAIN_ID '%s'\n", cid);
            return 1;
        }
        ka.chain_id_set = true;
    }
    if (parse_u64_str(env_or("ETH_FINALITY_CONFIRMATIONS", "0"),
                      &ka.confirmations) != 0) {
        fprintf(stderr, "nftraft kms-auth: bad ETH_FINALITY_CONFIRMATIONS\n");
        return 1;
    }
    if (ka.mock) {
        const char *env = getenv("NODE_ENV");
        if (env && strcmp(env, "production") == 0) {
            fprintf(stderr, "nftraft kms-auth: --mock refuses to run with "
                            "NODE_ENV=production\n");
            return 1;
        }
        snprintf(ka.mock_policy, sizeof ka.mock_policy, "%s",
                 env_or("MOCK_POLICY", "allow-all"));
        static const char *policies[] = {"allow-all", "deny-kms", "deny-app",
                                         "deny-all", "allowlist-device",
                                         "allowlist-mr"};
        bool known = false;
        for (size_t i = 0; i < 6; i++)
            known |= strcmp(ka.mock_policy, policies[i]) == 0;
        if (!known) {
            fprintf(stderr, "nftraft kms-auth: unknown MOCK_POLICY '%s'\n",
                    ka.mock_policy);
            return 1;
        }
        snprintf(ka.mock_gateway, sizeof ka.mock_gateway, "%s",
                 env_or("MOCK_GATEWAY_APP_ID", ""));
        snprintf(ka.mock_devices, sizeof ka.mock_devices, "%s",
                 env_or("MOCK_ALLOWED_DEVICE_IDS", ""));
        snprintf(ka.mock_mrs, sizeof ka.mock_mrs, "%s",
                 env_or("MOCK_ALLOWED_MR_AGGREGATED", ""));
        snprintf(ka.mock_impl, sizeof ka.mock_impl, "%s",
                 env_or("MOCK_APP_IMPLEMENTATION",
                        "0x0000000000000000000000000000000000000000"));
        if (parse_u64_str(env_or("MOCK_CHAIN_ID", "1337"),
                          &ka.mock_chain_id) != 0) {
            fprintf(stderr, "nftraft kms-auth: bad MOCK_CHAIN_ID\n");
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&ka.loop);
    char err[512];
    int rv = httpc_init(&ka.httpc, &ka.loop);
    if (rv == 0 && !ka.mock)
        rv = rpc_init(&ka.rpc, &ka.loop, ka.httpc, ka.rpc_url, 5000, 0);
    if (rv != 0) {
        fprintf(stderr, "nftraft kms-auth: cannot start the chain client (%s)\n",
                err_str(rv));
        return 1;
    }
    rv = httpd_init(&ka.httpd, &ka.loop, 256 * 1024, err, sizeof err);
    if (rv == 0) {
        httpd_route(ka.httpd, "POST", "/bootAuth/app", route_app, &ka);
        httpd_route(ka.httpd, "POST", "/bootAuth/kms", route_kms, &ka);
        httpd_route(ka.httpd, "GET", "/", route_info, &ka);
        rv = httpd_listen(ka.httpd, host, (int)port, err, sizeof err);
    }
    if (rv != 0) {
        fprintf(stderr, "nftraft kms-auth: %s\n", err);
        return 1;
    }
    uv_signal_init(&ka.loop, &ka.sigint);
    uv_signal_init(&ka.loop, &ka.sigterm);
    ka.sigint.data = ka.sigterm.data = &ka;
    uv_signal_start(&ka.sigint, on_signal, SIGINT);
    uv_signal_start(&ka.sigterm, on_signal, SIGTERM);
    LOGI("auth", "listening on %s:%d (%s) kms=%s rpc=%s", host,
         httpd_port(ka.httpd), ka.mock ? "mock" : "chain", ka.kms_hex,
         ka.mock ? "-" : ka.rpc_url);
    printf("nftraft kms-auth listening on http://%s:%d\n", host,
           httpd_port(ka.httpd));
    fflush(stdout);
    uv_run(&ka.loop, UV_RUN_DEFAULT);
    uv_loop_close(&ka.loop);
    return 0;
}
