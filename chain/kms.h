/* kms.h - the calls nftraft makes on the dstack KMS contract (DstackKms):
 * gatewayAppId(), appImplementation(), and isAppAllowed / isKmsAllowed of
 * an AppBootInfo. The ABI signatures are spelled in kms.c only. Answers
 * come back raw (rpc_bytes_cb): dstack/kmsauth decodes them the way viem
 * does, which is its own business. A call that returns an error never
 * calls cb (chain/rpc's rule). */
#ifndef NFTRAFT_KMS_H
#define NFTRAFT_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/rpc.h"

/* The AppBootInfo tuple (address appId, bytes32 composeHash, address
 * instanceId, bytes32 deviceId, bytes32 mrAggregated, bytes32 mrSystem,
 * bytes32 osImageHash, string tcbStatus, string[] advisoryIds). Pointers
 * are borrowed for the call. */
struct kms_boot_info {
    uint8_t app_id[20], instance_id[20];
    uint8_t compose[32], device[32], mr_agg[32], mr_sys[32], os_image[32];
    const char *tcb; /* tcb_len bytes, may hold NUL bytes */
    size_t tcb_len;
    const char *const *advisories;
    size_t n_advisories;
};

/* The calldata of isKmsAllowed(info) (kms_route) or isAppAllowed(info):
 * *out malloc'd (the caller frees). 0 or ERR_NOMEM. */
int kms_encode_is_allowed(bool kms_route, const struct kms_boot_info *bi,
                          uint8_t **out, size_t *len);

/* eth_call of the KMS at `kms`, at block ("latest" or a 0x quantity). */
int kms_is_allowed(struct rpc *rpc, const uint8_t kms[20], const char *block,
                   bool kms_route, const struct kms_boot_info *bi,
                   rpc_bytes_cb cb, void *data);
int kms_gateway_app_id(struct rpc *rpc, const uint8_t kms[20],
                       const char *block, rpc_bytes_cb cb, void *data);
int kms_app_implementation(struct rpc *rpc, const uint8_t kms[20],
                           const char *block, rpc_bytes_cb cb, void *data);

#endif
