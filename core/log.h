/* log.h - the one logging module.
 *
 * Lines go to stderr as: "TIME LEVEL node=ID sub=SUBSYS message key=value...".
 * log_init() is called once at start-up (before any other thread exists);
 * afterwards the settings are read-only. */
#ifndef NFTRAFT_LOG_H
#define NFTRAFT_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Set the node label printed on every line (may be NULL) and the minimum
 * level. Returns 0, or ERR_INVALID for an unknown level name. */
int log_init(const char *node_label, const char *level_name);
void log_set_level(enum log_level level);
enum log_level log_level(void);

/* printf-style; sub names the subsystem ("raft", "http", "fsm", "chain"). */
void log_msg(enum log_level level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT: a failed assert in
 * raft too) writes one FATAL line with the node label and the signal, then
 * a backtrace, to stderr (async-signal-safe writes, on its own stack), and
 * the process dies of the same signal. Not installed under AddressSanitizer
 * (it reports crashes itself). Call once, after log_init. */
void log_on_crash(void);

#define LOGD(sub, ...) log_msg(LOG_DEBUG, sub, __VA_ARGS__)
#define LOGI(sub, ...) log_msg(LOG_INFO, sub, __VA_ARGS__)
#define LOGW(sub, ...) log_msg(LOG_WARN, sub, __VA_ARGS__)
#define LOGE(sub, ...) log_msg(LOG_ERROR, sub, __VA_ARGS__)

#endif
