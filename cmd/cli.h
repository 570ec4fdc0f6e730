/* cli.h - what the `nftraft` subcommands share: usage errors, the one
 * blocking HTTP helper, the cluster directory that `up` writes (DIR/nodes)
 * and the step lines `up` prints. Used only by the programs in cmd/. */
#ifndef NFTRAFT_CMD_CLI_H
#define NFTRAFT_CMD_CLI_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CLI_MAX_NODES 32
#define CLI_DEFAULT_DIR "./.nftraft"

/* Print "nftraft CMD: MSG" and the usage line to stderr; returns 2 (the
 * exit code of bad usage). */
int cli_bad_usage(const char *cmd, const char *msg, const char *usage);

/* One blocking HTTP request (curl easy; the caller has run
 * curl_global_init). method is "GET" or "POST" (body as JSON, NULL = empty);
 * key, when not NULL, is sent as the Idempotency-Key header. Returns the
 * HTTP status, or 0 on a transport error with the message in err. *out is
 * the response body (malloc'd, NUL-terminated, the caller frees it) or NULL
 * when the status is 0. */
long cli_http(const char *method, const char *url, const char *body,
              const char *key, long timeout_ms, char **out, char *err,
              size_t errlen);

/* GET url and parse the answer: a JSON value the caller json_decref()s, or
 * NULL when the request failed, the status is not 200 or it is not JSON. */
json_t *cli_get_json(const char *url, long timeout_ms);

/* A node of the cluster directory. */
struct cli_node {
    int id;
    char http[64], raft[64], url[96], dir[PATH_MAX];
    pid_t pid;
};

/* Read DIR/nodes ("id url pid" lines written by `up`) into nodes[0..
 * CLI_MAX_NODES); returns how many (0 when there is no such file). Only
 * id, url and pid are filled. */
int cli_read_nodes(const char *dir, struct cli_node *nodes);

/* Whether pid is a running nftraftd (its /proc cmdline names it). */
bool cli_pid_is_nftraftd(pid_t pid);

/* Whether 127.0.0.1:port can be bound now (TCP). */
bool cli_port_free(int port);

/* The directory of this executable into out: 0, or -1. */
int cli_self_dir(char *out, size_t n);

/* `up` reports each step as it happens: "up: <step> <what> ... " on
 * cli_step_begin (returns the start time), "<result> (1.2 s)" on
 * cli_step_end. */
double cli_step_begin(const char *step, const char *what);
void cli_step_end(double t0, const char *result);

#endif
