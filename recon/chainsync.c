/* chainsync.c - the reconciler's I/O: contract reads, leader pings,
 * raft changes and transactions, one of each kind in flight. */
#include "recon/chainsync.h"
#include "chain/abi.h"
#include "chain/membership.h"
#include "chain/hex.h"
#include "chain/rpc.h"
#include "chain/sender.h"
#include "chain/wallet.h"
#include "net/transport.h"
#include "core/config.h"
#include "core/err.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/node.h"
#include "recon/decide.h"
#include "core/redact.h"
#include "net/api.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_MEMBERS 256
#define CHANGE_GAP_MS 1000
#define SHRINK_GAP_MS 10000   /* between two removals: a lying RPC cannot
                                 shrink the cluster one voter a second */
#define TRANSFER_BACKOFF_MAX_MS 60000
#define TX_GAP_MS 300

struct member {
    uint64_t token;
    uint8_t instance[32];
    uint8_t owner[20];
    uint8_t key[20]; /* the node key that speaks for the token (v1: owner) */
    struct config_peer addr; /* on-chain endpoints (raft "" when none or
                                not usable): discovery without --peers */
};

struct chainsync {
    uv_loop_t *loop;
    const struct config *cfg;
    struct httpc *http;
    struct rpc *rpc;
    struct wallet *w;
    struct sender *sender;
    uint8_t contract[20], instance[32];
    char rpc_shown[CONFIG_URL_MAX]; /* --rpc-url, credentials redacted */
    uint64_t chain_id, self;
    struct node *node;
    struct api *api;
    uv_timer_t timer;
    bool timer_ready, stopping, attached;
    /* the contract's view */
    bool have_view, connected;
    bool v1;                /* the contract has no activeNodes(): owners
                               speak for their tokens */
    uint64_t stale_polls;   /* answers ignored for an older block */
    struct raft_uv_transport *transport; /* re-checked on view changes */
    uint64_t block;         /* the block the last good view was read at */
    char tag[24];           /* the current poll's block, "0x..." */
    struct member members[MAX_MEMBERS];
    unsigned n_members;
    uint8_t leader[20];
    uint64_t leader_token, term, expiry, against, required, active, period;
    bool my_vote_against;
    char error[256];
    /* in flight */
    bool poll_busy, tx_busy, change_busy, ping_busy;
    int poll_step;
    int health;
    uint64_t health_of;  /* the token `health` is about */
    uint64_t ping_target;
    uint64_t last_change_ms, last_tx_ms, calls;
    uint64_t last_remove_ms;
    uint64_t change_target, transfer_wait_ms; /* back-off after failures */
    int last_change_kind;
    char refusal[300];
    /* the view cached in the data dir (a restart during a chain outage) */
    char *saved;         /* the JSON last written */
    bool save_warned;    /* a failed write is logged once */
    bool chain_unverified; /* started from the cache: check eth_chainId */
    /* discovery */
    bool discover_done;
    int discover_err;
    char discover_msg[256];
};

static void tick(uv_timer_t *t);

static uint64_t now_ms(struct chainsync *cs)
{
    return uv_now(cs->loop);
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
    cs->health = -1;
    size_t n;
    int rv;
    if (hex_decode(cfg->contract, strlen(cfg->contract), cs->contract, 20,
                   &n) != 0 || n != 20 ||
        membership_instance_id(cfg->instance_id, cs->instance) != 0) {
        snprintf(errmsg, errlen, "bad --contract or --instance-id");
        free(cs);
        return ERR_INVALID;
    }
    const char *env = getenv("NFTRAFT_WALLET_KEY");
    rv = cfg->wallet_key_file[0] ? wallet_from_file(&cs->w, cfg->wallet_key_file)
                                 : wallet_from_hex(&cs->w, env ? env : "");
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot load the wallet key (%s): %s",
                 cfg->wallet_key_file[0] ? cfg->wallet_key_file
                                         : "NFTRAFT_WALLET_KEY",
                 rv == ERR_IO ? "unreadable file" : "not 32 bytes of hex");
        free(cs);
        return ERR_INVALID;
    }
    rv = httpc_init(&cs->http, loop);
    if (rv == 0)
        rv = httpc_set_source(cs->http, cfg->bind_ip);
    if (rv == 0)
        rv = rpc_init(&cs->rpc, loop, cs->http, cfg->rpc_url, 3000, 1);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot start the chain client");
        wallet_free(cs->w);
        if (cs->http)
            httpc_close(cs->http, NULL, NULL);
        free(cs);
        return rv;
    }
    uv_timer_init(loop, &cs->timer);
    cs->timer.data = cs;
    cs->timer_ready = true;
    redact_url(cfg->rpc_url, cs->rpc_shown, sizeof cs->rpc_shown);
    char addr[43];
    hex_encode(wallet_address(cs->w), 20, 1, addr);
    LOGI("chain", "wallet %s contract %s rpc %s", addr, cfg->contract,
         cs->rpc_shown);
    *out = cs;
    return 0;
}

/* ---- decoding the two views ---- */

static int adopt(struct chainsync *cs, const struct member *got, size_t n1);

