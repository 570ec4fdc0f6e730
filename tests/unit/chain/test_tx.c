/* test_tx.c - RLP (the standard examples), wallet keys and signatures,
 * EIP-1559 and EIP-155 transactions byte for byte against `cast mktx`, and
 * a transaction signed here, sent through chain/rpc and mined by anvil. */
#include "cast_helper.h"
#include "chain/hex.h"
#include "chain/keccak.h"
#include "chain/rlp.h"
#include "chain/rpc.h"
#include "chain/sender.h"
#include "chain/tx.h"
#include "chain/wallet.h"
#include "core/err.h"
#include "core/httpc.h"
#include "harness.h"

#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY0                                                                   \
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

static int rlp_is(struct rlp *r, const char *want)
{
    char *h = malloc(2 * r->len + 3);
    hex_encode(r->p, r->len, 1, h);
    int bad = strcmp(h, want) != 0;
    if (bad)
        fprintf(stderr, "  rlp %s != %s\n", h, want);
    free(h);
    rlp_free(r);
    return bad;
}

TEST(rlp_standard_examples)
{
    struct rlp r = {0};
    rlp_bytes(&r, (const uint8_t *)"dog", 3);
    ASSERT(rlp_is(&r, "0x83646f67") == 0);
    size_t m = rlp_list_begin(&r);
    rlp_bytes(&r, (const uint8_t *)"cat", 3);
    rlp_bytes(&r, (const uint8_t *)"dog", 3);
    rlp_list_end(&r, m);
    ASSERT(rlp_is(&r, "0xc88363617483646f67") == 0);
    rlp_bytes(&r, NULL, 0);
    ASSERT(rlp_is(&r, "0x80") == 0);
    rlp_list_end(&r, rlp_list_begin(&r));
    ASSERT(rlp_is(&r, "0xc0") == 0);
    rlp_uint(&r, 0);
    ASSERT(rlp_is(&r, "0x80") == 0);
    rlp_uint(&r, 15);
    ASSERT(rlp_is(&r, "0x0f") == 0);
    rlp_uint(&r, 1024);
    ASSERT(rlp_is(&r, "0x820400") == 0);
    /* [ [], [[]], [ [], [[]] ] ] */
    size_t a = rlp_list_begin(&r);
    rlp_list_end(&r, rlp_list_begin(&r));
    size_t b = rlp_list_begin(&r);
    rlp_list_end(&r, rlp_list_begin(&r));
    rlp_list_end(&r, b);
    size_t c = rlp_list_begin(&r);
    rlp_list_end(&r, rlp_list_begin(&r));
    size_t d = rlp_list_begin(&r);
    rlp_list_end(&r, rlp_list_begin(&r));
    rlp_list_end(&r, d);
    rlp_list_end(&r, c);
    rlp_list_end(&r, a);
    ASSERT(rlp_is(&r, "0xc7c0c1c0c3c0c1c0") == 0);
    const char *lorem =
        "Lorem ipsum dolor sit amet, consectetur adipisicing elit";
    rlp_bytes(&r, (const uint8_t *)lorem, strlen(lorem));
    ASSERT(rlp_is(&r, "0xb8384c6f72656d20697073756d20646f6c6f722073697420616d65"
                      "742c20636f6e7365637465747572206164697069736963696e672065"
                      "6c6974") == 0);
    return 0;
}

