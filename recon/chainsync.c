/* chainsync.c - the reconciler in the daemon: owns the chain client (rpc,
 * sender, the membership binding), the libuv timer and the cached view,
 * discovers this instance's token, and gives recon/driver its two ops
 * tables over the real chain and the real node and transport. */
#include "recon/chainsync.h"
#include "chain/hex.h"
#include "chain/membership.h"
#include "chain/rpc.h"
#include "chain/sender.h"
#include "chain/wallet.h"
#include "core/config.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/node.h"
#include "core/redact.h"
#include "net/api.h"
#include "net/transport.h"
#include "recon/driver.h"
#include "recon/viewcache.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct chainsync {
    uv_loop_t *loop;
    const struct config *cfg;
    struct httpc *http;
    struct rpc *rpc;
    struct wallet *w;
    struct sender *sender;
    struct membership mc; /* the contract over rpc and sender */
    struct rpc *rpc2;     /* a second --rpc-url (NULL: none): read only */
    struct membership mc2;
    uint8_t contract[20], instance[32];
    char rpc_shown[CONFIG_URL_MAX];  /* --rpc-url, credentials redacted */
    char rpc2_shown[CONFIG_URL_MAX]; /* the second, redacted ("": none) */
    uint64_t chain_id, self;
    struct node *node;
    struct api *api;
    struct raft_uv_transport *transport; /* re-checked on view changes */
    uv_timer_t timer;
    bool timer_ready, stopping;
    struct endpoint {
        struct chainsync *cs;
        bool second; /* the second --rpc-url (read only) */
    } ep[2];         /* the chain tables' data */
    struct recon_chain chain_ops;
    struct recon_chain chain2_ops; /* the second endpoint's reads */
    struct recon_raft raft_ops;
    struct recon_driver d; /* the member view lives here */
    uint64_t calls;        /* discovery's chain calls */
    recon_ping_cb ping_cb; /* the one ping in flight */
    void *ping_arg;
    struct recon_viewcache cache; /* for a restart during a chain outage */
    bool chain_unverified;        /* discovery used the cache (the driver checks
                                     eth_chainId before acting) */
    uint64_t cached_block;        /* the cached view's block */
    bool latest_has_self;         /* discovery: listed at "latest" */
    chainsync_moved_cb moved;     /* this instance's registration moved */
    void *moved_data;
    uint64_t moved_to; /* its new raft id, told on the next tick */
    /* discovery */
    bool discover_done;
    int discover_err;
    char discover_msg[256];
};

static void tick(uv_timer_t *t);

#define DISCOVER_TRIES 5   /* reads while the two endpoints disagree */
#define DISCOVER_WAIT_S 60 /* for a registration to be confirmed */

/* ---- the chain ops ---- */

/* A table's data is a struct endpoint: which endpoint its reads go to. Both
 * tables share every other op (transactions, pings and clocks use the
 * chainsync itself). */

static struct chainsync *ep_cs(void *data)
{
    return ((struct endpoint *)data)->cs;
}

/* The endpoint's rpc and contract binding; NULL once closed. */
static struct membership *ep_mc(void *data)
{
    struct endpoint *e = data;
    if (e->second)
        return e->cs->rpc2 ? &e->cs->mc2 : NULL;
    return e->cs->rpc ? &e->cs->mc : NULL;
}

static struct rpc *ep_rpc(void *data)
{
    struct endpoint *e = data;
    return e->second ? e->cs->rpc2 : e->cs->rpc;
}

static int op_chain_id(void *data, recon_u64_cb cb, void *arg)
{
    struct rpc *rpc = ep_rpc(data);
    return rpc ? rpc_chain_id(rpc, cb, arg) : ERR_SHUTDOWN;
}

static int op_block_number(void *data, recon_u64_cb cb, void *arg)
{
    struct rpc *rpc = ep_rpc(data);
    return rpc ? rpc_block_number(rpc, cb, arg) : ERR_SHUTDOWN;
}

static int op_read_state(void *data, const char *block, membership_state_cb cb,
                         void *arg)
{
    struct membership *mc = ep_mc(data);
    return mc ? membership_read_state(mc, block, cb, arg) : ERR_SHUTDOWN;
}

static int op_read_nodes(void *data, const char *block, membership_nodes_cb cb,
                         void *arg)
{
    struct membership *mc = ep_mc(data);
    return mc ? membership_read_nodes(mc, block, cb, arg) : ERR_SHUTDOWN;
}

