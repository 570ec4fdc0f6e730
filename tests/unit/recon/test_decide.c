/* test_decide.c - reconciler decisions (recon/decide). */
#include "recon/decide.h"
#include "harness.h"

/* id, voter, live, caught up */
static const struct recon_server three[] = {
    {1, true, true, true}, {2, true, true, true}, {3, true, true, true}};
static const uint64_t m123[] = {1, 2, 3};
static const uint64_t m1234[] = {1, 2, 3, 4};
static const uint64_t m12[] = {1, 2};

static struct recon_input base(void)
{
    struct recon_input in = {0};
    in.self = 1;
    in.my_id = 1;
    in.raft_leader = true;
    in.servers = three;
    in.n_servers = 3;
    in.members = m123;
    in.n_members = 3;
    in.addressable = m1234;
    in.n_addressable = 4;
    in.chain_leader = 1;
    in.now = 1000;
    in.expiry = 1100;
    in.heartbeat_period = 60;
    in.leader_health = 1;
    return in;
}

/* base() with a fourth member, token 4, that is in raft as a non-voter and
 * not up (a spare). */
static struct recon_input with_spare(void)
{
    static const struct recon_server servers[] = {{1, true, true, true},
                                                  {2, true, true, true},
                                                  {3, true, true, true},
                                                  {4, false, false, false}};
    struct recon_input in = base();
    in.servers = servers;
    in.n_servers = 4;
    in.members = m1234;
    in.n_members = 4;
    return in;
}

TEST(steady_state_does_nothing)
{
    struct recon_input in = base();
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 0);
    in.self = 2;
    in.my_id = 2;
    in.raft_leader = false;
    ASSERT_EQ(recon_decide(&in, a), 0);
    return 0;
}

TEST(not_a_member_refuses)
{
    struct recon_input in = base();
    in.self = 0;
    in.my_id = 2;
    in.raft_leader = false;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_REFUSE);
    return 0;
}

TEST(leader_adds_new_member)
{
    struct recon_input in = base();
    in.members = m1234;
    in.n_members = 4;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_ADD);
    ASSERT_U64_EQ(a[0].id, 4);
    /* Unknown address: cannot add yet. */
    in.n_addressable = 3;
    ASSERT_EQ(recon_decide(&in, a), 0);
    /* Followers never change membership. */
    in.n_addressable = 4;
    in.raft_leader = false;
    in.self = 2;
    ASSERT_EQ(recon_decide(&in, a), 0);
    return 0;
}

TEST(leader_removes_deactivated)
{
    struct recon_input in = base();
    in.members = m12;
    in.n_members = 2;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_REMOVE);
    ASSERT_U64_EQ(a[0].id, 3);
    return 0;
}

TEST(leader_deactivated_hands_over_first)
{
    /* What the driver passes for a leader whose own token left: self 0,
     * my_id its raft id. It refuses writes and hands leadership to a live,
     * caught-up member voter; the new leader then removes it. */
    struct recon_input in = base();
    static const uint64_t m23[] = {2, 3};
    in.members = m23;
    in.n_members = 2;
    in.self = 0;
    in.chain_leader = 1;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 2);
    ASSERT_EQ(a[0].kind, RECON_REFUSE);
    ASSERT_EQ(a[1].kind, RECON_TRANSFER);
    ASSERT_U64_EQ(a[1].id, 2);
    /* Not to a member that is down or behind. */
    static const struct recon_server lagging[] = {
        {1, true, true, true}, {2, true, false, true}, {3, true, true, false}};
    in.servers = lagging;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_REFUSE);
    /* The new leader (2) removes the old one (1). */
    in.servers = three;
    in.self = 2;
    in.my_id = 2;
    ASSERT(recon_decide(&in, a) >= 1);
    ASSERT_EQ(a[0].kind, RECON_REMOVE);
    ASSERT_U64_EQ(a[0].id, 1);
    return 0;
}

TEST(removal_keeps_a_live_majority)
{
    /* Voters {1,2,3}; 3 left the contract; 2 is down: removing 3 would
     * leave {1,2} with one live voter, so nothing is removed. */
    struct recon_input in = base();
    static const struct recon_server two_down[] = {
        {1, true, true, true}, {2, true, false, false}, {3, true, true, true}};
    in.servers = two_down;
    in.members = m12;
    in.n_members = 2;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 0);
    /* With 2 back, 3 goes. */
    in.servers = three;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_REMOVE);
    /* A non-voter that left is always removable. */
    static const struct recon_server spare3[] = {{1, true, true, true},
                                                 {2, true, false, false},
                                                 {3, false, false, false}};
    in.servers = spare3;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_REMOVE);
    ASSERT_U64_EQ(a[0].id, 3);
    return 0;
}

TEST(non_voter_member_is_promoted_not_added_again)
{
    struct recon_input in = with_spare();
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_PROMOTE);
    ASSERT_U64_EQ(a[0].id, 4);
    return 0;
}

