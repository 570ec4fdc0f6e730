/* test_dataid.c - core/dataid on real files: a fresh dir is claimed, the
 * same raft id again changes nothing, another raft id (a new epoch) or a
 * dir from before raft-id files moves the state aside (never deletes it),
 * a bad raft-id file or a held LOCK is refused and moves nothing. */
#include "core/dataid.h"
#include "core/err.h"
#include "harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int fresh(void)
{
    snprintf(dir, sizeof dir, "/tmp/nftraft-dataid.XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : 1;
}

static void put(const char *name, const char *text)
{
    char p[200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static bool exists(const char *base, const char *name)
{
    char p[900];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", base, name);
    return stat(p, &st) == 0;
}

static void rm_rf(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

#define ID1 ((uint64_t)3 << 32 | 1)
#define ID2 ((uint64_t)3 << 32 | 2)

/* What dataid_claim tells; set to junk first, so that every check sees what
 * the claim itself wrote. */
static bool moved;
static uint64_t old;
static char aside[700], err[900];

static int claim(uint64_t id)
{
    moved = true;
    old = 9;
    return dataid_claim(dir, id, &moved, &old, aside, sizeof aside, err,
                        sizeof err);
}

TEST(fresh_then_same_id)
{
    ASSERT_EQ(fresh(), 0);
    uint64_t got = 0;
    ASSERT_EQ(claim(ID1), 0);
    ASSERT(!moved);
    ASSERT_U64_EQ(old, 0);
    ASSERT_EQ(dataid_read(dir, &got), 0);
    ASSERT_U64_EQ(got, ID1);
    put("metadata1", "raft");
    ASSERT_EQ(claim(ID1), 0);
    ASSERT(!moved);
    ASSERT_U64_EQ(old, ID1);
    ASSERT(exists(dir, "metadata1"));
    rm_rf();
    return 0;
}

TEST(another_id_moves_the_state_aside)
{
    ASSERT_EQ(fresh(), 0);
    uint64_t got;
    ASSERT_EQ(claim(ID1), 0);
    put("metadata1", "raft");
    put("0000000000000001-0000000000000009", "seg");
    put("open-3", "open");
    put("state.db", "db");
    put("node.log", "log");
    put("wallet.key", "key");
    ASSERT_EQ(claim(ID2), 0);
    ASSERT(moved);
    ASSERT_U64_EQ(old, ID1);
    ASSERT(strstr(aside, "/old-12884901889-") != NULL);
    ASSERT(exists(aside, "metadata1") && exists(aside, "state.db"));
    ASSERT(exists(aside, "open-3") && exists(aside, "raft-id"));
    ASSERT(exists(aside, "0000000000000001-0000000000000009"));
    ASSERT(!exists(dir, "metadata1") && !exists(dir, "state.db"));
    ASSERT(exists(dir, "node.log") && exists(dir, "wallet.key"));
    ASSERT_EQ(dataid_read(dir, &got), 0);
    ASSERT_U64_EQ(got, ID2);
    rm_rf();
    return 0;
}

TEST(a_dir_from_before_raft_id_files_moves_aside)
{
    ASSERT_EQ(fresh(), 0);
    put("metadata2", "raft of raft id 3");
    ASSERT_EQ(claim(ID2), 0);
    ASSERT(moved);
    ASSERT_U64_EQ(old, 0);
    ASSERT(strstr(aside, "/old-3-") != NULL); /* then raft id = token */
    ASSERT(exists(aside, "metadata2"));
    rm_rf();
    return 0;
}

TEST(bad_file_or_held_lock_changes_nothing)
{
    ASSERT_EQ(fresh(), 0);
    put("raft-id", "twelve\n");
    put("metadata1", "raft");
    ASSERT_EQ(claim(ID1), ERR_CORRUPT);
    ASSERT(strstr(err, "not a raft id") != NULL);
    ASSERT(!moved && exists(dir, "metadata1"));
    put("raft-id", "12884901889\n");
    char lock[200];
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    ASSERT(fd >= 0 && flock(fd, LOCK_EX) == 0);
    ASSERT_EQ(claim(ID2), ERR_BUSY);
    ASSERT(!moved && exists(dir, "metadata1"));
    close(fd);
    rm_rf();
    return 0;
}

TEST_LIST(TEST_ENTRY(fresh_then_same_id),
          TEST_ENTRY(another_id_moves_the_state_aside),
          TEST_ENTRY(a_dir_from_before_raft_id_files_moves_aside),
          TEST_ENTRY(bad_file_or_held_lock_changes_nothing))