static int op_read_vote(void *data, const char *block, uint64_t token,
                        membership_vote_cb cb, void *arg)
{
    struct membership *mc = ep_mc(data);
    return mc ? membership_read_vote(mc, block, token, cb, arg) : ERR_SHUTDOWN;
}

static int op_send(void *data, const struct recon_tx *tx, sender_cb cb,
                   void *arg)
{
    struct chainsync *cs = ep_cs(data);
    if (cs->sender == NULL)
        return ERR_SHUTDOWN;
    switch (tx->kind) {
    case RECON_TX_ELECT:
        return membership_elect_by_token(&cs->mc, tx->token, cb, arg);
    case RECON_TX_HEARTBEAT:
        return membership_heartbeat(&cs->mc, cb, arg);
    case RECON_TX_VOTE:
        return membership_vote_for_leader_token(
            &cs->mc, tx->token, tx->leader_token, tx->against, cb, arg);
    }
    return ERR_INVALID;
}

static void ping_done(void *data, const struct httpc_resp *r)
{
    struct chainsync *cs = data;
    cs->ping_cb(cs->ping_arg, r->err == 0 && r->status == 200);
}

static int op_ping(void *data, const char *http_base, recon_ping_cb cb,
                   void *arg)
{
    struct chainsync *cs = ep_cs(data);
    char url[CONFIG_URL_MAX + 16];
    if (cs->http == NULL)
        return ERR_SHUTDOWN;
    snprintf(url, sizeof url, "%s/status", http_base);
    cs->ping_cb = cb;
    cs->ping_arg = arg;
    return httpc_request(cs->http, "GET", url, NULL, NULL, 0,
                         cs->cfg->leader_ping_ms, 1 << 16, ping_done, cs, NULL);
}

static void op_poll_soon(void *data)
{
    struct chainsync *cs = ep_cs(data);
    if (cs->timer_ready)
        uv_timer_start(&cs->timer, tick, 50, cs->cfg->chain_poll_ms);
}

static uint64_t op_now_ms(void *data)
{
    struct chainsync *cs = ep_cs(data);
    return uv_now(cs->loop);
}

static uint64_t op_wall_s(void *data)
{
    (void)data;
    return (uint64_t)time(NULL);
}

/* ---- the raft ops ---- */

static bool op_is_leader(void *data)
{
    struct chainsync *cs = data;
    struct node_status st;
    node_status(cs->node, &st);
    return st.role == NODE_LEADER && st.ready;
}

static unsigned op_servers(void *data, struct recon_server *rs, unsigned cap)
{
    struct chainsync *cs = data;
    struct node_server servers[MEMBERSHIP_MAX_NODES];
    if (cap > MEMBERSHIP_MAX_NODES)
        cap = MEMBERSHIP_MAX_NODES;
    unsigned ns = node_servers(cs->node, servers, cap);
    /* Alive: it answered within two election timeouts on the connection
     * it keeps to us (followers answer every heartbeat of the leader). */
    uint64_t alive_ms = 2 * (uint64_t)cs->cfg->election_timeout_ms;
    for (unsigned i = 0; i < ns; i++) {
        rs[i].id = servers[i].id;
        rs[i].voter = servers[i].role == NODE_VOTER;
        rs[i].caught_up = servers[i].caught_up;
        rs[i].live =
            rs[i].id == cs->d.self_id ||
            (cs->transport != NULL &&
             transport_heard_ms_ago(cs->transport, rs[i].id) <= alive_ms);
    }
    return ns;
}

static int op_add(void *data, uint64_t id, const char *address,
                  recon_change_cb cb, void *arg)
{
    struct chainsync *cs = data;
    return node_add_voter(cs->node, id, address, cb, arg);
}

static int op_promote(void *data, uint64_t id, recon_change_cb cb, void *arg)
{
    struct chainsync *cs = data;
    return node_promote(cs->node, id, cb, arg);
}

static int op_remove(void *data, uint64_t id, recon_change_cb cb, void *arg)
{
    struct chainsync *cs = data;
    return node_remove(cs->node, id, cb, arg);
}

static int op_transfer(void *data, uint64_t id, recon_change_cb cb, void *arg)
{
    struct chainsync *cs = data;
    return node_transfer(cs->node, id, cb, arg);
}

