/* config.h - the daemon's one configuration struct.
 *
 * Parsed and validated once from flags and environment variables by
 * config_parse(); read-only afterwards. One table (config_options) names
 * every flag with its field, kind, range, unit, default and help: it drives
 * the parsing, the defaults and --help. */
#ifndef NFTRAFT_CONFIG_H
#define NFTRAFT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_PEERS 64
#define CONFIG_ADDR_MAX 64
#define CONFIG_URL_MAX 256

struct config_peer {
    uint64_t id;                /* raft id = token id */
    char raft[CONFIG_ADDR_MAX]; /* IPv4 a.b.c.d:port */
    char http[CONFIG_URL_MAX];  /* base URL, no trailing slash */
};

struct config {
    uint64_t id;          /* 0 until known (static: from peers) */
    char instance_id[80]; /* as given on the command line */
    char data_dir[512];
    char http_host[CONFIG_ADDR_MAX];
    int http_port;
    char raft_addr[CONFIG_ADDR_MAX];
    char advertise_url[CONFIG_URL_MAX]; /* this node's HTTP URL for peers */
    struct config_peer peers[CONFIG_MAX_PEERS];
    unsigned n_peers;              /* static members, or the chain mode's
                                      address book */
    bool chain;                    /* --rpc-url + --contract given */
    char rpc_url[CONFIG_URL_MAX];  /* "" without a chain */
    char rpc_url2[CONFIG_URL_MAX]; /* a second --rpc-url that must agree
                                      with the first; "" when not given */
    unsigned n_rpc_url_flags;      /* --rpc-url flags seen (at most 2) */
    char contract[43];             /* 0x + 40 hex, "" without a chain */
    char wallet_key_file[512];
    bool wallet_key_env; /* NFTRAFT_WALLET_KEY was set */
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    uint64_t log_retention; /* op-log rows (indexes) kept; 0 = all */
    uint64_t key_retention; /* idempotency keys live this many
                               indexes; 0 = forever */
    unsigned install_snapshot_timeout_ms;
    size_t max_body;
    unsigned forward_timeout_ms;
    unsigned apply_timeout_ms;
    char log_level[8];
    bool fault_switch;             /* --enable-fault-switch (tests only) */
    char cluster_secret_file[512]; /* static mode: raft handshake secret */
    bool insecure_no_auth;         /* static mode without it (tests only) */
    uint64_t max_raft_message;     /* payload cap of one raft message */
    unsigned max_raft_connections; /* accepted raft connections at once */
    char bind_ip[16];              /* --bind-outgoing: the --raft host that
                                      outgoing HTTP leaves from; "" = any */
    bool join;                     /* chain mode: wait to be added, never
                                      bootstrap */
    unsigned chain_poll_ms;        /* reconciler period */
    unsigned chain_confirmations;  /* read the contract at head - this */
    bool allow_insecure_rpc;       /* plain http:// to a remote RPC host */
    unsigned leader_ping_ms;       /* follower -> on-chain leader ping */
    bool http2;                    /* --http2: h2c upgrade + prior knowledge */
    unsigned max_http_conns;       /* open HTTP connections (then 503) */
    unsigned max_forwards;         /* forwards to the leader in flight */
    uint64_t max_fee_gwei;         /* fee-bump ceiling per gas */
    bool pg;                       /* --pg: supervise a PostgreSQL */
    char pg_host[CONFIG_ADDR_MAX]; /* --pg-listen host (listen+advertised) */
    int pg_port;                   /* --pg-listen port; 0 without --pg */
    char pg_bin[512];              /* PostgreSQL's bin dir */
    char pg_user[64];              /* OS user postgres runs as; "" = self */
    char pg_password_file[512];    /* role nftraft's password */
};

enum { CONFIG_HELP = 1, CONFIG_VERSION = 2 };

enum config_kind {
    CONFIG_UINT,   /* a decimal in [min, max] into an unsigned field */
    CONFIG_STR,    /* copied into a char array field (check validates) */
    CONFIG_FLAG,   /* no value: sets a bool field */
    CONFIG_CUSTOM, /* parse() reads the value */
    CONFIG_ACTION, /* --help, --version: config_parse returns dflt */
};

/* One flag of nftraftd. */
struct config_option {
    const char *name; /* the flag without "--" */
    const char *arg;  /* the value's name in --help; NULL: no value */
    enum config_kind kind;
    size_t offset, size;  /* the field in struct config (UINT: 4 or 8) */
    uint64_t min, max;    /* UINT: the accepted range */
    uint64_t dflt;        /* UINT: the default (outside [min, max]: none,
                             the field stays 0); ACTION: what to return */
    const char *dflt_str; /* STR: the default, or NULL */
    const char *unit;     /* UINT: "ms", "rows"...: ends the range error */
    const char *env;      /* STR (or CUSTOM with a field): environment
                             variable read first (copied as is, truncated
                             to the field) or NULL */
    const char *error;    /* a bad value: the message after "--name: ", a
                             printf format given the value; NULL for UINT:
                             "want MIN..MAX[ UNIT]" */
    bool nonempty;        /* STR: "" is a bad value */
    int (*check)(const char *v); /* STR: 0 when v is acceptable */
    int (*parse)(struct config *cfg, const char *v, char *errmsg,
                 size_t errlen); /* CUSTOM: 0, or an error (the message is
                                    error, else what parse wrote) */
    const char *section;         /* a --help section starts here ("" a blank
                                    line) or NULL */
    const char *help;            /* --help text, lines split by \n; %D stands
                                    for the default */
};

/* The table, in --help order; *n gets its length. Static, never freed. */
const struct config_option *config_options(size_t *n);

/* Parse argv/env into *cfg. Returns 0, CONFIG_HELP or CONFIG_VERSION (the
 * caller prints and exits 0), or ERR_INVALID with a one-line reason in
 * errmsg (the caller prints it with the usage line and exits 2). */
int config_parse(struct config *cfg, int argc, char **argv, char *errmsg,
                 size_t errlen);

/* Print the full --help text (from the table) to stream (a FILE *). */
void config_usage(void *stream);

/* A decimal integer in [min, max] with no sign, space or junk: 0 or
 * ERR_INVALID. Shared by every parser of user-given numbers. */
int config_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Whether url is https://, or http:// to this machine (127.x, localhost,
 * [::1]): a membership answer cannot be forged on the way. */
bool config_rpc_is_safe(const char *url);

/* The peer with this id, or NULL. */
const struct config_peer *config_peer(const struct config *cfg, uint64_t id);

#endif
