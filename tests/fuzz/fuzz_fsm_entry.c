/* fuzz_fsm_entry.c - raft entry bytes through fsm_cmd_decode; whatever it
 * accepts must be valid (by >= 1, key within bounds) and survive an
 * encode/decode round trip unchanged. */
#include "fsm/fsm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fsm_cmd c;
    if (fsm_cmd_decode(data, size, &c) != 0)
        return 0;
    if (c.by < 1 || memchr(c.key, '\0', sizeof c.key) == NULL)
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
