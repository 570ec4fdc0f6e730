/* test_driver.c - whole reconciler rounds (recon/driver: poll, decide,
 * act) against the fake chain and the fake raft of fakes.h: a leader
 * change, a member added then promoted once caught up, a member removed
 * only with a live majority, the chain down, a malformed answer, an older
 * block, the transactions, a node that is not a member; raft ids by
 * (token, epoch): a follower's and the leader's own registration moving to
 * a new epoch, a transport claim with a stale epoch; a member missing
 * from one answer is kept until an answer from a newer block confirms it. */
#include "fakes.h"
#include "harness.h"

/* Raft id of token t in the fake chain's epoch 1. */
#define RID(t) (((uint64_t)(t) << 32) | 1)

static struct fake_chain f;
static struct fake_raft r;
static struct config cfg;
static struct recon_driver d;

/* The contract names token t (0: none) as its leader. */
static void set_chain_leader(uint64_t t)
{
    f.state.leader_token = t;
    memset(f.state.leader, (int)t, 20);
}

/* n changes were asked of raft, the last one kind (of server id, unless id
 * is 0). */
static int last_change(unsigned n, enum recon_kind kind, uint64_t id)
{
    ASSERT_EQ(r.n_done, n);
    ASSERT_EQ(r.done[n - 1].kind, kind);
    if (id != 0)
        ASSERT_U64_EQ(r.done[n - 1].id, id);
    return 0;
}

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
        fake_raft_server(&r, RID(t), true, true, true);
    }
    r.leader = true;
    set_chain_leader(1);
    f.state.expiry = f.wall_s + 100;
    f.state.period = 20;
    if (recon_driver_init(&d, &cfg, &f.ops, &r.ops) != 0)
        return 1;
    recon_driver_adopt(&d, f.nodes, f.n_nodes); /* discovery's view */
    recon_driver_start(&d, 1, 0, f.id, false);
    if (d.self_id != RID(1))
        return 1;
    return 0;
}

/* One round a little over the change gap after the last one, one block
 * later. */
static void round_(void)
{
    f.head++;
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
    ASSERT_EQ(r.changed_views, 0); /* discovery had read this view */
    ASSERT_STR_EQ(d.refusal, "");
    recon_driver_close(&d);
    return 0;
}

TEST(leader_change_transfers_raft_leadership)
{
    ASSERT_EQ(setup(), 0);
    round_();
    ASSERT_EQ(r.n_done, 0);
    set_chain_leader(2);            /* the contract elected token 2 */
    r.servers[1].caught_up = false; /* not while it lags behind */
    round_();
    ASSERT_EQ(r.n_done, 0);
    r.servers[1].caught_up = true;
    round_();
    ASSERT_EQ(last_change(1, RECON_TRANSFER, RID(2)), 0);
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
    ASSERT_EQ(last_change(1, RECON_ADD, RID(3)), 0);
    ASSERT_STR_EQ(r.last_address, "127.0.0.1:9003"); /* its on-chain one */
    fake_raft_run(&r); /* joined as a non-voter, not caught up */
    round_();
    ASSERT_EQ(last_change(2, RECON_PROMOTE, 0), 0); /* never added twice */
    fake_raft_run(&r);                              /* fails: not caught up */
    ASSERT(!fake_server(&r, RID(3))->voter);
    fake_server(&r, RID(3))->caught_up = true;
    round_();
    ASSERT_EQ(last_change(3, RECON_PROMOTE, 0), 0);
    fake_raft_run(&r);
    ASSERT(fake_server(&r, RID(3))->voter);
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
    fake_raft_server(&r, RID(4), true, true, true); /* raft 1-4, chain 1-3 */
    r.servers[1].live = false;
    r.servers[2].live = false; /* without 4: 1 live voter of 3 */
    round_();
    ASSERT_EQ(r.n_done, 0);
    r.servers[1].live = true; /* now 2 of 3 */
    round_();
    ASSERT_EQ(last_change(1, RECON_REMOVE, RID(4)), 0);
    fake_raft_run(&r);
    ASSERT(fake_server(&r, RID(4)) == NULL);
    /* a second removal waits RECON_SHRINK_GAP_MS */
    fake_chain_remove(&f, 3);
    r.servers[2].live = true;
    round_();
    ASSERT_EQ(r.n_done, 1);
    f.now_ms += RECON_SHRINK_GAP_MS;
    round_();
    ASSERT_EQ(last_change(2, RECON_REMOVE, RID(3)), 0);
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
    ASSERT(recon_driver_peer(&d, RID(3)) != NULL);
    ASSERT_EQ(r.n_done, 0);
    ASSERT_EQ(f.n_sent, 0);
    f.fail[F_BLOCK] = 0; /* back */
    round_();
    ASSERT(d.connected);
    ASSERT_STR_EQ(d.error, "");
    ASSERT_EQ(d.n_members, 3); /* 3 is missing: kept until confirmed */
    ASSERT(recon_driver_member(&d, RID(3))->leaving);
    ASSERT_EQ(r.n_done, 0);
    round_(); /* a newer block confirms it */
    ASSERT_EQ(d.n_members, 2);
    ASSERT_EQ(last_change(1, RECON_REMOVE, 0), 0);
    recon_driver_close(&d);
    return 0;
}

