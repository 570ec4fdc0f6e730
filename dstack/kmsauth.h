/* kmsauth.h - dstack's KMS auth webhook (the API of auth-eth /
 * auth-eth-bun) over the project's chain client, or auth-mock's answers
 * with mock set, served on a libuv loop. `nftraft kms-auth` (cmd/kmsauth.c)
 * is its command line. */
#ifndef NFTRAFT_KMSAUTH_H
#define NFTRAFT_KMSAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct kmsauth;

/* The webhook's settings. The strings are what the reference reads from
 * its environment (named beside each); NULL or "" means unset and takes
 * the reference's default. kmsauth_start copies what it keeps. */
struct kmsauth_config {
    const char *host;         /* listen address */
    int port;                 /* listen port; 0 = any free one (kmsauth_port) */
    bool mock;                /* auth-mock: no chain */
    const char *kms_contract; /* KMS_CONTRACT_ADDR (chain mode: the zero
                                 address; mock: only printed by GET /) */
    const char *rpc_url;      /* ETH_RPC_URL (http://localhost:8545; mock:
                                 only printed by GET /) */
    const char *chain_id;     /* ETH_CHAIN_ID: fail closed when the RPC
                                 reports another chain (unset: no check) */
    const char *confirmations; /* ETH_FINALITY_CONFIRMATIONS ("0") */
    const char *mock_policy;   /* MOCK_POLICY (allow-all; unknown: allow-all
                                  with a warning) */
    const char *mock_gateway_app_id;        /* MOCK_GATEWAY_APP_ID */
    const char *mock_allowed_device_ids;    /* MOCK_ALLOWED_DEVICE_IDS */
    const char *mock_allowed_mr_aggregated; /* MOCK_ALLOWED_MR_AGGREGATED */
    const char *mock_app_implementation;    /* MOCK_APP_IMPLEMENTATION */
    const char *mock_chain_id;              /* MOCK_CHAIN_ID ("1337") */
};

/* Validate cfg and start serving POST /bootAuth/app, POST /bootAuth/kms and
 * GET / on loop. 0 with the webhook in *out; or a negative code with a
 * one-line reason in errmsg (ERR_INVALID for a bad setting) and whatever
 * was already started closing: run the loop to release it. */
int kmsauth_start(struct kmsauth **out, uv_loop_t *loop,
                  const struct kmsauth_config *cfg, char *errmsg,
                  size_t errlen);

/* The port it listens on. */
int kmsauth_port(const struct kmsauth *ka);

/* Stop: pending chain calls fail closed, connections close, and ka is
 * freed once its handles are closed (the loop keeps running until then). */
void kmsauth_stop(struct kmsauth *ka);

#endif
