/* driver.c - the reconciler's rounds (see driver.h): poll, decide, act. */
#include "recon/driver.h"
#include "chain/hex.h"
#include "core/err.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void poll_done(void *data, int result, const struct membership_view *v,
                      const char *msg);

int recon_driver_init(struct recon_driver *d, const struct config *cfg,
                      const struct recon_chain *chain,
                      const struct recon_raft *raft)
{
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->chain = chain;
    d->raft = raft;
    d->health = -1;
    if (membership_instance_id(cfg->instance_id, d->instance) != 0)
        memset(d->instance, 0, sizeof d->instance);
    return recon_poll_init(&d->poll, chain, 0, cfg->chain_confirmations,
                           poll_done, d);
}

void recon_driver_close(struct recon_driver *d)
{
    d->stopping = true;
    recon_poll_close(&d->poll);
}

void recon_driver_stop(struct recon_driver *d)
{
    d->stopping = true;
}

uint64_t recon_raft_id(uint64_t token, uint32_t epoch)
{
    return token << 32 | epoch;
}

static uint64_t now_ms(const struct recon_driver *d)
{
    return d->chain->now_ms(d->chain->data);
}

/* ---- the member view ---- */

/* Keep a member's on-chain endpoints when raft's transport can use them:
 * raft an IPv4 a.b.c.d:port, http an http(s):// URL (trailing slashes
 * dropped). Anything else is dropped and --peers is asked instead. */
static void endpoints(struct recon_member *m, const char *raft,
                      const char *http)
{
    memset(&m->addr, 0, sizeof m->addr);
    m->addr.id = m->raft_id;
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

/* nodes[0..n) as members into got[0..n). */
static void members_of(struct recon_member *got,
                       const struct membership_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&got[i], 0, sizeof got[i]);
        got[i].token = nodes[i].token;
        memcpy(got[i].instance, nodes[i].instance, 32);
        memcpy(got[i].owner, nodes[i].owner, 20);
        memcpy(got[i].key, nodes[i].node_key, 20);
        got[i].epoch = nodes[i].epoch;
        got[i].raft_id = recon_raft_id(nodes[i].token, nodes[i].epoch);
        endpoints(&got[i], nodes[i].raft, nodes[i].http);
    }
}

/* got[0..n) becomes the view; true when it differs. */
static bool replace_view(struct recon_driver *d, const struct recon_member *got,
                         unsigned n)
{
    bool changed =
        n != d->n_members || memcmp(d->members, got, n * sizeof got[0]) != 0;
    memcpy(d->members, got, n * sizeof got[0]);
    d->n_members = n;
    return changed;
}

bool recon_driver_adopt(struct recon_driver *d,
                        const struct membership_node *nodes, size_t n)
{
    if (n > MEMBERSHIP_MAX_NODES)
        n = MEMBERSHIP_MAX_NODES;
    struct recon_member *got = calloc(n ? n : 1, sizeof *got);
    if (got == NULL)
        return false;
    members_of(got, nodes, n);
    bool changed = replace_view(d, got, (unsigned)n);
    free(got);
    return changed;
}

static bool has_id(const struct recon_member *ms, unsigned n, uint64_t id)
{
    for (unsigned i = 0; i < n; i++)
        if (ms[i].raft_id == id)
            return true;
    return false;
}

