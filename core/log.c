/* log.c - one-line structured logs on stderr. */
#include "core/log.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level g_level = LOG_INFO; /* written only by log_init */
static char g_node[64] = "-";

int log_init(const char *node_label, const char *level_name)
{
    if (node_label != NULL)
        snprintf(g_node, sizeof g_node, "%s", node_label);
    if (level_name == NULL)
        return 0;
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(level_name, names[i]) == 0) {
            g_level = (enum log_level)i;
            return 0;
        }
    }
    return ERR_INVALID;
}

void log_set_level(enum log_level level)
{
    g_level = level;
}

enum log_level log_level(void)
{
    return g_level;
}

void log_msg(enum log_level level, const char *sub, const char *fmt, ...)
{
    if (level < g_level)
        return;
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %-5s node=%s sub=%s %s\n", ts,
            now.tv_nsec / 1000000, tags[level], g_node, sub, msg);
}
