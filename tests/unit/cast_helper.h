/* cast_helper.h - run Foundry's cast (from the project's npm install) and
 * capture its one-line answer, to compare the C client with it. */
#ifndef NFTRAFT_CAST_HELPER_H
#define NFTRAFT_CAST_HELPER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `cast ARGS`; answer (trimmed) into out. Returns 0, or -1 when cast
 * is missing or failed. */
static int cast_run(const char *args, char *out, size_t cap)
{
    const char *src = getenv("NFTRAFT_SOURCE_DIR");
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s/contracts/node_modules/.bin/cast %s 2>/dev/null",
             src ? src : ".", args);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    return st == 0 && n > 0 ? 0 : -1;
}

#endif
