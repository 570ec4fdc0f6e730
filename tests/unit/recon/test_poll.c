/* test_poll.c - the contract poll's state machine (recon/poll) against the
 * fake chain: its states in order, every read at the pinned block, every
 * error back to idle with the last good view kept, older heads ignored;
 * with a second endpoint: both read at the block below the lower head, the
 * view given only when both answers agree, what differed said. */
#include "fakes.h"
#include "harness.h"

struct outcome {
    int calls, result;
    size_t n_nodes;
    uint64_t block, leader;
    char msg[160];
};

static void done(void *data, int result, const struct membership_view *v,
                 const char *msg)
{
    struct outcome *out = data;
    out->calls++;
    out->result = result;
    out->msg[0] = '\0';
    if (msg)
        snprintf(out->msg, sizeof out->msg, "%s", msg);
    if (v != NULL) {
        out->n_nodes = v->n_nodes;
        out->block = v->block;
        out->leader = v->state.leader_token;
    }
}

static struct fake_chain f;
static struct recon_poll p;
static struct outcome o;

/* Token 1 polls a fake chain with members 1 and 2 (2 the leader), 2
 * confirmations. */
static int setup(void)
{
    fake_chain_init(&f);
    fake_chain_member(&f, 1);
    fake_chain_member(&f, 2);
    f.state.leader_token = 2;
    memset(&o, 0, sizeof o);
    return recon_poll_init(&p, &f.ops, 1, 2, done, &o);
}

/* done() was not called exactly once. */
#define NOT_DONE (-1000)

/* Start a poll and deliver every answer the fake chain has for it: the
 * result done() got, or why the poll did not start. */
static int run_poll(void)
{
    int rv = recon_poll_start(&p);
    if (rv != 0)
        return rv;
    int calls = o.calls;
    fake_chain_run(&f);
    return o.calls == calls + 1 ? o.result : NOT_DONE;
}

TEST(states_in_order_all_reads_at_the_pinned_block)
{
    ASSERT_EQ(setup(), 0);
    ASSERT_EQ(p.state, RECON_POLL_IDLE);
    ASSERT_EQ(recon_poll_start(&p), 0);
    ASSERT_EQ(p.state, RECON_POLL_BLOCK);
    ASSERT_EQ(recon_poll_start(&p), ERR_BUSY); /* one poll at a time */
    static const enum recon_poll_state order[] = {
        RECON_POLL_STATE, RECON_POLL_NODES, RECON_POLL_VOTE, RECON_POLL_IDLE};
    for (unsigned i = 0; i < 4; i++) {
        struct fake_pending q = f.q[0];
        f.nq = 0;
        fake_deliver(&f, &q); /* one answer: one step */
        ASSERT_STR_EQ(recon_poll_state_str(p.state),
                      recon_poll_state_str(order[i]));
    }
    ASSERT_EQ(o.calls, 1);
    ASSERT_EQ(o.result, 0);
    ASSERT_EQ(o.n_nodes, 2);
    ASSERT_U64_EQ(o.leader, 2);
    ASSERT_U64_EQ(o.block, 98); /* head 100 - 2 confirmations */
    ASSERT_U64_EQ(p.block, 98);
    ASSERT_EQ(f.n_reads, 3);
    for (unsigned i = 0; i < f.n_reads; i++)
        ASSERT_STR_EQ(f.read_blocks[i], "0x62");
    recon_poll_close(&p);
    return 0;
}

TEST(every_error_returns_to_idle_and_keeps_the_view)
{
    ASSERT_EQ(setup(), 0);
    ASSERT_EQ(run_poll(), 0);
    ASSERT_U64_EQ(p.block, 98);
    static const enum fake_call calls[] = {F_BLOCK, F_STATE, F_NODES, F_VOTE};
    static const int errs[] = {ERR_TIMEOUT, ERR_MALFORMED, ERR_REVERT, ERR_RPC};
    for (unsigned i = 0; i < 4; i++) {
        f.head = 110 + i;
        f.fail[calls[i]] = errs[i];
        o.block = 0;
        ASSERT_EQ(run_poll(), errs[i]);
        ASSERT_EQ(o.calls, 2 + (int)i);
        ASSERT_STR_EQ(o.msg, "fake failure");
        ASSERT_U64_EQ(o.block, 0); /* no view handed out */
        ASSERT_EQ(p.state, RECON_POLL_IDLE);
        ASSERT_U64_EQ(p.block, 98); /* the last good view's block */
        f.fail[calls[i]] = 0;
    }
    /* and the next poll works again */
    ASSERT_EQ(run_poll(), 0);
    ASSERT_U64_EQ(p.block, 111);
    recon_poll_close(&p);
    return 0;
}

