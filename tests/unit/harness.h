/* harness.h - the tiny unit-test harness (libuv's test/task.h shape).
 *
 * A test file defines TEST(name) functions and one TEST_LIST naming them;
 * the harness main() runs them all (or the ones named on the command line),
 * prints one line per test and a closing "N passed, N failed, N skipped"
 * line. A test that cannot run here (a tool missing) returns SKIP(why):
 * the executable then exits 77 unless a test failed, and ctest (which the
 * CMake sets up with SKIP_RETURN_CODE 77) reports it as skipped. */
#ifndef NFTRAFT_HARNESS_H
#define NFTRAFT_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct harness_test {
    const char *name;
    int (*fn)(void);
};

#define TEST(name) static int test_##name(void)
#define HARNESS_SKIPPED 77
#define SKIP(why)                                                              \
    do {                                                                       \
        printf("  (%s: skipped)\n", (why));                                    \
        return HARNESS_SKIPPED;                                                \
    } while (0)
#define TEST_ENTRY(name)                                                       \
    {                                                                          \
#name, test_##name                                                     \
    }

#define FAILF(...)                                                             \
    do {                                                                       \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        return 1;                                                              \
    } while (0)

#define ASSERT(c)                                                              \
    do {                                                                       \
        if (!(c))                                                              \
            FAILF("assertion failed: %s", #c);                                 \
    } while (0)

/* expr is a check returning 0, HARNESS_SKIPPED or a failure. */
#define ASSERT_OK_OR_SKIP(expr)                                                \
    do {                                                                       \
        int r_ = (expr);                                                       \
        if (r_ == HARNESS_SKIPPED)                                             \
            return r_;                                                         \
        if (r_ != 0)                                                           \
            FAILF("%s failed (%d)", #expr, r_);                                \
    } while (0)

#define ASSERT_EQ(a, b)                                                        \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_)                                                          \
            FAILF("%s == %s: %lld != %lld", #a, #b, a_, b_);                   \
    } while (0)

#define ASSERT_U64_EQ(a, b)                                                    \
    do {                                                                       \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                       \
        if (a_ != b_)                                                          \
            FAILF("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);        \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                    \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
            FAILF("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",    \
                  b_ ? b_ : "(null)");                                         \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                 \
    do {                                                                       \
        if (memcmp((a), (b), (n)) != 0)                                        \
            FAILF("%s == %s: %zu bytes differ", #a, #b, (size_t)(n));          \
    } while (0)

#define TEST_LIST(...)                                                         \
    static const struct harness_test harness_tests_[] = {__VA_ARGS__};         \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        int passed = 0, failed = 0, skipped = 0;                               \
        size_t n = sizeof harness_tests_ / sizeof harness_tests_[0];           \
        for (size_t i = 0; i < n; i++) {                                       \
            int selected = argc < 2;                                           \
            for (int j = 1; j < argc; j++)                                     \
                if (strcmp(argv[j], harness_tests_[i].name) == 0)              \
                    selected = 1;                                              \
            if (!selected)                                                     \
                continue;                                                      \
            int rc = harness_tests_[i].fn();                                   \
            printf("%s %s\n",                                                  \
                   rc == 0                 ? "ok  "                            \
                   : rc == HARNESS_SKIPPED ? "skip"                            \
                                           : "FAIL",                           \
                   harness_tests_[i].name);                                    \
            fflush(stdout);                                                    \
            if (rc == 0)                                                       \
                passed++;                                                      \
            else if (rc == HARNESS_SKIPPED)                                    \
                skipped++;                                                     \
            else                                                               \
                failed++;                                                      \
        }                                                                      \
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped); \
        return failed ? 1 : skipped ? HARNESS_SKIPPED : 0;                     \
    }

#endif