/* Members' on-chain HTTP URLs to the API (forwarding, leader pings). */
static void publish_urls(struct chainsync *cs)
{
    for (unsigned i = 0; cs->api != NULL && i < cs->n_members; i++)
        if (cs->members[i].addr.http[0])
            api_set_peer_url(cs->api, cs->members[i].token,
                             cs->members[i].addr.http, NULL);
}

static int decode_members(struct chainsync *cs, const uint8_t *d, size_t len)
{
    const uint8_t *ids, *insts, *owners;
    size_t n1, n2, n3;
    if (abi_get_words(d, len, 0, &ids, &n1) != 0 ||
        abi_get_words(d, len, 1, &insts, &n2) != 0 ||
        abi_get_words(d, len, 2, &owners, &n3) != 0 || n1 != n2 ||
        n2 != n3 || n1 > MAX_MEMBERS)
        return ERR_MALFORMED;
    /* Decode aside: a bad answer must leave the last good view whole (the
     * raft transport authorizes peers from it). */
    struct member got[MAX_MEMBERS];
    for (size_t i = 0; i < n1; i++) {
        struct member *m = &got[i];
        if (abi_get_uint64(ids + 32 * i, 32, 0, &m->token) != 0 ||
            m->token == 0 ||
            abi_get_address(owners + 32 * i, 32, 0, m->owner) != 0)
            return ERR_MALFORMED;
        memcpy(m->instance, insts + 32 * i, 32);
        memcpy(m->key, m->owner, 20);
        memset(&m->addr, 0, sizeof m->addr);
    }
    return adopt(cs, got, n1);
}

/* Keep a member's on-chain endpoints when raft's transport can use them:
 * raft an IPv4 a.b.c.d:port, http an http(s):// URL. Anything else is
 * dropped (logged by the caller's view) and --peers is asked instead. */
static void endpoints(struct member *m, const char *raft, const char *http)
{
    memset(&m->addr, 0, sizeof m->addr);
    m->addr.id = m->token;
    struct sockaddr_in sa;
    char host[CONFIG_ADDR_MAX];
    const char *colon = strrchr(raft, ':');
    size_t hl = colon ? (size_t)(colon - raft) : 0;
    if (colon == NULL || hl == 0 || hl >= sizeof host ||
        strlen(raft) >= sizeof m->addr.raft ||
        strlen(http) >= sizeof m->addr.http ||
        (strncmp(http, "http://", 7) != 0 && strncmp(http, "https://", 8) != 0))
        return;
    memcpy(host, raft, hl);
    host[hl] = '\0';
    uint64_t port;
    if (uv_ip4_addr(host, 0, &sa) != 0 ||
        config_parse_u64(colon + 1, 1, 65535, &port) != 0)
        return;
    snprintf(m->addr.raft, sizeof m->addr.raft, "%s", raft);
    snprintf(m->addr.http, sizeof m->addr.http, "%s", http);
    size_t n = strlen(m->addr.http);
    while (n > 0 && m->addr.http[n - 1] == '/')
        m->addr.http[--n] = '\0';
}

/* Where token's node is: its on-chain endpoints, else its --peers entry;
 * NULL when neither is known. */
static const struct config_peer *peer_of(const struct chainsync *cs,
                                         uint64_t token)
{
    for (unsigned i = 0; i < cs->n_members; i++)
        if (cs->members[i].token == token && cs->members[i].addr.raft[0])
            return &cs->members[i].addr;
    return config_peer(cs->cfg, token);
}

/* activeNodes() (contract v2): each token's node key is what speaks for
 * it on raft's port and in its transactions. */
static int decode_nodes(struct chainsync *cs, const uint8_t *d, size_t len)
{
    struct membership_node *nodes = calloc(MAX_MEMBERS, sizeof *nodes);
    size_t n = 0;
    if (nodes == NULL)
        return ERR_NOMEM;
    int rv = membership_decode_nodes(d, len, nodes, MAX_MEMBERS, &n);
    struct member got[MAX_MEMBERS];
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (nodes[i].token == 0) {
            rv = ERR_MALFORMED;
            break;
        }
        got[i].token = nodes[i].token;
        memset(&got[i].addr, 0, sizeof got[i].addr);
        memcpy(got[i].instance, nodes[i].instance, 32);
        memcpy(got[i].owner, nodes[i].owner, 20);
        memcpy(got[i].key, nodes[i].node_key, 20);
        endpoints(&got[i], nodes[i].raft, nodes[i].http);
    }
    free(nodes);
    return rv != 0 ? ERR_MALFORMED : adopt(cs, got, n);
}

static int decode_view(struct chainsync *cs, const uint8_t *d, size_t len)
{
    return cs->v1 ? decode_members(cs, d, len) : decode_nodes(cs, d, len);
}

static const char *view_call(const struct chainsync *cs)
{
    return cs->v1 ? "activeMembers()" : "activeNodes()";
}

