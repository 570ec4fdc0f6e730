/* test_driver.c - whole reconciler rounds (recon/driver: poll, decide,
 * act) against the fake chain and the fake raft of fakes.h: a leader
 * change, a member added then promoted once caught up, a member removed
 * only with a live majority, the chain down, a malformed answer, an older
 * block, the transactions, a node that is not a member. */
#include "fakes.h"
#include "harness.h"

static struct fake_chain f;
static struct fake_raft r;
static struct config cfg;
static struct recon_driver d;

/* Token 1 is this node; chain members and raft servers 1, 2, 3, all live
 * voters; this node is raft leader and the on-chain leader. */
static int setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.chain_confirmations = 0;
    cfg.election_timeout_ms = 1000;
    snprintf(cfg.instance_id, sizeof cfg.instance_id, "node1");
    snprintf(cfg.contract, sizeof cfg.contract, "0x%040d", 7);
    fake_chain_init(&f);
    fake_raft_init(&r);
    for (uint64_t t = 1; t <= 3; t++) {
        fake_chain_member(&f, t);
        fake_raft_server(&r, t, true, true, true);
    }
    r.leader = true;
    f.state.leader_token = 1;
    memset(f.state.leader, 1, 20);
    f.state.expiry = f.wall_s + 100;
    f.state.period = 20;
    if (recon_driver_init(&d, &cfg, &f.ops, &r.ops) != 0)
        return 1;
    recon_driver_start(&d, 1, 0, f.id, false);
    return 0;
}

/* One round a little over the change gap after the last one. */
static void round_(void)
{
    f.now_ms += RECON_CHANGE_GAP_MS + 1;
    f.wall_s += 1;
    recon_driver_tick(&d);
    fake_chain_run(&f);
}

TEST(steady_state_changes_nothing)
{
    ASSERT_EQ(setup(), 0);
    for (int i = 0; i < 3; i++)
        round_();
    ASSERT(d.connected);
    ASSERT_EQ(d.n_members, 3);
    ASSERT_EQ(r.n_done, 0);
    ASSERT_EQ(f.n_sent, 0);
    ASSERT_EQ(r.views, 3);
    ASSERT_EQ(r.changed_views, 1); /* only the first view was new */
    ASSERT_STR_EQ(d.refusal, "");
    recon_driver_close(&d);
    return 0;
}

TEST(leader_change_transfers_raft_leadership)
{
    ASSERT_EQ(setup(), 0);
    round_();
    ASSERT_EQ(r.n_done, 0);
    f.state.leader_token = 2; /* the contract elected token 2 */
    memset(f.state.leader, 2, 20);
    r.servers[1].caught_up = false; /* not while it lags behind */
    round_();
    ASSERT_EQ(r.n_done, 0);
    r.servers[1].caught_up = true;
    round_();
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_TRANSFER);
    ASSERT_U64_EQ(r.done[0].id, 2);
    round_(); /* one change in flight at a time */
    ASSERT_EQ(r.n_done, 1);
    fake_raft_run(&r);
    ASSERT(!r.leader);
    round_(); /* a follower changes nothing */
    ASSERT_EQ(r.n_done, 1);
    ASSERT(f.calls[F_PING] > 0); /* the on-chain leader is pinged */
    ASSERT_EQ(d.health, 1);
    recon_driver_close(&d);
    return 0;
}

TEST(member_added_then_promoted_once_caught_up)
{
    ASSERT_EQ(setup(), 0);
    r.n = 2; /* raft has 1 and 2; the contract lists 1, 2, 3 */
    round_();
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_ADD);
    ASSERT_U64_EQ(r.done[0].id, 3);
    ASSERT_STR_EQ(r.last_address, "127.0.0.1:9003"); /* its on-chain one */
    fake_raft_run(&r); /* joined as a non-voter, not caught up */
    round_();
    ASSERT_EQ(r.n_done, 2);
    ASSERT_EQ(r.done[1].kind, RECON_PROMOTE); /* never added twice */
    fake_raft_run(&r);                        /* fails: not caught up */
    ASSERT(!fake_server(&r, 3)->voter);
    fake_server(&r, 3)->caught_up = true;
    round_();
    ASSERT_EQ(r.n_done, 3);
    ASSERT_EQ(r.done[2].kind, RECON_PROMOTE);
    fake_raft_run(&r);
    ASSERT(fake_server(&r, 3)->voter);
    round_();
    ASSERT_EQ(r.n_done, 3);
    recon_driver_close(&d);
    return 0;
}