TEST(a_malformed_answer_keeps_the_whole_view)
{
    ASSERT_EQ(setup(), 0);
    round_();
    set_chain_leader(2); /* read before the bad answer ... */
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
    ASSERT_U64_EQ(d.poll.block, 101);
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
    set_chain_leader(0); /* no leader: the raft leader elects itself */
    round_();
    ASSERT_EQ(f.n_sent, 1);
    ASSERT_EQ(f.sent[0].kind, RECON_TX_ELECT);
    ASSERT_U64_EQ(f.sent[0].token, 1);
    round_(); /* mined in the last round's run: poll soon */
    ASSERT(f.polls_soon >= 1);
    set_chain_leader(1); /* elected; the lease nearly over */
    f.state.expiry = f.wall_s + 5;
    round_();
    ASSERT_EQ(f.sent[f.n_sent - 1].kind, RECON_TX_HEARTBEAT);
    unsigned sent = f.n_sent;
    f.state.expiry = f.wall_s + 100;
    round_();
    ASSERT_EQ(f.n_sent, sent); /* a fresh lease: nothing to send */
    /* a follower whose on-chain leader (2) stops answering votes */
    r.leader = false;
    set_chain_leader(2);
    f.leader_healthy = false;
    round_(); /* reads the new leader */
    round_(); /* pings it: failing; votes against */
    ASSERT_EQ(d.health, 0);
    ASSERT_EQ(f.sent[f.n_sent - 1].kind, RECON_TX_VOTE);
    ASSERT(f.sent[f.n_sent - 1].against);
    ASSERT_U64_EQ(f.sent[f.n_sent - 1].leader_token, 2);
    recon_driver_close(&d);
    return 0;
}

/* Votes against leader 2 elect leader 3: the next poll must not judge 3
 * by 2's failed ping (it would depose a healthy leader never pinged). */
TEST(a_new_leader_is_not_judged_by_the_old_ones_ping)
{
    ASSERT_EQ(setup(), 0);
    r.leader = false;
    set_chain_leader(2);
    f.leader_healthy = false;
    round_(); /* reads leader 2 */
    round_(); /* pings it: failing; votes against */
    ASSERT_EQ(d.health, 0);
    ASSERT_EQ(f.sent[f.n_sent - 1].kind, RECON_TX_VOTE);
    ASSERT_U64_EQ(f.sent[f.n_sent - 1].leader_token, 2);
    unsigned sent = f.n_sent;
    memcpy(f.vote.target, f.state.leader, 20); /* the vote is on chain */
    f.vote.term = f.state.term;
    f.vote.against = true;
    set_chain_leader(3); /* the contract replaced 2 by 3 (a new term) */
    f.state.term++;
    round_(); /* 2 is pinged (failing) while the poll reads leader 3 */
    ASSERT_EQ(f.n_sent, sent); /* no vote against 3, never pinged */
    f.leader_healthy = true;
    round_(); /* 3 pinged: healthy */
    round_();
    ASSERT_U64_EQ(d.health_of, 3);
    ASSERT_EQ(d.health, 1);
    for (unsigned i = sent; i < f.n_sent; i++)
        ASSERT(!(f.sent[i].kind == RECON_TX_VOTE && f.sent[i].against));
    recon_driver_close(&d);
    return 0;
}

