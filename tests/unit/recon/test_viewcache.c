/* test_viewcache.c - the member view cached in the data dir
 * (recon/viewcache) on real files: a round trip, rewritten only when it
 * changes, members not confirmed gone left out, and every bad file refused
 * with a reason. */
#include "core/err.h"
#include "harness.h"
#include "recon/viewcache.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char CONTRACT[] = "0xAbCdEf0000000000000000000000000000000001";

static char dir[64];
static uint64_t block; /* the block a load read */
static uint64_t chain; /* the chain id a load read */
static char why[512];  /* why a load refused */

static int make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/nftraft-viewcache.XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : 1;
}

static void remove_dir(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/chain-view.json", dir);
    unlink(p);
    rmdir(dir);
}

static void write_file(const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/chain-view.json", dir);
    FILE *f = fopen(p, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void member(struct recon_member *m, uint64_t t, bool endpoints)
{
    memset(m, 0, sizeof *m);
    m->token = t;
    snprintf((char *)m->instance, 32, "node%d", (int)t);
    memset(m->owner, 0x10 + (int)t, 20);
    memset(m->key, 0x20 + (int)t, 20);
    m->epoch = (uint32_t)t + 1;
    m->raft_id = t << 32 | m->epoch;
    if (endpoints) {
        m->addr.id = t;
        snprintf(m->addr.raft, sizeof m->addr.raft, "127.0.0.1:%d",
                 9000 + (int)t);
        snprintf(m->addr.http, sizeof m->addr.http, "http://127.0.0.1:%d",
                 8000 + (int)t);
    }
}

/* Load c's view of CONTRACT into the globals above and *nodes, *n (the
 * chain id and reason are cleared first, so a stale value cannot pass). */
static int load(struct recon_viewcache *c, struct membership_node **nodes,
                size_t *n)
{
    chain = 0;
    why[0] = 0;
    return recon_viewcache_load(c, CONTRACT, &chain, &block, nodes, n, why,
                                sizeof why);
}

TEST(saved_view_loads_back)
{
    ASSERT_EQ(make_dir(), 0);
    struct recon_viewcache c;
    recon_viewcache_init(&c, dir);
    struct recon_member m[2];
    member(&m[0], 1, true);
    member(&m[1], 7, false);
    recon_viewcache_save(&c, 31337, CONTRACT, 500, m, 2);
    ASSERT(c.saved != NULL);
    struct membership_node *nodes = NULL;
    size_t n = 0;
    chain = 0;
    /* the contract compares case-insensitively */
    ASSERT_EQ(recon_viewcache_load(&c,
                                   "0xabcdef0000000000000000000000000000000001",
                                   &chain, &block, &nodes, &n, why, sizeof why),
              0);
    ASSERT_U64_EQ(chain, 31337);
    ASSERT_U64_EQ(block, 500); /* the floor of the polls after a restart */
    ASSERT_EQ(n, 2);
    ASSERT_U64_EQ(nodes[0].token, 1);
    ASSERT_EQ(nodes[0].epoch, 2); /* the raft id's epoch survives */
    ASSERT_EQ(nodes[1].epoch, 8);
    ASSERT_MEM_EQ(nodes[0].instance, m[0].instance, 32);
    ASSERT_MEM_EQ(nodes[0].owner, m[0].owner, 20);
    ASSERT_MEM_EQ(nodes[0].node_key, m[0].key, 20);
    ASSERT_STR_EQ(nodes[0].raft, "127.0.0.1:9001");
    ASSERT_STR_EQ(nodes[0].http, "http://127.0.0.1:8001");
    ASSERT_U64_EQ(nodes[1].token, 7);
    ASSERT_STR_EQ(nodes[1].raft, "");
    free(nodes);
    recon_viewcache_close(&c);
    remove_dir();
    return 0;
}

TEST(rewritten_only_when_it_changes)
{
    ASSERT_EQ(make_dir(), 0);
    struct recon_viewcache c;
    recon_viewcache_init(&c, dir);
    struct recon_member m[1];
    member(&m[0], 1, true);
    recon_viewcache_save(&c, 1, CONTRACT, 0, m, 1);
    write_file("left alone"); /* unchanged view: not rewritten */
    recon_viewcache_save(&c, 1, CONTRACT, 0, m, 1);
    struct membership_node *nodes = NULL;
    size_t n;
    ASSERT_EQ(load(&c, &nodes, &n), ERR_NOTFOUND);
    member(&m[0], 2, true); /* a change: written */
    recon_viewcache_save(&c, 1, CONTRACT, 0, m, 1);
    ASSERT_EQ(load(&c, &nodes, &n), 0);
    ASSERT_U64_EQ(nodes[0].token, 2);
    free(nodes);
    recon_viewcache_close(&c);
    remove_dir();
    return 0;
}

/* The block kept is the first one the view was read at: the same view at
 * later blocks is not rewritten; a changed view is, with its block; a file
 * from before blocks were saved loads with block 0. */
TEST(the_block_is_where_the_view_was_first_read)
{
    ASSERT_EQ(make_dir(), 0);
    struct recon_viewcache c;
    recon_viewcache_init(&c, dir);
    struct recon_member m[1];
    member(&m[0], 1, true);
    struct membership_node *nodes = NULL;
    size_t n;
    recon_viewcache_save(&c, 1, CONTRACT, 40, m, 1);
    recon_viewcache_save(&c, 1, CONTRACT, 41, m, 1);
    ASSERT_EQ(load(&c, &nodes, &n), 0);
    free(nodes);
    ASSERT_U64_EQ(block, 40);
    member(&m[0], 2, true);
    recon_viewcache_save(&c, 1, CONTRACT, 45, m, 1);
    ASSERT_EQ(load(&c, &nodes, &n), 0);
    free(nodes);
    ASSERT_U64_EQ(block, 45);
    write_file("{\"version\":1,\"chain_id\":1,\"contract\":\""
               "0xabcdef0000000000000000000000000000000001\",\"members\":[]}");
    ASSERT_EQ(load(&c, &nodes, &n), 0);
    free(nodes);
    ASSERT_U64_EQ(block, 0);
    ASSERT_EQ(n, 0);
    write_file("{\"version\":1,\"chain_id\":1,\"contract\":\""
               "0xabcdef0000000000000000000000000000000001\",\"members\":[],"
               "\"block\":-3}");
    ASSERT_EQ(load(&c, &nodes, &n), ERR_MALFORMED);
    recon_viewcache_close(&c);
    remove_dir();
    return 0;
}

TEST(bad_files_are_refused_with_a_reason)
{
    ASSERT_EQ(make_dir(), 0);
    struct recon_viewcache c;
    recon_viewcache_init(&c, dir);
    struct membership_node *nodes = NULL;
    size_t n = 0;
    ASSERT_EQ(load(&c, &nodes, &n), ERR_NOTFOUND); /* no file */
    ASSERT(strstr(why, "no usable") != NULL);
    static const struct {
        const char *text;
        int rv;
        const char *why;
    } bad[] = {
        {"{", ERR_NOTFOUND, "no usable"},
        {"{\"version\":2,\"chain_id\":1,\"contract\":\"0xabcdef00000000000000"
         "00000000000000000001\",\"members\":[]}",
         ERR_MALFORMED, "is malformed"},
        {"{\"version\":1,\"chain_id\":1,\"contract\":\"0x00\",\"members\":[]}",
         ERR_MALFORMED, "is for contract 0x00"},
        {"{\"version\":1,\"chain_id\":1,\"contract\":\"0xabcdef00000000000000"
         "00000000000000000001\",\"members\":[{\"token\":0,\"instance\":\"0x"
         "00\",\"owner\":\"0x00\"}]}",
         ERR_MALFORMED, "member 0 is malformed"},
        {"{\"version\":1,\"chain_id\":1,\"contract\":\"0xabcdef00000000000000"
         "00000000000000000001\",\"members\":[{\"token\":1,\"instance\":\"0x"
         "01\",\"owner\":\"0x0101010101010101010101010101010101010101\"}]}",
         ERR_MALFORMED, "member 0 is malformed"}, /* a short instance */
        {"{\"version\":1,\"chain_id\":1,\"contract\":\"0xabcdef00000000000000"
         "00000000000000000001\",\"members\":[{\"token\":1,\"epoch\":"
         "4294967296,\"instance\":\"0x0000000000000000000000000000000000000000"
         "000000000000000000000001\",\"owner\":\"0x01010101010101010101010101"
         "01010101010101\"}]}",
         ERR_MALFORMED, "member 0 is malformed"}, /* an epoch above 2^32-1 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(bad[i].text);
        ASSERT_EQ(load(&c, &nodes, &n), bad[i].rv);
        ASSERT(strstr(why, bad[i].why) != NULL);
    }
    ASSERT(nodes == NULL);
    recon_viewcache_close(&c);
    remove_dir();
    return 0;
}

TEST(an_unwritable_dir_is_survived)
{
    struct recon_viewcache c;
    recon_viewcache_init(&c, "/nonexistent/nftraft");
    struct recon_member m[1];
    member(&m[0], 1, false);
    recon_viewcache_save(&c, 1, CONTRACT, 0, m, 1);
    ASSERT(c.warned);
    ASSERT(c.saved == NULL);
    recon_viewcache_save(&c, 1, CONTRACT, 0, m, 1); /* retried, logged once */
    ASSERT(c.warned);
    recon_viewcache_close(&c);
    return 0;
}

TEST(leaving_members_are_not_saved)
{
    ASSERT_EQ(make_dir(), 0);
    struct recon_viewcache c;
    recon_viewcache_init(&c, dir);
    struct recon_member m[3];
    member(&m[0], 1, true);
    member(&m[1], 2, true);
    member(&m[2], 3, true);
    m[1].leaving = true; /* the latest answer lacked it */
    m[1].gone_block = 40;
    recon_viewcache_save(&c, 1, CONTRACT, 0, m, 3);
    struct membership_node *nodes = NULL;
    size_t n = 0;
    ASSERT_EQ(load(&c, &nodes, &n), 0);
    ASSERT_EQ(n, 2);
    ASSERT_U64_EQ(nodes[0].token, 1);
    ASSERT_U64_EQ(nodes[1].token, 3);
    free(nodes);
    recon_viewcache_close(&c);
    remove_dir();
    return 0;
}

TEST_LIST(TEST_ENTRY(saved_view_loads_back),
          TEST_ENTRY(the_block_is_where_the_view_was_first_read),
          TEST_ENTRY(leaving_members_are_not_saved),
          TEST_ENTRY(rewritten_only_when_it_changes),
          TEST_ENTRY(bad_files_are_refused_with_a_reason),
          TEST_ENTRY(an_unwritable_dir_is_survived))
