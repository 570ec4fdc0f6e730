/* test_membership.c - instance ids for people and the strict decoding of the
 * contract's answers (activeNodes(), activeMembers(), clusterState(),
 * tokenVotes(); chain/membership), against data encoded by `cast abi-encode`;
 * the ABI (v1 or v2) decided once, over real HTTP from a scripted JSON-RPC
 * endpoint: a later revert is a read error, never a switch to v1.
 */
#include "cast_helper.h"
#include "chain/membership.h"
#include "chain/hex.h"
#include "chain/rpc.h"
#include "core/err.h"
#include "core/httpc.h"
#include "harness.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* text -> id -> text gives text back, and the text reads to the same id. */
static int round_trips(const char *text)
{
    uint8_t id[32], back[32];
    char t[67];
    ASSERT_EQ(membership_instance_id(text, id), 0);
    membership_instance_text(id, t);
    ASSERT_STR_EQ(t, text);
    ASSERT_EQ(membership_instance_id(t, back), 0);
    ASSERT_MEM_EQ(id, back, 32);
    return 0;
}

TEST(instance_text_round_trips)
{
    static const char *const texts[] = {
        "node1", "a", "0123456789abcdef0123456789abcdef", "x-y_z.9",
        /* Not a plain name: hex, which reads back to the same bytes. */
        "0x01ff000000000000000000000000000000000000000000000000000000000000",
        "0x0000000000000000000000000000000000000000000000000000000000000000",
        "0x6e6f646531006100000000000000000000000000000000000000000000000000",
        "0x6e6f646520310000000000000000000000000000000000000000000000000000",
        "0x3078313200000000000000000000000000000000000000000000000000000000",
        "0x6e6f6465317f0000000000000000000000000000000000000000000000000000",
        "0xf09f9880000000000000000000000000000000000000000000000000000000ff"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (round_trips(texts[i]) != 0)
            FAILF("'%s' does not round-trip", texts[i]);
    return 0;
}

#define TUPLE "(uint256,bytes32,address,address,uint32,string,string)[]"

static int encode(const char *value, uint8_t **d, size_t *len)
{
    static char out[65536];
    char args[8192];
    snprintf(args, sizeof args, "abi-encode 'f(" TUPLE ")' '%s'", value);
    if (cast_run(args, out, sizeof out) != 0)
        return -1;
    size_t n = strlen(out);
    *d = malloc(n / 2 + 1);
    return *d && hex_decode(out, n, *d, n / 2, len) == 0 ? 0 : -1;
}

TEST(decode_nodes_as_cast_encodes_them)
{
    uint8_t *d;
    size_t len, n = 99;
    struct membership_node m[4];
    char long_ep[300] = {0};
    memset(long_ep, 'h', 256);
    char value[2048];
    snprintf(value, sizeof value,
             "[(1,0x6e6f646531000000000000000000000000000000000000000000000000"
             "000000,0x70997970c51812dc3a010c7d01b50e0d17dc79c8,0x90f79bf6eb2c"
             "4f870365e785982e1f101e93b906,3,\"127.0.0.1:7001\",\"http://127.0."
             "0.1:8001\"),(256,0x01ff0000000000000000000000000000000000000000"
             "00000000000000000000,0x0000000000000000000000000000000000000001,"
             "0x0000000000000000000000000000000000000002,4294967295,\"%s\","
             "\"\")]",
             long_ep);
    ASSERT_EQ(encode(value, &d, &len), 0);
    ASSERT_EQ(membership_decode_nodes(d, len, m, 4, &n), 0);
    ASSERT_EQ(n, 2);
    ASSERT_U64_EQ(m[0].token, 1);
    ASSERT_EQ(m[0].epoch, 3);
    ASSERT(memcmp(m[0].instance, "node1\0", 6) == 0);
    ASSERT(m[0].owner[0] == 0x70 && m[0].owner[19] == 0xc8);
    ASSERT(m[0].node_key[0] == 0x90 && m[0].node_key[19] == 0x06);
    ASSERT_STR_EQ(m[0].raft, "127.0.0.1:7001");
    ASSERT_STR_EQ(m[0].http, "http://127.0.0.1:8001");
    ASSERT_U64_EQ(m[1].token, 256);
    ASSERT_U64_EQ(m[1].epoch, 4294967295u);
    ASSERT_STR_EQ(m[1].raft, long_ep);
    ASSERT_STR_EQ(m[1].http, "");
    /* More entries than room. */
    ASSERT_EQ(membership_decode_nodes(d, len, m, 1, &n), ERR_TOOBIG);
    /* Every truncation is an error, never a read past the end. */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *t = malloc(cut ? cut : 1);
        memcpy(t, d, cut);
        int rv = membership_decode_nodes(t, cut, m, 4, &n);
        free(t);
        ASSERT(rv != 0);
    }
    /* A tuple offset pointing past the end. */
    uint8_t *bad = malloc(len);
    memcpy(bad, d, len);
    bad[64 + 31] = 0xff; /* first element's offset (after offset, length) */
    bad[64 + 30] = 0xff;
    ASSERT_EQ(membership_decode_nodes(bad, len, m, 4, &n), ERR_MALFORMED);
    free(bad);
    free(d);
    /* An empty array; an endpoint above 256 bytes; an epoch above 2^32-1. */
    ASSERT_EQ(encode("[]", &d, &len), 0);
    ASSERT_EQ(membership_decode_nodes(d, len, m, 4, &n), 0);
    ASSERT_EQ(n, 0);
    free(d);
    memset(long_ep, 'h', 257);
    snprintf(value, sizeof value,
             "[(1,0x01%062d,0x0000000000000000000000000000000000000001,0x0000"
             "000000000000000000000000000000000002,1,\"%s\",\"x\")]",
             0, long_ep);
    ASSERT_EQ(encode(value, &d, &len), 0);
    ASSERT_EQ(membership_decode_nodes(d, len, m, 4, &n), ERR_TOOBIG);
    free(d);
    ASSERT_EQ(
        cast_run("abi-encode 'f((uint256,bytes32,address,address,"
                 "uint64,string,string)[])' '[(1,0x01000000000000000000000"
                 "00000000000000000000000000000000000000000,0x00000000000000"
                 "00000000000000000000000001,0x0000000000000000000000"
                 "000000000000000002,4294967296,\"a\",\"b\")]'",
                 value, sizeof value),
        0);
    len = strlen(value);
    d = malloc(len / 2 + 1);
    ASSERT_EQ(hex_decode(value, len, d, len / 2, &len), 0);
    ASSERT_EQ(membership_decode_nodes(d, len, m, 4, &n), ERR_MALFORMED);
    free(d);
    /* Token ids: 2^32-1 is the last one (raft id = token << 32 | epoch);
     * 2^32 would alias token 0's raft ids. */
    static const char *const tokens[] = {"4294967295", "4294967296",
                                         "18446744073709551615"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(value, sizeof value,
                 "[(%s,0x01%062d,0x0000000000000000000000000000000000000001,"
                 "0x0000000000000000000000000000000000000002,1,\"a\",\"b\")]",
                 tokens[i], 0);
        ASSERT_EQ(encode(value, &d, &len), 0);
        ASSERT_EQ(membership_decode_nodes(d, len, m, 4, &n),
                  i == 0 ? 0 : ERR_MALFORMED);
        free(d);
    }
    return 0;
}

