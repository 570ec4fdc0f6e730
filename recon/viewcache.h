/* viewcache.h - the member view cached in the data dir,
 * DATA_DIR/chain-view.json: the last member list read from the contract
 * (token, epoch, instance, owner, node key, usable endpoints), with the chain
 * id and contract it was read from and the block it was first read at,
 * rewritten (via a temporary file and rename)
 * only when it changes. A node restarted while the chain is unreachable starts
 * from it (raft keeps serving; the reconciler waits for the chain, and first
 * checks that eth_chainId still matches). */
#ifndef NFTRAFT_RECON_VIEWCACHE_H
#define NFTRAFT_RECON_VIEWCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain/membership.h"
#include "recon/driver.h"

/* Caller-owned; fields are read-only outside viewcache.c. */
struct recon_viewcache {
    char path[600];
    char *saved; /* the JSON last written, without its block */
    bool warned; /* a failed write is logged once (until one succeeds) */
};

void recon_viewcache_init(struct recon_viewcache *c, const char *data_dir);
void recon_viewcache_close(struct recon_viewcache *c);

/* Write members[0..n) read on chain_id from contract at block (leaving
 * ones, which the chain's latest answer lacks, left out), unless the file
 * already holds exactly that view (whatever its block: the block kept is
 * the first one the view was read at). A failure is logged (once), not
 * returned: the reconciler goes on without a cache. */
void recon_viewcache_save(struct recon_viewcache *c, uint64_t chain_id,
                          const char *contract, uint64_t block,
                          const struct recon_member *members, unsigned n);

/* Read the cache for contract (compared case-insensitively): 0 with
 * *nodes (malloc'd, the caller frees; endpoints as saved), *n, *chain_id
 * and *block (0 in a file written before blocks were saved); else ERR_NOTFOUND
 * (no file, not JSON), ERR_MALFORMED (wrong version, fields, another contract)
 * or ERR_NOMEM, with why in msg. */
int recon_viewcache_load(struct recon_viewcache *c, const char *contract,
                         uint64_t *chain_id, uint64_t *block,
                         struct membership_node **nodes, size_t *n, char *msg,
                         size_t len);

#endif