/* A v1 contract reverts activeNodes(): from now on read activeMembers(). */
static bool fall_back_to_v1(struct chainsync *cs, int err)
{
    if (err != ERR_REVERT || cs->v1)
        return false;
    cs->v1 = true;
    LOGI("chain", "contract %s has no activeNodes() (a v1 contract): token "
         "owners speak for their tokens", cs->cfg->contract);
    return true;
}

/* Make got[0..n) the member view (decoded aside, so a bad answer never
 * leaves a half-updated view). */
static int adopt(struct chainsync *cs, const struct member *got, size_t n1)
{
    bool changed = n1 != cs->n_members ||
                   memcmp(cs->members, got, n1 * sizeof got[0]) != 0;
    memcpy(cs->members, got, n1 * sizeof got[0]);
    cs->n_members = (unsigned)n1;
    if (changed)
        publish_urls(cs);
    /* Revocation reaches established connections too: raft streams from a
     * peer whose token is no longer active (or changed hands) are closed. */
    if (changed && cs->transport != NULL) {
        unsigned closed = transport_reauthorize(cs->transport);
        if (closed > 0)
            LOGI("chain", "member view changed: closed %u raft connection(s) "
                 "no longer authorized", closed);
    }
    return 0;
}

static int decode_state(struct chainsync *cs, const uint8_t *d, size_t len)
{
    uint8_t leader[20];
    uint64_t v[7];
    if (abi_get_address(d, len, 0, leader) != 0)
        return ERR_MALFORMED;
    for (size_t i = 0; i < 7; i++)
        if (abi_get_uint64(d, len, i + 1, &v[i]) != 0)
            return ERR_MALFORMED; /* the last good state stays whole */
    memcpy(cs->leader, leader, 20);
    cs->leader_token = v[0];
    cs->term = v[1];
    cs->expiry = v[2];
    cs->against = v[3];
    cs->required = v[4];
    cs->active = v[5];
    cs->period = v[6];
    return 0;
}

static int call(struct chainsync *cs, const char *sig, const struct abi_val *a,
                size_t n, rpc_bytes_cb cb)
{
    uint8_t *d;
    size_t len;
    if (abi_encode_call(sig, a, n, &d, &len) != 0)
        return ERR_NOMEM;
    cs->calls++;
    int rv = rpc_eth_call(cs->rpc, cs->contract, d, len,
                          cs->tag[0] ? cs->tag : "latest", cb, cs);
    free(d);
    return rv;
}

/* ---- the cached view ----
 * DATA_DIR/chain-view.json: the last member list read from the contract,
 * written when it changes. A node restarted while the chain is unreachable
 * starts from it (raft keeps serving; the reconciler waits for the chain,
 * and first checks that eth_chainId still matches). */

static void cache_path(const struct chainsync *cs, char *out, size_t len)
{
    snprintf(out, len, "%s/chain-view.json", cs->cfg->data_dir);
}

static void cache_save(struct chainsync *cs)
{
    json_t *ms = json_array();
    for (unsigned i = 0; i < cs->n_members; i++) {
        char ih[67], oh[43], kh[43];
        hex_encode(cs->members[i].instance, 32, 1, ih);
        hex_encode(cs->members[i].owner, 20, 1, oh);
        hex_encode(cs->members[i].key, 20, 1, kh);
        json_t *m = json_pack("{s:I,s:s,s:s,s:s}", "token",
                              (json_int_t)cs->members[i].token, "instance",
                              ih, "owner", oh, "node_key", kh);
        if (m != NULL && cs->members[i].addr.raft[0]) {
            json_object_set_new(m, "raft", json_string(cs->members[i].addr.raft));
            json_object_set_new(m, "http", json_string(cs->members[i].addr.http));
        }
        json_array_append_new(ms, m);
    }
    json_t *j = json_pack("{s:i,s:I,s:s,s:o}", "version", 1, "chain_id",
                          (json_int_t)cs->chain_id, "contract",
                          cs->cfg->contract, "members", ms);
    char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL || (cs->saved && strcmp(cs->saved, text) == 0)) {
        free(text);
        return;
    }
    char path[600], tmp[610];
    cache_path(cs, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = (f == NULL || fclose(f) == 0) && ok && rename(tmp, path) == 0;
    if (!ok) {
        if (!cs->save_warned)
            LOGW("chain", "cannot write %s: %s (a restart while the chain "
                 "is unreachable will not find this view)", path,
                 strerror(errno));
        cs->save_warned = true;
        free(text);
        return;
    }
    cs->save_warned = false;
    free(cs->saved);
    cs->saved = text;
}

