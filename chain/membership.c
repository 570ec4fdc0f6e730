/* membership.c - the membership contract's typed binding: the only file
 * that spells the contract's ABI signatures. Reads are one eth_call each,
 * decoded aside (a bad answer decodes nothing); transactions are one
 * sender_send each. */
#include "chain/membership.h"
#include "chain/abi.h"
#include "chain/hex.h"
#include "chain/keccak.h"
#include "chain/rpc.h"
#include "core/err.h"
#include "core/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int membership_instance_id(const char *s, uint8_t out[32])
{
    memset(out, 0, 32);
    size_t n = strlen(s);
    if (n == 0)
        return ERR_INVALID;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        size_t got;
        return hex_decode(s, n, out, 32, &got) == 0 ? 0 : ERR_INVALID;
    }
    if (n > 32)
        return ERR_INVALID;
    memcpy(out, s, n);
    return 0;
}

void membership_instance_text(const uint8_t id[32], char out[67])
{
    size_t k = 0;
    while (k < 32 && id[k] > 0x20 && id[k] < 0x7f)
        k++;
    bool named =
        k > 0 && !(k >= 2 && id[0] == '0' && (id[1] == 'x' || id[1] == 'X'));
    for (size_t i = k; i < 32 && named; i++)
        named = id[i] == 0;
    if (named) {
        memcpy(out, id, k);
        out[k] = '\0';
    } else {
        hex_encode(id, 32, 1, out);
    }
}

/* ---- decoders ---- */

/* One activeNodes() tuple at t[0..tl) into m. */
static int decode_node(const uint8_t *t, size_t tl, struct membership_node *m)
{
    uint64_t epoch;
    int rv;
    if (abi_get_uint64(t, tl, 0, &m->token) != 0 || m->token == 0 ||
        m->token > UINT32_MAX || abi_get_bytes32(t, tl, 1, m->instance) != 0 ||
        abi_get_address(t, tl, 2, m->owner) != 0 ||
        abi_get_address(t, tl, 3, m->node_key) != 0 ||
        abi_get_uint64(t, tl, 4, &epoch) != 0 || epoch > UINT32_MAX)
        return ERR_MALFORMED;
    m->epoch = (uint32_t)epoch;
    if ((rv = abi_get_string(t, tl, 5, m->raft, sizeof m->raft)) != 0 ||
        (rv = abi_get_string(t, tl, 6, m->http, sizeof m->http)) != 0)
        return rv == ERR_TOOBIG ? ERR_TOOBIG : ERR_MALFORMED;
    return 0;
}

int membership_decode_nodes(const uint8_t *d, size_t len,
                            struct membership_node *out, size_t cap, size_t *n)
{
    const uint8_t *heads;
    size_t count;
    if (abi_get_words(d, len, 0, &heads, &count) != 0)
        return ERR_MALFORMED;
    if (count > cap)
        return ERR_TOOBIG;
    size_t room = (size_t)(d + len - heads); /* bytes from the array start */
    for (size_t i = 0; i < count; i++) {
        uint64_t off;
        if (abi_get_uint64(heads, room, i, &off) != 0 || off >= room)
            return ERR_MALFORMED;
        int rv = decode_node(heads + off, room - (size_t)off, &out[i]);
        if (rv != 0)
            return rv;
    }
    *n = count;
    return 0;
}

int membership_decode_members_v1(const uint8_t *d, size_t len,
                                 struct membership_node *out, size_t cap,
                                 size_t *n)
{
    const uint8_t *ids, *insts, *owners;
    size_t n1, n2, n3;
    if (abi_get_words(d, len, 0, &ids, &n1) != 0 ||
        abi_get_words(d, len, 1, &insts, &n2) != 0 ||
        abi_get_words(d, len, 2, &owners, &n3) != 0 || n1 != n2 || n2 != n3)
        return ERR_MALFORMED;
    if (n1 > cap)
        return ERR_TOOBIG;
    for (size_t i = 0; i < n1; i++) {
        struct membership_node *m = &out[i];
        memset(m, 0, sizeof *m);
        if (abi_get_uint64(ids + 32 * i, 32, 0, &m->token) != 0 ||
            m->token == 0 || m->token > UINT32_MAX ||
            abi_get_address(owners + 32 * i, 32, 0, m->owner) != 0)
            return ERR_MALFORMED;
        memcpy(m->instance, insts + 32 * i, 32);
        memcpy(m->node_key, m->owner, 20);
    }
    *n = n1;
    return 0;
}

