/* test_keccak.c - Keccak-256 and selectors (chain/keccak, chain/hex). */
#include "cast_helper.h"
#include "chain/hex.h"
#include "chain/keccak.h"
#include "core/err.h"
#include "harness.h"

static int hash_hex(const void *d, size_t n, char out[67])
{
    uint8_t h[32];
    keccak256(d, n, h);
    hex_encode(h, 32, 1, out);
    return 0;
}

TEST(known_vectors)
{
    char h[67];
    hash_hex("", 0, h);
    ASSERT_STR_EQ(
        h,
        "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    hash_hex("abc", 3, h);
    ASSERT_STR_EQ(
        h,
        "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
    uint8_t sel[4];
    keccak_selector("transfer(address,uint256)", sel);
    ASSERT(sel[0] == 0xa9 && sel[1] == 0x05 && sel[2] == 0x9c &&
           sel[3] == 0xbb);
    /* dstack's IAppAuth interface id 0x1e079198 is this selector (a
     * one-function interface's id is its selector; cast sig agrees). */
    keccak_selector("isAppAllowed((address,bytes32,address,bytes32,bytes32,"
                    "bytes32,bytes32,string,string[]))",
                    sel);
    ASSERT(sel[0] == 0x1e && sel[1] == 0x07 && sel[2] == 0x91 &&
           sel[3] == 0x98);
    return 0;
}

TEST(long_inputs_match_cast)
{
    /* Lengths around the 136-byte rate, and a long one. */
    size_t lens[] = {135, 136, 137, 271, 272, 1000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *s = malloc(lens[i] + 1);
        for (size_t k = 0; k < lens[i]; k++)
            s[k] = (char)('a' + k % 26);
        s[lens[i]] = '\0';
        char mine[67], theirs[128], args[1200];
        hash_hex(s, lens[i], mine);
        snprintf(args, sizeof args, "keccak %s", s);
        free(s);
        if (cast_run(args, theirs, sizeof theirs) != 0)
            SKIP("cast unavailable: cross-check");
        if (strcmp(mine, theirs) != 0)
            FAILF("len %zu: %s != cast %s", lens[i], mine, theirs);
    }
    return 0;
}

TEST(hex_rules)
{
    uint8_t b[4];
    size_t n;
    ASSERT_EQ(hex_decode("0xdeadBEEF", 10, b, 4, &n), 0);
    ASSERT_EQ(n, 4);
    ASSERT(b[0] == 0xde && b[3] == 0xef);
    ASSERT_EQ(hex_decode("abc", 3, b, 4, &n), ERR_MALFORMED);
    ASSERT_EQ(hex_decode("0xzz", 4, b, 4, &n), ERR_MALFORMED);
    ASSERT_EQ(hex_decode("0x0102030405", 12, b, 4, &n), ERR_TOOBIG);
    uint64_t v;
    ASSERT_EQ(hex_quantity("0x1a", &v), 0);
    ASSERT_U64_EQ(v, 26);
    ASSERT_EQ(hex_quantity("0x0", &v), 0);
    ASSERT_EQ(hex_quantity("0x01", &v), ERR_MALFORMED);
    ASSERT_EQ(hex_quantity("0x", &v), ERR_MALFORMED);
    ASSERT_EQ(hex_quantity("26", &v), ERR_MALFORMED);
    ASSERT_EQ(hex_quantity("0x10000000000000000", &v), ERR_MALFORMED);
    return 0;
}

TEST_LIST(TEST_ENTRY(known_vectors), TEST_ENTRY(long_inputs_match_cast),
          TEST_ENTRY(hex_rules))
