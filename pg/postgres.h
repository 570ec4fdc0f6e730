/* postgres.h - supervise ONE local PostgreSQL instance: its files, its
 * postmaster (a child process reaped on the loop), the tools that create,
 * clone and rewind it, and its local SQL. Knows nothing of raft.
 *
 * Files under cfg->dir (D/pg): data/ (PGDATA, 0700, owned by the pg user),
 * conf/ (postgresql.conf, pg_hba.conf, pg_ident.conf, standby.conf,
 * members.conf, pgpass: all written here, OUTSIDE PGDATA, so pg_rewind's
 * copy of the source's config files is never used), postgres.log
 * (postgres' stderr, appended) and tool.log (the tools' output, appended).
 * postgres listens on TCP host:port only (no unix socket).
 *
 * Every program (postgres, initdb, pg_basebackup, pg_rewind, rm) runs as a
 * child of cfg->exec_helper (nftraft-pgexec: switches to cfg->user when
 * root, dies with this process) via uv_spawn, and is reaped on the loop;
 * libpq calls run in uv work threads (connect_timeout 2 s, statement
 * timeouts on probes). Nothing here blocks the loop. All functions are
 * called on the loop thread; every callback runs on the loop thread and
 * never from inside the call that started it.
 *
 * Refinements of the shared design (pg-design.md), names unchanged: added
 * pg_role_name, pg_lsn_format, pg_pid; pg_info.upstream holds a full host
 * name (272); a standby's sync_state is asked of its upstream; the sync
 * names live in conf/members.conf; pg_on_exit is not called for a start
 * that fails; an operation's role requirements and errors are below. The
 * postmaster gets SIGKILL when the thread that ran the loop exits (Linux
 * PR_SET_PDEATHSIG follows the forking thread): run the loop on the main
 * thread. postgres.log and tool.log are appended, never rotated. */
#ifndef NFTRAFT_PG_POSTGRES_H
#define NFTRAFT_PG_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PG_DEFAULT_BIN_DIR "/usr/lib/postgresql/15/bin"

/* Read by pg_new (strings copied); never kept. */
struct pg_config {
    const char *bin_dir;     /* NULL = PG_DEFAULT_BIN_DIR */
    const char *exec_helper; /* path of nftraft-pgexec (required) */
    const char *dir;         /* D/pg; created (with its parents' search bit
                                checked) when missing */
    const char *host;        /* listen + advertised host (an IPv4/IPv6 literal
                                or name); "0.0.0.0"/"*"/"::" listen everywhere
                                and the local SQL uses 127.0.0.1 */
    int port;                /* 1..65535 */
    const char *user;        /* OS user for postgres when root; NULL = self
                                (an error when root: postgres refuses root) */
    const char *password;    /* role nftraft's password (also every
                                nftraft_<id> replication role's) */
    uint64_t node_id;        /* application_name node<id>, role nftraft_<id> */
};

enum pg_role {
    PG_NONE,    /* no PGDATA (or an empty one) */
    PG_STOPPED, /* PGDATA, no postmaster */
    PG_STARTING,
    PG_PRIMARY,
    PG_STANDBY,
    PG_STOPPING
};

/* Lower-case name of a role ("none", "stopped", "starting", "primary",
 * "standby", "stopping"); static storage. */
const char *pg_role_name(enum pg_role role);

/* What pg_info reports, from the instance's own SQL. */
struct pg_info {
    enum pg_role role;
    uint32_t timeline; /* primary: of pg_current_wal_lsn; standby: the
                          highest of the received, last-restartpoint and
                          min-recovery timelines seen since PGDATA was last
                          created, cloned or rewound (0 unknown) */
    uint64_t
        lsn; /* primary: pg_current_wal_lsn; standby: max(receive, replay) */
    uint64_t receive_lsn, replay_lsn; /* standby; 0 on a primary */
    bool streaming;        /* standby: walreceiver status = streaming */
    char upstream[272];    /* standby: host:port it follows, "" none */
    int64_t replay_lag_ms; /* standby: now - pg_last_xact_replay_timestamp,
                              -1 unknown; primary: 0 */
    char sync_state[16];   /* standby: as its upstream's pg_stat_replication
                              says ("sync", "quorum", "async", "potential",
                              "" unknown); primary: "primary" */
    bool diverged; /* standby: its WAL left the history of the primary its
                      standby.conf names (its timeline is newer, is not
                      among the primary's ancestors, or its replay went
                      past where that timeline ended there): it can never
                      follow it; false when the primary could not be asked */
    uint32_t upstream_timeline; /* standby: that primary's timeline (0: not
                                   read, or it is not a primary) */
};