/* The current view to DATA_DIR/chain-view.json (when it changed). */
static void cache_save(struct chainsync *cs)
{
    recon_viewcache_save(&cs->cache, cs->chain_id, cs->cfg->contract,
                         cs->d.poll.block, cs->d.members, cs->d.n_members);
}

/* Members' HTTP URLs (on-chain, else --peers by token) to the API by raft
 * id (forwarding to the raft leader, leader pings). */
static void publish_urls(struct chainsync *cs)
{
    for (unsigned i = 0; cs->api != NULL && i < cs->d.n_members; i++) {
        const struct config_peer *p =
            recon_driver_peer(&cs->d, cs->d.members[i].raft_id);
        if (p != NULL && p->http[0])
            api_set_peer_url(cs->api, cs->d.members[i].raft_id, p->http, NULL);
    }
}

static void op_view_read(void *data, bool changed)
{
    struct chainsync *cs = data;
    if (changed)
        publish_urls(cs);
    /* Revocation reaches established connections too: raft streams from a
     * peer whose token is no longer active (or changed hands) are closed. */
    if (changed && cs->transport != NULL) {
        unsigned closed = transport_reauthorize(cs->transport);
        if (closed > 0)
            LOGI("chain",
                 "member view changed: closed %u raft connection(s) "
                 "no longer authorized",
                 closed);
    }
    cache_save(cs);
}

/* Told from the next tick, not from inside the chain client's callback
 * (the host stops everything, the chain client included). */
static void op_self_moved(void *data, uint64_t new_id)
{
    struct chainsync *cs = data;
    cs->moved_to = new_id;
    op_poll_soon(cs);
}

static void ops_init(struct chainsync *cs)
{
    cs->ep[0] = (struct endpoint){.cs = cs, .second = false};
    cs->ep[1] = (struct endpoint){.cs = cs, .second = true};
    cs->chain_ops = (struct recon_chain){
        .data = &cs->ep[0],
        .chain_id = op_chain_id,
        .block_number = op_block_number,
        .read_state = op_read_state,
        .read_nodes = op_read_nodes,
        .read_vote = op_read_vote,
        .send = op_send,
        .ping = op_ping,
        .poll_soon = op_poll_soon,
        .now_ms = op_now_ms,
        .wall_s = op_wall_s,
    };
    /* Only the poll's reads use the second endpoint; transactions, pings
     * and clocks stay on the first table. */
    cs->chain2_ops = cs->chain_ops;
    cs->chain2_ops.data = &cs->ep[1];
    cs->raft_ops = (struct recon_raft){
        .data = cs,
        .is_leader = op_is_leader,
        .servers = op_servers,
        .add = op_add,
        .promote = op_promote,
        .remove = op_remove,
        .transfer = op_transfer,
        .view_read = op_view_read,
        .self_moved = op_self_moved,
    };
}

