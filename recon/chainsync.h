/* chainsync.h - the reconciler in the daemon (chain mode). Each period
 * recon/driver polls the membership contract at one block (recon/poll:
 * clusterState, the member view and the node's own vote), pings the
 * on-chain leader, and acts on recon/decide's decisions: raft membership
 * changes and leadership transfer (as raft leader), electLeaderByToken,
 * leaderHeartbeat and no-confidence votes (signed transactions). This
 * module is the driver's host: it owns the chain client (chain/rpc,
 * chain/sender, chain/membership), the timer, the cached view and the
 * transport handshake, and fills the driver's two ops tables with them and
 * the node. Raft keeps serving when the chain is slow or down; /status
 * shows the chain's view.
 *
 * Life cycle: chainsync_init -> chainsync_discover (blocks on the loop until
 * the contract says which token this instance is) -> chainsync_attach ->
 * ... -> chainsync_stop (before node_close) -> chainsync_free (after). */
#ifndef NFTRAFT_CHAINSYNC_H
#define NFTRAFT_CHAINSYNC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct api;
struct config;
struct node;
struct chainsync;

int chainsync_init(struct chainsync **out, uv_loop_t *loop,
                   const struct config *cfg, char *errmsg, size_t errlen);

/* Run the loop until the contract answered: *token is this instance's
 * token id. ERR_NOTFOUND when the instance is not an active registered
 * instance, ERR_RPC/ERR_TIMEOUT when the chain does not answer. */
int chainsync_discover(struct chainsync *cs, uint64_t *token, char *errmsg,
                       size_t errlen);

/* Active members known to have an address (for raft's bootstrap): up to
 * cap raft ids (token << 32 | epoch). */
unsigned chainsync_members(struct chainsync *cs, uint64_t *ids, unsigned cap);

/* After chainsync_discover: this instance's raft id, token << 32 | epoch
 * of its registration (a new registration of a token is a new server). */
uint64_t chainsync_raft_id(struct chainsync *cs);

/* cb(data, new_id) once this running instance is registered as another
 * raft id (its token registered anew, in a new epoch) and is not raft
 * leader: the host restarts it, since raft ids cannot change in process. */
typedef void (*chainsync_moved_cb)(void *data, uint64_t new_id);
void chainsync_on_moved(struct chainsync *cs, chainsync_moved_cb cb,
                        void *data);

/* Start reconciling with node and api (both outlive the reconciler);
 * transport's established connections are re-authorized whenever the
 * member view changes. */
struct raft_uv_transport;
void chainsync_attach(struct chainsync *cs, struct node *node, struct api *api,
                      struct raft_uv_transport *transport);

/* Where raft id `id`'s node is: its endpoints registered on chain
 * (registerNode), else its token's --peers entry; NULL when neither is
 * known. Valid until the next view. */
struct config_peer;
const struct config_peer *chainsync_peer(struct chainsync *cs, uint64_t id);

/* The raft transport's handshake (net/transport.h) for this node: signs
 * with its wallet; a peer may claim raft id N = token << 32 | epoch when
 * token is active, registered in exactly that epoch, and its key is the
 * token's node key (on a v1 contract: its owner; epoch 0) in the latest view
 * read from the contract (a failed or malformed read keeps the previous view).
 * Valid until chainsync_free. */
struct transport_auth;
void chainsync_transport_auth(struct chainsync *cs,
                              struct transport_auth *auth);

/* Stop timers and chain I/O (pending calls end now). */
void chainsync_stop(struct chainsync *cs);
/* Free, after node_close's callback (raft changes in flight have ended). */
void chainsync_free(struct chainsync *cs);

#endif
