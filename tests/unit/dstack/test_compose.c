/* test_compose.c - dstack compose hash (chain/compose): the 30 reference
 * vectors byte for byte, vectors generated with @phala/dstack-sdk itself
 * (integer-like keys, __proto__ and constructor keys, out-of-range numbers,
 * lone surrogates, normalization of non-objects), escaping, key order,
 * numbers, and a cross-check against node's JSON.stringify when node is
 * installed. */
#include "dstack/compose.h"
#include "core/err.h"
#include "harness.h"

#include <stdbool.h>
#include <unistd.h>

static char *canon(const char *json, bool normalize)
{
    char *out = NULL, err[256];
    if (compose_canonical(json, strlen(json), normalize, &out, err,
                          sizeof err) != 0) {
        fprintf(stderr, "  canonical(%s): %s\n", json, err);
        return NULL;
    }
    return out;
}

static int check_canon(const char *in, const char *want, bool normalize)
{
    char *got = canon(in, normalize);
    int bad = got == NULL || strcmp(got, want) != 0;
    if (bad)
        fprintf(stderr, "  in:   %s\n  want: %s\n  got:  %s\n", in, want,
                got ? got : "(error)");
    free(got);
    return bad;
}

TEST(reference_vectors)
{
    char path[512];
    const char *src = getenv("NFTRAFT_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/data/compose/vectors.txt",
             src ? src : ".");
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *sp = strrchr(line, ' ');
        ASSERT(sp != NULL);
        *sp = '\0';
        char want[65];
        memcpy(want, sp + 1, 64);
        want[64] = '\0';
        /* The vector is the canonical form: it must come back unchanged. */
        if (check_canon(line, line, false) != 0)
            FAILF("vector %d is not reproduced", n + 1);
        char hex[65], err[256];
        ASSERT_EQ(compose_hash(line, strlen(line), false, hex, err, sizeof err),
                  0);
        if (strcmp(hex, want) != 0)
            FAILF("vector %d: hash %s, want %s", n + 1, hex, want);
        n++;
    }
    fclose(f);
    ASSERT_EQ(n, 30);
    return 0;
}

/* "<normalize> <hash> <json>" lines produced by the SDK's
 * getComposeHash(JSON.parse(json), normalize); returns the count checked
 * or -1 (unreadable file, malformed line, a hash that differs). */
static int check_sdk_file(const char *name)
{
    char path[512];
    const char *src = getenv("NFTRAFT_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/data/compose/%s", src ? src : ".",
             name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "  cannot read %s\n", path);
        return -1;
    }
    char line[8192];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#')
            continue;
        size_t l = strlen(line);
        while (l > 0 && line[l - 1] == '\n')
            line[--l] = '\0';
        if (l < 68 || (line[0] != '0' && line[0] != '1') || line[1] != ' ' ||
            line[66] != ' ') {
            fprintf(stderr, "  %s: malformed line %d\n", name, n + 1);
            bad++;
            continue;
        }
        const char *json = line + 67;
        char want[65], hex[65], err[256];
        memcpy(want, line + 2, 64);
        want[64] = '\0';
        int rv = compose_hash(json, strlen(json), line[0] == '1', hex, err,
                              sizeof err);
        if (rv != 0 || strcmp(hex, want) != 0) {
            fprintf(stderr,
                    "  %s line %d (normalize %c): %s\n  got %s, want %s\n",
                    name, n + 1, line[0], json, rv ? err : hex, want);
            bad++;
        }
        n++;
    }
    fclose(f);
    return bad ? -1 : n;
}

/* Vectors generated with @phala/dstack-sdk itself: one per class
 * (sdk-vectors.txt) and 4000 random documents (sdk-random-vectors.txt). */
TEST(sdk_generated_vectors)
{
    ASSERT(check_sdk_file("sdk-vectors.txt") >= 40);
    ASSERT_EQ(check_sdk_file("sdk-random-vectors.txt"), 4000);
    return 0;
}