int chainsync_init(struct chainsync **out, uv_loop_t *loop,
                   const struct config *cfg, char *errmsg, size_t errlen)
{
    struct chainsync *cs = calloc(1, sizeof *cs);
    if (cs == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    cs->loop = loop;
    cs->cfg = cfg;
    recon_viewcache_init(&cs->cache, cfg->data_dir);
    ops_init(cs);
    size_t n;
    int rv;
    if (hex_decode(cfg->contract, strlen(cfg->contract), cs->contract, 20,
                   &n) != 0 ||
        n != 20 ||
        membership_instance_id(cfg->instance_id, cs->instance) != 0) {
        snprintf(errmsg, errlen, "bad --contract or --instance-id");
        free(cs);
        return ERR_INVALID;
    }
    if (recon_driver_init(&cs->d, cfg, &cs->chain_ops, &cs->raft_ops) != 0) {
        snprintf(errmsg, errlen, "out of memory");
        free(cs);
        return ERR_NOMEM;
    }
    const char *env = getenv("NFTRAFT_WALLET_KEY");
    rv = cfg->wallet_key_file[0]
             ? wallet_from_file(&cs->w, cfg->wallet_key_file)
             : wallet_from_hex(&cs->w, env ? env : "");
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot load the wallet key (%s): %s",
                 cfg->wallet_key_file[0] ? cfg->wallet_key_file
                                         : "NFTRAFT_WALLET_KEY",
                 rv == ERR_IO ? "unreadable file" : "not 32 bytes of hex");
        recon_driver_close(&cs->d);
        free(cs);
        return ERR_INVALID;
    }
    rv = httpc_init(&cs->http, loop);
    if (rv == 0)
        rv = httpc_set_source(cs->http, cfg->bind_ip);
    if (rv == 0)
        rv = rpc_init(&cs->rpc, loop, cs->http, cfg->rpc_url, 3000, 1);
    if (rv == 0 && cfg->rpc_url2[0])
        rv = rpc_init(&cs->rpc2, loop, cs->http, cfg->rpc_url2, 3000, 1);
    if (rv == 0 && cfg->rpc_url2[0])
        rv = recon_poll_set_second(&cs->d.poll, &cs->chain2_ops);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot start the chain client");
        if (cs->rpc2)
            rpc_close(cs->rpc2);
        if (cs->rpc)
            rpc_close(cs->rpc);
        wallet_free(cs->w);
        if (cs->http)
            httpc_close(cs->http, NULL, NULL);
        recon_driver_close(&cs->d);
        free(cs);
        return rv;
    }
    membership_init(&cs->mc, cs->rpc, NULL, cs->contract);
    if (cs->rpc2 != NULL)
        membership_init(&cs->mc2, cs->rpc2, NULL, cs->contract);
    uv_timer_init(loop, &cs->timer);
    cs->timer.data = cs;
    cs->timer_ready = true;
    redact_url(cfg->rpc_url, cs->rpc_shown, sizeof cs->rpc_shown);
    if (cfg->rpc_url2[0])
        redact_url(cfg->rpc_url2, cs->rpc2_shown, sizeof cs->rpc2_shown);
    char addr[43];
    hex_encode(wallet_address(cs->w), 20, 1, addr);
    LOGI("chain", "wallet %s contract %s rpc %s%s%s", addr, cfg->contract,
         cs->rpc_shown,
         cs->rpc2_shown[0] ? " and rpc (must agree before a view is adopted) "
                           : "",
         cs->rpc2_shown);
    *out = cs;
    return 0;
}

/* ---- discovery ---- */

/* Discovery's view: read like every poll, at head - confirmations, from
 * both endpoints when there are two (they must agree); its block is the
 * floor of the polls that follow. */
static void discover_view_cb(void *arg, int result, const char *msg)
{
    struct chainsync *cs = arg;
    cs->discover_done = true;
    cs->discover_err = result;
    if (result != 0)
        snprintf(cs->discover_msg, sizeof cs->discover_msg, "%s",
                 msg ? msg : err_str(result));
}

static void discover_chain_cb(void *data, int err, uint64_t id, const char *msg)
{
    struct chainsync *cs = data;
    if (err != 0) {
        cs->discover_done = true;
        cs->discover_err = err;
        snprintf(cs->discover_msg, sizeof cs->discover_msg, "%s", msg);
        return;
    }
    cs->chain_id = id;
    if (recon_driver_discover(&cs->d, id, discover_view_cb, cs) != 0) {
        cs->discover_done = true;
        cs->discover_err = ERR_RPC;
        snprintf(cs->discover_msg, sizeof cs->discover_msg,
                 "cannot read the contract");
    }
}

/* The chain does not answer: start from the last view we read, so that a
 * restart during a chain outage does not take a node away. */
static void discover_from_cache(struct chainsync *cs)
{
    char why[512];
    struct membership_node *nodes;
    size_t n;
    if (recon_viewcache_load(&cs->cache, cs->cfg->contract, &cs->chain_id,
                             &cs->cached_block, &nodes, &n, why,
                             sizeof why) != 0) {
        LOGW("chain", "chain unreachable and %s", why);
        return;
    }
    recon_driver_adopt(&cs->d, nodes, n);
    free(nodes);
    LOGW("chain",
         "chain unreachable (%s); starting from the cached "
         "contract view (%u members); waiting for the chain",
         cs->discover_msg, cs->d.n_members);
    cs->discover_err = 0;
    cs->chain_unverified = true;
    snprintf(cs->d.error, sizeof cs->d.error,
             "%.200s (started from the "
             "cached view)",
             cs->discover_msg);
    cs->self = recon_driver_find(&cs->d, cs->instance);
}