bool recon_driver_update(struct recon_driver *d,
                         const struct membership_node *nodes, size_t n,
                         uint64_t block)
{
    if (n > MEMBERSHIP_MAX_NODES)
        n = MEMBERSHIP_MAX_NODES;
    struct recon_member *got = calloc(RECON_MAX_MEMBERS, sizeof *got);
    if (got == NULL)
        return false;
    members_of(got, nodes, n);
    unsigned k = (unsigned)n;
    for (unsigned i = 0; i < d->n_members; i++) {
        const struct recon_member *m = &d->members[i];
        if (has_id(got, (unsigned)n, m->raft_id)) {
            if (m->leaving)
                LOGI("chain",
                     "raft id %" PRIu64 " (token %" PRIu64 " epoch %" PRIu32
                     ") is listed again at block %" PRIu64
                     " (the answer at block %" PRIu64 " lacked it)",
                     m->raft_id, m->token, m->epoch, block, m->gone_block);
            continue;
        }
        if (m->leaving && block > m->gone_block) {
            LOGI("chain",
                 "raft id %" PRIu64 " (token %" PRIu64 " epoch %" PRIu32
                 ") is still not an active member at block %" PRIu64
                 " (first missing at block %" PRIu64 "): it leaves the view",
                 m->raft_id, m->token, m->epoch, block, m->gone_block);
            continue;
        }
        if (k == RECON_MAX_MEMBERS)
            continue;
        got[k] = *m;
        if (!m->leaving) {
            got[k].leaving = true;
            got[k].gone_block = block;
            LOGW("chain",
                 "raft id %" PRIu64 " (token %" PRIu64 " epoch %" PRIu32
                 ") is missing from the members at block %" PRIu64
                 ": kept until an answer from a newer block confirms it",
                 m->raft_id, m->token, m->epoch, block);
        }
        k++;
    }
    bool changed = replace_view(d, got, k);
    free(got);
    return changed;
}

/* The member of token t, preferring its registration in the latest answer
 * over a leaving one; NULL when t is not in the view. */
static const struct recon_member *by_token(const struct recon_driver *d,
                                           uint64_t t)
{
    const struct recon_member *found = NULL;
    for (unsigned i = 0; i < d->n_members; i++)
        if (d->members[i].token == t &&
            (found == NULL || (found->leaving && !d->members[i].leaving)))
            found = &d->members[i];
    return found;
}

uint64_t recon_driver_find(const struct recon_driver *d,
                           const uint8_t instance[32])
{
    uint64_t leaving = 0;
    for (unsigned i = 0; i < d->n_members; i++)
        if (memcmp(d->members[i].instance, instance, 32) == 0) {
            if (!d->members[i].leaving)
                return d->members[i].token;
            if (leaving == 0)
                leaving = d->members[i].token;
        }
    return leaving;
}

const struct recon_member *recon_driver_member(const struct recon_driver *d,
                                               uint64_t id)
{
    for (unsigned i = 0; i < d->n_members; i++)
        if (d->members[i].raft_id == id)
            return &d->members[i];
    return NULL;
}

const struct config_peer *recon_driver_peer(const struct recon_driver *d,
                                            uint64_t id)
{
    const struct recon_member *m = recon_driver_member(d, id);
    if (m != NULL && m->addr.raft[0])
        return &m->addr;
    return config_peer(d->cfg, id >> 32);
}

int recon_driver_authorize(const struct recon_driver *d, uint64_t id,
                           const uint8_t addr[20], char *why, size_t len)
{
    char a[43] = "none (a dial)", o[43];
    if (addr != NULL)
        hex_encode(addr, 20, 1, a);
    unsigned long long token = id >> 32, epoch = id & 0xffffffffu;
    const struct recon_member *m = recon_driver_member(d, id);
    if (m == NULL)
        m = by_token(d, token);
    if (m != NULL) {
        if (m->raft_id != id) {
            snprintf(why, len,
                     "raft id %llu is token %llu epoch %llu, but token %llu "
                     "is registered in epoch %lu now (raft id %llu; signer "
                     "%s)",
                     (unsigned long long)id, token, epoch, token,
                     (unsigned long)m->epoch, (unsigned long long)m->raft_id,
                     a);
            return ERR_DENIED;
        }
        if (addr == NULL || memcmp(m->key, addr, 20) == 0)
            return 0;
        hex_encode(m->key, 20, 1, o);
        snprintf(why, len,
                 "signer %s is not the node key of token %llu epoch %llu (%s)",
                 a, token, epoch, o);
        return ERR_DENIED;
    }
    snprintf(why, len,
             "raft id %llu: token %llu is not an active registered member "
             "(signer %s)",
             (unsigned long long)id, token, a);
    return ERR_DENIED;
}

