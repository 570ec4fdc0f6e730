/* test_kms.c - the dstack KMS calls (chain/kms): the isAppAllowed and
 * isKmsAllowed calldata of a boot info, compared with `cast calldata`. */
#include "cast_helper.h"
#include "chain/hex.h"
#include "chain/kms.h"
#include "harness.h"

static int same_as_cast(bool kms_route)
{
    static const char *const adv[] = {"INTEL-SA-00001", "INTEL-SA-00002"};
    struct kms_boot_info bi = {
        .tcb = "UpToDate", .tcb_len = 8, .advisories = adv, .n_advisories = 2};
    memset(bi.app_id, 0xaa, 20);
    memset(bi.instance_id, 0xbb, 20);
    for (int i = 0; i < 32; i++) {
        bi.compose[i] = (uint8_t)i;
        bi.device[i] = (uint8_t)(i + 1);
        bi.mr_agg[i] = (uint8_t)(i + 2);
        bi.mr_sys[i] = (uint8_t)(i + 3);
        bi.os_image[i] = (uint8_t)(i + 4);
    }
    char h[5][67], args[2048], want[8192], got[8192];
    hex_encode(bi.compose, 32, 1, h[0]);
    hex_encode(bi.device, 32, 1, h[1]);
    hex_encode(bi.mr_agg, 32, 1, h[2]);
    hex_encode(bi.mr_sys, 32, 1, h[3]);
    hex_encode(bi.os_image, 32, 1, h[4]);
    snprintf(args, sizeof args,
             "calldata '%s((address,bytes32,address,bytes32,bytes32,bytes32,"
             "bytes32,string,string[]))' '(0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaa,%s,0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,%s,%s,%s,"
             "%s,UpToDate,[INTEL-SA-00001,INTEL-SA-00002])'",
             kms_route ? "isKmsAllowed" : "isAppAllowed", h[0], h[1], h[2],
             h[3], h[4]);
    if (cast_run(args, want, sizeof want) != 0)
        return HARNESS_SKIPPED;
    uint8_t *d;
    size_t len;
    if (kms_encode_is_allowed(kms_route, &bi, &d, &len) != 0)
        return 1;
    hex_encode(d, len, 1, got);
    free(d);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "  got  %s\n  want %s\n", got, want);
        return 1;
    }
    return 0;
}

TEST(is_app_allowed_calldata_matches_cast)
{
    ASSERT_OK_OR_SKIP(same_as_cast(false));
    return 0;
}

TEST(is_kms_allowed_calldata_matches_cast)
{
    ASSERT_OK_OR_SKIP(same_as_cast(true));
    return 0;
}

TEST_LIST(TEST_ENTRY(is_app_allowed_calldata_matches_cast),
          TEST_ENTRY(is_kms_allowed_calldata_matches_cast))