/* The contract names another leader: the raft leader hands over only once
 * that leader answered its ping, not on the old leader's health. */
TEST(no_transfer_to_a_leader_never_pinged)
{
    ASSERT_EQ(setup(), 0);
    round_();
    round_(); /* health 1: this node is the on-chain leader */
    ASSERT_EQ(d.health, 1);
    set_chain_leader(2);
    f.leader_healthy = false; /* 2 is raft-live but its HTTP is dead */
    for (int i = 0; i < 4; i++)
        round_();
    ASSERT_EQ(r.n_done, 0);
    f.leader_healthy = true;
    round_(); /* pinged healthy */
    round_();
    ASSERT_EQ(last_change(1, RECON_TRANSFER, RID(2)), 0);
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
    ASSERT_STR_EQ(d.refusal, ""); /* one answer without it: not yet */
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

/* Token t's registration in the fake chain moves to epoch e. */
static void reregister(uint64_t t, uint32_t e)
{
    for (size_t i = 0; i < f.n_nodes; i++)
        if (f.nodes[i].token == t)
            f.nodes[i].epoch = e;
}

TEST(follower_epoch_change_is_a_new_server)
{
    ASSERT_EQ(setup(), 0);
    round_();
    ASSERT_EQ(r.n_done, 0);
    uint64_t new3 = ((uint64_t)3 << 32) | 2;
    reregister(3, 2); /* token 3 registered anew (new instance, empty disk) */
    round_();
    /* The new server is an addition (at once); the old one is kept until
     * a newer block confirms it is gone. */
    ASSERT_EQ(last_change(1, RECON_ADD, new3), 0);
    ASSERT_STR_EQ(r.last_address, "127.0.0.1:9003");
    fake_raft_run(&r); /* a non-voter, not caught up */
    ASSERT(!fake_server(&r, new3)->voter);
    ASSERT(recon_driver_member(&d, RID(3))->leaving);
    round_(); /* confirmed: the old server goes (1, 2 live) */
    ASSERT_EQ(last_change(2, RECON_REMOVE, RID(3)), 0);
    fake_raft_run(&r);
    ASSERT(fake_server(&r, RID(3)) == NULL);
    ASSERT(recon_driver_member(&d, RID(3)) == NULL);
    fake_server(&r, new3)->caught_up = true;
    round_();
    ASSERT_EQ(last_change(3, RECON_PROMOTE, new3), 0); /* never added twice */
    fake_raft_run(&r);
    ASSERT(fake_server(&r, new3)->voter);
    round_();
    ASSERT_EQ(r.n_done, 3);
    ASSERT_EQ(r.moved, 0); /* not this node's registration */
    recon_driver_close(&d);
    return 0;
}

TEST(leader_epoch_change_hands_over_then_restarts)
{
    ASSERT_EQ(setup(), 0);
    round_();
    set_chain_leader(2); /* the chain names token 2 meanwhile */
    reregister(1, 2);    /* this instance (node1) registered anew */
    round_();
    ASSERT_EQ(r.moved, 0); /* a raft leader hands over first */
    ASSERT_EQ(last_change(1, RECON_TRANSFER, 0), 0);
    ASSERT(r.done[0].id == RID(2) || r.done[0].id == RID(3));
    ASSERT(strstr(d.refusal, "not an active registered") != NULL);
    fake_raft_run(&r);
    ASSERT(!r.leader);
    round_(); /* a follower now: restart as the new server */
    ASSERT_EQ(r.moved, 1);
    ASSERT_U64_EQ(r.moved_to, ((uint64_t)1 << 32) | 2);
    round_();
    ASSERT_EQ(r.moved, 1); /* once */
    ASSERT_EQ(r.n_done, 1);
    recon_driver_close(&d);
    return 0;
}

TEST(a_claim_with_a_stale_epoch_is_refused)
{
    ASSERT_EQ(setup(), 0);
    round_();
    uint8_t key3[20], key2[20];
    memset(key3, 3, 20);
    memset(key2, 2, 20);
    char why[300] = "";
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key3, why, sizeof why), 0);
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key2, why, sizeof why),
              ERR_DENIED); /* another token's key */
    ASSERT(strstr(why, "is not the node key of token 3") != NULL);
    ASSERT_EQ(recon_driver_authorize(&d, 3, key3, why, sizeof why),
              ERR_DENIED); /* the bare token: epoch 0, before epochs */
    reregister(3, 2);
    round_(); /* the old registration is leaving, not gone yet */
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key3, why, sizeof why), 0);
    ASSERT_EQ(recon_driver_authorize(&d, ((uint64_t)3 << 32) | 2, key3, why,
                                     sizeof why),
              0);
    round_(); /* a newer block confirms it */
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key3, why, sizeof why),
              ERR_DENIED); /* the old server, right key, stale epoch */
    ASSERT(strstr(why, "registered in epoch 2 now") != NULL);
    ASSERT_EQ(recon_driver_authorize(&d, ((uint64_t)3 << 32) | 2, key3, why,
                                     sizeof why),
              0);
    ASSERT_EQ(recon_driver_authorize(&d, RID(9), key3, why, sizeof why),
              ERR_DENIED);
    ASSERT(strstr(why, "not an active registered member") != NULL);
    /* A dial (no key): the id alone. */
    ASSERT_EQ(recon_driver_authorize(&d, ((uint64_t)3 << 32) | 2, NULL, why,
                                     sizeof why),
              0);
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), NULL, why, sizeof why),
              ERR_DENIED);
    ASSERT_EQ(recon_driver_authorize(&d, RID(9), NULL, why, sizeof why),
              ERR_DENIED);
    recon_driver_close(&d);
    return 0;
}