int recon_driver_discover(struct recon_driver *d, uint64_t chain_id,
                          recon_discover_cb cb, void *arg)
{
    if (d->poll.state != RECON_POLL_IDLE || d->discover_cb != NULL)
        return ERR_BUSY;
    d->discover_cb = cb;
    d->discover_arg = arg;
    d->poll.chain_id = chain_id;
    d->poll.verify_chain_id = true;
    return recon_poll_start(&d->poll);
}

/* Discovery's poll ended: its view (read at d->poll.block) is the view. */
static void discovered(struct recon_driver *d, int result,
                       const struct membership_view *v, const char *msg)
{
    recon_discover_cb cb = d->discover_cb;
    d->discover_cb = NULL;
    if (result == 0) {
        recon_driver_adopt(d, v->nodes, v->n_nodes);
        d->state = v->state;
    }
    cb(d->discover_arg, result, msg);
}

void recon_driver_start(struct recon_driver *d, uint64_t self, uint64_t block,
                        uint64_t chain_id, bool verify)
{
    d->self = self;
    d->self_id = recon_raft_id(self, 0);
    for (unsigned i = 0; i < d->n_members; i++)
        if (d->members[i].token == self)
            d->self_id = d->members[i].raft_id;
    d->poll.token = self;
    d->poll.block = block;
    d->poll.chain_id = chain_id;
    d->poll.verify_chain_id = verify;
}

/* ---- acting ---- */

/* The next wait after a change with this status (0: none), at most max. */
static uint64_t backoff(uint64_t wait, int status, uint64_t max)
{
    return status == 0      ? 0
           : wait == 0      ? RECON_RETRY_MIN_MS
           : wait * 2 > max ? max
                            : wait * 2;
}

static void change_cb(void *arg, int status)
{
    struct recon_driver *d = arg;
    d->change_busy = false;
    /* Exponential back-off per target: a transfer blocks writes for up to
     * an election timeout, so a failing one must not repeat every second;
     * nor an addition or promotion of a server that is not up. */
    if (d->last_change_kind == RECON_TRANSFER)
        d->transfer_wait_ms =
            backoff(d->transfer_wait_ms, status, RECON_TRANSFER_BACKOFF_MAX_MS);
    else if (d->last_change_kind == RECON_ADD ||
             d->last_change_kind == RECON_PROMOTE)
        d->grow_wait_ms =
            backoff(d->grow_wait_ms, status, RECON_GROW_BACKOFF_MAX_MS);
    if (status != 0 && !d->stopping)
        LOGW("chain",
             "raft %s id=%" PRIu64 " (token %" PRIu64 " epoch %" PRIu64
             ") failed: %s",
             recon_kind_str(d->last_change_kind), d->change_target,
             d->change_target >> 32, d->change_target & 0xffffffffu,
             err_str(status));
}

static void tx_cb(void *arg, int err, const uint8_t hash[32], uint64_t block,
                  const char *msg)
{
    (void)hash;
    struct recon_driver *d = arg;
    d->tx_busy = false;
    if (d->stopping)
        return;
    d->last_tx_ms = now_ms(d);
    if (err == 0)
        LOGI("chain", "transaction mined block=%" PRIu64, block);
    else if (err != ERR_TOOBIG) /* the sender reports those itself */
        LOGW("chain", "transaction failed: %s", msg ? msg : err_str(err));
    d->chain->poll_soon(d->chain->data);
}

static void send_tx(struct recon_driver *d, const struct recon_action *a)
{
    static const char *const what[] = {"electLeaderByToken", "leaderHeartbeat"};
    struct recon_tx tx = {.token = d->self, .against = a->against};
    tx.kind = a->kind == RECON_ELECT       ? RECON_TX_ELECT
              : a->kind == RECON_HEARTBEAT ? RECON_TX_HEARTBEAT
                                           : RECON_TX_VOTE;
    tx.leader_token = d->state.leader_token;
    d->calls += 5; /* nonce/estimate/price/send/receipt */
    d->tx_busy = d->chain->send(d->chain->data, &tx, tx_cb, d) == 0;
    if (d->tx_busy)
        LOGI("chain", "sending %s",
             tx.kind != RECON_TX_VOTE ? what[tx.kind]
             : a->against             ? "no-confidence vote"
                                      : "vote clear");
}