/* cast abi-encode 'f(types)' 'values' into *d (malloc'd). */
static int encode_as(const char *types, const char *values, uint8_t **d,
                     size_t *len)
{
    static char out[8192];
    char args[4096];
    snprintf(args, sizeof args, "abi-encode 'f(%s)' %s", types, values);
    if (cast_run(args, out, sizeof out) != 0)
        return -1;
    size_t n = strlen(out);
    *d = malloc(n / 2 + 1);
    return *d && hex_decode(out, n, *d, n / 2, len) == 0 ? 0 : -1;
}

/* Every truncation of d[0..len) fails to decode. */
static int truncations_fail(const uint8_t *d, size_t len,
                            int (*decode)(const uint8_t *, size_t))
{
    for (size_t cut = 0; cut < len; cut++)
        if (decode(d, cut) == 0)
            return 1;
    return 0;
}

static int state_of(const uint8_t *d, size_t len)
{
    struct membership_state s;
    return membership_decode_state(d, len, &s);
}

static int vote_of(const uint8_t *d, size_t len)
{
    struct membership_vote v;
    return membership_decode_vote(d, len, &v);
}

static int v1_of(const uint8_t *d, size_t len)
{
    struct membership_node m[4];
    size_t n;
    return membership_decode_members_v1(d, len, m, 4, &n);
}

