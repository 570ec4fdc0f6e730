/* test_membership.c - instance ids for people and the strict decoding of the
 * contract's answers (activeNodes(), activeMembers(), clusterState(),
 * tokenVotes(); chain/membership), against data encoded by `cast abi-encode`.
 */
#include "cast_helper.h"
#include "chain/membership.h"
#include "chain/hex.h"
#include "core/err.h"
#include "harness.h"

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
    return 0;
}

TEST_LIST(TEST_ENTRY(instance_text_round_trips),
          TEST_ENTRY(decode_nodes_as_cast_encodes_them),
          TEST_ENTRY(decode_state_vote_and_v1_members_as_cast_encodes_them))
