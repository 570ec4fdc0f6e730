/* coord.h - the PostgreSQL coordinator: raft decides the primary.
 *
 * Drives this node's PostgreSQL (pg/postgres.h, owned here) from raft's
 * role changes and the promotion records the FSM applies (fsm_on_pg):
 * - the ready raft leader's PostgreSQL is the primary; on bootstrap the
 *   leader creates it and appends the first record {term, self, tl, lsn};
 * - a new leader whose PostgreSQL is not the primary appends a fence record
 *   {term, primary 0} (every node applying it detaches its standby, an old
 *   primary is SIGKILLed), reads every other voter's /status "pg" over HTTP
 *   until each reports it has applied that fence, is detached and its WAL
 *   position; if one is ahead it hands raft leadership to it (which repeats
 *   the procedure), else it promotes its standby, sets the members
 *   (synchronous_standby_names ANY 1 of the other voters, pg_hba) and
 *   appends {term, self, new timeline, switch lsn};
 * - a node applying a record naming another primary re-points its standby,
 *   or rewinds (pg_rewind) or re-clones (pg_basebackup) when its WAL
 *   diverged or it has none;
 * - a node that loses raft leadership SIGKILLs its primary at once.
 * Every decision is logged on one line (module "pg").
 *
 * All calls run on the loop thread. coord_start takes node_on_change's
 * (single) slot and fsm_on_pg's hook; nothing else in the tree uses them. */
#ifndef NFTRAFT_PG_COORD_H
#define NFTRAFT_PG_COORD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "fsm/fsm.h"
#include "pg/postgres.h"

struct coord;
struct node;

/* The peer's HTTP base URL (no trailing slash) or NULL when unknown. */
typedef const char *(*coord_peer_url_fn)(void *data, uint64_t id);

/* What /status "pg" and /metrics show. */
struct coord_status {
    struct pg_info info; /* the local instance, as last read (role: now) */
    int64_t info_age_ms; /* since that read; -1 never */
    char host[64];       /* this node's PostgreSQL address */
    int port;
    bool has_record;      /* a promotion record was applied */
    struct fsm_pg record; /* the newest one */
    uint64_t failovers;   /* promotions of a standby done by this node */
    bool broken; /* PGDATA unusable (a rewind or clone was interrupted or
                    failed: D/pg/rewind-incomplete); info.lsn is then 0 and
                    PostgreSQL is not started until a re-clone succeeds */
    uint64_t detached_for; /* the local standby detached for the fence
                              record of this term and info.lsn was read
                              after that (0: not detached) */
    char action[200];      /* what the coordinator does now ("" idle) */
};

/* Create the local PostgreSQL supervisor (pg_new with pcfg) and the
 * coordinator for node/fsm (not owned; they outlive it). bind_ip: source
 * address of the peer reads (NULL/"" any). Nothing runs until coord_start.
 * 0, or an error with errmsg. */
int coord_new(struct coord **out, uv_loop_t *loop, struct node *node,
              struct fsm *fsm, const struct pg_config *pcfg,
              const char *bind_ip, char *errmsg, size_t errlen);

/* Where the peers' /status is read (set before coord_start). */
void coord_set_peer_url(struct coord *c, coord_peer_url_fn fn, void *data);

/* Start acting (after node_start). */
void coord_start(struct coord *c);

/* Stop acting at once (no new operation, hooks detached): call before
 * node_close. Idempotent. */
void coord_stop(struct coord *c);

/* coord_stop, then close the peer client and stop PostgreSQL (pg_close:
 * fast shutdown), free c; cb(data) last. */
void coord_close(struct coord *c, void (*cb)(void *data), void *data);

void coord_status(struct coord *c, struct coord_status *st);

#endif
