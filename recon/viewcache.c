/* viewcache.c - the member view cached in the data dir (see
 * viewcache.h). */
#include "recon/viewcache.h"
#include "chain/hex.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static json_t *cache_json(uint64_t chain_id, const char *contract,
                          const struct recon_member *members, unsigned n)
{
    json_t *ms = json_array();
    for (unsigned i = 0; i < n; i++) {
        const struct recon_member *r = &members[i];
        if (r->leaving) /* the chain's latest answer lacks it */
            continue;
        char ih[67], oh[43], kh[43];
        hex_encode(r->instance, 32, 1, ih);
        hex_encode(r->owner, 20, 1, oh);
        hex_encode(r->key, 20, 1, kh);
        json_t *m = json_pack(
            "{s:I,s:I,s:s,s:s,s:s}", "token", (json_int_t)r->token, "epoch",
            (json_int_t)r->epoch, "instance", ih, "owner", oh, "node_key", kh);
        if (m != NULL && r->addr.raft[0]) {
            json_object_set_new(m, "raft", json_string(r->addr.raft));
            json_object_set_new(m, "http", json_string(r->addr.http));
        }
        json_array_append_new(ms, m);
    }
    return json_pack("{s:i,s:I,s:s,s:o}", "version", 1, "chain_id",
                     (json_int_t)chain_id, "contract", contract, "members", ms);
}

/* j as the file's text (sorted keys, compact), or NULL. */
static char *dump(json_t *j)
{
    char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    return text;
}

void recon_viewcache_init(struct recon_viewcache *c, const char *data_dir)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s/chain-view.json", data_dir);
}

void recon_viewcache_close(struct recon_viewcache *c)
{
    free(c->saved);
    c->saved = NULL;
}

void recon_viewcache_save(struct recon_viewcache *c, uint64_t chain_id,
                          const char *contract, uint64_t block,
                          const struct recon_member *members, unsigned n)
{
    /* Compared without the block: a view that did not change is not
     * rewritten every poll; the block saved is the first one this view was
     * read at (a floor no later view may go below). */
    json_t *j = cache_json(chain_id, contract, members, n);
    char *same = dump(j), *text = NULL;
    if (same != NULL && (c->saved == NULL || strcmp(c->saved, same) != 0)) {
        json_object_set_new(j, "block", json_integer((json_int_t)block));
        text = dump(j);
    }
    json_decref(j);
    if (text == NULL) {
        free(same);
        return;
    }
    const char *path = c->path;
    char tmp[610];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = (f == NULL || fclose(f) == 0) && ok && rename(tmp, path) == 0;
    if (!ok) {
        if (!c->warned)
            LOGW("chain",
                 "cannot write %s: %s (a restart while the chain "
                 "is unreachable will not find this view)",
                 path, strerror(errno));
        c->warned = true;
        free(text);
        free(same);
        return;
    }
    c->warned = false;
    free(c->saved);
    c->saved = same;
    free(text);
}

/* One cached member into m: 0 or ERR_MALFORMED. */
static int cache_member(json_t *e, struct membership_node *m)
{
    json_int_t token, epoch = 0;
    const char *ih, *oh, *kh = NULL, *raft = "", *http = "";
    size_t k1, k2, k3 = 20;
    memset(m, 0, sizeof *m);
    if (json_unpack(e, "{s:I,s?I,s:s,s:s,s?s,s?s,s?s}", "token", &token,
                    "epoch", &epoch, "instance", &ih, "owner", &oh, "node_key",
                    &kh, "raft", &raft, "http", &http) != 0 ||
        token <= 0 || epoch < 0 || epoch > 0xffffffffLL ||
        hex_decode(ih, strlen(ih), m->instance, 32, &k1) != 0 || k1 != 32 ||
        hex_decode(oh, strlen(oh), m->owner, 20, &k2) != 0 || k2 != 20 ||
        (kh != NULL && hex_decode(kh, strlen(kh), m->node_key, 20, &k3) != 0) ||
        k3 != 20)
        return ERR_MALFORMED;
    m->token = (uint64_t)token;
    m->epoch = (uint32_t)epoch; /* absent (written before epochs): 0 */
    if (kh == NULL)             /* written before node keys: the owner speaks */
        memcpy(m->node_key, m->owner, 20);
    snprintf(m->raft, sizeof m->raft, "%s", raft);
    snprintf(m->http, sizeof m->http, "%s", http);
    return 0;
}

int recon_viewcache_load(struct recon_viewcache *c, const char *want,
                         uint64_t *chain_id, uint64_t *block,
                         struct membership_node **nodes, size_t *n_out,
                         char *msg, size_t len)
{
    const char *path = c->path;
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (j == NULL) {
        snprintf(msg, len, "no usable %.300s (%.100s)", path, e.text);
        return ERR_NOTFOUND;
    }
    int rv = ERR_MALFORMED;
    json_int_t version = 0, chain = 0, at = 0;
    const char *contract = NULL;
    json_t *ms = NULL;
    struct membership_node *got = NULL;
    if (json_unpack(j, "{s:I,s:I,s:s,s:o,s?I}", "version", &version, "chain_id",
                    &chain, "contract", &contract, "members", &ms, "block",
                    &at) != 0 ||
        version != 1 || chain <= 0 || at < 0 || !json_is_array(ms) ||
        json_array_size(ms) > MEMBERSHIP_MAX_NODES) {
        snprintf(msg, len, "%.300s is malformed", path);
        goto out;
    }
    if (strcasecmp(contract, want) != 0) {
        snprintf(msg, len, "%.300s is for contract %.42s, not %.42s", path,
                 contract, want);
        goto out;
    }
    size_t n = json_array_size(ms);
    if ((got = calloc(n ? n : 1, sizeof *got)) == NULL) {
        rv = ERR_NOMEM;
        snprintf(msg, len, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (cache_member(json_array_get(ms, i), &got[i]) != 0) {
            snprintf(msg, len, "%.300s: member %zu is malformed", path, i);
            goto out;
        }
    *nodes = got;
    got = NULL;
    *n_out = n;
    *chain_id = (uint64_t)chain;
    *block = (uint64_t)at; /* written before blocks were: 0 */
    rv = 0;
out:
    free(got);
    json_decref(j);
    return rv;
}