/* One discovery: eth_chainId, then the driver's pinned read. */
static int discover_once(struct chainsync *cs)
{
    cs->discover_done = false;
    cs->discover_err = 0;
    cs->calls++;
    if (rpc_chain_id(cs->rpc, discover_chain_cb, cs) != 0)
        return ERR_RPC;
    while (!cs->discover_done && uv_run(cs->loop, UV_RUN_ONCE))
        ;
    return 0;
}

static void latest_cb(void *data, int err, const struct membership_node *nodes,
                      size_t n, const char *msg)
{
    (void)msg;
    struct chainsync *cs = data;
    cs->discover_done = true;
    cs->latest_has_self = false;
    for (size_t i = 0; err == 0 && i < n; i++)
        if (memcmp(nodes[i].instance, cs->instance, 32) == 0)
            cs->latest_has_self = true;
}

/* Whether the first RPC lists this instance at "latest" (registered within
 * the last confirmations blocks): worth waiting for, not proof of
 * anything (the pinned view decides). */
static bool registered_at_latest(struct chainsync *cs)
{
    cs->discover_done = false;
    cs->latest_has_self = false;
    cs->calls++;
    if (membership_read_nodes(&cs->mc, NULL, latest_cb, cs) != 0)
        return false;
    while (!cs->discover_done && uv_run(cs->loop, UV_RUN_ONCE))
        ;
    return cs->latest_has_self;
}

int chainsync_discover(struct chainsync *cs, uint64_t *token, char *errmsg,
                       size_t errlen)
{
    /* Two endpoints that disagree may be one block apart in what they
     * index: a few tries, then a refusal. An instance registered less than
     * --chain-confirmations blocks ago is waited for (a bounded time). */
    for (unsigned attempt = 1, waits = 0;; attempt++) {
        if (discover_once(cs) != 0) {
            snprintf(errmsg, errlen, "cannot reach %s", cs->rpc_shown);
            return ERR_RPC;
        }
        if (cs->discover_err == 0 &&
            recon_driver_find(&cs->d, cs->instance) == 0 &&
            waits < DISCOVER_WAIT_S && registered_at_latest(cs)) {
            if (waits++ == 0)
                LOGI("chain",
                     "instance %s is registered at the head block but not "
                     "yet at block %" PRIu64 " (--chain-confirmations %" PRIu64
                     "): waiting",
                     cs->cfg->instance_id, cs->d.poll.block,
                     (uint64_t)cs->cfg->chain_confirmations);
            uv_sleep(1000);
            attempt = 0;
            continue;
        }
        if (cs->discover_err != RECON_POLL_DISAGREE ||
            attempt == DISCOVER_TRIES)
            break;
        LOGW("chain",
             "discovery: the two RPC endpoints disagree (%s); trying again "
             "(%u of %u)",
             cs->discover_msg, attempt, DISCOVER_TRIES);
        uv_sleep(1000);
    }
    if (cs->discover_err == RECON_POLL_DISAGREE) {
        snprintf(errmsg, errlen,
                 "reading contract %s: the two --rpc-url endpoints (%s and "
                 "%s) disagree (%s) in %u tries: refusing to start on a view "
                 "they do not both give",
                 cs->cfg->contract, cs->rpc_shown, cs->rpc2_shown,
                 cs->discover_msg, DISCOVER_TRIES);
        return ERR_INVALID;
    }
    if (cs->discover_err == ERR_RPC || cs->discover_err == ERR_TIMEOUT ||
        cs->discover_err == ERR_IO)
        discover_from_cache(cs);
    if (cs->discover_err != 0) {
        snprintf(errmsg, errlen, "reading contract %s at %s: %s",
                 cs->cfg->contract, cs->rpc_shown, cs->discover_msg);
        return cs->discover_err;
    }
    if (!cs->chain_unverified)
        cs->self = recon_driver_find(&cs->d, cs->instance);
    if (cs->self == 0) {
        snprintf(errmsg, errlen,
                 "instance %s is not an active registered instance of "
                 "contract %s (register it: nftraft register --instance-id "
                 "%s --token N)",
                 cs->cfg->instance_id, cs->cfg->contract, cs->cfg->instance_id);
        return ERR_NOTFOUND;
    }
    if (sender_init(&cs->sender, cs->loop, cs->rpc, cs->w, cs->chain_id,
                    30000) != 0) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    sender_set_max_fee(cs->sender, cs->cfg->max_fee_gwei * 1000000000ULL);
    cs->mc.sender = cs->sender;
    /* No poll adopts a view older than the one started from: the block
     * discovery read at, or the cached view's. */
    uint64_t floor = cs->chain_unverified ? cs->cached_block : cs->d.poll.block;
    LOGI("chain", "member view of block %" PRIu64 "%s: %u members", floor,
         cs->chain_unverified ? " (cached)" : "", cs->d.n_members);
    recon_driver_start(&cs->d, cs->self, floor, cs->chain_id,
                       cs->chain_unverified);
    if (!cs->chain_unverified)
        cache_save(cs);
    *token = cs->self;
    return 0;
}