/* A member whose node is not up (a spare that is not live, or not in raft
 * yet) is promoted or added every round until it is: that must not keep
 * leadership from the on-chain leader. */
TEST(a_change_for_a_server_not_up_does_not_block_the_transfer)
{
    struct recon_input in = with_spare();
    in.chain_leader = 3;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 2);
    ASSERT_EQ(a[0].kind, RECON_TRANSFER); /* first */
    ASSERT_U64_EQ(a[0].id, 3);
    ASSERT_EQ(a[1].kind, RECON_PROMOTE);
    ASSERT_U64_EQ(a[1].id, 4);
    /* Not in raft yet: an addition, after the transfer too. */
    in.servers = three;
    in.n_servers = 3;
    ASSERT_EQ(recon_decide(&in, a), 2);
    ASSERT_EQ(a[0].kind, RECON_TRANSFER);
    ASSERT_EQ(a[1].kind, RECON_ADD);
    /* A live spare is promoted first: that finishes soon. */
    static const struct recon_server live_spare[] = {{1, true, true, true},
                                                     {2, true, true, true},
                                                     {3, true, true, true},
                                                     {4, false, true, false}};
    in.servers = live_spare;
    in.n_servers = 4;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_PROMOTE);
    return 0;
}

TEST(no_chain_leader_elects)
{
    struct recon_input in = base();
    in.chain_leader = 0;
    in.expiry = 0;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_ELECT);
    in.raft_leader = false;
    ASSERT_EQ(recon_decide(&in, a), 0);
    return 0;
}

TEST(raft_follows_chain_leader)
{
    struct recon_input in = base();
    in.chain_leader = 3;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_TRANSFER);
    ASSERT_U64_EQ(a[0].id, 3);
    /* Not to a chain leader that is behind in raft or not heard from. */
    static const struct recon_server behind[] = {
        {1, true, true, true}, {2, true, true, true}, {3, true, true, false}};
    in.servers = behind;
    ASSERT_EQ(recon_decide(&in, a), 0);
    in.servers = three;
    /* Not to a chain leader never pinged (or whose last ping was of the
     * previous leader): unknown health is no reason to hand over. */
    in.leader_health = -1;
    ASSERT_EQ(recon_decide(&in, a), 0);
    /* Not while the chain leader fails our ping: followers vote instead. */
    in.leader_health = 0;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_VOTE);
    ASSERT(a[0].against);
    return 0;
}

TEST(chain_leader_heartbeats)
{
    struct recon_input in = base();
    struct recon_action a[RECON_MAX_ACTIONS];
    in.expiry = in.now + 31;
    ASSERT_EQ(recon_decide(&in, a), 0);
    in.expiry = in.now + 30;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_HEARTBEAT);
    in.expiry = in.now - 5;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_HEARTBEAT);
    return 0;
}

TEST(follower_votes_and_clears)
{
    struct recon_input in = base();
    in.self = 2;
    in.raft_leader = false;
    struct recon_action a[RECON_MAX_ACTIONS];
    in.leader_health = 0;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_VOTE);
    ASSERT_U64_EQ(a[0].id, 1);
    ASSERT(a[0].against);
    in.voted_against_leader = true;
    ASSERT_EQ(recon_decide(&in, a), 0); /* already voted */
    in.leader_health = 1;
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_VOTE);
    ASSERT(!a[0].against);
    in.leader_health = -1; /* unknown: keep the vote as it is */
    ASSERT_EQ(recon_decide(&in, a), 0);
    return 0;
}

TEST(follower_votes_on_expiry)
{
    struct recon_input in = base();
    in.self = 3;
    in.raft_leader = false;
    in.now = in.expiry + 1;
    struct recon_action a[RECON_MAX_ACTIONS];
    ASSERT_EQ(recon_decide(&in, a), 1);
    ASSERT_EQ(a[0].kind, RECON_VOTE);
    ASSERT(a[0].against);
    return 0;
}

TEST_LIST(TEST_ENTRY(removal_keeps_a_live_majority),
          TEST_ENTRY(non_voter_member_is_promoted_not_added_again),
          TEST_ENTRY(steady_state_does_nothing),
          TEST_ENTRY(not_a_member_refuses), TEST_ENTRY(leader_adds_new_member),
          TEST_ENTRY(leader_removes_deactivated),
          TEST_ENTRY(leader_deactivated_hands_over_first),
          TEST_ENTRY(a_change_for_a_server_not_up_does_not_block_the_transfer),
          TEST_ENTRY(no_chain_leader_elects),
          TEST_ENTRY(raft_follows_chain_leader),
          TEST_ENTRY(chain_leader_heartbeats),
          TEST_ENTRY(follower_votes_and_clears),
          TEST_ENTRY(follower_votes_on_expiry))
