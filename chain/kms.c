/* kms.c - the dstack KMS contract's calls (see kms.h): the only file that
 * spells their ABI signatures. */
#include "chain/kms.h"
#include "chain/abi.h"
#include "core/err.h"

#include <stdlib.h>

#define BOOT_INFO                                                              \
    "(address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,"         \
    "string[])"

int kms_encode_is_allowed(bool kms_route, const struct kms_boot_info *bi,
                          uint8_t **out, size_t *len)
{
    struct abi_val f[9] = {abi_address(bi->app_id),
                           abi_bytes32(bi->compose),
                           abi_address(bi->instance_id),
                           abi_bytes32(bi->device),
                           abi_bytes32(bi->mr_agg),
                           abi_bytes32(bi->mr_sys),
                           abi_bytes32(bi->os_image),
                           abi_string(""),
                           abi_string_array(bi->advisories, bi->n_advisories)};
    f[7].data = (const uint8_t *)bi->tcb; /* may hold NUL bytes */
    f[7].len = bi->tcb_len;
    struct abi_val t = abi_tuple(f, 9);
    return abi_encode_call(kms_route ? "isKmsAllowed(" BOOT_INFO ")"
                                     : "isAppAllowed(" BOOT_INFO ")",
                           &t, 1, out, len) == 0
               ? 0
               : ERR_NOMEM;
}

static int call(struct rpc *rpc, const uint8_t kms[20], const char *block,
                const uint8_t *d, size_t len, rpc_bytes_cb cb, void *data)
{
    int rv = rpc_eth_call(rpc, kms, d, len, block, cb, data);
    free((void *)d);
    return rv;
}

int kms_is_allowed(struct rpc *rpc, const uint8_t kms[20], const char *block,
                   bool kms_route, const struct kms_boot_info *bi,
                   rpc_bytes_cb cb, void *data)
{
    uint8_t *d;
    size_t len;
    if (kms_encode_is_allowed(kms_route, bi, &d, &len) != 0)
        return ERR_NOMEM;
    return call(rpc, kms, block, d, len, cb, data);
}

static int call_view(struct rpc *rpc, const uint8_t kms[20], const char *block,
                     const char *sig, rpc_bytes_cb cb, void *data)
{
    uint8_t *d;
    size_t len;
    if (abi_encode_call(sig, NULL, 0, &d, &len) != 0)
        return ERR_NOMEM;
    return call(rpc, kms, block, d, len, cb, data);
}

int kms_gateway_app_id(struct rpc *rpc, const uint8_t kms[20],
                       const char *block, rpc_bytes_cb cb, void *data)
{
    return call_view(rpc, kms, block, "gatewayAppId()", cb, data);
}

int kms_app_implementation(struct rpc *rpc, const uint8_t kms[20],
                           const char *block, rpc_bytes_cb cb, void *data)
{
    return call_view(rpc, kms, block, "appImplementation()", cb, data);
}