int membership_decode_state(const uint8_t *d, size_t len,
                            struct membership_state *out)
{
    struct membership_state s;
    uint64_t *v[7] = {&s.leader_token, &s.term,   &s.expiry, &s.against,
                      &s.required,     &s.active, &s.period};
    if (abi_get_address(d, len, 0, s.leader) != 0)
        return ERR_MALFORMED;
    for (size_t i = 0; i < 7; i++)
        if (abi_get_uint64(d, len, i + 1, v[i]) != 0)
            return ERR_MALFORMED;
    *out = s;
    return 0;
}

int membership_decode_vote(const uint8_t *d, size_t len,
                           struct membership_vote *out)
{
    struct membership_vote v;
    if (abi_get_address(d, len, 0, v.target) != 0 ||
        abi_get_uint64(d, len, 1, &v.term) != 0 ||
        abi_get_bool(d, len, 2, &v.against) != 0)
        return ERR_MALFORMED;
    *out = v;
    return 0;
}

/* ---- reads ---- */

void membership_init(struct membership *m, struct rpc *rpc,
                     struct sender *sender, const uint8_t address[20])
{
    memset(m, 0, sizeof *m);
    m->rpc = rpc;
    m->sender = sender;
    memcpy(m->address, address, 20);
}

struct read {
    struct membership *m;
    char block[24];
    void (*cb)(void); /* the caller's, cast back by kind */
    void *data;
    bool v1; /* nodes: this read calls activeMembers() */
};

static int eth_call(struct membership *m, const char *sig,
                    const struct abi_val *a, size_t n, const char *block,
                    rpc_bytes_cb cb, struct read *r)
{
    uint8_t *d;
    size_t len;
    if (abi_encode_call(sig, a, n, &d, &len) != 0) {
        free(r);
        return ERR_NOMEM;
    }
    int rv = rpc_eth_call(m->rpc, m->address, d, len, block ? block : "latest",
                          cb, r);
    free(d);
    if (rv != 0)
        free(r);
    return rv;
}

static struct read *read_new(struct membership *m, const char *block,
                             void (*cb)(void), void *data)
{
    struct read *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->m = m;
    if (block != NULL)
        snprintf(r->block, sizeof r->block, "%s", block);
    r->cb = cb;
    r->data = data;
    return r;
}

static const char *read_block(const struct read *r)
{
    return r->block[0] ? r->block : NULL;
}

static void nodes_done(void *data, int err, const uint8_t *d, size_t len,
                       const char *msg);

static int call_nodes(struct read *r)
{
    return eth_call(r->m, r->v1 ? "activeMembers()" : "activeNodes()", NULL, 0,
                    read_block(r), nodes_done, r);
}

static void nodes_done(void *data, int err, const uint8_t *d, size_t len,
                       const char *msg)
{
    struct read *r = data;
    membership_nodes_cb cb = (membership_nodes_cb)r->cb;
    if (err == ERR_REVERT && !r->v1 && !r->m->abi_known) {
        /* The first read of the process: a contract without activeNodes()
         * may be a v1 one. Ask activeMembers(); the ABI is decided only by
         * an answer that decodes. Once decided, a revert is an ordinary
         * read error (a flaky or lying RPC never changes the ABI). */
        struct read *again = read_new(r->m, read_block(r), r->cb, r->data);
        if (again != NULL) {
            again->v1 = true;
            if (call_nodes(again) == 0) {
                free(r);
                return;
            }
        }
        err = ERR_NOMEM;
        msg = "cannot call activeMembers()";
    }
    struct membership_node *nodes = NULL;
    size_t n = 0;
    char why[64];
    if (err == 0 &&
        (nodes = calloc(MEMBERSHIP_MAX_NODES, sizeof *nodes)) == NULL)
        err = ERR_NOMEM;
    if (err == 0) {
        err = r->v1 ? membership_decode_members_v1(d, len, nodes,
                                                   MEMBERSHIP_MAX_NODES, &n)
                    : membership_decode_nodes(d, len, nodes,
                                              MEMBERSHIP_MAX_NODES, &n);
        snprintf(why, sizeof why, "malformed %s answer",
                 r->v1 ? "activeMembers()" : "activeNodes()");
        msg = why;
    }
    if (err == 0 && !r->m->abi_known) {
        r->m->abi_known = true;
        r->m->v1 = r->v1;
        if (r->v1)
            LOGI("chain", "the contract has no activeNodes() (a v1 contract): "
                          "token owners speak for their tokens");
    }
    cb(r->data, err, err == 0 ? nodes : NULL, err == 0 ? n : 0,
       err == 0 ? NULL : msg);
    free(nodes);
    free(r);
}

