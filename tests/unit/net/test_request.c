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

TEST(methods)
{
    ASSERT_EQ(request_check_method("GET", 3), 0);
    ASSERT_EQ(request_check_method("M-SEARCH", 8), 0);
    ASSERT_EQ(request_check_method("", 0), ERR_INVALID);
    ASSERT_EQ(request_check_method("G\xc3T", 4), ERR_INVALID);
    ASSERT_EQ(request_check_method("GE T", 4), ERR_INVALID);
    ASSERT_EQ(request_check_method("G\0T", 3), ERR_INVALID);
    return 0;
}

TEST(targets)
{
    ASSERT_EQ(request_check_target("/log?from=1", 11), 0);
    ASSERT_EQ(request_check_target("/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10),
              0);
    ASSERT_EQ(request_check_target("/\xff", 2), ERR_INVALID);
    ASSERT_EQ(request_check_target("/\xc3", 2), ERR_INVALID);     /* cut */
    ASSERT_EQ(request_check_target("/\xc0\xaf", 3), ERR_INVALID); /* overlong */
    ASSERT_EQ(request_check_target("/\xe0\x80\xaf", 4), ERR_INVALID);
    ASSERT_EQ(request_check_target("/\xed\xa0\x80", 4),
              ERR_INVALID); /* surrogate */
    ASSERT_EQ(request_check_target("/\xf4\x90\x80\x80", 5), ERR_INVALID);
    ASSERT_EQ(request_check_target("/a\x01", 3), ERR_INVALID);
    ASSERT_EQ(request_check_target("/a\x7f", 3), ERR_INVALID);
    return 0;
}

static const char *framing(const char *head)
{
    return request_framing_problem(head, strlen(head));
}

TEST(framing)
{
    ASSERT(framing("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}") == NULL);
    ASSERT(framing("POST / HTTP/1.1\r\ncontent-length: 2\r\nCONTENT-LENGTH: 2"
                   "\r\n\r\n{}") != NULL);
    ASSERT(framing("POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding:"
                   " chunked\r\n\r\n") != NULL);
    ASSERT(framing("POST / HTTP/1.1\nTransfer-Encoding: chunked\n"
                   "Transfer-Encoding: chunked\n\n") != NULL);
    /* Only the head counts; a body that looks like headers does not. */
    ASSERT(framing("POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\n"
                   "Content-Length: 1\r\n") == NULL);
    ASSERT(framing("GET / HTTP/1.1\r\nX-Content-Length: 1\r\n"
                   "Content-Lengthy: 2\r\nContent-Length: 0\r\n\r\n") == NULL);
    return 0;
}

TEST(query_values)
{
    char out[8];
    const char *q = "a=1&from=12&x=%41%2b+&nul=1%00&bad=%4&long=123456789";
    size_t n = strlen(q);
    ASSERT_EQ(request_query_value(q, n, "from", out, sizeof out), 0);
    ASSERT_STR_EQ(out, "12");
    ASSERT_EQ(request_query_value(q, n, "x", out, sizeof out), 0);
    ASSERT_STR_EQ(out, "A+ ");
    ASSERT_EQ(request_query_value(q, n, "nul", out, sizeof out), ERR_MALFORMED);
    ASSERT_EQ(request_query_value(q, n, "bad", out, sizeof out), ERR_MALFORMED);
    ASSERT_EQ(request_query_value(q, n, "long", out, sizeof out), ERR_TOOBIG);
    ASSERT_EQ(request_query_value(q, n, "fro", out, sizeof out), ERR_NOTFOUND);
    return 0;
}

TEST_LIST(TEST_ENTRY(methods), TEST_ENTRY(targets), TEST_ENTRY(framing),
          TEST_ENTRY(query_values), TEST_ENTRY(empty_body_is_one),
          TEST_ENTRY(valid_by), TEST_ENTRY(bad_bodies), TEST_ENTRY(nul_in_body),
          TEST_ENTRY(keys))