unsigned chainsync_members(struct chainsync *cs, uint64_t *ids, unsigned cap)
{
    unsigned k = 0;
    for (unsigned i = 0; i < cs->d.n_members && k < cap; i++)
        if (recon_driver_peer(&cs->d, cs->d.members[i].raft_id) != NULL)
            ids[k++] = cs->d.members[i].raft_id;
    return k;
}

uint64_t chainsync_raft_id(struct chainsync *cs)
{
    return cs->d.self_id;
}

void chainsync_on_moved(struct chainsync *cs, chainsync_moved_cb cb, void *data)
{
    cs->moved = cb;
    cs->moved_data = data;
}

static void tick(uv_timer_t *t)
{
    struct chainsync *cs = t->data;
    if (!cs->stopping && cs->moved_to != 0 && cs->moved != NULL) {
        cs->moved(cs->moved_data, cs->moved_to);
        return;
    }
    if (!cs->stopping)
        recon_driver_tick(&cs->d);
}

/* ---- API hooks ---- */

static json_t *status_json(void *data)
{
    struct chainsync *cs = data;
    const struct recon_driver *d = &cs->d;
    char lh[43], stuck[320];
    hex_encode(d->state.leader, 20, 1, lh);
    bool is_stuck =
        cs->sender != NULL && sender_stuck(cs->sender, stuck, sizeof stuck);
    return json_pack(
        "{s:I,s:I,s:I,s:b,s:I,s:s,s:s?,s:I,s:s?,s:s,s:I,s:{s:s,s:I},s:I,s:I,"
        "s:I,s:I,s:I,s:s?,s:I,s:s?}",
        "token_id", (json_int_t)cs->self, "epoch",
        (json_int_t)(d->self_id & 0xffffffffu), "raft_id",
        (json_int_t)d->self_id, "connected", d->connected, "chain_id",
        (json_int_t)cs->chain_id, "rpc_url", cs->rpc_shown, "rpc_url2",
        cs->rpc2_shown[0] ? cs->rpc2_shown : NULL, "rpc_disagreements",
        (json_int_t)d->poll.disagreements, "rpc_disagreement",
        d->poll.disagreements ? d->poll.disagreement : NULL, "contract",
        cs->cfg->contract, "block", (json_int_t)d->poll.block, "leader",
        "address", lh, "token_id", (json_int_t)d->state.leader_token,
        "votes_against_leader", (json_int_t)d->state.against, "required_votes",
        (json_int_t)d->state.required, "term", (json_int_t)d->state.term,
        "lease_expiry", (json_int_t)d->state.expiry, "active_members",
        (json_int_t)d->n_members, "error",
        d->error[0] ? d->error
        : is_stuck  ? stuck
                    : NULL,
        "rpc_calls", (json_int_t)(cs->calls + d->calls + d->poll.calls),
        "stuck_transaction", is_stuck ? stuck : NULL);
}

static json_t *member_json(struct chainsync *cs, const struct recon_member *m,
                           const struct node_server *servers, unsigned ns,
                           uint64_t leader_id)
{
    const char *role = "not in raft";
    for (unsigned k = 0; k < ns; k++)
        if (servers[k].id == m->raft_id)
            role = servers[k].role != NODE_VOTER ? "standby"
                   : m->raft_id == leader_id     ? "leader"
                                                 : "follower";
    const struct config_peer *p = recon_driver_peer(&cs->d, m->raft_id);
    char name[67], ih[67], oh[43], kh[43];
    membership_instance_text(m->instance, name);
    hex_encode(m->instance, 32, 1, ih);
    hex_encode(m->owner, 20, 1, oh);
    hex_encode(m->key, 20, 1, kh);
    return json_pack("{s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:b,s:b,s:s,s:s}",
                     "token_id", (json_int_t)m->token, "epoch",
                     (json_int_t)m->epoch, "raft_id", (json_int_t)m->raft_id,
                     "instance_id", name, "instance_id_hex", ih, "owner", oh,
                     "node_key", kh, "active", 1, "leaving", m->leaving, "role",
                     role, "url", p ? p->http : "");
}

