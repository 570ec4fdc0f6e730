/* request.h - validation of client input to the HTTP API (method, target,
 * body framing, bodies, headers, query values). Pure functions: no I/O, no
 * allocation kept; each is a fuzz target (tests/fuzz/). */
#ifndef NFTRAFT_REQUEST_H
#define NFTRAFT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* Parse a POST /increment body: empty (or whitespace) means by = 1;
 * otherwise exactly {"by": N} with N an integer 1..INT64_MAX. Returns 0,
 * ERR_MALFORMED (not JSON) or ERR_INVALID (wrong shape or value), with the
 * reason in err. */
int request_parse_increment(const void *body, size_t len, int64_t *by,
                            char *err, size_t errlen);

/* Check an Idempotency-Key (1..max bytes of printable ASCII, no spaces) and
 * copy it NUL-terminated into out (max + 1 bytes). ERR_INVALID otherwise. */
int request_check_key(const char *key, size_t len, size_t max, char *out,
                      char *err, size_t errlen);

/* A request method: 1..32 RFC 9110 token characters. 0 or ERR_INVALID. */
int request_check_method(const char *m, size_t len);

/* A request target (or its decoded path): well-formed UTF-8 (no overlongs,
 * surrogates, or code points above U+10FFFF) and no control bytes.
 * 0 or ERR_INVALID. */
int request_check_target(const char *p, size_t len);

/* The raw HTTP/1 request head head[0..len) (request line, header lines, up
 * to the empty line; bytes after it are ignored): NULL when its body
 * framing is unambiguous, otherwise why not (two Content-Length headers,
 * two Transfer-Encoding headers, or both). */
const char *request_framing_problem(const char *head, size_t len);

/* The URL-decoded value of parameter `name` in query q[0..len) (the part
 * after '?'), NUL-terminated into out (cap bytes): 0, ERR_NOTFOUND,
 * ERR_TOOBIG, or ERR_MALFORMED (a bad %-escape, or %00, which would
 * truncate the value). */
int request_query_value(const char *q, size_t len, const char *name, char *out,
                        size_t cap);

#endif
