/* test_chaincli.c - instance ids between names and bytes32 (chain/chaincli). */
#include "chain/chaincli.h"
#include "core/err.h"
#include "harness.h"

static const char *roundtrip(const char *given, char out[67])
{
    uint8_t id[32], back[32];
    if (chaincli_instance_id(given, id) != 0)
        return "(does not parse)";
    chaincli_instance_name(id, out);
    if (chaincli_instance_id(out, back) != 0 || memcmp(id, back, 32) != 0)
        return "(does not parse back)";
    return out;
}

TEST(printable_names_are_shown_as_names)
{
    char out[67];
    ASSERT_STR_EQ(roundtrip("node1", out), "node1");
    ASSERT_STR_EQ(roundtrip("a b~c", out), "a b~c");
    ASSERT_STR_EQ(roundtrip("0x6e6f646531", out), "node1");
    ASSERT_STR_EQ(roundtrip("abcdefghijabcdefghijabcdefghij12", out),
                  "abcdefghijabcdefghijabcdefghij12");
    return 0;
}

TEST(non_printable_ids_stay_hex)
{
    char out[67];
    static const char *const cases[] = {
        "0xabababababababababababababababababababab", /* kms-auth style */
        "0x00",                                       /* all zero */
        "0x6e6f6465310041", /* a byte after the padding */
        "0x6e0a",           /* a control character */
        "0x6e6f64c3a9",     /* UTF-8, not ASCII */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        roundtrip(cases[i], out);
        ASSERT(strlen(out) == 66 && out[0] == '0' && out[1] == 'x');
    }
    ASSERT_STR_EQ(
        roundtrip("0x6e0a", out),
        "0x6e0a000000000000000000000000000000000000000000000000000000000000");
    return 0;
}

TEST(a_name_that_reads_as_hex_stays_hex)
{
    /* bytes32("0x12") must not be shown as "0x12", which parses as hex */
    uint8_t id[32] = {'0', 'x', '1', '2'};
    char out[67];
    chaincli_instance_name(id, out);
    ASSERT_STR_EQ(
        out,
        "0x3078313200000000000000000000000000000000000000000000000000000000");
    return 0;
}

TEST_LIST(TEST_ENTRY(printable_names_are_shown_as_names),
          TEST_ENTRY(non_printable_ids_stay_hex),
          TEST_ENTRY(a_name_that_reads_as_hex_stays_hex))