int membership_read_nodes(struct membership *m, const char *block,
                          membership_nodes_cb cb, void *data)
{
    struct read *r = read_new(m, block, (void (*)(void))cb, data);
    if (r == NULL)
        return ERR_NOMEM;
    r->v1 = m->v1;
    return call_nodes(r);
}

static void state_done(void *data, int err, const uint8_t *d, size_t len,
                       const char *msg)
{
    struct read *r = data;
    struct membership_state s;
    if (err == 0 && membership_decode_state(d, len, &s) != 0) {
        err = ERR_MALFORMED;
        msg = "malformed clusterState() answer";
    }
    ((membership_state_cb)r->cb)(r->data, err, err == 0 ? &s : NULL,
                                 err == 0 ? NULL : msg);
    free(r);
}

int membership_read_state(struct membership *m, const char *block,
                          membership_state_cb cb, void *data)
{
    struct read *r = read_new(m, block, (void (*)(void))cb, data);
    if (r == NULL)
        return ERR_NOMEM;
    return eth_call(m, "clusterState()", NULL, 0, block, state_done, r);
}

static void vote_done(void *data, int err, const uint8_t *d, size_t len,
                      const char *msg)
{
    struct read *r = data;
    struct membership_vote v;
    if (err == 0 && membership_decode_vote(d, len, &v) != 0) {
        err = ERR_MALFORMED;
        msg = "malformed tokenVotes() answer";
    }
    ((membership_vote_cb)r->cb)(r->data, err, err == 0 ? &v : NULL,
                                err == 0 ? NULL : msg);
    free(r);
}

int membership_read_vote(struct membership *m, const char *block,
                         uint64_t token, membership_vote_cb cb, void *data)
{
    struct read *r = read_new(m, block, (void (*)(void))cb, data);
    if (r == NULL)
        return ERR_NOMEM;
    struct abi_val a = abi_uint64(token);
    return eth_call(m, "tokenVotes(uint256)", &a, 1, block, vote_done, r);
}

/* One LeaderElected log: topics [sig, leader, token], the block number. */
static int decode_event(json_t *l, struct membership_leader_event *e)
{
    json_t *t = json_object_get(l, "topics");
    const char *leader = json_string_value(json_array_get(t, 1));
    const char *token = json_string_value(json_array_get(t, 2));
    const char *block = json_string_value(json_object_get(l, "blockNumber"));
    uint8_t w[32];
    size_t n;
    if (leader == NULL || token == NULL ||
        hex_decode(leader, strlen(leader), w, 32, &n) != 0 || n != 32 ||
        abi_get_address(w, 32, 0, e->leader) != 0 ||
        hex_decode(token, strlen(token), w, 32, &n) != 0 || n != 32 ||
        abi_get_uint64(w, 32, 0, &e->token) != 0)
        return ERR_MALFORMED;
    e->block = 0;
    if (block != NULL && hex_quantity(block, &e->block) != 0)
        return ERR_MALFORMED;
    return 0;
}

static void events_done(void *data, int err, json_t *result, const char *msg)
{
    struct read *r = data;
    size_t n = err == 0 ? json_array_size(result) : 0;
    struct membership_leader_event *e = calloc(n ? n : 1, sizeof *e);
    if (e == NULL && err == 0)
        err = ERR_NOMEM;
    for (size_t i = 0; err == 0 && i < n; i++)
        if (decode_event(json_array_get(result, i), &e[i]) != 0) {
            err = ERR_MALFORMED;
            msg = "malformed LeaderElected log";
        }
    ((membership_events_cb)r->cb)(r->data, err, err == 0 ? e : NULL,
                                  err == 0 ? n : 0, err == 0 ? NULL : msg);
    free(e);
    free(r);
}

int membership_leader_events(struct membership *m, size_t max,
                             membership_events_cb cb, void *data)
{
    static const char sig[] = "LeaderElected(address,uint256,bytes32)";
    uint8_t topic[32];
    keccak256(sig, strlen(sig), topic);
    struct read *r = read_new(m, NULL, (void (*)(void))cb, data);
    if (r == NULL)
        return ERR_NOMEM;
    int rv = rpc_get_logs(m->rpc, m->address, 0, topic, max, events_done, r);
    if (rv != 0)
        free(r);
    return rv;
}

/* ---- transactions ---- */