/* A raft change now, unless one is in flight or the pacing says wait.
 * live: the target server is live in raft. */
static void change(struct recon_driver *d, const struct recon_action *a,
                   bool live, uint64_t now)
{
    const struct recon_raft *r = d->raft;
    bool grow = a->kind == RECON_ADD || a->kind == RECON_PROMOTE;
    if (d->change_busy || now - d->last_change_ms < RECON_CHANGE_GAP_MS)
        return;
    if (a->kind == RECON_REMOVE &&
        now - d->last_remove_ms < RECON_SHRINK_GAP_MS)
        return;
    if (a->kind == RECON_TRANSFER && a->id == d->transfer_target &&
        now - d->last_transfer_ms < d->transfer_wait_ms)
        return;
    if (grow && (a->id != d->grow_target || a->kind != d->grow_kind || live))
        d->grow_wait_ms = 0; /* another server, or it is up now */
    if (grow && now - d->last_grow_ms < d->grow_wait_ms)
        return;
    if (a->kind == RECON_TRANSFER && a->id != d->transfer_target)
        d->transfer_wait_ms = 0;
    d->last_change_ms = now;
    d->last_change_kind = a->kind;
    d->change_target = a->id;
    if (a->kind == RECON_REMOVE)
        d->last_remove_ms = now;
    if (a->kind == RECON_TRANSFER) {
        d->transfer_target = a->id;
        d->last_transfer_ms = now;
    }
    if (grow) {
        d->grow_target = a->id;
        d->grow_kind = a->kind;
        d->last_grow_ms = now;
    }
    const struct config_peer *p = recon_driver_peer(d, a->id);
    LOGI("chain",
         "raft %s id=%" PRIu64 " (token %" PRIu64 " epoch %" PRIu64 ")",
         recon_kind_str(a->kind), a->id, a->id >> 32, a->id & 0xffffffffu);
    int rv =
        a->kind == RECON_ADD
            ? (p ? r->add(r->data, a->id, p->raft, change_cb, d) : ERR_NOTFOUND)
        : a->kind == RECON_PROMOTE ? r->promote(r->data, a->id, change_cb, d)
        : a->kind == RECON_REMOVE  ? r->remove(r->data, a->id, change_cb, d)
                                   : r->transfer(r->data, a->id, change_cb, d);
    d->change_busy = rv == 0;
    if (rv != 0 && a->kind == RECON_REMOVE)
        d->last_remove_ms = 0; /* refused at once: not a shrink */
    if (rv != 0 && grow)
        d->grow_wait_ms =
            backoff(d->grow_wait_ms, rv, RECON_GROW_BACKOFF_MAX_MS);
    if (rv != 0)
        LOGW("chain", "raft %s id=%" PRIu64 ": %s", recon_kind_str(a->kind),
             a->id, err_str(rv));
}

static void act(struct recon_driver *d, const struct recon_action *a, bool live,
                uint64_t now)
{
    switch (a->kind) {
    case RECON_REFUSE:
        snprintf(d->refusal, sizeof d->refusal,
                 "instance %s is not an active registered instance of "
                 "contract %s: this node serves no writes",
                 d->cfg->instance_id, d->cfg->contract);
        break;
    case RECON_ADD:
    case RECON_PROMOTE:
    case RECON_REMOVE:
    case RECON_TRANSFER:
        change(d, a, live, now);
        break;
    case RECON_ELECT:
    case RECON_HEARTBEAT:
    case RECON_VOTE:
        if (!d->tx_busy && now - d->last_tx_ms >= RECON_TX_GAP_MS)
            send_tx(d, a);
        break;
    }
}

