/* test_kmsauth.c - dstack/kmsauth's library API: settings rejected before
 * anything starts, and real HTTP requests to the webhook on a loop (mock
 * policy decisions, fail-closed answers when the chain is unreachable),
 * then a stop that releases every handle. */
#include "core/err.h"
#include "core/httpc.h"
#include "dstack/kmsauth.h"
#include "harness.h"

#include <jansson.h>
#include <uv.h>

static const char BOOT[] =
    "{\"mrAggregated\":\"" /* 32 zero bytes as hex */
    "0000000000000000000000000000000000000000000000000000000000000000\","
    "\"osImageHash\":"
    "\"0000000000000000000000000000000000000000000000000000000000000000\","
    "\"appId\":\"5fbdb2315678afecb367f032d93f642f64180aa3\","
    "\"composeHash\":"
    "\"1111111111111111111111111111111111111111111111111111111111111111\","
    "\"instanceId\":\"2222222222222222222222222222222222222222\","
    "\"deviceId\":"
    "\"3333333333333333333333333333333333333333333333333333333333333333\","
    "\"tcbStatus\":\"UpToDate\",\"advisoryIds\":[]}";

/* One answer: status and body (parsed). */
struct answer {
    bool done;
    int err;
    long status;
    json_t *body;
};

static void answer_cb(void *data, const struct httpc_resp *r)
{
    struct answer *a = data;
    a->done = true;
    a->err = r->err;
    a->status = r->status;
    a->body = r->err == 0 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

/* POST body to 127.0.0.1:port/path and run the loop until it is answered. */
static int post(uv_loop_t *loop, struct httpc *c, int port, const char *path,
                const char *body, struct answer *a)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          NULL};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    memset(a, 0, sizeof *a);
    int rv = httpc_request(c, "POST", url, headers, body, strlen(body), 10000,
                           1 << 20, answer_cb, a, NULL);
    while (rv == 0 && !a->done && uv_run(loop, UV_RUN_ONCE))
        ;
    return rv != 0 ? rv : a->err;
}

static const char *field(const struct answer *a, const char *name)
{
    return json_string_value(json_object_get(a->body, name));
}

static bool allowed(const struct answer *a)
{
    return json_is_true(json_object_get(a->body, "isAllowed"));
}

TEST(bad_settings_start_nothing)
{
    static const struct {
        const char *kms, *chain_id, *confirmations, *want;
    } cases[] = {
        {"0x1234", NULL, NULL, "KMS_CONTRACT_ADDR '0x1234' is not an address"},
        /* a wrong EIP-55 checksum */
        {"0x5FBDB2315678afecb367f032d93F642f64180aa3", NULL, NULL,
         "KMS_CONTRACT_ADDR"},
        {NULL, "01", NULL, "ETH_CHAIN_ID must be a non-negative integer"},
        {NULL, "9007199254740992", NULL, "ETH_CHAIN_ID"},
        {NULL, NULL, "-1", "bad ETH_FINALITY_CONFIRMATIONS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct kmsauth_config cfg = {.host = "127.0.0.1",
                                     .kms_contract = cases[i].kms,
                                     .chain_id = cases[i].chain_id,
                                     .confirmations = cases[i].confirmations};
        struct kmsauth *ka = (struct kmsauth *)&cfg; /* must be reset */
        char err[256] = "";
        ASSERT_EQ(kmsauth_start(&ka, &loop, &cfg, err, sizeof err),
                  ERR_INVALID);
        ASSERT(ka == NULL);
        if (strstr(err, cases[i].want) == NULL)
            FAILF("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
        ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0); /* nothing started */
        ASSERT_EQ(uv_loop_close(&loop), 0);
    }
    return 0;
}

TEST(mock_decisions_over_http)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct kmsauth_config cfg = {.host = "127.0.0.1",
                                 .mock = true,
                                 .mock_policy = "deny-kms",
                                 .mock_gateway_app_id = "gw1"};
    struct kmsauth *ka;
    struct httpc *c;
    char err[256];
    ASSERT_EQ(kmsauth_start(&ka, &loop, &cfg, err, sizeof err), 0);
    int port = kmsauth_port(ka);
    ASSERT(port > 0);
    ASSERT_EQ(httpc_init(&c, &loop), 0);
    struct answer a;
    ASSERT_EQ(post(&loop, c, port, "/bootAuth/app", BOOT, &a), 0);
    ASSERT_EQ(a.status, 200);
    ASSERT(allowed(&a));
    ASSERT_STR_EQ(field(&a, "reason"), "mock app allowed (deny-kms policy)");
    ASSERT_STR_EQ(field(&a, "gatewayAppId"), "gw1");
    json_decref(a.body);
    ASSERT_EQ(post(&loop, c, port, "/bootAuth/kms", BOOT, &a), 0);
    ASSERT_EQ(a.status, 200);
    ASSERT(!allowed(&a));
    ASSERT_STR_EQ(field(&a, "reason"), "mock policy: deny-kms");
    ASSERT_STR_EQ(field(&a, "gatewayAppId"), "");
    json_decref(a.body);
    /* auth-mock's schema: a missing field is a 400 ZodError. */
    ASSERT_EQ(post(&loop, c, port, "/bootAuth/app", "{\"appId\":\"x\"}", &a),
              0);
    ASSERT_EQ(a.status, 400);
    json_decref(a.body);
    kmsauth_stop(ka);
    httpc_close(c, NULL, NULL);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0); /* every handle released */
    return 0;
}

TEST(chain_unreachable_fails_closed)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A loopback port nothing listens on (bound then closed here). */
    uv_tcp_t probe;
    struct sockaddr_in sa;
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&loop, &probe);
    ASSERT_EQ(uv_tcp_bind(&probe, (const struct sockaddr *)&sa, 0), 0);
    uv_tcp_getsockname(&probe, (struct sockaddr *)&got, &len);
    int dead = ntohs(((struct sockaddr_in *)&got)->sin_port);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    char rpc[64];
    snprintf(rpc, sizeof rpc, "http://127.0.0.1:%d", dead);
    struct kmsauth_config cfg = {
        .host = "127.0.0.1",
        .rpc_url = rpc,
        .kms_contract = "0x5fbdb2315678afecb367f032d93f642f64180aa3"};
    struct kmsauth *ka;
    struct httpc *c;
    char err[256];
    ASSERT_EQ(kmsauth_start(&ka, &loop, &cfg, err, sizeof err), 0);
    ASSERT_EQ(httpc_init(&c, &loop), 0);
    struct answer a;
    ASSERT_EQ(post(&loop, c, kmsauth_port(ka), "/bootAuth/app", BOOT, &a), 0);
    ASSERT_EQ(a.status, 200);
    ASSERT(!allowed(&a));
    ASSERT_STR_EQ(field(&a, "reason"), "authorization backend unavailable");
    json_decref(a.body);
    kmsauth_stop(ka);
    httpc_close(c, NULL, NULL);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    return 0;
}

TEST_LIST(TEST_ENTRY(bad_settings_start_nothing),
          TEST_ENTRY(mock_decisions_over_http),
          TEST_ENTRY(chain_unreachable_fails_closed))
