/* fuzz_relay_answer.c - bytes a (possibly hostile) leader answers a
 * forwarded request with, through net/relay.c's strict answer parser; also
 * checks that the parser's verdict is the same whatever the bytes arrive
 * split into (prefixes ask for more, never accept something else). */
#include "core/err.h"
#include "net/relay.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct relay_head h, p;
    int rv = relay_parse_head((const char *)data, size, MAX_BODY, &h);
    if (rv != 0 && rv != ERR_NOTFOUND && rv != ERR_MALFORMED &&
        rv != ERR_TOOBIG)
        abort();
    if (rv == ERR_NOTFOUND && size >= RELAY_MAX_HEAD)
        abort();
    if (rv == 0) {
        if (h.head_len > size || h.head_len > RELAY_MAX_HEAD ||
            h.status < 200 || h.status > 599 || h.body_len > MAX_BODY ||
            memchr(h.retry_after, '\0', sizeof h.retry_after) == NULL)
            abort();
        for (const char *c = h.retry_after; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                abort(); /* it is copied into an answer header */
    }
    /* Any prefix: more needed, or the same verdict once the head is in. */
    size_t cut = size / 2;
    int pv = relay_parse_head((const char *)data, cut, MAX_BODY, &p);
    if (rv == 0 || rv == ERR_TOOBIG) {
        size_t head = rv == 0 ? h.head_len : 0;
        if (rv == 0 && cut >= head &&
            (pv != 0 || p.head_len != h.head_len || p.status != h.status ||
             p.body_len != h.body_len))
            abort();
        if (rv == 0 && cut < head && pv != ERR_NOTFOUND)
            abort();
    }
    if (rv == ERR_NOTFOUND && pv != ERR_NOTFOUND)
        abort();
    return 0;
}