TEST(wallet_address_sign_recover)
{
    struct wallet *w;
    ASSERT_EQ(wallet_from_hex(&w, "  " KEY0 "\n"), 0);
    char a[43];
    hex_encode(wallet_address(w), 20, 1, a);
    ASSERT_STR_EQ(a, "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    uint8_t digest[32], rs[64], back[20];
    keccak256("message", 7, digest);
    int recid;
    ASSERT_EQ(wallet_sign(w, digest, rs, &recid), 0);
    ASSERT_EQ(wallet_recover(digest, rs, recid, back), 0);
    ASSERT_MEM_EQ(back, wallet_address(w), 20);
    wallet_free(w);
    ASSERT_EQ(wallet_from_hex(&w, "0x1234"), ERR_INVALID);
    ASSERT_EQ(wallet_from_hex(&w, "0x"
                                  "00000000000000000000000000000000"
                                  "00000000000000000000000000000000"),
              ERR_INVALID);
    ASSERT_EQ(wallet_from_hex(&w, "zz"), ERR_INVALID);
    return 0;
}

static int tx_matches_cast(bool legacy)
{
    struct wallet *w;
    if (wallet_from_hex(&w, KEY0) != 0)
        return 1;
    uint8_t call[36] = {0xb3, 0xde, 0x64, 0x8b};
    call[35] = 1; /* f(uint256) 1 */
    struct tx t = {.legacy = legacy,
                   .chain_id = 31337,
                   .nonce = 7,
                   .gas_limit = 100000,
                   .max_fee = 2000000000,
                   .max_priority_fee = 1000000000,
                   .data = call,
                   .data_len = sizeof call};
    size_t n;
    hex_decode("0x5FbDB2315678afecb367f032d93F642f64180aa3", 42, t.to, 20, &n);
    uint8_t *raw, hash[32];
    size_t len;
    int rv = tx_sign(&t, w, &raw, &len, hash);
    wallet_free(w);
    if (rv != 0)
        return 1;
    char *mine = malloc(2 * len + 3);
    hex_encode(raw, len, 1, mine);
    free(raw);
    char theirs[2048], args[1024];
    snprintf(args, sizeof args,
             "mktx %s --private-key " KEY0 " --nonce 7 --gas-limit 100000 "
             "--gas-price 2000000000 %s --chain 31337 "
             "0x5FbDB2315678afecb367f032d93F642f64180aa3 'f(uint256)' 1",
             legacy ? "--legacy" : "",
             legacy ? "" : "--priority-gas-price 1000000000");
    rv = cast_run(args, theirs, sizeof theirs);
    if (rv != 0) {
        printf("  (cast unavailable: cross-check skipped)\n");
        free(mine);
        return HARNESS_SKIPPED;
    }
    rv = strcmp(mine, theirs) != 0;
    if (rv)
        fprintf(stderr, "  mine: %s\n  cast: %s\n", mine, theirs);
    free(mine);
    return rv;
}

TEST(eip1559_matches_cast)
{
    ASSERT_OK_OR_SKIP(tx_matches_cast(false));
    return 0;
}

TEST(eip155_legacy_matches_cast)
{
    ASSERT_OK_OR_SKIP(tx_matches_cast(true));
    return 0;
}

/* ---- a real anvil ---- */

/* Start the project's anvil (plus one extra flag, or NULL) on a free port,
 * in its own process group (.bin/anvil is a wrapper: kill the whole group
 * later). 0 when anvil is not installed (the caller skips). */
static pid_t spawn_anvil(const char *extra, int *port)
{
    const char *src = getenv("NFTRAFT_SOURCE_DIR");
    char anvil[600];
    snprintf(anvil, sizeof anvil, "%s/contracts/node_modules/.bin/anvil",
             src ? src : ".");
    if (access(anvil, X_OK) != 0) {
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    close(fd);
    char ports[16];
    snprintf(ports, sizeof ports, "%d", *port);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (freopen("/dev/null", "w", stdout) == NULL ||
            freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        execl(anvil, anvil, "--port", ports, "--silent", extra, (char *)NULL);
        _exit(127);
    }
    return pid;
}

struct sendstate {
    uv_loop_t *loop;
    struct rpc *rpc;
    char txhash[67];
    int err;
    int polls;
    bool mined;
    uint64_t status;
    uv_timer_t timer;
};

static void receipt_cb(void *data, int err, json_t *result, const char *msg);

static void poll_receipt(uv_timer_t *t)
{
    struct sendstate *s = t->data;
    rpc_call(s->rpc, "eth_getTransactionReceipt", json_pack("[s]", s->txhash),
             receipt_cb, s);
}

static void receipt_cb(void *data, int err, json_t *result, const char *msg)
{
    (void)msg;
    struct sendstate *s = data;
    if (err == 0 && json_is_object(result)) {
        s->mined = true;
        hex_quantity(json_string_value(json_object_get(result, "status")),
                     &s->status);
        return;
    }
    if (err != 0 || ++s->polls > 100) {
        s->err = err ? err : ERR_TIMEOUT;
        return;
    }
    uv_timer_start(&s->timer, poll_receipt, 50, 0);
}

static void sent_cb(void *data, int err, json_t *result, const char *msg)
{
    struct sendstate *s = data;
    if (err != 0 || !json_is_string(result)) {
        fprintf(stderr, "  eth_sendRawTransaction: %s\n", msg ? msg : "?");
        s->err = err ? err : ERR_MALFORMED;
        return;
    }
    snprintf(s->txhash, sizeof s->txhash, "%s", json_string_value(result));
    poll_receipt(&s->timer);
}

static void closed(void *data)
{
    (void)data;
}

TEST(signed_here_mined_by_anvil)
{
    int port;
    pid_t pid = spawn_anvil(NULL, &port);
    if (pid == 0)
        SKIP("anvil not installed");
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct httpc *http;
    ASSERT_EQ(httpc_init(&http, &loop), 0);
    struct sendstate s = {.loop = &loop};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    ASSERT_EQ(rpc_init(&s.rpc, &loop, http, url, 2000, 8), 0);
    uv_timer_init(&loop, &s.timer);
    s.timer.data = &s;
    struct wallet *w;
    ASSERT_EQ(wallet_from_hex(&w, KEY0), 0);
    struct tx t = {.chain_id = 31337,
                   .nonce = 0,
                   .gas_limit = 21000,
                   .max_fee = 3000000000ULL,
                   .max_priority_fee = 1000000000,
                   .value = 12345};
    memset(t.to, 0x42, 20);
    uint8_t *raw, hash[32];
    size_t len;
    ASSERT_EQ(tx_sign(&t, w, &raw, &len, hash), 0);
    wallet_free(w);
    char *rawhex = malloc(2 * len + 3);
    hex_encode(raw, len, 1, rawhex);
    free(raw);
    /* rpc retries with backoff while anvil starts. */
    ASSERT_EQ(rpc_call(s.rpc, "eth_sendRawTransaction",
                       json_pack("[s]", rawhex), sent_cb, &s),
              0);
    free(rawhex);
    while (!s.mined && s.err == 0)
        uv_run(&loop, UV_RUN_ONCE);
    char want[67];
    hex_encode(hash, 32, 1, want);
    rpc_close(s.rpc);
    uv_close((uv_handle_t *)&s.timer, NULL);
    httpc_close(http, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ASSERT_EQ(s.err, 0);
    ASSERT(s.mined);
    ASSERT_U64_EQ(s.status, 1);
    ASSERT_STR_EQ(s.txhash, want);
    return 0;
}

/* A transaction stuck in the mempool (anvil --no-mining: nothing is mined
 * until evm_mine) is replaced by the next one: same nonce, fees >= 12.5%
 * higher; only the replacement is mined. */
struct bump {
    struct rpc *rpc;
    uv_timer_t timer;
    int done, err, mined_asked;
    uint8_t hash[32];
    char stuck[67];
    json_t *answer;
    int answered;
};

static void bump_cb(void *data, int err, const uint8_t h[32], uint64_t block,
                    const char *msg)
{
    (void)block;
    (void)msg;
    struct bump *b = data;
    b->err = err;
    memcpy(b->hash, h, 32);
    b->done = 1;
}

static void ignore_cb(void *data, int err, json_t *r, const char *msg)
{
    (void)data;
    (void)err;
    (void)r;
    (void)msg;
}

static void stuck_cb(void *data, int err, json_t *r, const char *msg);

static void watch_stuck(uv_timer_t *t)
{
    struct bump *b = t->data;
    rpc_call(b->rpc, "eth_getTransactionByHash", json_pack("[s]", b->stuck),
             stuck_cb, b);
}

/* Mine once the stuck transaction has left the pool (it was replaced). */
static void stuck_cb(void *data, int err, json_t *r, const char *msg)
{
    (void)msg;
    struct bump *b = data;
    if (err == 0 && json_is_null(r) && !b->mined_asked) {
        b->mined_asked = 1;
        rpc_call(b->rpc, "evm_mine", json_array(), ignore_cb, b);
        return;
    }
    if (!b->done)
        uv_timer_start(&b->timer, watch_stuck, 100, 0);
}

static void answer_cb(void *data, int err, json_t *r, const char *msg)
{
    (void)msg;
    struct bump *b = data;
    b->answer = err == 0 ? json_incref(r) : NULL;
    b->answered = 1;
}

static json_t *ask(uv_loop_t *loop, struct bump *b, const char *method,
                   json_t *params)
{
    b->answered = 0;
    b->answer = NULL;
    if (rpc_call(b->rpc, method, params, answer_cb, b) != 0)
        return NULL;
    while (!b->answered)
        uv_run(loop, UV_RUN_ONCE);
    return b->answer;
}

static uint64_t fee_of(uv_loop_t *loop, struct bump *b, const uint8_t h[32])
{
    char hh[67];
    hex_encode(h, 32, 1, hh);
    json_t *t = ask(loop, b, "eth_getTransactionByHash", json_pack("[s]", hh));
    uint64_t fee = 0;
    if (t != NULL)
        hex_quantity(json_string_value(json_object_get(t, "maxFeePerGas")),
                     &fee);
    json_decref(t);
    return fee;
}

/* An anvil that does not mine, and a sender on it with key 0. */
struct rig {
    pid_t pid;
    uv_loop_t loop;
    struct httpc *http;
    struct wallet *w;
    struct sender *snd;
    struct bump b;
    uint8_t to[20];
};

/* Start the rig on an anvil started with `extra` (NULL: mining each
 * transaction at once): 0, HARNESS_SKIPPED without anvil, or 1 on a
 * failure. */
static int rig_open_with(struct rig *g, const char *extra)
{
    int port;
    memset(g, 0, sizeof *g);
    g->pid = spawn_anvil(extra, &port);
    if (g->pid == 0)
        SKIP("anvil not installed");
    uv_loop_init(&g->loop);
    ASSERT_EQ(httpc_init(&g->http, &g->loop), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    ASSERT_EQ(rpc_init(&g->b.rpc, &g->loop, g->http, url, 2000, 8), 0);
    uv_timer_init(&g->loop, &g->b.timer);
    g->b.timer.data = &g->b;
    ASSERT_EQ(wallet_from_hex(&g->w, KEY0), 0);
    ASSERT_EQ(sender_init(&g->snd, &g->loop, g->b.rpc, g->w, 31337, 1500), 0);
    memset(g->to, 0x42, 20);
    return 0;
}

static int rig_open(struct rig *g)
{
    return rig_open_with(g, "--no-mining");
}

/* Send an empty transaction and run the loop until its callback; with
 * watch, mine once the stuck transaction has left the pool. */
static int rig_send(struct rig *g, bool watch)
{
    g->b.done = 0;
    ASSERT_EQ(sender_send(g->snd, g->to, NULL, 0, bump_cb, &g->b), 0);
    if (watch)
        watch_stuck(&g->b.timer);
    while (!g->b.done)
        uv_run(&g->loop, UV_RUN_ONCE);
    return 0;
}

/* The first send, never mined: its error, hash and max fee (b.stuck holds
 * the hash in hex). */
static int rig_send_stuck(struct rig *g, int *err, uint8_t h[32], uint64_t *fee)
{
    if (rig_send(g, false) != 0)
        return 1;
    *err = g->b.err;
    memcpy(h, g->b.hash, 32);
    hex_encode(h, 32, 1, g->b.stuck);
    *fee = fee_of(&g->loop, &g->b, h);
    return 0;
}

static void rig_close(struct rig *g)
{
    sender_close(g->snd);
    rpc_close(g->b.rpc);
    uv_timer_stop(&g->b.timer);
    uv_close((uv_handle_t *)&g->b.timer, NULL);
    httpc_close(g->http, closed, NULL);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    uv_loop_close(&g->loop);
    wallet_free(g->w);
    kill(-g->pid, SIGKILL);
    waitpid(g->pid, NULL, 0);
}

TEST(stuck_transaction_is_replaced)
{
    struct rig g;
    ASSERT_OK_OR_SKIP(rig_open(&g));
    /* 1: sent, never mined: the receipt times out. */
    int err1;
    uint8_t h1[32];
    uint64_t fee1;
    ASSERT_EQ(rig_send_stuck(&g, &err1, h1, &fee1), 0);
    /* 2: the next transaction replaces it; mined once it did. */
    ASSERT_EQ(rig_send(&g, true), 0);
    int err2 = g.b.err;
    uint64_t fee2 = fee_of(&g.loop, &g.b, g.b.hash);
    char from[43];
    hex_encode(wallet_address(g.w), 20, 1, from);
    json_t *n = ask(&g.loop, &g.b, "eth_getTransactionCount",
                    json_pack("[s,s]", from, "latest"));
    uint64_t mined = 99;
    if (n != NULL)
        hex_quantity(json_string_value(n), &mined);
    json_decref(n);
    json_t *r1 = ask(&g.loop, &g.b, "eth_getTransactionReceipt",
                     json_pack("[s]", g.b.stuck));
    int stuck_mined = r1 != NULL && !json_is_null(r1);
    json_decref(r1);
    rig_close(&g);
    ASSERT_EQ(err1, ERR_TIMEOUT);
    ASSERT_EQ(err2, 0);
    ASSERT(memcmp(h1, g.b.hash, 32) != 0);
    ASSERT(fee1 > 0);
    ASSERT(fee2 >= fee1 + fee1 / 8 + 1);
    ASSERT_U64_EQ(mined, 1); /* one nonce used: the replacement */
    ASSERT(!stuck_mined);
    return 0;
}

/* With a fee ceiling between the stuck transaction's fee and the 12.5%
 * bump, the next send is not a replacement: it fails with ERR_TOOBIG, the
 * stuck transaction stays in the pool and is reported by sender_stuck();
 * once the ceiling is raised the replacement goes out and is mined. */
TEST(fee_ceiling_reports_stuck_transaction)
{
    struct rig g;
    ASSERT_OK_OR_SKIP(rig_open(&g));
    char msg[320] = "";
    int stuck_before = sender_stuck(g.snd, msg, sizeof msg);
    /* 1: sent, never mined. */
    int err1;
    uint8_t h1[32];
    uint64_t fee1;
    ASSERT_EQ(rig_send_stuck(&g, &err1, h1, &fee1), 0);
    /* 2: a ceiling below the bump: nothing is sent, the stuck one is
     * reported. */
    sender_set_max_fee(g.snd, fee1 + fee1 / 16);
    ASSERT_EQ(rig_send(&g, false), 0);
    int err2 = g.b.err;
    int stuck2 = sender_stuck(g.snd, msg, sizeof msg);
    json_t *t1 = ask(&g.loop, &g.b, "eth_getTransactionByHash",
                     json_pack("[s]", g.b.stuck));
    int still_pooled = t1 != NULL && json_is_object(t1);
    json_decref(t1);
    /* 3: ceiling raised: the replacement goes out and is mined. */
    sender_set_max_fee(g.snd, 4 * fee1);
    ASSERT_EQ(rig_send(&g, true), 0);
    int err3 = g.b.err;
    uint64_t fee3 = fee_of(&g.loop, &g.b, g.b.hash);
    char msg3[320];
    int stuck3 = sender_stuck(g.snd, msg3, sizeof msg3);
    rig_close(&g);
    ASSERT_EQ(stuck_before, 0);
    ASSERT_EQ(err1, ERR_TIMEOUT);
    ASSERT(fee1 > 0);
    ASSERT_EQ(err2, ERR_TOOBIG);
    ASSERT_EQ(stuck2, 1);
    ASSERT(strstr(msg, "nonce=0 ") != NULL);
    ASSERT(strstr(msg, g.b.stuck) != NULL);
    ASSERT(still_pooled);
    ASSERT_EQ(err3, 0);
    ASSERT(fee3 >= fee1 + fee1 / 8 + 1);
    ASSERT(fee3 <= 4 * fee1);
    ASSERT_EQ(stuck3, 0);
    return 0;
}

/* Two senders on one wallet (two nodes signing with the same key): the
 * first one's next nonce was taken by the other; its send is refused
 * ("nonce too low") and retried after the back-off with the pending nonce
 * read again, instead of failing. */
TEST(a_taken_nonce_is_retried_with_the_next_one)
{
    struct rig g;
    ASSERT_OK_OR_SKIP(rig_open_with(&g, NULL));
    ASSERT_EQ(rig_send(&g, false), 0); /* nonce 0, mined at once */
    int err1 = g.b.err;
    struct sender *other;
    ASSERT_EQ(sender_init(&other, &g.loop, g.b.rpc, g.w, 31337, 1500), 0);
    struct bump b2 = {0};
    ASSERT_EQ(sender_send(other, g.to, NULL, 0, bump_cb, &b2), 0);
    while (!b2.done)
        uv_run(&g.loop, UV_RUN_ONCE);
    uint64_t t0 = uv_now(&g.loop);
    ASSERT_EQ(rig_send(&g, false), 0); /* tries nonce 1: taken */
    uint64_t took = uv_now(&g.loop) - t0;
    int err3 = g.b.err;
    char hh[67], from[43];
    hex_encode(g.b.hash, 32, 1, hh);
    json_t *t =
        ask(&g.loop, &g.b, "eth_getTransactionByHash", json_pack("[s]", hh));
    uint64_t nonce3 = 99, mined = 99;
    if (t != NULL)
        hex_quantity(json_string_value(json_object_get(t, "nonce")), &nonce3);
    json_decref(t);
    hex_encode(wallet_address(g.w), 20, 1, from);
    json_t *n = ask(&g.loop, &g.b, "eth_getTransactionCount",
                    json_pack("[s,s]", from, "latest"));
    if (n != NULL)
        hex_quantity(json_string_value(n), &mined);
    json_decref(n);
    sender_close(other);
    rig_close(&g);
    ASSERT_EQ(err1, 0);
    ASSERT_EQ(b2.err, 0);
    ASSERT_EQ(err3, 0);
    ASSERT(took >= 300); /* after the first back-off */
    ASSERT_U64_EQ(nonce3, 2);
    ASSERT_U64_EQ(mined, 3);
    return 0;
}

TEST_LIST(TEST_ENTRY(rlp_standard_examples),
          TEST_ENTRY(wallet_address_sign_recover),
          TEST_ENTRY(eip1559_matches_cast),
          TEST_ENTRY(eip155_legacy_matches_cast),
          TEST_ENTRY(signed_here_mined_by_anvil),
          TEST_ENTRY(stuck_transaction_is_replaced),
          TEST_ENTRY(fee_ceiling_reports_stuck_transaction),
          TEST_ENTRY(a_taken_nonce_is_retried_with_the_next_one))