static json_t *members_json(void *data)
{
    struct chainsync *cs = data;
    struct node_status st;
    node_status(cs->node, &st);
    struct node_server servers[MEMBERSHIP_MAX_NODES];
    unsigned ns = node_servers(cs->node, servers, MEMBERSHIP_MAX_NODES);
    json_t *arr = json_array();
    for (unsigned i = 0; i < cs->d.n_members; i++)
        json_array_append_new(
            arr, member_json(cs, &cs->d.members[i], servers, ns, st.leader_id));
    json_t *raft = json_array();
    for (unsigned k = 0; k < ns; k++)
        json_array_append_new(
            raft, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)servers[k].id,
                            "address", servers[k].address, "role",
                            node_member_name(servers[k].role)));
    return json_pack("{s:s,s:I,s:o,s:o}", "source", "contract", "block",
                     (json_int_t)cs->d.poll.block, "members", arr, "raft",
                     raft);
}

static uint64_t rpc_disagreements(void *data)
{
    struct chainsync *cs = data;
    return cs->d.poll.disagreements;
}

static const char *write_refusal(void *data)
{
    struct chainsync *cs = data;
    return cs->d.refusal[0] ? cs->d.refusal : NULL;
}

void chainsync_attach(struct chainsync *cs, struct node *node, struct api *api,
                      struct raft_uv_transport *transport)
{
    cs->transport = transport;
    cs->node = node;
    cs->api = api;
    for (unsigned i = 0; i < cs->cfg->n_peers; i++)
        api_set_peer_url(api, cs->cfg->peers[i].id, cs->cfg->peers[i].http,
                         NULL);
    publish_urls(cs); /* on-chain endpoints win over the address book */
    struct api_chain_hooks h = {.data = cs,
                                .status_json = status_json,
                                .members_json = members_json,
                                .write_refusal = write_refusal,
                                .rpc_disagreements = rpc_disagreements};
    api_set_chain_hooks(api, &h);
    uv_timer_start(&cs->timer, tick, 10, cs->cfg->chain_poll_ms);
}

void chainsync_stop(struct chainsync *cs)
{
    cs->stopping = true;
    recon_driver_stop(&cs->d);
    if (cs->timer_ready) {
        uv_timer_stop(&cs->timer);
        uv_close((uv_handle_t *)&cs->timer, NULL);
        cs->timer_ready = false;
    }
    if (cs->rpc)
        rpc_close(cs->rpc);
    cs->rpc = NULL;
    if (cs->rpc2)
        rpc_close(cs->rpc2);
    cs->rpc2 = NULL;
    if (cs->sender)
        sender_close(cs->sender);
    cs->sender = NULL;
    cs->mc.sender = NULL;
    if (cs->http)
        httpc_close(cs->http, NULL, NULL);
    cs->http = NULL;
}

/* ---- the raft transport's handshake ---- */

static int auth_sign(void *arg, const uint8_t digest[32], uint8_t sig[65])
{
    struct chainsync *cs = arg;
    int recid;
    if (wallet_sign(cs->w, digest, sig, &recid) != 0)
        return ERR_INVALID;
    sig[64] = (uint8_t)recid;
    return 0;
}

static int auth_check(void *arg, uint64_t id, const uint8_t addr[20], char *why,
                      size_t len)
{
    struct chainsync *cs = arg;
    return recon_driver_authorize(&cs->d, id, addr, why, len);
}

const struct config_peer *chainsync_peer(struct chainsync *cs, uint64_t id)
{
    return recon_driver_peer(&cs->d, id);
}

void chainsync_transport_auth(struct chainsync *cs, struct transport_auth *auth)
{
    memset(auth, 0, sizeof *auth);
    auth->arg = cs;
    auth->sign = auth_sign;
    auth->authorize = auth_check;
    transport_domain(cs->chain_id, cs->contract, auth->domain);
}

void chainsync_free(struct chainsync *cs)
{
    if (cs == NULL)
        return;
    if (!cs->stopping)
        chainsync_stop(cs);
    recon_driver_close(&cs->d);
    recon_viewcache_close(&cs->cache);
    wallet_free(cs->w);
    free(cs);
}