TEST(decode_state_vote_and_v1_members_as_cast_encodes_them)
{
    uint8_t *d;
    size_t len, n;
    struct membership_state s;
    if (encode_as("address,uint256,uint256,uint256,uint256,uint256,uint256,"
                  "uint256",
                  "0x70997970c51812dc3a010c7d01b50e0d17dc79c8 2 7 1700000000 "
                  "1 2 3 60",
                  &d, &len) != 0)
        SKIP("cast not installed");
    ASSERT_EQ(membership_decode_state(d, len, &s), 0);
    ASSERT(s.leader[0] == 0x70 && s.leader[19] == 0xc8);
    ASSERT_U64_EQ(s.leader_token, 2);
    ASSERT_U64_EQ(s.term, 7);
    ASSERT_U64_EQ(s.expiry, 1700000000);
    ASSERT_U64_EQ(s.against, 1);
    ASSERT_U64_EQ(s.required, 2);
    ASSERT_U64_EQ(s.active, 3);
    ASSERT_U64_EQ(s.period, 60);
    ASSERT_EQ(truncations_fail(d, len, state_of), 0);
    d[0] = 1; /* an address with a dirty high byte */
    s.term = 99;
    ASSERT_EQ(membership_decode_state(d, len, &s), ERR_MALFORMED);
    ASSERT_U64_EQ(s.term, 99); /* untouched */
    free(d);

    struct membership_vote v;
    ASSERT_EQ(encode_as("address,uint256,bool",
                        "0x90f79bf6eb2c4f870365e785982e1f101e93b906 7 true", &d,
                        &len),
              0);
    ASSERT_EQ(membership_decode_vote(d, len, &v), 0);
    ASSERT(v.target[0] == 0x90 && v.against);
    ASSERT_U64_EQ(v.term, 7);
    ASSERT_EQ(truncations_fail(d, len, vote_of), 0);
    d[95] = 2; /* a bool that is neither 0 nor 1 */
    ASSERT_EQ(membership_decode_vote(d, len, &v), ERR_MALFORMED);
    free(d);

    struct membership_node m[4];
    char args[1024], node1[67], one[67];
    snprintf(node1, sizeof node1, "0x6e6f646531%054d", 0);
    snprintf(one, sizeof one, "0x01%062d", 0);
    snprintf(args, sizeof args,
             "'[1,3]' '[%s,%s]' '[0x70997970c51812dc3a010c7d01b50e0d17dc79c8,"
             "0x90f79bf6eb2c4f870365e785982e1f101e93b906]'",
             node1, one);
    ASSERT_EQ(encode_as("uint256[],bytes32[],address[]", args, &d, &len), 0);
    ASSERT_EQ(membership_decode_members_v1(d, len, m, 4, &n), 0);
    ASSERT_EQ(n, 2);
    ASSERT_U64_EQ(m[0].token, 1);
    ASSERT_U64_EQ(m[1].token, 3);
    ASSERT(memcmp(m[0].instance, "node1\0", 6) == 0);
    ASSERT_MEM_EQ(m[1].node_key, m[1].owner, 20); /* v1: the owner speaks */
    ASSERT_STR_EQ(m[0].raft, "");
    ASSERT_EQ(m[0].epoch, 0);
    ASSERT_EQ(membership_decode_members_v1(d, len, m, 1, &n), ERR_TOOBIG);
    ASSERT_EQ(truncations_fail(d, len, v1_of), 0);
    free(d);
    /* arrays of different lengths; a token 0 */
    ASSERT_EQ(encode_as("uint256[],bytes32[],address[]",
                        "'[1]' '[]' '[0x70997970c51812dc3a010c7d01b50e0d17dc"
                        "79c8]'",
                        &d, &len),
              0);
    ASSERT_EQ(membership_decode_members_v1(d, len, m, 4, &n), ERR_MALFORMED);
    free(d);
    snprintf(args, sizeof args,
             "'[0]' '[%s]' '[0x70997970c51812dc3a010c7d01b50e0d17dc79c8]'",
             one);
    ASSERT_EQ(encode_as("uint256[],bytes32[],address[]", args, &d, &len), 0);
    ASSERT_EQ(membership_decode_members_v1(d, len, m, 4, &n), ERR_MALFORMED);
    free(d);
    snprintf(args, sizeof args,
             "'[4294967296]' '[%s]' '[0x70997970c51812dc3a010c7d01b50e0d17dc"
             "79c8]'",
             one);
    ASSERT_EQ(encode_as("uint256[],bytes32[],address[]", args, &d, &len), 0);
    ASSERT_EQ(membership_decode_members_v1(d, len, m, 4, &n), ERR_MALFORMED);
    free(d);
    return 0;
}