TEST(an_older_head_is_ignored)
{
    ASSERT_EQ(setup(), 0);
    ASSERT_EQ(run_poll(), 0);
    ASSERT_U64_EQ(p.block, 98);
    f.head = 90; /* a lagging RPC */
    f.state.leader_token = 1;
    unsigned reads = f.n_reads;
    ASSERT_EQ(run_poll(), RECON_POLL_STALE);
    ASSERT_U64_EQ(o.leader, 2);  /* no view handed out */
    ASSERT_EQ(f.n_reads, reads); /* and nothing read at the old block */
    ASSERT_U64_EQ(p.stale, 1);
    ASSERT_U64_EQ(p.block, 98);
    f.head = 100; /* the same block again is fine */
    ASSERT_EQ(run_poll(), 0);
    ASSERT_U64_EQ(o.leader, 1);
    recon_poll_close(&p);
    return 0;
}

TEST(a_cached_start_checks_the_chain_id_first)
{
    ASSERT_EQ(setup(), 0);
    p.verify_chain_id = true;
    p.chain_id = 1; /* the cache was read on chain 1; the fake is 31337 */
    ASSERT_EQ(recon_poll_start(&p), 0);
    ASSERT_EQ(p.state, RECON_POLL_CHAIN_ID);
    fake_chain_run(&f);
    ASSERT_EQ(o.result, ERR_INVALID);
    ASSERT(strstr(o.msg, "31337") != NULL);
    ASSERT_EQ(f.calls[F_BLOCK], 0);
    ASSERT(p.verify_chain_id);
    p.chain_id = 31337;
    ASSERT_EQ(run_poll(), 0);
    ASSERT(!p.verify_chain_id);
    ASSERT_EQ(f.calls[F_CHAIN_ID], 2);
    ASSERT_EQ(recon_poll_start(&p), 0); /* verified: straight to BLOCK */
    ASSERT_EQ(p.state, RECON_POLL_BLOCK);
    fake_chain_run(&f);
    ASSERT_EQ(f.calls[F_CHAIN_ID], 2);
    recon_poll_close(&p);
    return 0;
}

TEST(a_refused_call_ends_the_poll_at_once)
{
    ASSERT_EQ(setup(), 0);
    f.refuse = true;
    ASSERT_EQ(recon_poll_start(&p), 0);
    ASSERT_EQ(o.calls, 1);
    ASSERT_EQ(o.result, ERR_SHUTDOWN);
    ASSERT_EQ(p.state, RECON_POLL_IDLE);
    recon_poll_close(&p);
    return 0;
}

TEST(answers_after_close_are_dropped)
{
    ASSERT_EQ(setup(), 0);
    ASSERT_EQ(recon_poll_start(&p), 0);
    recon_poll_close(&p);
    fake_chain_run(&f);
    ASSERT_EQ(o.calls, 0);
    ASSERT_EQ(recon_poll_start(&p), ERR_BUSY);
    return 0;
}

/* ---- two endpoints (a second --rpc-url) ---- */

static struct fake_chain f2;

static int setup2(void)
{
    if (setup() != 0)
        return 1;
    fake_chain_init(&f2);
    fake_chain_member(&f2, 1);
    fake_chain_member(&f2, 2);
    f2.state.leader_token = 2;
    return recon_poll_set_second(&p, &f2.ops);
}

/* Answer both endpoints until neither has a call queued. */
static void run_both(void)
{
    while (f.nq > 0 || f2.nq > 0) {
        fake_chain_run(&f);
        fake_chain_run(&f2);
    }
}

TEST(two_endpoints_that_agree_give_the_view)
{
    ASSERT_EQ(setup2(), 0);
    f2.head = 97; /* the second lags 3 blocks: both read below its head */
    ASSERT_EQ(recon_poll_start(&p), 0);
    ASSERT_EQ(f.calls[F_BLOCK], 1);
    ASSERT_EQ(f2.calls[F_BLOCK], 1);
    fake_chain_run(&f); /* one answer is not enough to move on */
    ASSERT_EQ(p.state, RECON_POLL_BLOCK);
    run_both();
    ASSERT_EQ(o.calls, 1);
    ASSERT_EQ(o.result, 0);
    ASSERT_U64_EQ(o.block, 95); /* min(100, 97) - 2 */
    ASSERT_EQ(o.n_nodes, 2);
    ASSERT_EQ(f.n_reads, 3);
    ASSERT_EQ(f2.n_reads, 3);
    for (unsigned i = 0; i < 3; i++) {
        ASSERT_STR_EQ(f.read_blocks[i], "0x5f");
        ASSERT_STR_EQ(f2.read_blocks[i], "0x5f");
    }
    ASSERT_U64_EQ(p.disagreements, 0);
    recon_poll_close(&p);
    return 0;
}

