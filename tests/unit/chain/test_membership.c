/* test_membership.c - instance ids for people and the strict decoding of the
 * contract's activeNodes() answer (chain/membership), against data encoded by
 * `cast abi-encode`. */
#include "cast_helper.h"
#include "chain/membership.h"
#include "chain/hex.h"
#include "core/err.h"
#include "harness.h"

TEST(instance_text_round_trips)
{
    const char *names[] = {"node1", "a", "0123456789abcdef0123456789abcdef",
                           "x-y_z.9"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint8_t id[32], back[32];
        char t[67];
        ASSERT_EQ(membership_instance_id(names[i], id), 0);
        membership_instance_text(id, t);
        ASSERT_STR_EQ(t, names[i]);
        ASSERT_EQ(membership_instance_id(t, back), 0);
        ASSERT_MEM_EQ(id, back, 32);
    }
    /* Not a plain name: hex, which reads back to the same bytes. */
    const char *hexes[] = {
        "0x01ff000000000000000000000000000000000000000000000000000000000000",
        "0x0000000000000000000000000000000000000000000000000000000000000000",
        "0x6e6f646531006100000000000000000000000000000000000000000000000000",
        "0x6e6f646520310000000000000000000000000000000000000000000000000000",
        "0x3078313200000000000000000000000000000000000000000000000000000000",
        "0x6e6f6465317f0000000000000000000000000000000000000000000000000000",
        "0xf09f9880000000000000000000000000000000000000000000000000000000ff"};
    for (size_t i = 0; i < sizeof hexes / sizeof hexes[0]; i++) {
        uint8_t id[32], back[32];
        char t[67];
        ASSERT_EQ(membership_instance_id(hexes[i], id), 0);
        membership_instance_text(id, t);
        ASSERT_STR_EQ(t, hexes[i]);
        ASSERT_EQ(membership_instance_id(t, back), 0);
        ASSERT_MEM_EQ(id, back, 32);
    }
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

TEST_LIST(TEST_ENTRY(instance_text_round_trips),
          TEST_ENTRY(decode_nodes_as_cast_encodes_them))
