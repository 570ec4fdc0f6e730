/* transport.h - the raft transport, behind one init function.
 *
 * canonical/raft's uv TCP transport for outgoing connections; incoming ones
 * are accepted here, their raft_uv_tcp preamble checked (protocol 1, id > 0,
 * an address of 1..256 bytes with its NUL) within the handshake deadline.
 * In chain mode, an authentication step on every connection: the node that opened it must prove that it
 * holds the key of the owner of the active token whose id it claims as its
 * raft id, before raft sees a byte from it.
 *
 * raft_uv_tcp connections are one-way (a node sends on the connections it
 * opens and receives on those it accepts), so authenticating the opener of
 * each connection covers everything raft receives. The handshake, after
 * raft_uv_tcp's own preamble (protocol, id, address):
 *
 *   acceptor -> opener  "nftraft1" | nonce[32] | acceptor id (u64 BE)
 *   opener -> acceptor  signature[65] (r | s | recovery id) over
 *                       keccak256("nftraft raft handshake v1" | domain[32] |
 *                                 acceptor id | opener id | nonce)
 *   acceptor -> opener  1 byte: 1 accepted, 0 refused (then closed)
 *
 * domain = keccak256(chain id as uint256 | contract address), so a
 * signature is good for one acceptor, one challenge and one cluster only.
 * Each step is bounded by TRANSPORT_HANDSHAKE_MS. What this does not give:
 * confidentiality or per-message integrity after the handshake (no TLS). */
#ifndef NFTRAFT_TRANSPORT_H
#define NFTRAFT_TRANSPORT_H

#include <raft/uv.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TRANSPORT_HANDSHAKE_MS 5000

struct transport_auth {
    void *arg;
    /* Sign digest with this node's key: r | s | recovery id (0/1). */
    int (*sign)(void *arg, const uint8_t digest[32], uint8_t sig[65]);
    /* 0 when addr may speak raft as id; otherwise non-zero and why. */
    int (*authorize)(void *arg, uint64_t id, const uint8_t addr[20],
                     char *why, size_t len);
    uint8_t domain[32];
};

/* Initialize t on loop; auth NULL = no handshake (static mode), otherwise a
 * copy of *auth is kept. Returns 0 or ERR_NOMEM/ERR_IO. Release with
 * transport_free() only after raft has closed (node_close's callback). */
int transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                   const struct transport_auth *auth);
void transport_free(struct raft_uv_transport *t);

/* The domain of transport_auth for a chain id and contract address. */
void transport_domain(uint64_t chain_id, const uint8_t contract[20],
                      uint8_t out[32]);

/* The digest the opener signs (exposed for tests). */
void transport_digest(const uint8_t domain[32], uint64_t acceptor,
                      uint64_t opener, const uint8_t nonce[32],
                      uint8_t out[32]);

/* Incoming connections refused since start: bad preambles, failed
 * handshakes (for /metrics). */
uint64_t transport_refused(const struct raft_uv_transport *t);

#endif
