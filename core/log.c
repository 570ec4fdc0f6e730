/* log.c - one-line structured logs on stderr. */
#include "core/log.h"
#include "core/err.h"

#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define LOG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOG_ASAN 1
#endif
#endif

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

#ifndef LOG_ASAN
/* Only async-signal-safe calls from here on: write(2), and backtrace(3),
 * whose first call (which may load libgcc) is made by log_on_crash. */
static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void crash_cb(int sig)
{
    const char *name = sig == SIGSEGV   ? "SIGSEGV"
                       : sig == SIGBUS  ? "SIGBUS"
                       : sig == SIGILL  ? "SIGILL"
                       : sig == SIGFPE  ? "SIGFPE"
                       : sig == SIGABRT ? "SIGABRT (abort or failed assert)"
                                        : "signal";
    put("FATAL node=");
    put(g_node);
    put(" sub=main crashed: ");
    put(name);
    put("; backtrace:\n");
    void *frames[48];
    int n = backtrace(frames, 48);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    raise(sig); /* SA_RESETHAND: the default action, as without a handler */
}
#endif

void log_on_crash(void)
{
#ifndef LOG_ASAN
    static char stack[64 * 1024]; /* a stack overflow still reports */
    stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack};
    sigaltstack(&ss, NULL);
    void *warm[1];
    backtrace(warm, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_cb;
    sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
#endif
}