/* ---- the ABI decided once, over real HTTP ---- */

/* A JSON-RPC endpoint in a child process answering the k-th request with
 * answers[k] (the JSON after "id":N, e.g. "\"result\":\"0x..\""), one
 * request per connection; it exits after the last. Returns its pid, the
 * port in *port. */
static pid_t scripted_rpc(const char *const *answers, size_t n, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 ||
        listen(fd, 8) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    pid_t pid = fork();
    if (pid != 0) {
        close(fd);
        return pid;
    }
    static char req[65536], out[65536 + 512];
    for (size_t k = 0; k < n; k++) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            _exit(1);
        size_t got = 0;
        char *body = NULL;
        long clen = -1;
        while (got < sizeof req - 1) {
            ssize_t r = read(c, req + got, sizeof req - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            req[got] = '\0';
            char *h = strstr(req, "\r\n\r\n");
            char *cl = strcasestr(req, "content-length:");
            if (h != NULL && cl != NULL) {
                clen = atol(cl + 15);
                body = h + 4;
                if ((long)(got - (size_t)(body - req)) >= clen)
                    break;
            }
        }
        char *id = body ? strstr(body, "\"id\":") : NULL;
        long idn = id ? atol(id + 5) : 0;
        char json[65536];
        int jl =
            snprintf(json, sizeof json, "{\"jsonrpc\":\"2.0\",\"id\":%ld,%s}",
                     idn, answers[k]);
        int ol =
            snprintf(out, sizeof out,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     jl, json);
        if (write(c, out, (size_t)ol) != ol)
            _exit(1);
        close(c);
    }
    _exit(0);
}

struct nodes_got {
    bool done;
    int err;
    size_t n;
    uint64_t token0;
    uint32_t epoch0;
};

static void nodes_got_cb(void *data, int err,
                         const struct membership_node *nodes, size_t n,
                         const char *msg)
{
    (void)msg;
    struct nodes_got *g = data;
    g->done = true;
    g->err = err;
    g->n = n;
    g->token0 = n ? nodes[0].token : 0;
    g->epoch0 = n ? nodes[0].epoch : 0;
}

static void closed_cb(void *data)
{
    (void)data;
}

/* Reads activeNodes() `reads` times (blocks "latest", then "0x10", "0x11",
 * ...) from the scripted endpoint; results into got[]. */
