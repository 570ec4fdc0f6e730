/* strbuf.h - a growing, always NUL-terminated byte buffer for building
 * answers and decoded strings. An allocation failure sets `oom` and makes
 * every later append a no-op, so callers check once at the end. */
#ifndef NFTRAFT_STRBUF_H
#define NFTRAFT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zero-initialize; the caller owns p and frees it (NULL until the first
 * append). */
struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Append n bytes of s. */
void strbuf_put(struct strbuf *b, const void *s, size_t n);

/* Append the NUL-terminated s. */
void strbuf_puts(struct strbuf *b, const char *s);

/* Append code point cp (at most U+10FFFF) as UTF-8. */
void strbuf_utf8(struct strbuf *b, uint32_t cp);

#endif
