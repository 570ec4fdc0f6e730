/* test_redact.c - credential redaction in RPC URLs (core/redact). */
#include "core/err.h"
#include "core/redact.h"
#include "harness.h"

static char buf[512];

static const char *red(const char *url, int want_count)
{
    int n = redact_url(url, buf, sizeof buf);
    if (n != want_count) {
        fprintf(stderr, "  %s: %d redactions, want %d (%s)\n", url, n,
                want_count, buf);
        return "(wrong count)";
    }
    return buf;
}

TEST(plain_urls_unchanged)
{
    ASSERT_STR_EQ(red("http://127.0.0.1:8545", 0), "http://127.0.0.1:8545");
    ASSERT_STR_EQ(red("https://rpc.example.org/", 0),
                  "https://rpc.example.org/");
    ASSERT_STR_EQ(red("https://eth.example.org/v1/mainnet?x=1#top", 0),
                  "https://eth.example.org/v1/mainnet?x=1#top");
    /* long plain words are not keys */
    ASSERT_STR_EQ(red("https://h/ethereum-mainnet-archive", 0),
                  "https://h/ethereum-mainnet-archive");
    ASSERT_STR_EQ(red("", 0), "");
    return 0;
}

TEST(userinfo)
{
    ASSERT_STR_EQ(red("http://user:pa55word@127.0.0.1:8545/", 1),
                  "http://***@127.0.0.1:8545/");
    ASSERT_STR_EQ(red("https://justuser@h.example", 1),
                  "https://***@h.example");
    /* '@' after the authority is not userinfo */
    ASSERT_STR_EQ(red("http://h/a@b", 0), "http://h/a@b");
    return 0;
}

TEST(key_like_path_segments)
{
    ASSERT_STR_EQ(
        red("https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161", 1),
        "https://mainnet.infura.io/v3/***");
    ASSERT_STR_EQ(
        red("https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOpQrSt", 1),
        "https://eth-mainnet.g.alchemy.com/v2/***");
    ASSERT_STR_EQ(red("https://x.quiknode.pro/0123456789abcdef0123/", 1),
                  "https://x.quiknode.pro/***/");
    /* 15 characters: too short to be taken for a key */
    ASSERT_STR_EQ(red("https://h/abc123def456ghi", 0),
                  "https://h/abc123def456ghi");
    return 0;
}

TEST(query_values)
{
    ASSERT_STR_EQ(red("https://h/rpc?apikey=short&chain=1", 1),
                  "https://h/rpc?apikey=***&chain=1");
    ASSERT_STR_EQ(red("https://h/?key=a&token=b&API_KEY=c&x-auth=d", 4),
                  "https://h/?key=***&token=***&API_KEY=***&x-auth=***");
    ASSERT_STR_EQ(red("https://h/?id=Zm9vYmFyYmF6cXV4MTIz", 1),
                  "https://h/?id=***");
    ASSERT_STR_EQ(red("https://h/?key=", 0), "https://h/?key=");
    ASSERT_STR_EQ(red("https://h/#s3cr3tS3cr3tS3cr3t", 1), "https://h/#***");
    return 0;
}

TEST(everything_at_once)
{
    ASSERT_STR_EQ(
        red("https://u:p@h:1/v3/9aa3d95b3bc440fa88ea12eaa4456161?token=t", 3),
        "https://***@h:1/v3/***?token=***");
    return 0;
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