static int read_nodes_from(const char *const *answers, size_t n, unsigned reads,
                           struct membership *m, struct nodes_got *got)
{
    int port;
    pid_t pid = scripted_rpc(answers, n, &port);
    if (pid < 0)
        return -1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct httpc *http;
    struct rpc *rpc;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    int rv = httpc_init(&http, &loop);
    if (rv == 0)
        rv = rpc_init(&rpc, &loop, http, url, 3000, 0);
    uint8_t addr[20] = {1};
    membership_init(m, rpc, NULL, addr);
    for (unsigned i = 0; rv == 0 && i < reads; i++) {
        char block[24];
        snprintf(block, sizeof block, "0x%x", 0x10 + i);
        memset(&got[i], 0, sizeof got[i]);
        rv = membership_read_nodes(m, i == 0 ? NULL : block, nodes_got_cb,
                                   &got[i]);
        while (rv == 0 && !got[i].done && uv_run(&loop, UV_RUN_ONCE))
            ;
    }
    rpc_close(rpc);
    httpc_close(http, closed_cb, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rv;
}

TEST(one_revert_after_the_first_read_does_not_switch_to_v1)
{
    uint8_t *d;
    size_t len;
    static char v2[8192], v1[8192], revert[4096], enc[2048];
    if (encode(
            "[(5,0x6e6f646535000000000000000000000000000000000000000000000000"
            "000000,0x70997970c51812dc3a010c7d01b50e0d17dc79c8,0x90f79bf6eb2c"
            "4f870365e785982e1f101e93b906,3,\"127.0.0.1:7005\",\"http://127."
            "0.0.1:8005\")]",
            &d, &len) != 0)
        SKIP("cast not installed");
    char *h = malloc(2 * len + 3);
    hex_encode(d, len, 1, h);
    snprintf(v2, sizeof v2, "\"result\":\"%s\"", h);
    free(h);
    free(d);
    char one[67];
    snprintf(one, sizeof one, "0x01%062d", 0);
    snprintf(enc, sizeof enc,
             "'[5]' '[%s]' '[0x70997970c51812dc3a010c7d01b50e0d17dc79c8]'",
             one);
    ASSERT_EQ(encode_as("uint256[],bytes32[],address[]", enc, &d, &len), 0);
    h = malloc(2 * len + 3);
    hex_encode(d, len, 1, h);
    snprintf(v1, sizeof v1, "\"result\":\"%s\"", h);
    free(h);
    free(d);
    ASSERT_EQ(cast_run("abi-encode 'f(string)' 'flaky'", enc, sizeof enc), 0);
    snprintf(revert, sizeof revert,
             "\"error\":{\"code\":3,\"message\":\"execution reverted\","
             "\"data\":\"0x08c379a0%s\"}",
             enc + 2);

    /* v2 decided by the first read; one reverted read at a pinned block is
     * an error (the next read is activeNodes() again, decoded as v2). */
    struct membership m;
    struct nodes_got got[3];
    const char *const script[] = {v2, revert, v2};
    ASSERT_EQ(read_nodes_from(script, 3, 3, &m, got), 0);
    ASSERT_EQ(got[0].err, 0);
    ASSERT_EQ(got[0].n, 1);
    ASSERT_EQ(got[1].err, ERR_REVERT);
    ASSERT(m.abi_known);
    ASSERT(!m.v1); /* the mode did not flip */
    ASSERT_EQ(got[2].err, 0);
    ASSERT_EQ(got[2].n, 1);
    ASSERT_U64_EQ(got[2].token0, 5);
    ASSERT_EQ(got[2].epoch0, 3); /* v2: raft id token<<32|3, not |0 */

    /* A v1 contract: activeNodes() reverts at the first read and
     * activeMembers() answers: v1 for good. */
    const char *const script1[] = {revert, v1, v1};
    ASSERT_EQ(read_nodes_from(script1, 3, 2, &m, got), 0);
    ASSERT_EQ(got[0].err, 0);
    ASSERT(m.abi_known && m.v1);
    ASSERT_EQ(got[1].err, 0);
    ASSERT_U64_EQ(got[1].token0, 5);

    /* The first read reverts and activeMembers() fails too: nothing is
     * decided; the next read asks activeNodes() again. */
    const char *const script2[] = {revert, revert, v2};
    ASSERT_EQ(read_nodes_from(script2, 3, 2, &m, got), 0);
    ASSERT_EQ(got[0].err, ERR_REVERT);
    ASSERT_EQ(got[1].err, 0);
    ASSERT(m.abi_known && !m.v1);
    ASSERT_EQ(got[1].epoch0, 3);
    return 0;
}

TEST_LIST(TEST_ENTRY(instance_text_round_trips),
          TEST_ENTRY(one_revert_after_the_first_read_does_not_switch_to_v1),
          TEST_ENTRY(decode_nodes_as_cast_encodes_them),
          TEST_ENTRY(decode_state_vote_and_v1_members_as_cast_encodes_them))
