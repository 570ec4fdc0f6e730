/* sender.h - sends contract transactions from one wallet, one at a time:
 * nonce (pending count, re-read after any failure so a dropped transaction
 * never wedges the queue), gas estimate (a revert is reported, nothing is
 * sent), EIP-1559 fees from eth_gasPrice, signing, eth_sendRawTransaction,
 * and the receipt. All on the caller's libuv loop. */
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
 * (no receipt in time: the transaction may still be mined), ERR_RPC... */
typedef void (*sender_cb)(void *data, int err, const uint8_t txhash[32],
                          uint64_t block, const char *errmsg);
int sender_send(struct sender *s, const uint8_t to[20],
                const uint8_t *calldata, size_t len, sender_cb cb,
                void *data);

#endif