/* A lying or flaky answer that drops members for one poll (issue 11 (f)). */
TEST(one_answer_missing_members_changes_nothing)
{
    ASSERT_EQ(setup(), 0);
    round_();
    fake_chain_remove(&f, 2);
    fake_chain_remove(&f, 3);
    round_();
    ASSERT(d.connected);
    ASSERT_EQ(d.n_members, 3); /* kept, marked leaving */
    ASSERT(recon_driver_member(&d, RID(2))->leaving);
    ASSERT(recon_driver_member(&d, RID(3))->leaving);
    ASSERT_U64_EQ(recon_driver_member(&d, RID(3))->gone_block, f.head);
    ASSERT(!recon_driver_member(&d, RID(1))->leaving);
    ASSERT_EQ(r.n_done, 0); /* no removal, no refusal */
    ASSERT_STR_EQ(d.refusal, "");
    uint8_t key3[20];
    memset(key3, 3, 20);
    char why[300] = "";
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key3, why, sizeof why), 0);
    ASSERT(recon_driver_peer(&d, RID(2)) != NULL);
    fake_chain_member(&f, 2); /* the next answer lists them again */
    fake_chain_member(&f, 3);
    round_();
    ASSERT_EQ(d.n_members, 3);
    ASSERT(!recon_driver_member(&d, RID(2))->leaving);
    ASSERT(!recon_driver_member(&d, RID(3))->leaving);
    for (int i = 0; i < 3; i++)
        round_();
    ASSERT_EQ(r.n_done, 0);
    ASSERT_EQ(f.n_sent, 0);
    ASSERT_EQ(d.n_members, 3);
    recon_driver_close(&d);
    return 0;
}

TEST(a_newer_block_confirms_a_removal_a_same_block_repeat_does_not)
{
    ASSERT_EQ(setup(), 0);
    round_();
    fake_chain_remove(&f, 3);
    round_(); /* missing at block B: kept */
    uint64_t b = f.head;
    ASSERT_EQ(d.n_members, 3);
    ASSERT_EQ(r.n_done, 0);
    for (int i = 0; i < 3; i++) { /* the same block again: confirms nothing */
        f.now_ms += RECON_CHANGE_GAP_MS + 1;
        recon_driver_tick(&d);
        fake_chain_run(&f);
    }
    ASSERT_U64_EQ(d.poll.block, b);
    ASSERT_EQ(d.n_members, 3);
    ASSERT(recon_driver_member(&d, RID(3))->leaving);
    ASSERT_U64_EQ(recon_driver_member(&d, RID(3))->gone_block, b);
    ASSERT_EQ(r.n_done, 0);
    uint8_t key3[20];
    memset(key3, 3, 20);
    char why[300] = "";
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key3, why, sizeof why), 0);
    round_(); /* block B + 1, still missing: gone */
    ASSERT_EQ(d.n_members, 2);
    ASSERT(recon_driver_member(&d, RID(3)) == NULL);
    ASSERT_EQ(recon_driver_authorize(&d, RID(3), key3, why, sizeof why),
              ERR_DENIED);
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_REMOVE);
    ASSERT_U64_EQ(r.done[0].id, RID(3));
    recon_driver_close(&d);
    return 0;
}