/* The JavaScript classes, spelled out (each also in sdk-vectors.txt). */
TEST(javascript_object_semantics)
{
    /* Array-index keys first in numeric order, then the sorted rest;
     * "01", "-1", "1.5" and 4294967295 are not indices. */
    ASSERT(check_canon("{\"10\":1,\"9\":2,\"b\":3,\"0\":4,\"01\":5,"
                       "\"4294967294\":6,\"4294967295\":7,\"-1\":8}",
                       "{\"0\":4,\"9\":2,\"10\":1,\"4294967294\":6,\"-1\":8,"
                       "\"01\":5,\"4294967295\":7,\"b\":3}",
                       false) == 0);
    /* sortObject's result["__proto__"] = v is the prototype setter. */
    ASSERT(check_canon("{\"__proto__\":{\"x\":1},\"a\":[{\"__proto__\":null,"
                       "\"k\":2}]}",
                       "{\"a\":[{\"k\":2}]}", false) == 0);
    /* An own "constructor" key: not a plain object to sortObject, kept in
     * JSON.parse order, children unsorted, __proto__ kept. */
    ASSERT(check_canon("{\"c\":{\"constructor\":1,\"b\":{\"z\":1,\"y\":2},"
                       "\"2\":0,\"1\":0,\"__proto__\":3},\"a\":0}",
                       "{\"a\":0,\"c\":{\"1\":0,\"2\":0,\"constructor\":1,"
                       "\"b\":{\"z\":1,\"y\":2},\"__proto__\":3}}",
                       false) == 0);
    /* Duplicate keys: the last value at the first position. */
    ASSERT(check_canon("{\"c\":{\"constructor\":0,\"x\":1,\"y\":2,\"x\":3}}",
                       "{\"c\":{\"constructor\":0,\"x\":3,\"y\":2}}",
                       false) == 0);
    /* Beyond the double range: JSON.parse gives +-Infinity, printed null;
     * below it, 0. */
    ASSERT(
        check_canon("[1e400,-1e400,1e-400,123456789012345678901234567890e300]",
                    "[null,null,0,null]", false) == 0);
    /* Lone surrogates stay as JavaScript strings hold them and are
     * escaped by JSON.stringify; pairs become UTF-8. */
    ASSERT(check_canon("[\"\\ud800\",\"a\\udc00b\",\"\\ud83d\\ude80\","
                       "\"\\udc00\\ud800\"]",
                       "[\"\\ud800\",\"a\\udc00b\",\"\xf0\x9f\x9a\x80\","
                       "\"\\udc00\\ud800\"]",
                       false) == 0);
    /* normalize is {...doc}: arrays and strings become index-keyed
     * objects, other values {}. */
    ASSERT(check_canon("[\"b\",\"a\"]", "{\"0\":\"b\",\"1\":\"a\"}", true) ==
           0);
    ASSERT(check_canon("\"a\\ud83d\\ude00\"",
                       "{\"0\":\"a\",\"1\":\"\\ud83d\",\"2\":\"\\ude00\"}",
                       true) == 0);
    ASSERT(check_canon("42", "{}", true) == 0);
    ASSERT(check_canon("42", "42", false) == 0);
    return 0;
}