static int transact(struct membership *m, const char *sig,
                    const struct abi_val *a, size_t n, sender_cb cb, void *data)
{
    if (m->sender == NULL)
        return ERR_INVALID;
    uint8_t *d;
    size_t len;
    if (abi_encode_call(sig, a, n, &d, &len) != 0)
        return ERR_NOMEM;
    int rv = sender_send(m->sender, m->address, d, len, cb, data);
    free(d);
    return rv;
}

int membership_mint(struct membership *m, const uint8_t to[20],
                    const char *name, sender_cb cb, void *data)
{
    struct abi_val a[] = {abi_address(to), abi_string(name)};
    return transact(m, "mintNodeAccess(address,string)", a, 2, cb, data);
}

int membership_register_instance(struct membership *m,
                                 const uint8_t instance[32], uint64_t token,
                                 sender_cb cb, void *data)
{
    struct abi_val a[] = {abi_bytes32(instance), abi_uint64(token)};
    return transact(m, "registerInstance(bytes32,uint256)", a, 2, cb, data);
}

int membership_register_node(struct membership *m, uint64_t token,
                             const uint8_t instance[32],
                             const uint8_t node_key[20], const char *raft,
                             const char *http, sender_cb cb, void *data)
{
    struct abi_val a[] = {abi_uint64(token), abi_bytes32(instance),
                          abi_address(node_key), abi_string(raft),
                          abi_string(http)};
    return transact(m, "registerNode(uint256,bytes32,address,string,string)", a,
                    5, cb, data);
}

int membership_set_endpoints(struct membership *m, uint64_t token,
                             const char *raft, const char *http, sender_cb cb,
                             void *data)
{
    struct abi_val a[] = {abi_uint64(token), abi_string(raft),
                          abi_string(http)};
    return transact(m, "setEndpoints(uint256,string,string)", a, 3, cb, data);
}

int membership_deactivate(struct membership *m, uint64_t token, sender_cb cb,
                          void *data)
{
    struct abi_val a = abi_uint64(token);
    return transact(m, "deactivateInstance(uint256)", &a, 1, cb, data);
}

int membership_evict(struct membership *m, uint64_t token, sender_cb cb,
                     void *data)
{
    struct abi_val a = abi_uint64(token);
    return transact(m, "evict(uint256)", &a, 1, cb, data);
}

int membership_readmit(struct membership *m, uint64_t token, sender_cb cb,
                       void *data)
{
    struct abi_val a = abi_uint64(token);
    return transact(m, "readmit(uint256)", &a, 1, cb, data);
}

int membership_transfer(struct membership *m, const uint8_t from[20],
                        const uint8_t to[20], uint64_t token, sender_cb cb,
                        void *data)
{
    struct abi_val a[] = {abi_address(from), abi_address(to),
                          abi_uint64(token)};
    return transact(m, "safeTransferFrom(address,address,uint256)", a, 3, cb,
                    data);
}

int membership_vote(struct membership *m, const uint8_t target[20],
                    bool against, sender_cb cb, void *data)
{
    struct abi_val a[] = {abi_address(target), abi_bool(against)};
    return transact(m, "castVote(address,bool)", a, 2, cb, data);
}

int membership_vote_by_token(struct membership *m, uint64_t token,
                             const uint8_t target[20], bool against,
                             sender_cb cb, void *data)
{
    struct abi_val a[] = {abi_uint64(token), abi_address(target),
                          abi_bool(against)};
    return transact(m, "castVoteByToken(uint256,address,bool)", a, 3, cb, data);
}

int membership_vote_for_leader_token(struct membership *m, uint64_t token,
                                     uint64_t leader_token, bool against,
                                     sender_cb cb, void *data)
{
    struct abi_val a[] = {abi_uint64(token), abi_uint64(leader_token),
                          abi_bool(against)};
    return transact(m, "castVoteByToken(uint256,uint256,bool)", a, 3, cb, data);
}

int membership_elect(struct membership *m, sender_cb cb, void *data)
{
    return transact(m, "electLeader()", NULL, 0, cb, data);
}

int membership_elect_by_token(struct membership *m, uint64_t token,
                              sender_cb cb, void *data)
{
    struct abi_val a = abi_uint64(token);
    return transact(m, "electLeaderByToken(uint256)", &a, 1, cb, data);
}

int membership_heartbeat(struct membership *m, sender_cb cb, void *data)
{
    return transact(m, "leaderHeartbeat()", NULL, 0, cb, data);
}

int membership_update_cluster_size(struct membership *m, sender_cb cb,
                                   void *data)
{
    return transact(m, "updateClusterSize()", NULL, 0, cb, data);
}
