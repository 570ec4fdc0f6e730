/* rpc.h - Ethereum JSON-RPC over core/httpc on the caller's libuv loop.
 *
 * Every answer is untrusted: malformed JSON, wrong id or types, oversized
 * bodies and hanging servers become errors (ERR_RPC, ERR_TIMEOUT, ERR_IO,
 * ERR_MALFORMED, ERR_TOOBIG). Transport failures are retried with
 * exponential backoff; JSON-RPC errors and reverts are not. If a call
 * returns an error its callback never fires. */
#ifndef NFTRAFT_RPC_H
#define NFTRAFT_RPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct httpc;
struct rpc;

/* A client for url over http (not owned). timeout_ms bounds each attempt;
 * retries is the number of extra attempts after a transport failure. */
int rpc_init(struct rpc **out, uv_loop_t *loop, struct httpc *http,
             const char *url, unsigned timeout_ms, unsigned retries);

/* Free the client. Calls still pending complete with ERR_SHUTDOWN first. */
void rpc_close(struct rpc *r);

/* cb(data, err, result, errmsg): result is borrowed for the callback. */
typedef void (*rpc_cb)(void *data, int err, json_t *result, const char *errmsg);
int rpc_call(struct rpc *r, const char *method, json_t *params, rpc_cb cb,
             void *data);

typedef void (*rpc_u64_cb)(void *data, int err, uint64_t v, const char *errmsg);
int rpc_chain_id(struct rpc *r, rpc_u64_cb cb, void *data);
int rpc_block_number(struct rpc *r, rpc_u64_cb cb, void *data);

/* eth_call(to, calldata) at block ("latest" or a 0x quantity). A revert is
 * ERR_REVERT with the decoded reason in errmsg. */
typedef void (*rpc_bytes_cb)(void *data, int err, const uint8_t *d, size_t len,
                             const char *errmsg);
int rpc_eth_call(struct rpc *r, const uint8_t to[20], const uint8_t *calldata,
                 size_t len, const char *block, rpc_bytes_cb cb, void *data);

/* eth_getLogs for address from block `from` to "latest" with topic0 (NULL:
 * any). result: the logs array, each entry checked to be an object with
 * string "topics" and "data"; at most max_logs (ERR_TOOBIG above). */
int rpc_get_logs(struct rpc *r, const uint8_t address[20], uint64_t from,
                 const uint8_t topic0[32], size_t max_logs, rpc_cb cb,
                 void *data);

/* Check one JSON-RPC answer body to call `id` (http_status only goes into
 * the message): 0 with *root (a new reference: the caller decrefs it) and
 * *result (borrowed from *root); otherwise *root and *result are NULL and
 * ERR_MALFORMED (not JSON, not an object, wrong id, no result), ERR_RPC (a
 * JSON-RPC error) or ERR_REVERT (error data that decodes as revert data),
 * with the reason in msg. Pure: the client and the fuzz target use it. */
int rpc_parse_answer(const void *body, size_t len, uint64_t id,
                     long http_status, json_t **root, json_t **result,
                     char *msg, size_t msglen);

/* An eth_getLogs result: an array of at most max_logs objects, each with a
 * "topics" array of at most 4 and a string "data". 0, ERR_MALFORMED or
 * ERR_TOOBIG. */
int rpc_check_logs(const json_t *result, size_t max_logs);

#endif