/* Format an LSN as PostgreSQL prints it ("0/3000060") into buf (>= 20). */
void pg_lsn_format(uint64_t lsn, char *buf, size_t len);

struct pg;

/* status 0 or a negative ERR_*; errmsg is "" on success, else says what
 * failed (a tool's last output lines included); valid during the call. */
typedef void (*pg_done_cb)(void *data, int status, const char *errmsg);

/* Validate cfg, create D/pg and D/pg/conf (owned by the pg user when
 * root), find out the role (PG_NONE or PG_STOPPED). Fails with
 * ERR_INVALID (bad config, unknown user, root without a user, a missing
 * bin dir or helper, an ancestor of dir the pg user cannot search) or
 * ERR_IO; errmsg says why. *out is owned by the caller: pg_close(). */
int pg_new(struct pg **out, uv_loop_t *loop, const struct pg_config *cfg,
           char *err, size_t errlen);

/* Cancel the running operation (its cb gets ERR_SHUTDOWN, from inside
 * this call; pending pg_info callbacks get ERR_SHUTDOWN later), stop the
 * postmaster (fast shutdown, immediate after 5 s, SIGKILL after 10 s), kill
 * running tools, wait for every child to be reaped and every work thread
 * to return, close the handles, free p, then cb(data) (cb may be NULL).
 * No other pg_* call on p after this one. */
void pg_close(struct pg *p, void (*cb)(void *data), void *data);

enum pg_role pg_role(const struct pg *p);

/* The operations below run one at a time: each returns 0 (cb will be
 * called exactly once) or fails at once without calling cb: ERR_BUSY (an
 * operation is running), ERR_INVALID (wrong role for it, bad argument),
 * ERR_SHUTDOWN (closing). */

/* PG_NONE only: initdb (data checksums, superuser nftraft with
 * cfg->password, scram-sha-256) into an empty D/pg/data. Ends PG_STOPPED. */
int pg_initdb(struct pg *p, pg_done_cb cb, void *data);

/* PG_NONE or PG_STOPPED: pg_basebackup (as nftraft, WAL streamed) from
 * src into D/pg/data.new, then swap it in and remove the old data. Ends
 * PG_STOPPED (start it with an upstream to follow). */
int pg_clone(struct pg *p, const char *src_host, int src_port, pg_done_cb cb,
             void *data);

/* PG_STOPPED only: CHECKPOINT on the source first (PG15's pg_rewind finds
 * nothing to do otherwise right after a promotion), wait for processes
 * left by a fenced postmaster to go, then pg_rewind (it runs the target's
 * crash recovery itself if it was not shut down cleanly). Ends PG_STOPPED;
 * start it following src. */
int pg_rewind(struct pg *p, const char *src_host, int src_port, pg_done_cb cb,
              void *data);

/* PG_STOPPED only: write the config, start the postmaster; upstream NULL =
 * primary (no standby.signal), else a standby following upstream. Done
 * when it accepts connections (timeout 60 s: ERR_TIMEOUT, the postmaster
 * is left running and the role stays PG_STARTING), ends PG_PRIMARY or
 * PG_STANDBY. If the postmaster exits first: ERR_IO with the log's tail. */
int pg_start(struct pg *p, const char *upstream_host, int upstream_port,
             pg_done_cb cb, void *data);