/* Decide on the current view and raft's configuration, then act. */
static void decide(struct recon_driver *d)
{
    struct recon_server rs[MEMBERSHIP_MAX_NODES];
    unsigned ns = d->raft->servers(d->raft->data, rs, MEMBERSHIP_MAX_NODES);
    uint64_t members[RECON_MAX_MEMBERS], addressable[RECON_MAX_MEMBERS];
    unsigned na = 0;
    bool self_active = false;
    /* Decisions are by raft id (token << 32 | epoch): a token registered
     * anew is another server. The on-chain leader is named by token: its
     * current registration's raft id. Leaving members are still members
     * (until confirmed gone). */
    const struct recon_member *lm = by_token(d, d->state.leader_token);
    uint64_t chain_leader =
        lm ? lm->raft_id : recon_raft_id(d->state.leader_token, 0);
    for (unsigned i = 0; i < d->n_members; i++) {
        members[i] = d->members[i].raft_id;
        self_active |= members[i] == d->self_id;
        if (recon_driver_peer(d, members[i]) != NULL)
            addressable[na++] = members[i];
    }
    /* My instance registered anew (listed under another raft id) makes
     * this server a leaving one at once: a raft leader hands over (and
     * adds nothing, not its own new registration), then restarts. */
    for (unsigned i = 0; i < d->n_members; i++)
        if (memcmp(d->members[i].instance, d->instance, 32) == 0 &&
            d->members[i].raft_id != d->self_id && !d->members[i].leaving)
            self_active = false;
    struct recon_input in = {
        .self = self_active ? d->self_id : 0,
        .my_id = d->self_id,
        .raft_leader = d->raft->is_leader(d->raft->data),
        .servers = rs,
        .n_servers = ns,
        .members = members,
        .n_members = d->n_members,
        .addressable = addressable,
        .n_addressable = na,
        .chain_leader = chain_leader,
        .now = d->chain->wall_s(d->chain->data),
        .expiry = d->state.expiry,
        .heartbeat_period = d->state.period,
        /* Only a ping of this leader speaks for it: after the contract
         * elects another, the last ping was of the old one. */
        .leader_health = d->health_of == d->state.leader_token ? d->health : -1,
        .voted_against_leader = d->my_vote_against,
    };
    struct recon_action a[RECON_MAX_ACTIONS];
    unsigned n = recon_decide(&in, a);
    d->refusal[0] = '\0';
    uint64_t now = now_ms(d);
    for (unsigned i = 0; i < n; i++) {
        bool live = false;
        for (unsigned k = 0; k < ns; k++)
            live |= rs[k].id == a[i].id && rs[k].live;
        act(d, &a[i], live, now);
    }
}

/* ---- the poll ---- */

static void poll_failed(struct recon_driver *d, const char *msg)
{
    if (d->connected || strcmp(d->error, msg) != 0)
        LOGW("chain", "chain unavailable: %s", msg);
    d->connected = false;
    snprintf(d->error, sizeof d->error, "%s", msg);
}

/* My instance registered again as another raft id (a new epoch): a raft
 * leader hands over first (decide() sees it is not a member any more);
 * otherwise the host is told, once, to restart it as the new server. */
static bool self_moved(struct recon_driver *d)
{
    const struct recon_member *m = NULL;
    for (unsigned i = 0; i < d->n_members && m == NULL; i++)
        if (memcmp(d->members[i].instance, d->instance, 32) == 0 &&
            d->members[i].raft_id != d->self_id && !d->members[i].leaving)
            m = &d->members[i];
    if (m == NULL || d->raft->is_leader(d->raft->data))
        return false;
    if (d->moved_to != m->raft_id) {
        d->moved_to = m->raft_id;
        LOGW("chain",
             "instance %s is now registered as token %" PRIu64 " epoch %" PRIu32
             " (raft id %" PRIu64 "), not raft id %" PRIu64
             ": a new registration is a new raft server; restarting as it",
             d->cfg->instance_id, m->token, m->epoch, m->raft_id, d->self_id);
        if (d->raft->self_moved != NULL)
            d->raft->self_moved(d->raft->data, m->raft_id);
    }
    return true;
}

