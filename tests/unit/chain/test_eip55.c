/* test_eip55.c - EIP-55 checksummed addresses (chain/eip55): the test
 * vectors of the EIP-55 specification, round trips, and bad input. */
#include "chain/eip55.h"
#include "chain/hex.h"
#include "core/err.h"
#include "harness.h"

/* The examples of EIP-55 (all caps, all lower, normal). */
static const char *const SPEC[] = {
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
};

TEST(spec_vectors)
{
    for (size_t i = 0; i < sizeof SPEC / sizeof SPEC[0]; i++) {
        uint8_t a[20], b[20];
        size_t n;
        char lower[43], out[43];
        for (int k = 0; k < 42; k++)
            lower[k] = (char)(SPEC[i][k] >= 'A' && SPEC[i][k] <= 'F'
                                  ? SPEC[i][k] - 'A' + 'a'
                                  : SPEC[i][k]);
        lower[42] = '\0';
        ASSERT_EQ(hex_decode(lower, 42, a, 20, &n), 0);
        eip55_encode(a, out);
        ASSERT_STR_EQ(out, SPEC[i]);
        ASSERT_EQ(eip55_decode(SPEC[i], 42, b), 0);
        ASSERT(memcmp(a, b, 20) == 0);
        ASSERT_EQ(eip55_decode(lower, 42, b), 0); /* all lowercase: as is */
    }
    uint8_t zero[20] = {0};
    char out[43];
    eip55_encode(zero, out);
    ASSERT_STR_EQ(out, "0x0000000000000000000000000000000000000000");
    return 0;
}

TEST(bad_input)
{
    uint8_t a[20];
    /* One letter's case flipped: a checksum error, not a silent accept. */
    ASSERT_EQ(eip55_decode("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", 42, a),
              ERR_INVALID);
    ASSERT_EQ(eip55_decode("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", 41, a),
              ERR_MALFORMED);
    ASSERT_EQ(eip55_decode("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", 42, a),
              ERR_MALFORMED);
    ASSERT_EQ(eip55_decode("005aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", 42, a),
              ERR_MALFORMED);
    return 0;
}

TEST_LIST(TEST_ENTRY(spec_vectors), TEST_ENTRY(bad_input))