/* JSON.parse values written back as strict JSON (kms-auth's bodies). */
TEST(js_reencode)
{
    char *out = NULL, err[128];
    const char *in = "{\"a\":\"x\\ud800\",\"b\":[1e400,-1e400],\"a\":\"y\","
                     "\"1\":\"\\ud83d\\ude80\"}";
    ASSERT_EQ(compose_js_reencode(in, strlen(in), &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "{\"1\":\"\xf0\x9f\x9a\x80\",\"a\":\"y\","
                       "\"b\":[1e308,-1e308]}");
    free(out);
    in = "{\"a\":\"\\udc00\"}";
    ASSERT_EQ(compose_js_reencode(in, strlen(in), &out, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "{\"a\":\"\xef\xbf\xbd\"}");
    free(out);
    ASSERT_EQ(compose_js_reencode("{\"a\":1,}", 8, &out, err, sizeof err),
              ERR_MALFORMED);
    ASSERT_EQ(compose_js_reencode("\xef\xbb\xbf{}", 5, &out, err, sizeof err),
              ERR_MALFORMED); /* JSON.parse takes no BOM */
    return 0;
}

TEST(normalization)
{
    char hex[65], err[256];
    const char *bash = "{\"runner\":\"bash\",\"bash_script\":\"start.sh\","
                       "\"docker_compose_file\":\"docker-compose.yml\"}";
    ASSERT_EQ(compose_hash(bash, strlen(bash), true, hex, err, sizeof err), 0);
    ASSERT_STR_EQ(
        hex,
        "75a6f53f70c26c8f7b545f48c2f5ef2f76c27d13f7034be1021cf25f5d9853d2");
    const char *dc = "{\"runner\":\"docker-compose\",\"docker_compose_file\":"
                     "\"docker-compose.yml\",\"bash_script\":\"x.sh\"}";
    ASSERT_EQ(compose_hash(dc, strlen(dc), true, hex, err, sizeof err), 0);
    ASSERT_STR_EQ(
        hex,
        "6148eabae40413a5c15aeab33343e7a219edc0cda2c2556add9a96ec76d61b11");
    const char *pre = "{\"runner\":\"docker-compose\",\"docker_compose_file\":"
                      "\"docker-compose.yml\",\"pre_launch_script\":\"\"}";
    ASSERT_EQ(compose_hash(pre, strlen(pre), true, hex, err, sizeof err), 0);
    ASSERT_STR_EQ(
        hex,
        "6148eabae40413a5c15aeab33343e7a219edc0cda2c2556add9a96ec76d61b11");
    /* Without normalization the extra fields stay. */
    ASSERT_EQ(compose_hash(pre, strlen(pre), false, hex, err, sizeof err), 0);
    ASSERT(strcmp(hex, "6148eabae40413a5c15aeab33343e7a219edc0cda2c2556add9a96e"
                       "c76d61b11") != 0);
    ASSERT(check_canon("{\"runner\":\"nerdctl-compose\",\"bash_script\":1}",
                       "{\"runner\":\"nerdctl-compose\"}", true) == 0);
    ASSERT(check_canon("{\"runner\":\"bash\",\"pre_launch_script\":\"go\"}",
                       "{\"pre_launch_script\":\"go\",\"runner\":\"bash\"}",
                       true) == 0);
    return 0;
}

TEST(escaping)
{
    ASSERT(check_canon("{\"a\":\"q\\\"b\\\\s\\/\"}", "{\"a\":\"q\\\"b\\\\s/\"}",
                       false) == 0);
    ASSERT(check_canon("[\"\\u0001\\u001f\\b\\f\\n\\r\\t\\u007f\"]",
                       "[\"\\u0001\\u001f\\b\\f\\n\\r\\t\x7f\"]", false) == 0);
    ASSERT(check_canon("[\"\\u00e9\\u4f60\\ud83d\\ude80\\u2028\\u2029<>&\"]",
                       "[\"\xc3\xa9\xe4\xbd\xa0\xf0\x9f\x9a\x80\xe2\x80\xa8"
                       "\xe2\x80\xa9<>&\"]",
                       false) == 0);
    ASSERT(check_canon("[\"a\\u0000b\"]", "[\"a\\u0000b\"]", false) == 0);
    return 0;
}

TEST(key_order)
{
    ASSERT(check_canon(
               "{\"b\":1,\"B\":2,\"a\":3,\"A\":4,\"_\":5,\"10\":6,\"9\":7}",
               "{\"9\":7,\"10\":6,\"A\":4,\"B\":2,\"_\":5,\"a\":3,\"b\":1}",
               false) == 0);
    /* UTF-16 order: U+1F600 (surrogates D83D...) sorts before U+FF5E. */
    ASSERT(check_canon("{\"\xef\xbd\x9e\":1,\"\xf0\x9f\x98\x80\":2,\"z\":3}",
                       "{\"z\":3,\"\xf0\x9f\x98\x80\":2,\"\xef\xbd\x9e\":1}",
                       false) == 0);
    ASSERT(check_canon("{\"o\":{\"y\":[{\"d\":1,\"c\":2}],\"x\":null}}",
                       "{\"o\":{\"x\":null,\"y\":[{\"c\":2,\"d\":1}]}}",
                       false) == 0);
    ASSERT(check_canon("{\"k\":1,\"k\":2}", "{\"k\":2}", false) == 0);
    return 0;
}

TEST(numbers_as_javascript_prints_them)
{
    ASSERT(check_canon("[0,-0,1,-1,1.5,1e21,1e20,1.0,100,1e-7,0.000001,"
                       "123456789012345678901234567890,9007199254740993,"
                       "0.1,1.7976931348623157e308,5e-324,2.5e-5,1E2]",
                       "[0,0,1,-1,1.5,1e+21,100000000000000000000,1,100,1e-7,"
                       "0.000001,1.2345678901234568e+29,9007199254740992,0.1,"
                       "1.7976931348623157e+308,5e-324,0.000025,100]",
                       false) == 0);
    return 0;
}

TEST(bad_input)
{
    char *out = NULL, err[256];
    ASSERT_EQ(compose_canonical("{", 1, true, &out, err, sizeof err),
              ERR_MALFORMED);
    ASSERT(strstr(err, "invalid JSON") != NULL);
    ASSERT_EQ(compose_canonical("{\"a\":NaN}", 9, true, &out, err, sizeof err),
              ERR_MALFORMED);
    ASSERT_EQ(compose_canonical("", 0, true, &out, err, sizeof err),
              ERR_MALFORMED);
    char deep[2100];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = '\0';
    ASSERT(compose_canonical(deep, 2000, true, &out, err, sizeof err) != 0);
    return 0;
}

/* Cross-check a few tricky documents against node's JSON.stringify. */
TEST(matches_node_json_stringify)
{
    if (system("node -e 0 >/dev/null 2>&1") != 0)
        SKIP("node not installed: cross-check");
    const char *docs[] = {
        "{\"z\":[3.25,-0.5,1e300,7e-10],\"\xc3\xa9\":\"\\u0007\\u2028\","
        "\"A\":{\"q\":\"\\\"x\\\\\"}}",
        "{\"n\":12345678901234567890,\"s\":\"tab\\there \xf0\x9f\x9a\x80\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char path[] = "/tmp/nftraft-compose-XXXXXX";
        int fd = mkstemp(path);
        ASSERT(fd >= 0);
        ASSERT(write(fd, docs[i], strlen(docs[i])) == (ssize_t)strlen(docs[i]));
        close(fd);
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "node -e 'const s=o=>Array.isArray(o)?o.map(s):o&&typeof "
                 "o===\"object\"?Object.keys(o).sort().reduce((r,k)=>(r[k]=s(o"
                 "[k]),r),{}):o;process.stdout.write(JSON.stringify(s(JSON."
                 "parse(require(\"fs\").readFileSync(\"%s\",\"utf8\")))))'",
                 path);
        FILE *p = popen(cmd, "r");
        ASSERT(p != NULL);
        char want[4096] = "";
        size_t n = fread(want, 1, sizeof want - 1, p);
        want[n] = '\0';
        pclose(p);
        unlink(path);
        if (check_canon(docs[i], want, false) != 0)
            FAILF("differs from JSON.stringify (doc %zu)", i);
    }
    return 0;
}

TEST_LIST(TEST_ENTRY(reference_vectors), TEST_ENTRY(sdk_generated_vectors),
          TEST_ENTRY(javascript_object_semantics), TEST_ENTRY(js_reencode),
          TEST_ENTRY(normalization), TEST_ENTRY(escaping),
          TEST_ENTRY(key_order), TEST_ENTRY(numbers_as_javascript_prints_them),
          TEST_ENTRY(bad_input), TEST_ENTRY(matches_node_json_stringify))
