/* test_request.c - HTTP API input validation (net/request). */
#include "core/err.h"
#include "net/request.h"
#include "harness.h"

static int parse(const char *body, int64_t *by)
{
    char err[256];
    return request_parse_increment(body, strlen(body), by, err, sizeof err);
}

TEST(empty_body_is_one)
{
    int64_t by = 0;
    ASSERT_EQ(parse("", &by), 0);
    ASSERT_EQ(by, 1);
    ASSERT_EQ(parse("  \n", &by), 0);
    ASSERT_EQ(by, 1);
    ASSERT_EQ(parse("{}", &by), 0);
    ASSERT_EQ(by, 1);
    return 0;
}

TEST(valid_by)
{
    int64_t by = 0;
    ASSERT_EQ(parse("{\"by\": 5}", &by), 0);
    ASSERT_EQ(by, 5);
    ASSERT_EQ(parse("{\"by\":9223372036854775807}", &by), 0);
    ASSERT(by == INT64_MAX);
    return 0;
}

TEST(bad_bodies)
{
    int64_t by = 0;
    ASSERT_EQ(parse("{", &by), ERR_MALFORMED);
    ASSERT_EQ(parse("not json", &by), ERR_MALFORMED);
    ASSERT_EQ(parse("{\"by\": 1,}", &by), ERR_MALFORMED);
    ASSERT_EQ(parse("{\"by\": 1, \"by\": 2}", &by), ERR_MALFORMED);
    ASSERT_EQ(parse("{\"by\": 99999999999999999999}", &by), ERR_MALFORMED);
    ASSERT_EQ(parse("[1]", &by), ERR_INVALID);
    ASSERT(parse("5", &by) != 0); /* jansson may reject bare scalars */
    ASSERT_EQ(parse("{\"by\": 0}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": -3}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": 1.5}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": 1e3}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": \"1\"}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": null}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": true}", &by), ERR_INVALID);
    ASSERT_EQ(parse("{\"by\": 1, \"x\": 2}", &by), ERR_INVALID);
    return 0;
}

TEST(nul_in_body)
{
    int64_t by = 0;
    char err[128];
    const char body[] = "{\"by\": 1}\0{\"by\": 2}";
    ASSERT(request_parse_increment(body, sizeof body - 1, &by, err,
                                   sizeof err) != 0);
    return 0;
}

TEST(keys)
{
    char out[9], err[128];
    ASSERT_EQ(request_check_key("abc-123", 7, 8, out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "abc-123");
    ASSERT_EQ(request_check_key("", 0, 8, out, err, sizeof err), ERR_INVALID);
    ASSERT_EQ(request_check_key("123456789", 9, 8, out, err, sizeof err),
              ERR_INVALID);
    ASSERT_EQ(request_check_key("a b", 3, 8, out, err, sizeof err),
              ERR_INVALID);
    ASSERT_EQ(request_check_key("a\x01", 2, 8, out, err, sizeof err),
              ERR_INVALID);
    ASSERT_EQ(request_check_key("\xc3\xa9", 2, 8, out, err, sizeof err),
              ERR_INVALID);
    return 0;
}

TEST_LIST(TEST_ENTRY(empty_body_is_one), TEST_ENTRY(valid_by),
          TEST_ENTRY(bad_bodies), TEST_ENTRY(nul_in_body), TEST_ENTRY(keys))