TEST(a_member_back_then_missing_again_starts_over)
{
    ASSERT_EQ(setup(), 0);
    round_();
    fake_chain_remove(&f, 3);
    round_(); /* missing */
    fake_chain_member(&f, 3);
    round_(); /* back: the earlier miss is forgotten */
    ASSERT(!recon_driver_member(&d, RID(3))->leaving);
    fake_chain_remove(&f, 3);
    round_(); /* missing again: a first miss, not a confirmation */
    ASSERT_EQ(d.n_members, 3);
    ASSERT_U64_EQ(recon_driver_member(&d, RID(3))->gone_block, f.head);
    ASSERT_EQ(r.n_done, 0);
    round_();
    ASSERT_EQ(d.n_members, 2);
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_REMOVE);
    recon_driver_close(&d);
    return 0;
}

TEST(additions_apply_at_once)
{
    ASSERT_EQ(setup(), 0);
    round_();
    fake_chain_member(&f, 4);
    round_();
    ASSERT_EQ(d.n_members, 4);
    ASSERT(recon_driver_peer(&d, RID(4)) != NULL);
    uint8_t key4[20];
    memset(key4, 4, 20);
    char why[300] = "";
    ASSERT_EQ(recon_driver_authorize(&d, RID(4), key4, why, sizeof why), 0);
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_ADD);
    ASSERT_U64_EQ(r.done[0].id, RID(4));
    recon_driver_close(&d);
    return 0;
}

TEST(two_rpcs_that_disagree_change_nothing)
{
    ASSERT_EQ(setup(), 0);
    static struct fake_chain f2;
    fake_chain_init(&f2);
    for (uint64_t t = 1; t <= 3; t++)
        fake_chain_member(&f2, t);
    f2.state = f.state;
    ASSERT_EQ(recon_poll_set_second(&d.poll, &f2.ops), 0);
    for (int i = 0; i < 2; i++) {
        f2.head = f.head + 1;
        round_();
        fake_chain_run(&f2);
        fake_chain_run(&f);
        fake_chain_run(&f2);
        fake_chain_run(&f);
        fake_chain_run(&f2);
        fake_chain_run(&f);
    }
    ASSERT(d.connected);
    ASSERT_U64_EQ(d.poll.block, f.head);
    fake_chain_remove(&f2, 3); /* the second lies about token 3 */
    for (int i = 0; i < 4; i++) {
        f2.head = f.head + 1;
        round_();
        for (int k = 0; k < 4; k++) {
            fake_chain_run(&f2);
            fake_chain_run(&f);
        }
    }
    ASSERT_U64_EQ(d.poll.disagreements, 4);
    ASSERT_U64_EQ(d.disagree_streak, 4);
    ASSERT_EQ(d.n_members, 3);
    ASSERT(!recon_driver_member(&d, RID(3))->leaving); /* not even that */
    ASSERT_EQ(r.n_done, 0);
    fake_chain_remove(&f, 3); /* now both say it: it leaves, once confirmed */
    for (int i = 0; i < 2; i++) {
        f2.head = f.head + 1;
        round_();
        for (int k = 0; k < 4; k++) {
            fake_chain_run(&f2);
            fake_chain_run(&f);
        }
    }
    ASSERT_U64_EQ(d.disagree_streak, 0);
    ASSERT_EQ(d.n_members, 2);
    ASSERT_EQ(r.n_done, 1);
    ASSERT_EQ(r.done[0].kind, RECON_REMOVE);
    ASSERT_U64_EQ(r.done[0].id, RID(3));
    recon_driver_close(&d);
    return 0;
}

/* The raft changes in flight fail (a transfer that times out, a server
 * that never comes up). */
static void fail_pending(void)
{
    while (r.n_pending > 0) {
        struct fake_change c = r.pending[--r.n_pending];
        c.cb(c.arg, ERR_TIMEOUT);
    }
}

