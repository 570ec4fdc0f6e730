/* test_log.c - the logging module (core/log.c): the line format, the level
 * filter, and the crash reporter (a child process that crashes writes one
 * FATAL line naming the signal and a backtrace, then dies of that signal). */
#include "core/log.h"
#include "core/err.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a child whose stderr is a pipe; *status = its wait status,
 * out = what it wrote (NUL-terminated). */
static int in_child(void (*fn)(void), char *out, size_t cap, int *status)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    return waitpid(pid, status, 0) == pid ? 0 : -1;
}

static void lines(void)
{
    log_init("7", "warn");
    LOGI("main", "not shown %d", 1);
    LOGW("pg", "shown %s", "here");
}

static void segv(void)
{
    log_init("3.1", NULL);
    log_on_crash();
    raise(SIGSEGV);
}

static void failed_assert(void)
{
    log_init("2", NULL);
    log_on_crash();
    abort();
}

TEST(level_filter_and_line_format)
{
    char out[4096];
    int status;
    ASSERT_EQ(in_child(lines, out, sizeof out, &status), 0);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT(strstr(out, "not shown") == NULL);
    ASSERT(strstr(out, "WARN  node=7 sub=pg shown here\n") != NULL);
    ASSERT_EQ(log_init(NULL, "loud"), ERR_INVALID);
    return 0;
}

TEST(crash_writes_fatal_line_and_dies_of_the_signal)
{
#if defined(__SANITIZE_ADDRESS__)
    SKIP("AddressSanitizer reports crashes itself");
#endif
    char out[16384];
    int status;
    ASSERT_EQ(in_child(segv, out, sizeof out, &status), 0);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    ASSERT(
        strstr(out, "FATAL node=3.1 sub=main crashed: SIGSEGV; backtrace:\n") !=
        NULL);
    ASSERT(strlen(strstr(out, "backtrace:\n")) > strlen("backtrace:\n") + 10);
    ASSERT_EQ(in_child(failed_assert, out, sizeof out, &status), 0);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    ASSERT(strstr(out, "FATAL node=2 sub=main crashed: SIGABRT") != NULL);
    return 0;
}

TEST_LIST(TEST_ENTRY(level_filter_and_line_format),
          TEST_ENTRY(crash_writes_fatal_line_and_dies_of_the_signal))
