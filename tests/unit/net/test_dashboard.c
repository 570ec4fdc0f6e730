/* test_dashboard.c - the embedded dashboard files (net/dashboard): the
 * build-time embedding is byte-exact, and nothing else is served. */
#include "net/dashboard.h"
#include "harness.h"

static char *slurp(const char *name, size_t *len)
{
    const char *src = getenv("NFTRAFT_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/net/dashboard/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

static int same(const char *path, const char *file, const char *type_prefix)
{
    size_t len, flen;
    const char *type;
    const char *body = dashboard_file(path, &len, &type);
    char *want = slurp(file, &flen);
    ASSERT(want != NULL);
    ASSERT(body != NULL);
    ASSERT_EQ(len, flen);
    ASSERT_MEM_EQ(body, want, len);
    ASSERT(strncmp(type, type_prefix, strlen(type_prefix)) == 0);
    free(want);
    return 0;
}

TEST(embedded_files_equal_the_sources)
{
    ASSERT_EQ(same("/", "index.html", "text/html"), 0);
    ASSERT_EQ(same("/dashboard.js", "app.js", "text/javascript"), 0);
    ASSERT_EQ(same("/dashboard.css", "style.css", "text/css"), 0);
    size_t a, b, c;
    const char *t;
    dashboard_file("/", &a, &t);
    dashboard_file("/dashboard.js", &b, &t);
    dashboard_file("/dashboard.css", &c, &t);
    ASSERT_EQ(dashboard_bytes(), a + b + c);
    return 0;
}

TEST(other_paths_are_not_files)
{
    size_t len = 7;
    const char *type = NULL;
    ASSERT(dashboard_file("/index.html", &len, &type) == NULL);
    ASSERT(dashboard_file("/app.js", &len, &type) == NULL);
    ASSERT(dashboard_file("", &len, &type) == NULL);
    ASSERT(dashboard_file("/dashboard.js/", &len, &type) == NULL);
    return 0;
}

TEST_LIST(TEST_ENTRY(embedded_files_equal_the_sources),
          TEST_ENTRY(other_paths_are_not_files))