/* Load the cached view; 0, or non-zero with why in msg. */
static int cache_load(struct chainsync *cs, char *msg, size_t len)
{
    char path[600];
    cache_path(cs, path, sizeof path);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (j == NULL) {
        snprintf(msg, len, "no usable %.300s (%.100s)", path, e.text);
        return ERR_NOTFOUND;
    }
    int rv = ERR_MALFORMED;
    json_int_t version = 0, chain = 0;
    const char *contract = NULL;
    json_t *ms = NULL;
    if (json_unpack(j, "{s:I,s:I,s:s,s:o}", "version", &version, "chain_id",
                    &chain, "contract", &contract, "members", &ms) != 0 ||
        version != 1 || chain <= 0 || !json_is_array(ms) ||
        json_array_size(ms) > MAX_MEMBERS) {
        snprintf(msg, len, "%.300s is malformed", path);
        goto out;
    }
    if (strcasecmp(contract, cs->cfg->contract) != 0) {
        snprintf(msg, len, "%.300s is for contract %.42s, not %.42s", path, contract,
                 cs->cfg->contract);
        goto out;
    }
    struct member got[MAX_MEMBERS];
    size_t n = json_array_size(ms);
    for (size_t i = 0; i < n; i++) {
        json_int_t token;
        const char *ih, *oh, *kh = NULL, *raft = "", *http = "";
        size_t k1, k2, k3 = 20;
        if (json_unpack(json_array_get(ms, i), "{s:I,s:s,s:s,s?s,s?s,s?s}",
                        "token", &token, "instance", &ih, "owner", &oh,
                        "node_key", &kh, "raft", &raft, "http", &http) != 0 ||
            token <= 0 ||
            hex_decode(ih, strlen(ih), got[i].instance, 32, &k1) != 0 ||
            k1 != 32 ||
            hex_decode(oh, strlen(oh), got[i].owner, 20, &k2) != 0 ||
            k2 != 20 ||
            (kh != NULL &&
             hex_decode(kh, strlen(kh), got[i].key, 20, &k3) != 0) ||
            k3 != 20) {
            snprintf(msg, len, "%.300s: member %zu is malformed", path, i);
            goto out;
        }
        got[i].token = (uint64_t)token;
        if (kh == NULL) /* written before node keys: the owner speaks */
            memcpy(got[i].key, got[i].owner, 20);
        endpoints(&got[i], raft, http);
    }
    memcpy(cs->members, got, n * sizeof got[0]);
    cs->n_members = (unsigned)n;
    cs->chain_id = (uint64_t)chain;
    rv = 0;
out:
    json_decref(j);
    return rv;
}

/* ---- discovery ---- */

/* This instance's token in the view, or 0 when it is not a member. */
static uint64_t own_token(const struct chainsync *cs)
{
    for (unsigned i = 0; i < cs->n_members; i++)
        if (memcmp(cs->members[i].instance, cs->instance, 32) == 0)
            return cs->members[i].token;
    return 0;
}

static void discover_members_cb(void *data, int err, const uint8_t *d,
                                size_t len, const char *msg)
{
    struct chainsync *cs = data;
    if (fall_back_to_v1(cs, err) &&
        call(cs, view_call(cs), NULL, 0, discover_members_cb) == 0)
        return;
    cs->discover_done = true;
    if (err != 0) {
        cs->discover_err = err;
        snprintf(cs->discover_msg, sizeof cs->discover_msg, "%s", msg);
        return;
    }
    if (decode_view(cs, d, len) != 0) {
        cs->discover_err = ERR_MALFORMED;
        snprintf(cs->discover_msg, sizeof cs->discover_msg,
                 "malformed %s answer", view_call(cs));
        return;
    }
    cs->have_view = true;
    cs->self = own_token(cs);
}

static void discover_chain_cb(void *data, int err, uint64_t id,
                              const char *msg)
{
    struct chainsync *cs = data;
    if (err != 0) {
        cs->discover_done = true;
        cs->discover_err = err;
        snprintf(cs->discover_msg, sizeof cs->discover_msg, "%s", msg);
        return;
    }
    cs->chain_id = id;
    if (call(cs, view_call(cs), NULL, 0, discover_members_cb) != 0) {
        cs->discover_done = true;
        cs->discover_err = ERR_RPC;
    }
}

int chainsync_discover(struct chainsync *cs, uint64_t *token, char *errmsg,
                       size_t errlen)
{
    cs->calls++;
    if (rpc_chain_id(cs->rpc, discover_chain_cb, cs) != 0) {
        snprintf(errmsg, errlen, "cannot reach %s", cs->rpc_shown);
        return ERR_RPC;
    }
    while (!cs->discover_done && uv_run(cs->loop, UV_RUN_ONCE))
        ;
    if (cs->discover_err == ERR_RPC || cs->discover_err == ERR_TIMEOUT ||
        cs->discover_err == ERR_IO) {
        /* The chain does not answer: start from the last view we read, so
         * that a restart during a chain outage does not take a node away. */
        char why[512];
        if (cache_load(cs, why, sizeof why) == 0) {
            LOGW("chain", "chain unreachable (%s); starting from the cached "
                 "contract view (%u members); waiting for the chain",
                 cs->discover_msg, cs->n_members);
            cs->discover_err = 0;
            cs->chain_unverified = true;
            cs->have_view = true;
            cs->connected = false;
            snprintf(cs->error, sizeof cs->error, "%.200s (started from the "
                     "cached view)", cs->discover_msg);
            cs->self = own_token(cs);
        } else {
            LOGW("chain", "chain unreachable and %s", why);
        }
    }
    if (cs->discover_err != 0) {
        snprintf(errmsg, errlen, "reading contract %s at %s: %s",
                 cs->cfg->contract, cs->rpc_shown, cs->discover_msg);
        return cs->discover_err;
    }
    if (cs->self == 0) {
        snprintf(errmsg, errlen,
                 "instance %s is not an active registered instance of "
                 "contract %s (register it: nftraft register --instance-id "
                 "%s --token N)",
                 cs->cfg->instance_id, cs->cfg->contract,
                 cs->cfg->instance_id);
        return ERR_NOTFOUND;
    }
    if (sender_init(&cs->sender, cs->loop, cs->rpc, cs->w, cs->chain_id,
                    30000) != 0) {
        snprintf(errmsg, errlen, "out of memory");
        return ERR_NOMEM;
    }
    sender_set_max_fee(cs->sender, cs->cfg->max_fee_gwei * 1000000000ULL);
    if (!cs->chain_unverified)
        cache_save(cs);
    *token = cs->self;
    return 0;
}

