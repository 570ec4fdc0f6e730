/* transport.h - the raft transport, behind one init function.
 *
 * Today this is canonical/raft's plain uv TCP transport; an authenticated
 * transport (wallet-key handshake) replaces it here without touching core/. */
#ifndef NFTRAFT_TRANSPORT_H
#define NFTRAFT_TRANSPORT_H

#include <raft/uv.h>
#include <uv.h>

/* Initialize t on loop. Returns 0 or ERR_NOMEM/ERR_IO. Release with
 * transport_free() only after raft has closed (node_close's callback). */
int transport_init(struct raft_uv_transport *t, uv_loop_t *loop);
void transport_free(struct raft_uv_transport *t);

#endif