static void poll_done(void *data, int result, const struct membership_view *v,
                      const char *msg)
{
    struct recon_driver *d = data;
    if (d->discover_cb != NULL) {
        discovered(d, result, v, msg);
        return;
    }
    if (d->stopping)
        return;
    if (result == RECON_POLL_STALE) {
        if (d->poll.stale == 1 || d->poll.stale % 60 == 0)
            LOGW("chain",
                 "RPC answered head block %" PRIu64 " (view block "
                 "%" PRIu64 "), older than the view already read at block "
                 "%" PRIu64 ": ignored (%" PRIu64 " such answers)",
                 d->poll.head,
                 d->poll.head > d->cfg->chain_confirmations
                     ? d->poll.head - d->cfg->chain_confirmations
                     : 0,
                 d->poll.block, d->poll.stale);
        return;
    }
    if (result == RECON_POLL_DISAGREE) {
        /* The two --rpc-url endpoints answered differently: nothing of
         * this poll is adopted and nothing is decided on it. */
        d->disagree_streak++;
        if (d->disagree_streak == 1 || d->disagree_streak % 60 == 0)
            LOGW("chain",
                 "the two RPC endpoints disagree, view not adopted: %s "
                 "(disagreeing polls: %" PRIu64 " in a row, %" PRIu64
                 " in all)",
                 msg ? msg : "?", d->disagree_streak, d->poll.disagreements);
        return;
    }
    if (result != 0) {
        poll_failed(d, msg);
        return;
    }
    if (d->disagree_streak > 0)
        LOGI("chain",
             "the two RPC endpoints agree again at block %" PRIu64
             " (after %" PRIu64 " polls that disagreed)",
             v->block, d->disagree_streak);
    d->disagree_streak = 0;
    d->state = v->state;
    d->my_vote_against = v->vote.against && v->vote.term == d->state.term &&
                         memcmp(v->vote.target, d->state.leader, 20) == 0;
    bool changed = recon_driver_update(d, v->nodes, v->n_nodes, v->block);
    if (!d->connected)
        LOGI("chain", "chain reachable again block=%" PRIu64, v->block);
    d->connected = true;
    d->error[0] = '\0';
    if (d->raft->view_read != NULL)
        d->raft->view_read(d->raft->data, changed);
    if (self_moved(d))
        return;
    decide(d);
}

/* ---- the round ---- */

static void ping_cb(void *arg, bool healthy)
{
    struct recon_driver *d = arg;
    d->ping_busy = false;
    if (d->stopping)
        return;
    if (d->ping_target != d->state.leader_token)
        return; /* the leader changed meanwhile: not about the new one */
    int h = healthy ? 1 : 0;
    d->health_of = d->ping_target;
    if (h != d->health)
        LOGI("chain", "on-chain leader token=%" PRIu64 " is %s",
             d->state.leader_token, h ? "healthy" : "not answering");
    d->health = h;
}

static void ping_leader(struct recon_driver *d)
{
    uint64_t leader = d->state.leader_token;
    const struct config_peer *p = NULL;
    const struct recon_member *lm =
        leader && leader != d->self ? by_token(d, leader) : NULL;
    if (lm != NULL)
        p = recon_driver_peer(d, lm->raft_id);
    if (p == NULL && leader && leader != d->self)
        p = config_peer(d->cfg, leader);
    if (d->health_of != leader) {
        d->health = -1; /* a new leader: unknown until pinged */
        d->health_of = leader;
    }
    if (p == NULL) {
        d->health = leader == d->self ? 1 : -1;
    } else if (!d->ping_busy) {
        d->ping_target = leader;
        d->ping_busy = d->chain->ping(d->chain->data, p->http, ping_cb, d) == 0;
    }
}

void recon_driver_tick(struct recon_driver *d)
{
    if (d->stopping)
        return;
    recon_poll_start(&d->poll); /* ERR_BUSY: the last poll is in flight */
    ping_leader(d);
}