unsigned chainsync_members(struct chainsync *cs, uint64_t *ids, unsigned cap)
{
    unsigned k = 0;
    for (unsigned i = 0; i < cs->n_members && k < cap; i++)
        if (peer_of(cs, cs->members[i].token) != NULL)
            ids[k++] = cs->members[i].token;
    return k;
}

/* ---- acting ---- */

static void change_cb(void *data, int status)
{
    struct chainsync *cs = data;
    cs->change_busy = false;
    if (cs->last_change_kind == RECON_TRANSFER) {
        /* Exponential back-off per target: a transfer blocks writes for up
         * to an election timeout, so a failing one must not repeat every
         * second. */
        cs->transfer_wait_ms =
            status == 0 ? 0
            : cs->transfer_wait_ms == 0 ? 2000
            : cs->transfer_wait_ms * 2 > TRANSFER_BACKOFF_MAX_MS
                ? TRANSFER_BACKOFF_MAX_MS
                : cs->transfer_wait_ms * 2;
    }
    if (status != 0 && !cs->stopping)
        LOGW("chain", "raft %s token=%" PRIu64 " failed: %s",
             recon_kind_str(cs->last_change_kind), cs->change_target,
             err_str(status));
}

static void tx_cb(void *data, int err, const uint8_t hash[32], uint64_t block,
                  const char *msg)
{
    struct chainsync *cs = data;
    cs->tx_busy = false;
    cs->last_tx_ms = now_ms(cs);
    if (cs->stopping)
        return;
    if (err == 0)
        LOGI("chain", "transaction mined block=%" PRIu64, block);
    else if (err != ERR_TOOBIG) /* the sender reports those itself */
        LOGW("chain", "transaction failed: %s", msg ? msg : err_str(err));
    if (cs->timer_ready)
        uv_timer_start(&cs->timer, tick, 50, cs->cfg->chain_poll_ms);
}

static void send_tx(struct chainsync *cs, const char *what, const char *sig,
                    const struct abi_val *a, size_t n)
{
    uint8_t *d;
    size_t len;
    if (abi_encode_call(sig, a, n, &d, &len) != 0)
        return;
    cs->tx_busy = true;
    cs->calls += 5; /* nonce/estimate/price/send/receipt */
    if (sender_send(cs->sender, cs->contract, d, len, tx_cb, cs) != 0)
        cs->tx_busy = false;
    else
        LOGI("chain", "sending %s", what);
    free(d);
}

