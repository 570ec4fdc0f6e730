/* transport.h - the raft transport, behind one init function.
 *
 * canonical/raft's uv TCP transport (raft_uv_tcp) for outgoing connections;
 * incoming ones are accepted here, their raft_uv_tcp preamble checked
 * (protocol 1, id > 0, an address of 1..256 bytes with its NUL), then the
 * opener authenticated, all within TRANSPORT_HANDSHAKE_MS. After that, every
 * byte the connection carries passes the framing checker (net/raftframe.h)
 * on its way to raft through a local socket pair: raft's own decoder trusts
 * peer-sent lengths, so only well-formed messages may reach it. A framing
 * error closes the connection and is counted.
 *
 * raft_uv_tcp connections are one-way (a node sends on the connections it
 * opens and receives on those it accepts), so authenticating the opener of
 * each connection covers everything raft receives. The handshake, after
 * raft_uv_tcp's own preamble (protocol, id, address):
 *
 *   acceptor -> opener  magic[8] | nonce[32] | acceptor id (u64 BE)
 *   opener -> acceptor  chain mode, magic "nftraft1": signature[65]
 *                       (r | s | recovery id) with the node's key over
 *                       keccak256("nftraft raft handshake v1" | domain[32] |
 *                                 acceptor id | opener id | nonce);
 *                       static mode, magic "nftraftS": HMAC-SHA256 with the
 *                       cluster secret over
 *                       "nftraft raft handshake v1 static" | acceptor id |
 *                       opener id | nonce   (32 bytes)
 *   acceptor -> opener  1 byte: 1 accepted, 0 refused (then closed)
 *
 * domain = keccak256(chain id as uint256 | contract address), so a
 * signature is good for one acceptor, one challenge and one cluster only.
 * What this does not give: confidentiality or per-message integrity after
 * the handshake (no TLS). */
#ifndef NFTRAFT_TRANSPORT_H
#define NFTRAFT_TRANSPORT_H

#include <raft/uv.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TRANSPORT_HANDSHAKE_MS 5000
#define TRANSPORT_SECRET_LEN 32

struct transport_auth {
    /* Chain mode (sign != NULL): */
    void *arg;
    /* Sign digest with this node's key: r | s | recovery id (0/1). */
    int (*sign)(void *arg, const uint8_t digest[32], uint8_t sig[65]);
    /* 0 when addr may speak raft as id; otherwise non-zero and why.
     * addr NULL: whether id may be dialled (the acceptor does not sign:
     * the id alone is checked). */
    int (*authorize)(void *arg, uint64_t id, const uint8_t addr[20], char *why,
                     size_t len);
    uint8_t domain[32];
    /* Static mode (sign == NULL): the cluster secret. */
    uint8_t secret[TRANSPORT_SECRET_LEN];
};

struct transport_config {
    /* NULL = no handshake at all (--insecure-no-auth, tests only);
     * otherwise a copy is kept. */
    const struct transport_auth *auth;
    uint64_t max_message;     /* payload cap of one raft message (0: 64 MiB) */
    unsigned max_connections; /* accepted connections at once (0: 64); at
                                 most half of them still in the handshake */
};

/* Initialize t on loop. Returns 0 or ERR_NOMEM/ERR_IO. Release with
 * transport_free() only after raft has closed (node_close's callback). */
int transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                   const struct transport_config *cfg);
void transport_free(struct raft_uv_transport *t);

/* The domain of transport_auth for a chain id and contract address. */
void transport_domain(uint64_t chain_id, const uint8_t contract[20],
                      uint8_t out[32]);

/* The digest the opener signs (exposed for tests). */
void transport_digest(const uint8_t domain[32], uint64_t acceptor,
                      uint64_t opener, const uint8_t nonce[32],
                      uint8_t out[32]);

/* Chain mode: ask authorize() again for every established incoming
 * connection (its raft id and the key that signed its handshake) and every
 * stream raft opened (its raft id), and close the ones no longer allowed
 * (an opened stream is shut down; raft then dials again, and a dial to an
 * id authorize() refuses is not made: raft's connect fails at once and it
 * retries later, logged once per id). Call when the member view changes.
 * Returns how many were closed. */
unsigned transport_reauthorize(struct raft_uv_transport *t);

/* Milliseconds since raft id `id` last sent anything on a connection it
 * opened to this node (a follower answers every leader heartbeat on one),
 * or UINT64_MAX when it has no connection open: the leader's view of who
 * is alive. */
uint64_t transport_heard_ms_ago(struct raft_uv_transport *t, uint64_t id);

/* Incoming connections refused since start: bad preambles, failed
 * handshakes, framing errors and connections over the caps (for /metrics). */
uint64_t transport_refused(const struct raft_uv_transport *t);

#endif