TEST(a_change_waits_for_the_gap)
{
    ASSERT_EQ(setup(), 0);
    r.n = 2;
    round_();
    ASSERT_EQ(r.n_done, 1);
    fake_raft_run(&r);
    f.now_ms += 10; /* well within RECON_CHANGE_GAP_MS */
    recon_driver_tick(&d);
    fake_chain_run(&f);
    ASSERT_EQ(r.n_done, 1);
    round_();
    ASSERT_EQ(r.n_done, 2);
    recon_driver_close(&d);
    return 0;
}

TEST(member_removed_only_with_a_live_majority)
{
    ASSERT_EQ(setup(), 0);
    fake_raft_server(&r, 4, true, true, true); /* raft 1-4, chain 1-3 */
    r.servers[1].live = false;
    r.servers[2].live = false; /* without 4: 1 live voter of 3 */
    round_();
    ASSERT_EQ(r.n_done, 0);
    r.servers[1].live = true; /* now 2 of 3 */
    round_();
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_REMOVE);
    ASSERT_U64_EQ(r.done[0].id, 4);
    fake_raft_run(&r);
    ASSERT(fake_server(&r, 4) == NULL);
    /* a second removal waits RECON_SHRINK_GAP_MS */
    fake_chain_remove(&f, 3);
    r.servers[2].live = true;
    round_();
    ASSERT_EQ(r.n_done, 1);
    f.now_ms += RECON_SHRINK_GAP_MS;
    round_();
    ASSERT_EQ(r.n_done, 2);
    ASSERT_EQ(r.done[1].kind, RECON_REMOVE);
    ASSERT_U64_EQ(r.done[1].id, 3);
    recon_driver_close(&d);
    return 0;
}

TEST(chain_down_keeps_the_view_and_changes_nothing)
{
    ASSERT_EQ(setup(), 0);
    round_();
    ASSERT(d.connected);
    f.fail[F_BLOCK] = ERR_TIMEOUT;
    fake_chain_remove(&f, 3); /* would remove 3, if it were read */
    for (int i = 0; i < 5; i++)
        round_();
    ASSERT(!d.connected);
    ASSERT_STR_EQ(d.error, "fake failure");
    ASSERT_EQ(d.n_members, 3);
    ASSERT(recon_driver_peer(&d, 3) != NULL);
    ASSERT_EQ(r.n_done, 0);
    ASSERT_EQ(f.n_sent, 0);
    f.fail[F_BLOCK] = 0; /* back */
    round_();
    ASSERT(d.connected);
    ASSERT_STR_EQ(d.error, "");
    ASSERT_EQ(d.n_members, 2);
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_REMOVE);
    recon_driver_close(&d);
    return 0;
}

TEST(a_malformed_answer_keeps_the_whole_view)
{
    ASSERT_EQ(setup(), 0);
    round_();
    f.state.leader_token = 2; /* read before the bad answer ... */
    memset(f.state.leader, 2, 20);
    fake_chain_remove(&f, 3);
    f.fail[F_NODES] = ERR_MALFORMED; /* ... which spoils the poll */
    round_();
    round_();
    ASSERT(!d.connected);
    ASSERT_U64_EQ(d.state.leader_token, 1); /* no half-new view */
    ASSERT_EQ(d.n_members, 3);
    ASSERT_EQ(r.n_done, 0);
    ASSERT_EQ(r.views, 1);
    recon_driver_close(&d);
    return 0;
}