/* Running (PG_STARTING, PG_PRIMARY, PG_STANDBY): SIGINT (fast shutdown) or,
 * immediate, SIGQUIT; escalates (SIGQUIT after 5 s, SIGKILL after 10 s).
 * Done when the postmaster has been reaped; ends PG_STOPPED. */
int pg_stop(struct pg *p, bool immediate, pg_done_cb cb, void *data);

/* PG_STANDBY only: rewrite standby.conf to follow upstream and reload
 * (SIGHUP); upstream NULL = detach (no primary_conninfo: the walreceiver
 * stops). Done once the postmaster has been signalled. */
int pg_follow(struct pg *p, const char *upstream_host, int upstream_port,
              pg_done_cb cb, void *data);

/* PG_STANDBY following an upstream only: CHECKPOINT on that upstream (as
 * role nftraft). Its online checkpoint WAL-logs a running-transactions
 * snapshot: a standby started from a base backup (or a rewind) taken while
 * commits waited for a synchronous standby holds those commits but does not
 * show them (its snapshot horizon comes from the backup's checkpoint) until
 * the primary logs a later xid completion or snapshot; this is that. */
int pg_checkpoint_upstream(struct pg *p, pg_done_cb cb, void *data);

/* PG_STANDBY only: pg_promote(true, 60); done once it is writable (not in
 * recovery); ends PG_PRIMARY and clears standby.conf. */
int pg_promote(struct pg *p, pg_done_cb cb, void *data);

/* PG_PRIMARY (PG_STANDBY: see the end). ids/hosts: the n members (self may be
 * among them; hosts[i] an IPv4/IPv6 literal or name of member ids[i]). Creates
 * role nftraft_<id> (REPLICATION LOGIN, the cluster password) of each other
 * member, sets NOLOGIN on every other nftraft_<id> role, writes
 * synchronous_standby_names = 'ANY 1 (node<a>,...)' (the other members;
 * '' when none) and pg_hba.conf (replication lines for the members only),
 * reloads, waits until SHOW synchronous_standby_names says the new value,
 * then terminates the walsenders of roles not among the members. The
 * settings are kept and rewritten by every later pg_start; the files stay
 * in conf/ across a restart of the node (a new struct pg writes them again
 * only after its own pg_set_members).
 * PG_STANDBY too (added by pgcoord): only keeps the members, writes
 * members.conf and pg_hba.conf and reloads (no SQL, no wait), so that a
 * standby promoted next has synchronous_standby_names from its first
 * commit on. */
int pg_set_members(struct pg *p, const uint64_t *ids, const char *const *hosts,
                   unsigned n, pg_done_cb cb, void *data);

/* NOW, synchronously: SIGKILL the postmaster's process group and its
 * children (so it cannot acknowledge one more commit), whatever its role;
 * the reaping and the role change to PG_STOPPED follow on the loop (a
 * running pg_start/pg_promote/pg_set_members then fails). No-op when no
 * postmaster runs. */
void pg_fence(struct pg *p);

/* The local instance's state through its SQL (connect_timeout 2 s,
 * statement_timeout 2 s); may run concurrently with an operation and with
 * other pg_info calls. When the postmaster does not run, or it does not
 * answer, info has only the role set (status still 0 when not running,
 * ERR_IO/ERR_TIMEOUT when it runs but did not answer). cb gets info valid
 * during the call. Returns 0 or ERR_SHUTDOWN/ERR_NOMEM (cb not called). */
int pg_info(struct pg *p,
            void (*cb)(void *data, int status, const struct pg_info *info),
            void *data);

/* cb is called when the postmaster exits without pg_stop/pg_fence/pg_close
 * having asked it to (a crash, an outside kill): exit_status, term_signal
 * as libuv reports them. The role is PG_STOPPED by then. Not called when
 * the exit fails a running pg_start (its cb reports it). */
void pg_on_exit(struct pg *p,
                void (*cb)(void *data, int64_t exit_status, int term_signal),
                void *data);

/* The postmaster's pid, 0 when none runs (for tests and logs). */
int pg_pid(const struct pg *p);

#endif