TEST(two_endpoints_that_disagree_give_no_view)
{
    ASSERT_EQ(setup2(), 0);
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, 0);
    ASSERT_U64_EQ(p.block, 98);
    /* the second drops a member */
    fake_chain_remove(&f2, 2);
    f.head = f2.head = 101;
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, RECON_POLL_DISAGREE);
    ASSERT_STR_EQ(o.msg, "active members at block 99: the first RPC lists "
                         "tokens [1,2], the second [1]");
    ASSERT_U64_EQ(p.disagreements, 1);
    ASSERT_U64_EQ(p.block, 98);    /* the view's block stays */
    ASSERT_EQ(f.calls[F_VOTE], 1); /* it stopped before the vote */
    /* the second names another leader */
    fake_chain_member(&f2, 2);
    f2.state.leader_token = 1;
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, RECON_POLL_DISAGREE);
    ASSERT(strstr(o.msg, "names leader token 2, the second token 1") != NULL);
    f2.state.leader_token = 2;
    f2.state.term = 7; /* another term */
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, RECON_POLL_DISAGREE);
    ASSERT(strstr(o.msg, "the term differs") != NULL);
    f2.state.term = 0;
    f2.nodes[1].epoch = 2; /* token 2 in another epoch */
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, RECON_POLL_DISAGREE);
    ASSERT(strstr(o.msg, "token 2's epoch differs") != NULL);
    f2.nodes[1].epoch = 1;
    snprintf(f2.nodes[1].raft, sizeof f2.nodes[1].raft, "10.0.0.66:9002");
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, RECON_POLL_DISAGREE);
    ASSERT(strstr(o.msg, "token 2's raft endpoint differs") != NULL);
    snprintf(f2.nodes[1].raft, sizeof f2.nodes[1].raft, "127.0.0.1:9002");
    f2.vote.against = true;
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, RECON_POLL_DISAGREE);
    ASSERT(strstr(o.msg, "tokenVotes(1)") != NULL);
    ASSERT_U64_EQ(p.disagreements, 6);
    f2.vote.against = false; /* honest again */
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, 0);
    ASSERT_U64_EQ(p.block, 99);
    ASSERT_U64_EQ(p.disagreements, 6);
    recon_poll_close(&p);
    return 0;
}

TEST(an_error_on_either_endpoint_fails_the_poll)
{
    ASSERT_EQ(setup2(), 0);
    f2.fail[F_NODES] = ERR_MALFORMED;
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, ERR_MALFORMED);
    ASSERT_STR_EQ(o.msg, "second RPC: fake failure");
    ASSERT_EQ(p.state, RECON_POLL_IDLE);
    ASSERT_U64_EQ(p.disagreements, 0);
    f2.fail[F_NODES] = 0;
    f2.refuse = true; /* the second refuses its first call */
    ASSERT_EQ(recon_poll_start(&p), 0);
    ASSERT_EQ(o.calls, 1); /* the first's block call is still in flight */
    run_both();
    ASSERT_EQ(o.calls, 2); /* done once, after that answer */
    ASSERT_EQ(o.result, ERR_SHUTDOWN);
    ASSERT(strstr(o.msg, "on the second RPC") != NULL);
    f2.refuse = false;
    f2.id = 1; /* the second is on another chain */
    p.verify_chain_id = true;
    p.chain_id = 31337;
    ASSERT_EQ(recon_poll_start(&p), 0);
    run_both();
    ASSERT_EQ(o.result, ERR_INVALID);
    ASSERT(strstr(o.msg, "second RPC's chain has id 1") != NULL);
    recon_poll_close(&p);
    return 0;
}

TEST_LIST(TEST_ENTRY(states_in_order_all_reads_at_the_pinned_block),
          TEST_ENTRY(every_error_returns_to_idle_and_keeps_the_view),
          TEST_ENTRY(an_older_head_is_ignored),
          TEST_ENTRY(a_cached_start_checks_the_chain_id_first),
          TEST_ENTRY(a_refused_call_ends_the_poll_at_once),
          TEST_ENTRY(answers_after_close_are_dropped),
          TEST_ENTRY(two_endpoints_that_agree_give_the_view),
          TEST_ENTRY(two_endpoints_that_disagree_give_no_view),
          TEST_ENTRY(an_error_on_either_endpoint_fails_the_poll))
