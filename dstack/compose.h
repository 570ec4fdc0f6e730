/* compose.h - dstack's compose hash: the app-compose JSON serialized as
 * dstack's SDKs do (recursively sorted keys, compact, raw UTF-8, JavaScript
 * JSON.stringify escaping and number printing), then SHA-256. */
#ifndef NFTRAFT_COMPOSE_H
#define NFTRAFT_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>

/* Canonicalize the JSON text json[0..len) (after the SDK's normalization
 * when normalize is true). On success *out is a NUL-terminated malloc'd
 * string the caller frees. ERR_MALFORMED (invalid JSON, message in errmsg),
 * ERR_NOMEM. */
int compose_canonical(const char *json, size_t len, bool normalize, char **out,
                      char *errmsg, size_t errlen);

/* sha256 of the canonical form as 64 lowercase hex digits into hex[65]. */
int compose_hash(const char *json, size_t len, bool normalize, char hex[65],
                 char *errmsg, size_t errlen);

/* JSON.parse(json) written back as strict JSON for parsers without
 * JavaScript strings: lone surrogates become U+FFFD (as TextEncoder encodes
 * them), numbers beyond the double range +-1e308, duplicate keys collapse
 * to the last value; otherwise unsorted. *out is malloc'd. ERR_MALFORMED
 * (JSON.parse would throw; message in errmsg), ERR_TOOBIG (nesting), ERR_NOMEM.
 */
int compose_js_reencode(const char *json, size_t len, char **out, char *errmsg,
                        size_t errlen);

/* JavaScript's Number.prototype.toString() of x into out[40] (shortest
 * round-trip digits; "NaN", "Infinity", "-Infinity"; -0 is "0"). */
void compose_js_number(double x, char out[40]);

#endif
