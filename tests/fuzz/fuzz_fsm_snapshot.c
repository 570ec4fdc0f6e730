/* fuzz_fsm_snapshot.c - snapshot bytes (as a peer's InstallSnapshot
 * carries them) through fsm_restore on a real SQLite state file: a buffer
 * it refuses must leave the state unchanged; one it takes must snapshot
 * back to a buffer that restores. */
#include "fsm/fsm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fsm *state; /* one state file for the whole run */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/nftraft-fuzz-XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    char path[64], err[256];
    snprintf(path, sizeof path, "%s/state.db", dir);
    if (fsm_open(&state, path, err, sizeof err) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t v0 = fsm_value(state);
    uint64_t a0 = fsm_last_applied(state), n0 = fsm_count(state);
    int rv = fsm_restore(state, data, size);
    if (rv != 0) {
        if (fsm_value(state) != v0 || fsm_last_applied(state) != a0 ||
            fsm_count(state) != n0)
            abort();
        return 0;
    }
    void *buf;
    size_t len;
    if (fsm_snapshot(state, &buf, &len) != 0)
        abort();
    if (fsm_restore(state, buf, len) != 0)
        abort();
    free(buf);
    return 0;
}