static void decide(struct chainsync *cs)
{
    struct node_status st;
    node_status(cs->node, &st);
    struct node_server servers[MAX_MEMBERS];
    struct recon_server rs[MAX_MEMBERS];
    unsigned ns = node_servers(cs->node, servers, MAX_MEMBERS);
    /* Alive: it answered within two election timeouts on the connection
     * it keeps to us (followers answer every heartbeat of the leader). */
    uint64_t alive_ms = 2 * (uint64_t)cs->cfg->election_timeout_ms;
    for (unsigned i = 0; i < ns; i++) {
        rs[i].id = servers[i].id;
        rs[i].voter = servers[i].role == NODE_VOTER;
        rs[i].caught_up = servers[i].caught_up;
        rs[i].live = rs[i].id == cs->self ||
                     (cs->transport != NULL &&
                      transport_heard_ms_ago(cs->transport, rs[i].id) <=
                          alive_ms);
    }
    uint64_t members[MAX_MEMBERS], addressable[MAX_MEMBERS];
    unsigned na = 0;
    bool self_active = false;
    for (unsigned i = 0; i < cs->n_members; i++) {
        members[i] = cs->members[i].token;
        self_active |= members[i] == cs->self;
        if (peer_of(cs, members[i]) != NULL)
            addressable[na++] = members[i];
    }
    struct recon_input in = {
        .self = self_active ? cs->self : 0,
        .my_id = cs->self,
        .raft_leader = st.role == NODE_LEADER && st.ready,
        .servers = rs, .n_servers = ns,
        .members = members, .n_members = cs->n_members,
        .addressable = addressable, .n_addressable = na,
        .chain_leader = cs->leader_token,
        .now = (uint64_t)time(NULL), .expiry = cs->expiry,
        .heartbeat_period = cs->period,
        .leader_health = cs->health,
        .voted_against_leader = cs->my_vote_against,
    };
    struct recon_action act[RECON_MAX_ACTIONS];
    unsigned n = recon_decide(&in, act);
    cs->refusal[0] = '\0';
    uint64_t now = now_ms(cs);
    for (unsigned i = 0; i < n; i++) {
        struct recon_action *a = &act[i];
        const struct config_peer *p;
        switch (a->kind) {
        case RECON_REFUSE:
            snprintf(cs->refusal, sizeof cs->refusal,
                     "instance %s is not an active registered instance of "
                     "contract %s: this node serves no writes",
                     cs->cfg->instance_id, cs->cfg->contract);
            break;
        case RECON_ADD:
        case RECON_PROMOTE:
        case RECON_REMOVE:
        case RECON_TRANSFER:
            if (cs->change_busy || now - cs->last_change_ms < CHANGE_GAP_MS)
                break;
            if (a->kind == RECON_REMOVE &&
                now - cs->last_remove_ms < SHRINK_GAP_MS)
                break;
            if (a->kind == RECON_TRANSFER && a->id == cs->change_target &&
                now - cs->last_change_ms < cs->transfer_wait_ms)
                break;
            if (a->kind == RECON_TRANSFER && a->id != cs->change_target)
                cs->transfer_wait_ms = 0;
            cs->last_change_ms = now;
            cs->last_change_kind = (int)a->kind;
            cs->change_target = a->id;
            if (a->kind == RECON_REMOVE)
                cs->last_remove_ms = now;
            p = peer_of(cs, a->id);
            LOGI("chain", "raft %s token=%" PRIu64, recon_kind_str(a->kind),
                 a->id);
            int rv = a->kind == RECON_ADD
                         ? (p ? node_add_voter(cs->node, a->id, p->raft,
                                               change_cb, cs)
                              : ERR_NOTFOUND)
                     : a->kind == RECON_PROMOTE
                         ? node_promote(cs->node, a->id, change_cb, cs)
                     : a->kind == RECON_REMOVE
                         ? node_remove(cs->node, a->id, change_cb, cs)
                         : node_transfer(cs->node, a->id, change_cb, cs);
            cs->change_busy = rv == 0;
            if (rv != 0)
                LOGW("chain", "raft %s token=%" PRIu64 ": %s",
                     recon_kind_str(a->kind), a->id, err_str(rv));
            break;
        case RECON_ELECT:
        case RECON_HEARTBEAT:
        case RECON_VOTE: {
            if (cs->tx_busy || now - cs->last_tx_ms < TX_GAP_MS)
                break;
            struct abi_val v[3];
            if (a->kind == RECON_ELECT) {
                v[0] = abi_uint64(cs->self);
                send_tx(cs, "electLeaderByToken", "electLeaderByToken(uint256)",
                        v, 1);
            } else if (a->kind == RECON_HEARTBEAT) {
                send_tx(cs, "leaderHeartbeat", "leaderHeartbeat()", NULL, 0);
            } else {
                v[0] = abi_uint64(cs->self);
                v[1] = abi_address(cs->leader);
                v[2] = abi_bool(a->against);
                send_tx(cs, a->against ? "no-confidence vote" : "vote clear",
                        "castVoteByToken(uint256,address,bool)", v, 3);
            }
            break;
        }
        }
    }
}

/* ---- the poll: block, clusterState, activeMembers, our vote ---- */

static void poll_fail(struct chainsync *cs, const char *msg)
{
    cs->poll_busy = false;
    if (cs->stopping)
        return;
    if (cs->connected || strcmp(cs->error, msg) != 0)
        LOGW("chain", "chain unavailable: %s", msg);
    cs->connected = false;
    snprintf(cs->error, sizeof cs->error, "%s", msg);
}

static void vote_cb(void *data, int err, const uint8_t *d, size_t len,
                    const char *msg)
{
    struct chainsync *cs = data;
    if (cs->stopping)
        return;
    uint8_t target[20];
    uint64_t term;
    bool against;
    if (err != 0 || abi_get_address(d, len, 0, target) != 0 ||
        abi_get_uint64(d, len, 1, &term) != 0 ||
        abi_get_bool(d, len, 2, &against) != 0) {
        poll_fail(cs, err ? msg : "malformed tokenVotes() answer");
        return;
    }
    cs->my_vote_against = against && term == cs->term &&
                          memcmp(target, cs->leader, 20) == 0;
    cs->poll_busy = false;
    if (!cs->connected)
        LOGI("chain", "chain reachable again block=%" PRIu64, cs->block);
    cs->connected = true;
    cs->error[0] = '\0';
    cs->have_view = true;
    cache_save(cs);
    decide(cs);
}

static void members_cb(void *data, int err, const uint8_t *d, size_t len,
                       const char *msg)
{
    struct chainsync *cs = data;
    if (cs->stopping)
        return;
    if (fall_back_to_v1(cs, err)) {
        if (call(cs, view_call(cs), NULL, 0, members_cb) != 0)
            poll_fail(cs, "cannot call activeMembers()");
        return;
    }
    if (err != 0 || decode_view(cs, d, len) != 0) {
        char m[64];
        snprintf(m, sizeof m, "malformed %s answer", view_call(cs));
        poll_fail(cs, err ? msg : m);
        return;
    }
    struct abi_val v = abi_uint64(cs->self);
    if (call(cs, "tokenVotes(uint256)", &v, 1, vote_cb) != 0)
        poll_fail(cs, "cannot call tokenVotes()");
}

