/* redact.h - hides credentials in a URL before it is shown to anyone (HTTP
 * answers, logs, error messages): user:password, path segments that look
 * like API keys, and secret-looking query values. */
#ifndef NFTRAFT_REDACT_H
#define NFTRAFT_REDACT_H

#include <stddef.h>

/* Copy url into out (cap bytes, always NUL-terminated when cap > 0) with
 * every credential replaced by "***":
 * - the userinfo before '@' in the authority ("user:pw@host" -> "***@host");
 * - a path segment, query value or fragment that looks like a key: 16 or
 *   more characters of [A-Za-z0-9._~+=%-] with a digit or both cases;
 * - the value of a query parameter whose name contains "key", "token",
 *   "secret", "pass", "auth" or "sig" (case-insensitive), whatever it is.
 * The scheme, host and port and every other part are kept as given.
 * Returns the number of parts replaced (>= 0), or ERR_TOOBIG when out was
 * too small (out then holds a truncated, still redacted, prefix). */
int redact_url(const char *url, char *out, size_t cap);

#endif
