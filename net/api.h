/* api.h - the node's HTTP API (GET /counter, POST /increment, GET /log,
 * GET /status, GET /members, GET /metrics) on net/httpd.
 *
 * Writes are proposed through core/node on the leader; a follower forwards
 * them (and linearizable reads) to the leader over net/relay's kept-alive
 * connections (core/httpc when the leader's URL is not http://IP:port) and
 * relays the leader's answer. Nothing here blocks the loop. */
#ifndef NFTRAFT_API_H
#define NFTRAFT_API_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <jansson.h>

struct api;
struct config;
struct node;
struct fsm;

/* Hooks for the chain reconciler (all optional). status_json returns a new
 * reference for /status "chain" (NULL -> null); members_json a new reference
 * for /members (NULL -> the static list); writable returns 0 or an error text
 * when this node must refuse writes. */
struct api_chain_hooks {
    void *data;
    json_t *(*status_json)(void *data);
    json_t *(*members_json)(void *data);
    const char *(*write_refusal)(void *data);
    /* polls whose two --rpc-url endpoints disagreed (for /metrics) */
    uint64_t (*rpc_disagreements)(void *data);
};

/* Create the API on loop for node/fsm (not owned; they outlive the API) and
 * start listening on cfg->http_host:http_port. Fails with ERR_BUSY when the
 * port is taken; errmsg says what failed. */
int api_init(struct api **out, uv_loop_t *loop, const struct config *cfg,
             struct node *node, struct fsm *fsm, char *errmsg, size_t errlen);

/* Set or change the HTTP base URL of a peer (used to forward to the leader).
 * Static peers are known from cfg; the reconciler adds the rest. */
int api_set_peer_url(struct api *a, uint64_t id, const char *url,
                     const char *instance_id);

void api_set_chain_hooks(struct api *a, const struct api_chain_hooks *hooks);

/* The raft transport, for /metrics (refused handshakes); outlives api. */
struct raft_uv_transport;
void api_set_transport(struct api *a, const struct raft_uv_transport *t);

/* The PostgreSQL coordinator (--pg): /status gains "pg", /metrics the
 * nftraft_pg_* series. c outlives the API (NULL: none). */
struct coord;
void api_set_pg(struct api *a, struct coord *c);

/* A peer's HTTP base URL (no trailing slash), or NULL when unknown. */
const char *api_peer_url(struct api *a, uint64_t id);

/* Stop listening, cancel forwarded requests (answered 503), close the HTTP
 * client and free the API; cb runs last. Shutdown order: node_close() first
 * (raft fails its in-flight applies, which are answered here), then, from
 * node_close's callback, api_close(): the API never touches the node again. */
void api_close(struct api *a, void (*cb)(void *data), void *data);

#endif
