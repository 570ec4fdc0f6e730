/* test_redact.c - credential redaction in RPC URLs (core/redact). */
#include "core/err.h"
#include "core/redact.h"
#include "harness.h"

/* One URL, how many parts redact_url must hide, and what it must leave. */
struct redact_case {
    const char *url;
    int count;
    const char *want;
};

/* 0 when every case redacts as expected; else 1, naming each one that
 * does not. */
static int check_cases(const struct redact_case *c, size_t n)
{
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        int got = redact_url(c[i].url, buf, sizeof buf);
        if (got != c[i].count || strcmp(buf, c[i].want) != 0) {
            fprintf(stderr, "  %s: %d redactions \"%s\", want %d \"%s\"\n",
                    c[i].url, got, buf, c[i].count, c[i].want);
            failed = 1;
        }
    }
    return failed;
}

#define CHECK_CASES(cases) check_cases(cases, sizeof cases / sizeof cases[0])

TEST(plain_urls_unchanged)
{
    static const struct redact_case cases[] = {
        {"http://127.0.0.1:8545", 0, "http://127.0.0.1:8545"},
        {"https://rpc.example.org/", 0, "https://rpc.example.org/"},
        {"https://eth.example.org/v1/mainnet?x=1#top", 0,
         "https://eth.example.org/v1/mainnet?x=1#top"},
        /* long plain words are not keys */
        {"https://h/ethereum-mainnet-archive", 0,
         "https://h/ethereum-mainnet-archive"},
        {"", 0, ""},
    };
    return CHECK_CASES(cases);
}

TEST(userinfo)
{
    static const struct redact_case cases[] = {
        {"http://user:pa55word@127.0.0.1:8545/", 1,
         "http://***@127.0.0.1:8545/"},
        {"https://justuser@h.example", 1, "https://***@h.example"},
        /* '@' after the authority is not userinfo */
        {"http://h/a@b", 0, "http://h/a@b"},
    };
    return CHECK_CASES(cases);
}

TEST(key_like_path_segments)
{
    static const struct redact_case cases[] = {
        {"https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161", 1,
         "https://mainnet.infura.io/v3/***"},
        {"https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOpQrSt", 1,
         "https://eth-mainnet.g.alchemy.com/v2/***"},
        {"https://x.quiknode.pro/0123456789abcdef0123/", 1,
         "https://x.quiknode.pro/***/"},
        /* 15 characters: too short to be taken for a key */
        {"https://h/abc123def456ghi", 0, "https://h/abc123def456ghi"},
    };
    return CHECK_CASES(cases);
}

TEST(query_values)
{
    static const struct redact_case cases[] = {
        {"https://h/rpc?apikey=short&chain=1", 1,
         "https://h/rpc?apikey=***&chain=1"},
        {"https://h/?key=a&token=b&API_KEY=c&x-auth=d", 4,
         "https://h/?key=***&token=***&API_KEY=***&x-auth=***"},
        {"https://h/?id=Zm9vYmFyYmF6cXV4MTIz", 1, "https://h/?id=***"},
        {"https://h/?key=", 0, "https://h/?key="},
        {"https://h/#s3cr3tS3cr3tS3cr3t", 1, "https://h/#***"},
    };
    return CHECK_CASES(cases);
}

TEST(everything_at_once)
{
    static const struct redact_case cases[] = {
        {"https://u:p@h:1/v3/9aa3d95b3bc440fa88ea12eaa4456161?token=t", 3,
         "https://***@h:1/v3/***?token=***"},
    };
    return CHECK_CASES(cases);
}

TEST(small_buffer_is_an_error_and_stays_redacted)
{
    char small[16];
    ASSERT_EQ(redact_url("http://user:secret@host/x", small, sizeof small),
              ERR_TOOBIG);
    ASSERT_STR_EQ(small, "http://***@host");
    ASSERT(strstr(small, "secret") == NULL);
    return 0;
}

TEST_LIST(TEST_ENTRY(plain_urls_unchanged), TEST_ENTRY(userinfo),
          TEST_ENTRY(key_like_path_segments), TEST_ENTRY(query_values),
          TEST_ENTRY(everything_at_once),
          TEST_ENTRY(small_buffer_is_an_error_and_stays_redacted))