static unsigned count_done(enum recon_kind k)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r.n_done; i++)
        n += r.done[i].kind == k;
    return n;
}

/* A failing transfer backs off even when an addition ran in between (it
 * used to share the change target and so reset the back-off). */
TEST(transfer_back_off_survives_an_addition)
{
    ASSERT_EQ(setup(), 0);
    round_();
    set_chain_leader(2);
    round_(); /* reads leader 2 */
    round_(); /* pinged healthy: transfer */
    ASSERT_EQ(last_change(1, RECON_TRANSFER, RID(2)), 0);
    fail_pending(); /* back-off 2 s */
    round_();
    ASSERT_EQ(r.n_done, 1);
    round_();
    ASSERT_EQ(last_change(2, RECON_TRANSFER, RID(2)), 0);
    fail_pending();           /* back-off 4 s */
    fake_chain_member(&f, 4); /* a new member whose node is not up */
    round_();
    ASSERT_EQ(last_change(3, RECON_ADD, RID(4)), 0);
    fail_pending();
    round_(); /* 2 s after the transfer: still backing off */
    fail_pending();
    ASSERT_EQ(count_done(RECON_TRANSFER), 2);
    round_();
    fail_pending(); /* (the addition again, 2 s after its failure) */
    ASSERT_EQ(count_done(RECON_TRANSFER), 2);
    round_(); /* 4 s: again */
    ASSERT_EQ(count_done(RECON_TRANSFER), 3);
    recon_driver_close(&d);
    return 0;
}

/* A member whose node is not up is not added every second. */
TEST(an_addition_that_fails_backs_off)
{
    ASSERT_EQ(setup(), 0);
    fake_chain_member(&f, 4);
    for (int i = 0; i < 10; i++) {
        round_();
        fail_pending();
    }
    /* t = 0, 2, 6 s (then 14): three tries in ten rounds, not ten. */
    ASSERT_EQ(count_done(RECON_ADD), 3);
    recon_driver_close(&d);
    return 0;
}

static int discovered_result = 99;
static void discovered_cb(void *arg, int result, const char *msg)
{
    (void)arg;
    (void)msg;
    discovered_result = result;
}

/* Discovery reads at head - confirmations, like every poll, and that block
 * is the floor: an RPC answering an older block next (a lagging or
 * load-balanced one) cannot bring back a member evicted meanwhile. */
TEST(discovery_reads_the_pinned_block_which_is_the_floor)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.chain_confirmations = 5;
    cfg.election_timeout_ms = 1000;
    snprintf(cfg.instance_id, sizeof cfg.instance_id, "node1");
    fake_chain_init(&f);
    fake_raft_init(&r);
    for (uint64_t t = 1; t <= 2; t++) { /* 3 was evicted */
        fake_chain_member(&f, t);
        fake_raft_server(&r, RID(t), true, true, true);
    }
    r.leader = true;
    set_chain_leader(1);
    f.state.expiry = f.wall_s + 100;
    f.state.period = 20;
    ASSERT_EQ(recon_driver_init(&d, &cfg, &f.ops, &r.ops), 0);
    discovered_result = 99;
    ASSERT_EQ(recon_driver_discover(&d, f.id, discovered_cb, NULL), 0);
    fake_chain_run(&f);
    ASSERT_EQ(discovered_result, 0);
    ASSERT_EQ(f.calls[F_CHAIN_ID], 1);
    ASSERT_U64_EQ(d.poll.block, 95); /* head 100 - 5 */
    ASSERT(f.n_reads >= 3);
    for (unsigned i = 0; i < f.n_reads; i++)
        ASSERT_STR_EQ(f.read_blocks[i], "0x5f");
    ASSERT_EQ(d.n_members, 2);
    ASSERT_U64_EQ(d.state.leader_token, 1);
    recon_driver_start(&d, 1, d.poll.block, f.id, false);
    /* An RPC whose head is 3 blocks behind: its view (block 93) still has
     * token 3. */
    fake_chain_member(&f, 3);
    f.head = 98;
    f.now_ms += RECON_CHANGE_GAP_MS + 1;
    recon_driver_tick(&d);
    fake_chain_run(&f);
    ASSERT_U64_EQ(d.poll.stale, 1);
    ASSERT_EQ(d.n_members, 2);
    ASSERT(recon_driver_member(&d, RID(3)) == NULL);
    ASSERT_EQ(r.n_done, 0); /* 3 is not added back */
    recon_driver_close(&d);
    return 0;
}

