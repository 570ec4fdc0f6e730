/* confindex.c - regression test of scripts/raft-patches/
 * 0012-follower-config-index.patch, on raft's own fixture (simulated time,
 * network and disk).
 *
 * A follower that gets a configuration entry in one AppendEntries after
 * another new entry must record the configuration entry's own index as
 * uncommitted, so that applying it marks it committed. Unpatched raft
 * 0.22.1 recorded the batch's first index: the follower then kept a
 * configuration change "in progress" forever, and once it became leader
 * every raft_add/raft_assign/raft_remove failed with RAFT_CANTCHANGE (the
 * Jepsen runner's instance-replace finding).
 *
 * Three voters; server 2 is cut off while the leader appends a command and
 * then a configuration change (a fourth server added as spare), so that on
 * reconnection server 2 receives both in one AppendEntries. Once it has
 * applied them it must have no uncommitted configuration, and as leader it
 * must be able to change the configuration. Exit 0 pass, 1 fail. */
#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int apply_cb(struct raft_fsm *fsm, const struct raft_buffer *buf,
                    void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL;
    return 0;
}

static int snapshot_cb(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                       unsigned *n)
{
    (void)fsm;
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL)
        return RAFT_NOMEM;
    (*bufs)[0].len = 8;
    (*bufs)[0].base = raft_calloc(1, 8);
    *n = 1;
    return (*bufs)[0].base == NULL ? RAFT_NOMEM : 0;
}

static int restore_cb(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

static int changes_done;
static void change_cb(struct raft_change *req, int status)
{
    (void)req;
    if (status == 0)
        changes_done++;
}

static void apply_done(struct raft_apply *req, int status, void *result)
{
    (void)req;
    (void)status;
    (void)result;
}

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "confindex: FAIL: ");                                  \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        goto out;                                                              \
    } while (0)

int main(void)
{
    struct raft_fsm fsm[3];
    struct raft_fixture f;
    struct raft_configuration conf;
    struct raft_apply apply;
    struct raft_change add, remove;
    int rc = 1;
    if (raft_fixture_init(&f) != 0)
        return 1;
    for (unsigned i = 0; i < 3; i++) {
        memset(&fsm[i], 0, sizeof fsm[i]);
        fsm[i].version = 1;
        fsm[i].apply = apply_cb;
        fsm[i].snapshot = snapshot_cb;
        fsm[i].restore = restore_cb;
        if (raft_fixture_grow(&f, &fsm[i]) != 0)
            FAIL("grow");
        raft_fixture_get(&f, i)->tracer = NULL;
    }
    if (raft_fixture_configuration(&f, 3, &conf) != 0)
        FAIL("configuration");
    int rv = raft_fixture_bootstrap(&f, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 || raft_fixture_start(&f) != 0)
        FAIL("bootstrap/start");
    raft_fixture_elect(&f, 0);
    struct raft *l = raft_fixture_get(&f, 0), *r2 = raft_fixture_get(&f, 1);

    /* Server 2 misses a command and the configuration change after it. */
    raft_fixture_disconnect(&f, 0, 1);
    raft_fixture_disconnect(&f, 1, 0);
    struct raft_buffer buf = {.len = 8, .base = raft_calloc(1, 8)};
    if (buf.base == NULL || raft_apply(l, &apply, &buf, 1, apply_done) != 0)
        FAIL("raft_apply");
    raft_index cmd_index = raft_last_index(l);
    if (raft_add(l, &add, 4, "4", change_cb) != 0)
        FAIL("raft_add: %s", raft_errmsg(l));
    raft_index change_index = raft_last_index(l);
    if (change_index != cmd_index + 1)
        FAIL("the change is at %llu, the command at %llu",
             (unsigned long long)change_index, (unsigned long long)cmd_index);
    if (!raft_fixture_step_until_applied(&f, 0, change_index, 10000) ||
        changes_done != 1)
        FAIL("the leader did not commit the change");

    /* Reconnected, it gets both in one AppendEntries and applies them. */
    raft_fixture_reconnect(&f, 0, 1);
    raft_fixture_reconnect(&f, 1, 0);
    if (!raft_fixture_step_until_applied(&f, 1, change_index, 10000))
        FAIL("server 2 did not apply index %llu",
             (unsigned long long)change_index);
    if (r2->configuration_uncommitted_index != 0)
        FAIL("server 2 applied the configuration at index %llu, but still "
             "has an uncommitted configuration at index %llu (committed at "
             "%llu)",
             (unsigned long long)change_index,
             (unsigned long long)r2->configuration_uncommitted_index,
             (unsigned long long)r2->configuration_committed_index);
    if (r2->configuration_committed_index != change_index)
        FAIL("server 2's committed configuration is at %llu, not %llu",
             (unsigned long long)r2->configuration_committed_index,
             (unsigned long long)change_index);

    /* As leader, server 2 can change the configuration. */
    raft_fixture_depose(&f);
    raft_fixture_elect(&f, 1);
    rv = raft_remove(r2, &remove, 4, change_cb);
    if (rv != 0)
        FAIL("raft_remove on the new leader: %s (%s)", raft_strerror(rv),
             raft_errmsg(r2));
    if (!raft_fixture_step_until_applied(&f, 1, raft_last_index(r2), 10000) ||
        changes_done != 2)
        FAIL("the new leader's removal did not complete");
    printf("confindex: ok (command at %llu, configuration at %llu, both "
           "received in one AppendEntries; the new leader removed server "
           "4)\n",
           (unsigned long long)cmd_index, (unsigned long long)change_index);
    rc = 0;
out:
    raft_fixture_close(&f);
    return rc;
}
