/* test_abi.c - ABI encoding compared with `cast calldata`, and strict
 * decoding of untrusted return data (chain/abi). */
#include "cast_helper.h"
#include "chain/abi.h"
#include "chain/hex.h"
#include "core/err.h"
#include "harness.h"

static int same_as_cast(const char *sig, const struct abi_val *v, size_t n,
                        const char *cast_args)
{
    uint8_t *d;
    size_t len;
    if (abi_encode_call(sig, v, n, &d, &len) != 0)
        return -1;
    char *mine = malloc(2 * len + 3);
    hex_encode(d, len, 1, mine);
    free(d);
    char theirs[8192], args[4096];
    snprintf(args, sizeof args, "calldata '%s' %s", sig, cast_args);
    int rv = cast_run(args, theirs, sizeof theirs);
    if (rv == 0 && strcmp(mine, theirs) != 0) {
        fprintf(stderr, "  mine:  %s\n  cast:  %s\n", mine, theirs);
        rv = 1;
    } else if (rv != 0) {
        printf("  (cast unavailable: cross-check skipped)\n");
        rv = HARNESS_SKIPPED;
    }
    free(mine);
    return rv;
}

TEST(static_and_dynamic_match_cast)
{
    uint8_t addr[20];
    for (int i = 0; i < 20; i++)
        addr[i] = (uint8_t)(0x11 * (i % 15 + 1));
    struct abi_val v[] = {abi_uint64(1234567), abi_address(addr),
                          abi_bool(true), abi_string("hello, ABI"),
                          abi_uint64(UINT64_MAX)};
    ASSERT_OK_OR_SKIP(
        same_as_cast("f(uint256,address,bool,string,uint256)", v, 5,
                     "1234567 0x112233445566778899aabbccddeeff1122334455 "
                     "true 'hello, ABI' 18446744073709551615"));
    const char *arr[] = {"a", "",
                         "a much longer string that spans more than "
                         "thirty-two bytes of data"};
    struct abi_val w[] = {abi_string_array(arr, 3), abi_string("")};
    ASSERT_OK_OR_SKIP(
        same_as_cast("g(string[],string)", w, 2,
                     "'[\"a\",\"\",\"a much longer string that spans "
                     "more than thirty-two bytes of data\"]' ''"));
    return 0;
}

TEST(app_boot_info_tuple_matches_cast)
{
    uint8_t app[20], inst[20], h[32];
    memset(app, 0xaa, 20);
    memset(inst, 0xbb, 20);
    memset(h, 0xcc, 32);
    const char *adv[] = {"INTEL-SA-00001", "INTEL-SA-00002"};
    struct abi_val f[] = {
        abi_address(app), abi_bytes32(h),         abi_address(inst),
        abi_bytes32(h),   abi_bytes32(h),         abi_bytes32(h),
        abi_bytes32(h),   abi_string("UpToDate"), abi_string_array(adv, 2)};
    struct abi_val t = abi_tuple(f, 9);
    char hx[67];
    hex_encode(h, 32, 1, hx);
    char args[2048];
    snprintf(args, sizeof args,
             "'(0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,%s,"
             "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,%s,%s,%s,%s,UpToDate,"
             "[INTEL-SA-00001,INTEL-SA-00002])'",
             hx, hx, hx, hx, hx);
    ASSERT_OK_OR_SKIP(
        same_as_cast("isAppAllowed((address,bytes32,address,bytes32,"
                     "bytes32,bytes32,bytes32,string,string[]))",
                     &t, 1, args));
    return 0;
}

TEST(decoding_is_bounds_checked)
{
    /* (bool true, string "ok") */
    uint8_t d[128] = {0};
    d[31] = 1;
    d[63] = 0x40;
    d[95] = 2;
    d[96] = 'o';
    d[97] = 'k';
    bool b;
    char s[16];
    ASSERT_EQ(abi_get_bool(d, sizeof d, 0, &b), 0);
    ASSERT(b);
    ASSERT_EQ(abi_get_string(d, sizeof d, 1, s, sizeof s), 0);
    ASSERT_STR_EQ(s, "ok");
    ASSERT_EQ(abi_get_string(d, sizeof d, 1, s, 2), ERR_TOOBIG);
    d[95] = 200; /* length past the end */
    ASSERT_EQ(abi_get_string(d, sizeof d, 1, s, sizeof s), ERR_MALFORMED);
    d[95] = 2;
    d[63] = 0xf0; /* offset past the end */
    ASSERT_EQ(abi_get_string(d, sizeof d, 1, s, sizeof s), ERR_MALFORMED);
    d[40] = 1; /* huge offset (above 2^64) */
    ASSERT_EQ(abi_get_string(d, sizeof d, 1, s, sizeof s), ERR_MALFORMED);
    d[31] = 2; /* not a bool */
    ASSERT_EQ(abi_get_bool(d, sizeof d, 0, &b), ERR_MALFORMED);
    ASSERT_EQ(abi_get_bool(d, 20, 0, &b), ERR_MALFORMED); /* short */
    uint8_t w[64] = {0};
    w[31] = 0x20;
    w[63] = 0xff; /* an array claiming 255 words in 0 bytes */
    const uint8_t *words;
    size_t n;
    ASSERT_EQ(abi_get_words(w, sizeof w, 0, &words, &n), ERR_MALFORMED);
    uint64_t v;
    uint8_t big[32] = {1};
    ASSERT_EQ(abi_get_uint64(big, 32, 0, &v), ERR_OVERFLOW);
    uint8_t a[32] = {0};
    a[0] = 1;
    uint8_t addr[20];
    ASSERT_EQ(abi_get_address(a, 32, 0, addr), ERR_MALFORMED);
    return 0;
}

TEST(revert_reasons)
{
    /* Error("Not the leader") as anvil returns it */
    const char *hx =
        "0x08c379a0"
        "0000000000000000000000000000000000000000000000000000000000000020"
        "000000000000000000000000000000000000000000000000000000000000000e"
        "4e6f7420746865206c6561646572000000000000000000000000000000000000";
    uint8_t d[200];
    size_t n;
    ASSERT_EQ(hex_decode(hx, strlen(hx), d, sizeof d, &n), 0);
    char why[64];
    abi_revert_reason(d, n, why, sizeof why);
    ASSERT_STR_EQ(why, "Not the leader");
    uint8_t custom[] = {0x11, 0x8c, 0xda, 0xa7, 0, 0};
    abi_revert_reason(custom, sizeof custom, why, sizeof why);
    ASSERT_STR_EQ(why, "custom error 0x118cdaa7");
    abi_revert_reason(custom, 2, why, sizeof why);
    ASSERT_STR_EQ(why, "reverted without a reason");
    return 0;
}

TEST_LIST(TEST_ENTRY(static_and_dynamic_match_cast),
          TEST_ENTRY(app_boot_info_tuple_matches_cast),
          TEST_ENTRY(decoding_is_bounds_checked), TEST_ENTRY(revert_reasons))