static void state_cb(void *data, int err, const uint8_t *d, size_t len,
                     const char *msg)
{
    struct chainsync *cs = data;
    if (cs->stopping)
        return;
    if (err != 0 || decode_state(cs, d, len) != 0) {
        poll_fail(cs, err ? msg : "malformed clusterState() answer");
        return;
    }
    if (call(cs, view_call(cs), NULL, 0, members_cb) != 0)
        poll_fail(cs, "cannot read the member view");
}

static void block_cb(void *data, int err, uint64_t block, const char *msg)
{
    struct chainsync *cs = data;
    if (cs->stopping)
        return;
    if (err != 0) {
        poll_fail(cs, msg);
        return;
    }
    /* Every call of this poll reads one block, `confirmations` below the
     * head; a view older than one already acted on is never used (a
     * lagging or load-balanced RPC must not roll membership back). */
    uint64_t conf = cs->cfg->chain_confirmations;
    uint64_t pinned = block > conf ? block - conf : 0;
    if (pinned < cs->block) {
        cs->poll_busy = false;
        cs->stale_polls++;
        if (cs->stale_polls == 1 || cs->stale_polls % 60 == 0)
            LOGW("chain", "RPC answered head block %" PRIu64 " (view block "
                 "%" PRIu64 "), older than the view already read at block "
                 "%" PRIu64 ": ignored (%" PRIu64 " such answers)",
                 block, pinned, cs->block, cs->stale_polls);
        return;
    }
    cs->block = pinned;
    snprintf(cs->tag, sizeof cs->tag, "0x%" PRIx64, pinned);
    if (call(cs, "clusterState()", NULL, 0, state_cb) != 0)
        poll_fail(cs, "cannot call clusterState()");
}

/* The poll's first step (after the chain id check of a cached start). */
static void ask_block(struct chainsync *cs)
{
    cs->calls++;
    if (rpc_block_number(cs->rpc, block_cb, cs) != 0)
        poll_fail(cs, "cannot ask the block number");
}

static void verify_cb(void *data, int err, uint64_t id, const char *msg)
{
    struct chainsync *cs = data;
    if (cs->stopping)
        return;
    if (err != 0) {
        poll_fail(cs, msg);
        return;
    }
    if (id != cs->chain_id) {
        char m[400];
        snprintf(m, sizeof m, "the chain at %.200s has id %" PRIu64 ", the "
                 "cached view was read on chain %" PRIu64, cs->rpc_shown,
                 id, cs->chain_id);
        poll_fail(cs, m);
        return;
    }
    cs->chain_unverified = false;
    ask_block(cs);
}

static void ping_cb(void *data, const struct httpc_resp *r)
{
    struct chainsync *cs = data;
    cs->ping_busy = false;
    if (cs->stopping)
        return;
    if (cs->ping_target != cs->leader_token)
        return; /* the leader changed meanwhile: not about the new one */
    int h = r->err == 0 && r->status == 200 ? 1 : 0;
    cs->health_of = cs->ping_target;
    if (h != cs->health)
        LOGI("chain", "on-chain leader token=%" PRIu64 " is %s",
             cs->leader_token, h ? "healthy" : "not answering");
    cs->health = h;
}

static void tick(uv_timer_t *t)
{
    struct chainsync *cs = t->data;
    if (cs->stopping)
        return;
    if (!cs->poll_busy) {
        cs->poll_busy = true;
        if (cs->chain_unverified) {
            cs->calls++;
            if (rpc_chain_id(cs->rpc, verify_cb, cs) != 0)
                poll_fail(cs, "cannot ask the chain id");
        } else {
            ask_block(cs);
        }
    }
    const struct config_peer *p =
        cs->leader_token && cs->leader_token != cs->self
            ? peer_of(cs, cs->leader_token)
            : NULL;
    if (cs->health_of != cs->leader_token) {
        cs->health = -1; /* a new leader: unknown until pinged */
        cs->health_of = cs->leader_token;
    }
    if (p == NULL) {
        cs->health = cs->leader_token == cs->self ? 1 : -1;
    } else if (!cs->ping_busy) {
        cs->ping_target = cs->leader_token;
        char url[CONFIG_URL_MAX + 16];
        snprintf(url, sizeof url, "%s/status", p->http);
        cs->ping_busy =
            httpc_request(cs->http, "GET", url, NULL, NULL, 0,
                          cs->cfg->leader_ping_ms, 1 << 16, ping_cb, cs,
                          NULL) == 0;
    }
}

/* ---- API hooks ---- */