/* With two endpoints, discovery adopts only a view both give. */
TEST(discovery_with_two_rpcs_that_disagree_adopts_nothing)
{
    ASSERT_EQ(setup(), 0);
    recon_driver_close(&d);
    ASSERT_EQ(recon_driver_init(&d, &cfg, &f.ops, &r.ops), 0);
    static struct fake_chain f2;
    fake_chain_init(&f2);
    for (uint64_t t = 1; t <= 4; t++) /* the second lists an extra voter */
        fake_chain_member(&f2, t);
    f2.state = f.state;
    ASSERT_EQ(recon_poll_set_second(&d.poll, &f2.ops), 0);
    discovered_result = 99;
    ASSERT_EQ(recon_driver_discover(&d, f.id, discovered_cb, NULL), 0);
    for (int k = 0; k < 6; k++) {
        fake_chain_run(&f2);
        fake_chain_run(&f);
    }
    ASSERT_EQ(discovered_result, RECON_POLL_DISAGREE);
    ASSERT_EQ(d.n_members, 0);
    ASSERT(strstr(d.poll.disagreement, "[1,2,3,4]") != NULL);
    /* They agree: adopted. */
    fake_chain_remove(&f2, 4);
    discovered_result = 99;
    ASSERT_EQ(recon_driver_discover(&d, f.id, discovered_cb, NULL), 0);
    for (int k = 0; k < 6; k++) {
        fake_chain_run(&f2);
        fake_chain_run(&f);
    }
    ASSERT_EQ(discovered_result, 0);
    ASSERT_EQ(d.n_members, 3);
    /* The second on another chain: refused. */
    f2.id = 1;
    d.n_members = 0;
    discovered_result = 99;
    ASSERT_EQ(recon_driver_discover(&d, f.id, discovered_cb, NULL), 0);
    for (int k = 0; k < 6; k++) {
        fake_chain_run(&f2);
        fake_chain_run(&f);
    }
    ASSERT_EQ(discovered_result, ERR_INVALID);
    ASSERT_EQ(d.n_members, 0);
    recon_driver_close(&d);
    return 0;
}

TEST_LIST(
    TEST_ENTRY(discovery_reads_the_pinned_block_which_is_the_floor),
    TEST_ENTRY(transfer_back_off_survives_an_addition),
    TEST_ENTRY(an_addition_that_fails_backs_off),
    TEST_ENTRY(discovery_with_two_rpcs_that_disagree_adopts_nothing),
    TEST_ENTRY(steady_state_changes_nothing),
    TEST_ENTRY(leader_change_transfers_raft_leadership),
    TEST_ENTRY(member_added_then_promoted_once_caught_up),
    TEST_ENTRY(a_change_waits_for_the_gap),
    TEST_ENTRY(member_removed_only_with_a_live_majority),
    TEST_ENTRY(chain_down_keeps_the_view_and_changes_nothing),
    TEST_ENTRY(a_malformed_answer_keeps_the_whole_view),
    TEST_ENTRY(an_older_block_is_ignored),
    TEST_ENTRY(transactions_elect_heartbeat_and_vote),
    TEST_ENTRY(a_new_leader_is_not_judged_by_the_old_ones_ping),
    TEST_ENTRY(no_transfer_to_a_leader_never_pinged),
    TEST_ENTRY(not_a_member_refuses_writes),
    TEST_ENTRY(after_stop_nothing_changes),
    TEST_ENTRY(follower_epoch_change_is_a_new_server),
    TEST_ENTRY(leader_epoch_change_hands_over_then_restarts),
    TEST_ENTRY(a_claim_with_a_stale_epoch_is_refused),
    TEST_ENTRY(one_answer_missing_members_changes_nothing),
    TEST_ENTRY(a_newer_block_confirms_a_removal_a_same_block_repeat_does_not),
    TEST_ENTRY(a_member_back_then_missing_again_starts_over),
    TEST_ENTRY(additions_apply_at_once),
    TEST_ENTRY(two_rpcs_that_disagree_change_nothing))