TEST(an_older_block_is_ignored)
{
    ASSERT_EQ(setup(), 0);
    round_();
    ASSERT_U64_EQ(d.poll.block, 100);
    f.head = 95; /* a lagging RPC, with an older membership */
    fake_chain_remove(&f, 3);
    round_();
    ASSERT_U64_EQ(d.poll.stale, 1);
    ASSERT(d.connected);
    ASSERT_EQ(d.n_members, 3);
    ASSERT_EQ(r.n_done, 0);
    recon_driver_close(&d);
    return 0;
}

TEST(transactions_elect_heartbeat_and_vote)
{
    ASSERT_EQ(setup(), 0);
    f.state.leader_token = 0; /* no leader: the raft leader elects itself */
    memset(f.state.leader, 0, 20);
    round_();
    ASSERT_EQ(f.n_sent, 1);
    ASSERT_EQ(f.sent[0].kind, RECON_TX_ELECT);
    ASSERT_U64_EQ(f.sent[0].token, 1);
    round_(); /* mined in the last round's run: poll soon */
    ASSERT(f.polls_soon >= 1);
    f.state.leader_token = 1; /* elected; the lease nearly over */
    memset(f.state.leader, 1, 20);
    f.state.expiry = f.wall_s + 5;
    round_();
    ASSERT_EQ(f.sent[f.n_sent - 1].kind, RECON_TX_HEARTBEAT);
    unsigned sent = f.n_sent;
    f.state.expiry = f.wall_s + 100;
    round_();
    ASSERT_EQ(f.n_sent, sent); /* a fresh lease: nothing to send */
    /* a follower whose on-chain leader (2) stops answering votes */
    r.leader = false;
    f.state.leader_token = 2;
    memset(f.state.leader, 2, 20);
    f.leader_healthy = false;
    round_(); /* reads the new leader */
    round_(); /* pings it: failing; votes against */
    ASSERT_EQ(d.health, 0);
    ASSERT_EQ(f.sent[f.n_sent - 1].kind, RECON_TX_VOTE);
    ASSERT(f.sent[f.n_sent - 1].against);
    ASSERT_MEM_EQ(f.sent[f.n_sent - 1].leader, f.state.leader, 20);
    recon_driver_close(&d);
    return 0;
}

TEST(not_a_member_refuses_writes)
{
    ASSERT_EQ(setup(), 0);
    fake_chain_remove(&f, 1);
    r.leader = false;
    f.state.leader_token = 2;
    round_();
    ASSERT(strstr(d.refusal, "instance node1 is not an active registered") !=
           NULL);
    ASSERT_EQ(r.n_done, 0);
    recon_driver_close(&d);
    return 0;
}

TEST(after_stop_nothing_changes)
{
    ASSERT_EQ(setup(), 0);
    recon_driver_tick(&d);
    recon_driver_stop(&d);
    fake_chain_remove(&f, 3);
    fake_chain_run(&f); /* the poll's answers arrive after the stop */
    ASSERT(!d.connected);
    ASSERT_EQ(r.views, 0);
    recon_driver_tick(&d);
    ASSERT_EQ(f.nq, 0);
    recon_driver_close(&d);
    return 0;
}

TEST_LIST(TEST_ENTRY(steady_state_changes_nothing),
          TEST_ENTRY(leader_change_transfers_raft_leadership),
          TEST_ENTRY(member_added_then_promoted_once_caught_up),
          TEST_ENTRY(a_change_waits_for_the_gap),
          TEST_ENTRY(member_removed_only_with_a_live_majority),
          TEST_ENTRY(chain_down_keeps_the_view_and_changes_nothing),
          TEST_ENTRY(a_malformed_answer_keeps_the_whole_view),
          TEST_ENTRY(an_older_block_is_ignored),
          TEST_ENTRY(transactions_elect_heartbeat_and_vote),
          TEST_ENTRY(not_a_member_refuses_writes),
          TEST_ENTRY(after_stop_nothing_changes))
