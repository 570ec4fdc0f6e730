/* request.h - validation of client input to the HTTP API (bodies, headers,
 * query values). Pure functions: no I/O, no allocation kept. */
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

#endif
