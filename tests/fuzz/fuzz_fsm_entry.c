/* fuzz_fsm_entry.c - raft entry bytes through fsm_cmd_decode and
 * fsm_pg_decode; whatever either accepts must be valid (increment: by >= 1,
 * key within bounds; pg record: term >= 1, a primary with an address, a
 * fence without one), must not be accepted by the other, and must survive
 * an encode/decode round trip unchanged. */
#include "fsm/fsm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_pg(const struct fsm_pg *p)
{
    if (p->term < 1 || memchr(p->host, '\0', sizeof p->host) == NULL)
        abort();
    if (p->primary == 0
            ? p->host[0] != '\0' || p->port != 0
            : p->host[0] == '\0' || p->port < 1 || p->port > 65535 ||
                  p->timeline < 1 || p->fenced != 0)
        abort();
    uint8_t buf[FSM_CMD_MAX];
    size_t len;
    struct fsm_pg again;
    struct fsm_cmd c;
    if (fsm_pg_encode(p, buf, sizeof buf, &len) != 0 ||
        fsm_pg_decode(buf, len, &again) != 0 || again.term != p->term ||
        again.primary != p->primary || again.fenced != p->fenced ||
        again.timeline != p->timeline || again.lsn != p->lsn ||
        again.port != p->port || strcmp(again.host, p->host) != 0 ||
        fsm_cmd_decode(buf, len, &c) == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fsm_pg p;
    if (fsm_pg_decode(data, size, &p) == 0)
        check_pg(&p);
    struct fsm_cmd c;
    if (fsm_cmd_decode(data, size, &c) != 0)
        return 0;
    if (c.by < 1 || memchr(c.key, '\0', sizeof c.key) == NULL ||
        fsm_pg_decode(data, size, &p) == 0)
        abort();
    uint8_t buf[FSM_CMD_MAX];
    size_t len;
    struct fsm_cmd again;
    if (fsm_cmd_encode(&c, buf, sizeof buf, &len) != 0 ||
        fsm_cmd_decode(buf, len, &again) != 0 || again.by != c.by ||
        again.node != c.node || again.term != c.term ||
        again.time_ms != c.time_ms || strcmp(again.key, c.key) != 0)
        abort();
    return 0;
}