static json_t *status_json(void *data)
{
    struct chainsync *cs = data;
    char lh[43], stuck[320];
    hex_encode(cs->leader, 20, 1, lh);
    bool is_stuck =
        cs->sender != NULL && sender_stuck(cs->sender, stuck, sizeof stuck);
    return json_pack(
        "{s:b,s:I,s:s,s:s,s:I,s:{s:s,s:I},s:I,s:I,s:I,s:I,s:I,s:s?,s:I,s:s?}",
        "connected", cs->connected, "chain_id", (json_int_t)cs->chain_id,
        "rpc_url", cs->rpc_shown,
        "contract", cs->cfg->contract, "block", (json_int_t)cs->block,
        "leader", "address", lh, "token_id", (json_int_t)cs->leader_token,
        "votes_against_leader", (json_int_t)cs->against, "required_votes",
        (json_int_t)cs->required, "term", (json_int_t)cs->term,
        "lease_expiry", (json_int_t)cs->expiry, "active_members",
        (json_int_t)cs->n_members, "error",
        cs->error[0] ? cs->error : is_stuck ? stuck : NULL, "rpc_calls",
        (json_int_t)cs->calls, "stuck_transaction", is_stuck ? stuck : NULL);
}

static json_t *members_json(void *data)
{
    struct chainsync *cs = data;
    struct node_status st;
    node_status(cs->node, &st);
    struct node_server servers[MAX_MEMBERS];
    unsigned ns = node_servers(cs->node, servers, MAX_MEMBERS);
    json_t *arr = json_array();
    for (unsigned i = 0; i < cs->n_members; i++) {
        const struct member *m = &cs->members[i];
        const char *role = "not in raft";
        for (unsigned k = 0; k < ns; k++)
            if (servers[k].id == m->token)
                role = servers[k].role != NODE_VOTER ? "standby"
                       : m->token == st.leader_id ? "leader"
                                                  : "follower";
        const struct config_peer *p = peer_of(cs, m->token);
        char name[67], ih[67], oh[43], kh[43];
        membership_instance_text(m->instance, name);
        hex_encode(m->instance, 32, 1, ih);
        hex_encode(m->owner, 20, 1, oh);
        hex_encode(m->key, 20, 1, kh);
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:s,s:s,s:b,s:s,s:s}", "token_id",
                           (json_int_t)m->token, "instance_id", name,
                           "instance_id_hex", ih, "owner", oh, "node_key", kh,
                           "active", 1, "role", role, "url",
                           p ? p->http : ""));
    }
    json_t *raft = json_array();
    for (unsigned k = 0; k < ns; k++)
        json_array_append_new(
            raft, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)servers[k].id,
                            "address", servers[k].address, "role",
                            node_member_name(servers[k].role)));
    return json_pack("{s:s,s:I,s:o,s:o}", "source", "contract", "block",
                     (json_int_t)cs->block, "members", arr, "raft", raft);
}

static const char *write_refusal(void *data)
{
    struct chainsync *cs = data;
    return cs->refusal[0] ? cs->refusal : NULL;
}

void chainsync_attach(struct chainsync *cs, struct node *node,
                      struct api *api, struct raft_uv_transport *transport)
{
    cs->transport = transport;
    cs->node = node;
    cs->api = api;
    cs->attached = true;
    for (unsigned i = 0; i < cs->cfg->n_peers; i++)
        api_set_peer_url(api, cs->cfg->peers[i].id, cs->cfg->peers[i].http,
                         NULL);
    publish_urls(cs); /* on-chain endpoints win over the address book */
    struct api_chain_hooks h = {.data = cs,
                                .status_json = status_json,
                                .members_json = members_json,
                                .write_refusal = write_refusal};
    api_set_chain_hooks(api, &h);
    uv_timer_start(&cs->timer, tick, 10, cs->cfg->chain_poll_ms);
}

void chainsync_stop(struct chainsync *cs)
{
    cs->stopping = true;
    if (cs->timer_ready) {
        uv_timer_stop(&cs->timer);
        uv_close((uv_handle_t *)&cs->timer, NULL);
        cs->timer_ready = false;
    }
    if (cs->rpc)
        rpc_close(cs->rpc);
    cs->rpc = NULL;
    if (cs->sender)
        sender_close(cs->sender);
    cs->sender = NULL;
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

static int auth_check(void *arg, uint64_t id, const uint8_t addr[20],
                      char *why, size_t len)
{
    struct chainsync *cs = arg;
    char a[43], o[43];
    hex_encode(addr, 20, 1, a);
    for (unsigned i = 0; i < cs->n_members; i++) {
        const struct member *m = &cs->members[i];
        if (m->token != id)
            continue;
        if (memcmp(m->key, addr, 20) == 0)
            return 0;
        hex_encode(m->key, 20, 1, o);
        snprintf(why, len, "signer %s is not the node key of token %llu (%s)",
                 a, (unsigned long long)id, o);
        return ERR_DENIED;
    }
    snprintf(why, len, "token %llu is not an active registered member "
             "(signer %s)", (unsigned long long)id, a);
    return ERR_DENIED;
}

const struct config_peer *chainsync_peer(struct chainsync *cs, uint64_t token)
{
    return peer_of(cs, token);
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
    free(cs->saved);
    wallet_free(cs->w);
    free(cs);
}
