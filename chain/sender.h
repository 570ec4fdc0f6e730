/* sender.h - sends contract transactions from one wallet, one at a time:
 * nonce (pending count, re-read after any failure so a dropped transaction
 * never wedges the queue), gas estimate (a revert is reported, nothing is
 * sent), EIP-1559 fees from eth_gasPrice (bumped 12.5% to replace a stuck
 * one, never above a ceiling), signing, eth_sendRawTransaction, and the
 * receipt. A send refused because its nonce is taken ("nonce too low",
 * "replacement transaction underpriced": another sender on this wallet) is
 * retried with back-off (300 ms doubling to 5 s) at the pending nonce read
 * again, and fails with ERR_BUSY after 8 retries; "already known" (the
 * same transaction is pooled) counts as sent. All on the caller's libuv
 * loop. */
#ifndef NFTRAFT_SENDER_H
#define NFTRAFT_SENDER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rpc;
struct wallet;
struct sender;

/* rpc and w are borrowed and must outlive the sender. */
int sender_init(struct sender **out, uv_loop_t *loop, struct rpc *rpc,
                const struct wallet *w, uint64_t chain_id,
                unsigned receipt_timeout_ms);

/* Fail queued and in-flight sends with ERR_SHUTDOWN (their callbacks run
 * inside this call) and free the sender. Close the rpc client first (so no
 * RPC answer arrives later); the sender's timer closes asynchronously and
 * the loop must run once more. */
void sender_close(struct sender *s);

/* cb(data, err, txhash, block, errmsg): err 0 once mined with status 1;
 * ERR_REVERT (estimate or receipt status 0, reason in errmsg), ERR_TIMEOUT
 * (no receipt in time: the transaction may still be mined), ERR_BUSY (its
 * nonce kept being taken by another sender), ERR_RPC... */
typedef void (*sender_cb)(void *data, int err, const uint8_t txhash[32],
                          uint64_t block, const char *errmsg);
int sender_send(struct sender *s, const uint8_t to[20], const uint8_t *calldata,
                size_t len, sender_cb cb, void *data);

/* The ceiling on a transaction's max fee per gas, in wei (0 = none);
 * sender_init sets SENDER_DEFAULT_MAX_FEE_WEI. A first transaction's max
 * fee is clamped to it (ERR_TOOBIG when the gas price alone is above it);
 * a replacement of a stuck transaction that would need more is not sent:
 * the job fails with ERR_TOOBIG and the stuck transaction is reported (one
 * error log line per nonce, and sender_stuck) until it is mined, or a
 * later transaction at a new nonce is sent, or the ceiling is raised. */
#define SENDER_DEFAULT_MAX_FEE_WEI 100000000000ULL /* 100 gwei */
void sender_set_max_fee(struct sender *s, uint64_t wei);

/* 1 and a one-line description of the stuck transaction in msg (nonce,
 * hash, its max fee, the ceiling), or 0 when none is stuck. */
int sender_stuck(const struct sender *s, char *msg, size_t len);

#endif
