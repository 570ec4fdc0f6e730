/* dataid.h - which raft server a data dir belongs to (chain mode).
 *
 * DATA_DIR/raft-id holds the raft id (decimal, one line) the node's raft
 * log and state machine were built as; it is written atomically (temporary
 * file, fsync, rename) at the first start. In chain mode a raft id is
 * token << 32 | epoch: a token registered anew is a new raft server, which
 * must never reuse the old server's state (nor come back as the old voter
 * with an empty disk). When the recorded id differs from the registration's,
 * or the dir holds raft state but no raft-id file (a dir from before raft
 * ids had epochs, when the raft id was the bare token), the old state is
 * moved aside to DATA_DIR/old-<id>-<unix time>/ (never deleted) and the
 * node starts empty, joining as the new server. Single-threaded; call
 * before the raft node opens the dir. */
#ifndef NFTRAFT_DATAID_H
#define NFTRAFT_DATAID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Make dir the data dir of raft id `id` (creating dir if needed). 0 with
 * *moved false: it already was, or it was empty (raft-id now written); 0
 * with *moved true: the old state is in aside[] (the path) and dir holds
 * no raft state; else ERR_IO or ERR_BUSY (another process holds
 * DATA_DIR/LOCK) or ERR_CORRUPT (an unreadable raft-id file), with why in
 * errmsg (a move that fails midway leaves what it moved in aside[]). *old_id:
 * the recorded raft id (0 when there was no file). */
int dataid_claim(const char *dir, uint64_t id, bool *moved, uint64_t *old_id,
                 char *aside, size_t aside_len, char *errmsg, size_t errlen);

/* The raft id recorded in dir: 0 and *id, ERR_NOTFOUND (no file) or
 * ERR_CORRUPT / ERR_IO. */
int dataid_read(const char *dir, uint64_t *id);

#endif
