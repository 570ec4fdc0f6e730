// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {DstackMembershipNFT} from "../src/DstackMembershipNFT.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";

/// The v2 paths: registerNode (node key, endpoints, epoch), setEndpoints,
/// the node key acting for its token, votes by token, lease expiry,
/// evict/readmit/releaseInstance, and bad input.
contract MembershipV2Test is Fixture {
    event LeaderCleared(address indexed oldLeader, uint256 indexed tokenId, string reason);

    function setUp() public {
        deploy();
    }

    function key(uint256 i) internal pure returns (address) {
        return address(uint160(0x5000 + i));
    }

    function raftEp(uint256 i) internal pure returns (string memory) {
        return string.concat("127.0.0.1:70", _u(i));
    }

    function httpEp(uint256 i) internal pure returns (string memory) {
        return string.concat("http://127.0.0.1:80", _u(i));
    }

    /// Mint token i to holder(i) and registerNode it with key(i), i in 1..n.
    function nodes(uint256 n, bool oneOwner) internal {
        for (uint256 i = 1; i <= n; i++) {
            address h = oneOwner ? wallet(1) : wallet(i);
            vm.prank(owner);
            nft.mintNodeAccess(h, "node");
            vm.prank(h);
            nft.registerNode(i, instance(i), key(i), raftEp(i), httpEp(i));
        }
    }

    function _node(uint256 t) internal view returns (bytes32 id, address k, uint32 e, bool active) {
        (id, k, e,,, active) = nft.nodeOf(t);
    }

    function test_registerNode_key_endpoints_epoch() public {
        nodes(3, false);
        (bytes32 id, address k, uint32 e, string memory r, string memory h, bool active) = nft.nodeOf(2);
        assertEq(id, instance(2), "instance");
        assertEq(k, key(2), "node key");
        assertEq(e, 1, "first registration: epoch 1");
        assertEq(r, raftEp(2), "raft endpoint");
        assertEq(h, httpEp(2), "http endpoint");
        assertTrue(active, "active");
        assertEq(nft.raftIdOf(2), (2 << 32) | 1, "raft id");
        assertEq(nft.totalActiveNodes(), 3, "three");
        // Same instance again, new key and endpoints: same epoch.
        vm.prank(wallet(2));
        nft.registerNode(2, instance(2), key(9), "h:1", "http://h:2");
        (, k, e, r,,) = nft.nodeOf(2);
        assertEq(k, key(9), "key replaced");
        assertEq(e, 1, "same instance keeps the epoch");
        assertEq(r, "h:1", "endpoint replaced");
        // A new instance: new epoch, the old instance freed.
        vm.prank(wallet(2));
        nft.registerNode(2, instance(12), key(2), raftEp(2), httpEp(2));
        (id,, e,) = _node(2);
        assertEq(id, instance(12), "new instance");
        assertEq(e, 2, "new instance: epoch 2");
        assertEq(nft.instanceToToken(instance(2)), 0, "old instance freed");
        assertEq(nft.totalActiveNodes(), 3, "still three");
        // Deactivated then re-registered: epoch 3.
        vm.prank(wallet(2));
        nft.deactivateInstance(2);
        (,, e,) = _node(2);
        assertEq(e, 2, "deactivation keeps the epoch");
        vm.prank(wallet(2));
        nft.registerNode(2, instance(12), key(2), raftEp(2), httpEp(2));
        (,, e, active) = _node(2);
        assertEq(e, 3, "re-activation: epoch 3");
        assertTrue(active, "active again");
        assertEq(nft.raftIdOf(2), (2 << 32) | 3, "raft id follows the epoch");
    }

    function test_activeNodes_returns_every_active_node() public {
        nodes(4, false);
        vm.prank(owner);
        nft.deactivateInstance(3);
        DstackMembershipNFT.NodeInfo[] memory a = nft.activeNodes();
        assertEq(a.length, 3, "three active");
        assertEq(a[2].tokenId, 4, "token order, 3 skipped");
        assertEq(a[2].instanceId, instance(4), "instance");
        assertEq(a[2].owner, wallet(4), "owner");
        assertEq(a[2].nodeKey, key(4), "key");
        assertEq(a[2].epoch, 1, "epoch");
        assertEq(a[2].raftEndpoint, raftEp(4), "raft");
        assertEq(a[2].httpEndpoint, httpEp(4), "http");
        // The v1 view is unchanged.
        (uint256[] memory ids, bytes32[] memory insts, address[] memory owners) = nft.activeMembers();
        assertEq(ids.length, 3, "v1 count");
        assertEq(insts[1], instance(2), "v1 instance");
        assertEq(owners[0], wallet(1), "v1 owner");
    }

    function test_registerInstance_seed_form_sets_the_owner_as_key() public {
        members(1);
        (bytes32 id, address k, uint32 e, string memory r, string memory h, bool active) = nft.nodeOf(1);
        assertEq(id, instance(1), "instance");
        assertEq(k, wallet(1), "key = owner");
        assertEq(e, 1, "epoch");
        assertEq(r, "", "no raft endpoint");
        assertEq(h, "", "no http endpoint");
        assertTrue(active, "active");
    }

    function _bad(address who, uint256 t, bytes32 id, address k, string memory r, string memory h, string memory why)
        internal
    {
        vm.prank(who);
        vm.expectRevert(bytes(why));
        nft.registerNode(t, id, k, r, h);
    }

    function test_registerNode_bad_input_reverts_and_changes_nothing() public {
        nodes(2, false);
        vm.prank(owner);
        nft.mintNodeAccess(wallet(3), "three");
        bytes memory long = new bytes(257);
        for (uint256 i = 0; i < 257; i++) {
            long[i] = "a";
        }
        (bytes32 id0, address k0, uint32 e0,) = _node(1);
        _bad(wallet(1), 1, instance(1), address(0), raftEp(1), httpEp(1), "Invalid node key");
        _bad(wallet(1), 1, instance(1), key(1), "", httpEp(1), "Invalid raft endpoint");
        _bad(wallet(1), 1, instance(1), key(1), raftEp(1), "", "Invalid http endpoint");
        _bad(wallet(1), 1, instance(1), key(1), string(long), httpEp(1), "Invalid raft endpoint");
        _bad(wallet(1), 1, instance(1), key(1), raftEp(1), string(long), "Invalid http endpoint");
        _bad(wallet(1), 1, instance(2), key(1), raftEp(1), httpEp(1), "Instance registered to another token");
        _bad(wallet(1), 1, bytes32(0), key(1), raftEp(1), httpEp(1), "Invalid instance id");
        _bad(wallet(1), 2, instance(7), key(1), raftEp(1), httpEp(1), "Must own NFT");
        _bad(wallet(1), 99, instance(7), key(1), raftEp(1), httpEp(1), "Must own NFT");
        _bad(wallet(3), 3, instance(2), key(3), raftEp(3), httpEp(3), "Instance registered to another token");
        vm.prank(owner);
        nft.evict(1);
        _bad(wallet(1), 1, instance(1), key(1), raftEp(1), httpEp(1), "Token evicted");
        vm.prank(wallet(1));
        vm.expectRevert(bytes("Token evicted"));
        nft.registerInstance(instance(1), 1);
        (bytes32 id1, address k1, uint32 e1, bool active) = _node(1);
        assertEq(id1, id0, "instance unchanged");
        assertEq(k1, k0, "key unchanged");
        assertEq(e1, e0, "epoch unchanged");
        assertTrue(!active, "evicted: inactive");
        (bytes32 id3,, uint32 e3,) = _node(3);
        assertEq(id3, bytes32(0), "token 3 still unregistered");
        assertEq(e3, 0, "token 3 epoch 0");
        assertEq(nft.totalActiveNodes(), 1, "only token 2 active");
        // 256 bytes is the cap, accepted.
        bytes memory max = new bytes(256);
        for (uint256 i = 0; i < 256; i++) {
            max[i] = "b";
        }
        vm.prank(wallet(2));
        nft.registerNode(2, instance(2), key(2), string(max), string(max));
    }

    function test_setEndpoints_by_owner_or_key_only() public {
        nodes(2, false);
        vm.prank(key(1));
        nft.setEndpoints(1, "a:1", "http://a:2");
        (,,, string memory r, string memory h,) = nft.nodeOf(1);
        assertEq(r, "a:1", "set by the node key");
        assertEq(h, "http://a:2", "http");
        vm.prank(wallet(1));
        nft.setEndpoints(1, "b:1", "http://b:2");
        (,,, r,,) = nft.nodeOf(1);
        assertEq(r, "b:1", "set by the owner");
        vm.prank(key(2));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.setEndpoints(1, "c:1", "http://c:2");
        vm.prank(wallet(1));
        vm.expectRevert(bytes("Invalid raft endpoint"));
        nft.setEndpoints(1, "", "http://c:2");
        vm.prank(wallet(1));
        vm.expectRevert(bytes("Invalid http endpoint"));
        nft.setEndpoints(1, "c:1", "");
        (,,, r,,) = nft.nodeOf(1);
        assertEq(r, "b:1", "unchanged by the reverts");
        vm.prank(owner);
        nft.mintNodeAccess(wallet(3), "three");
        vm.prank(wallet(3));
        vm.expectRevert(bytes("No instance registered"));
        nft.setEndpoints(3, "c:1", "http://c:2");
        vm.prank(owner);
        nft.evict(2);
        vm.prank(key(2));
        vm.expectRevert(bytes("Token evicted"));
        nft.setEndpoints(2, "c:1", "http://c:2");
    }

    function test_node_key_acts_for_its_token() public {
        nodes(3, false);
        vm.warp(1000);
        vm.prank(key(3));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.electLeaderByToken(2);
        vm.prank(key(2));
        nft.electLeaderByToken(2);
        assertEq(nft.currentLeaderTokenId(), 2, "elected by its node key");
        assertEq(nft.currentLeader(), wallet(2), "the leader address stays the owner");
        vm.warp(1100);
        vm.prank(key(2));
        nft.leaderHeartbeat();
        assertEq(nft.leadershipExpiry(), 1100 + nft.leaseDuration(), "heartbeat by the node key");
        vm.prank(wallet(2));
        nft.leaderHeartbeat();
        vm.prank(key(3));
        vm.expectRevert(bytes("Not the leader"));
        nft.leaderHeartbeat();
        vm.prank(key(1));
        nft.castVoteByToken(1, 2, true);
        assertEq(nft.noConfidenceCountByToken(2), 1, "vote by a node key");
        vm.prank(key(1));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.castVoteByToken(3, 2, true);
        // A new key: the old one can no longer act.
        vm.prank(wallet(1));
        nft.registerNode(1, instance(1), key(11), raftEp(1), httpEp(1));
        vm.prank(key(1));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.castVoteByToken(1, 2, false);
        vm.prank(key(11));
        nft.castVoteByToken(1, 2, false);
        assertEq(nft.noConfidenceCountByToken(2), 0, "cleared by the new key");
    }

    function test_single_owner_cluster_replaces_its_leader() public {
        nodes(3, true);
        vm.prank(key(1));
        nft.electLeaderByToken(1);
        vm.prank(key(2));
        nft.castVoteByToken(2, 1, true);
        assertEq(nft.currentLeaderTokenId(), 1, "one vote of two");
        (,,,, uint256 against,,,) = nft.clusterState();
        assertEq(against, 1, "clusterState counts it");
        vm.prank(key(3));
        nft.castVoteByToken(3, 1, true);
        assertEq(nft.currentLeaderTokenId(), 2, "replaced by token 2 of the same owner");
        assertEq(nft.currentLeader(), wallet(1), "same owner");
        assertEq(nft.noConfidenceCountByToken(2), 0, "fresh term");
    }

    /// The daemon's address form (castVoteByToken(uint256,address,bool)
    /// against the leader's owner) also replaces a single owner's leader.
    function test_single_owner_cluster_address_form() public {
        nodes(3, true);
        vm.prank(wallet(1));
        nft.electLeaderByToken(3);
        vm.prank(wallet(1));
        nft.castVoteByToken(1, wallet(1), true);
        assertEq(nft.noConfidenceCountByToken(3), 1, "address vote counts against the leader token");
        vm.prank(key(2));
        nft.castVoteByToken(2, wallet(1), true);
        assertEq(nft.currentLeaderTokenId(), 1, "lowest other token");
    }

    function test_votes_by_token_rules() public {
        nodes(5, false);
        vm.prank(key(1));
        nft.electLeaderByToken(1);
        vm.prank(key(2));
        vm.expectRevert(bytes("Not the current leader"));
        nft.castVoteByToken(2, 3, true);
        vm.prank(key(2));
        vm.expectRevert(bytes("Not the current leader"));
        nft.castVoteByToken(2, 0, true);
        vm.prank(key(2));
        nft.castVoteByToken(2, 1, true);
        vm.prank(key(2));
        nft.castVoteByToken(2, 1, true); // the same vote again counts once
        assertEq(nft.noConfidenceCountByToken(1), 1, "once");
        assertEq(nft.noConfidenceCount(wallet(1)), 1, "address count agrees");
        (address target, uint256 term, bool against) = nft.tokenVotes(2);
        assertEq(target, wallet(1), "seed view: target");
        assertEq(term, nft.leadershipTerm(), "seed view: term");
        assertTrue(against, "seed view: against");
        assertEq(nft.tokenVoteLeader(2), 1, "leader token");
        vm.prank(key(3));
        nft.castVoteByToken(3, 1, true);
        vm.prank(key(3));
        nft.castVoteByToken(3, 4, false); // a clear about any token drops the vote
        assertEq(nft.noConfidenceCountByToken(1), 1, "cleared");
        vm.prank(key(3));
        nft.castVoteByToken(3, 1, true);
        vm.prank(key(4));
        nft.castVoteByToken(4, 1, true);
        assertEq(nft.currentLeaderTokenId(), 2, "3 of 5: replaced (fewest votes against its owner, then lowest id)");
    }

    function test_lease_expiry() public {
        nodes(3, false);
        vm.warp(1000);
        vm.prank(key(1));
        nft.electLeaderByToken(1);
        uint256 term = nft.leadershipTerm();
        uint256 lease = nft.leaseDuration();
        vm.warp(1000 + lease);
        vm.prank(key(2));
        nft.electLeaderByToken(2); // lease not yet expired: no change
        assertEq(nft.currentLeaderTokenId(), 1, "kept within its lease");
        vm.warp(1000 + lease + 1);
        vm.expectEmit(true, true, false, true);
        emit LeaderCleared(wallet(1), 1, "lease expired");
        vm.prank(key(1));
        nft.leaderHeartbeat();
        assertEq(nft.currentLeader(), address(0), "a late heartbeat clears the leader");
        assertEq(nft.leadershipTerm(), term + 1, "new term");
        assertEq(nft.leadershipExpiry(), 0, "no lease");
        vm.prank(key(1));
        vm.expectRevert(bytes("Not the leader"));
        nft.leaderHeartbeat();
        vm.prank(key(1));
        nft.electLeaderByToken(1);
        assertEq(nft.currentLeaderTokenId(), 1, "re-elected in a new term");
        assertEq(nft.leadershipTerm(), term + 2, "term");
        // An expired leader that never heartbeats is replaced by an election.
        vm.warp(2000 + lease);
        vm.prank(key(3));
        nft.electLeaderByToken(3);
        assertEq(nft.currentLeaderTokenId(), 3, "expired lease taken over");
    }

    function test_evict_and_readmit() public {
        nodes(3, false);
        vm.prank(key(2));
        nft.electLeaderByToken(2);
        vm.prank(wallet(2));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(2)));
        nft.evict(2);
        vm.prank(owner);
        nft.evict(2);
        assertTrue(nft.isEvicted(2), "evicted");
        (,,, bool active) = _node(2);
        assertTrue(!active, "inactive");
        assertEq(nft.currentLeader(), address(0), "leader cleared");
        assertEq(nft.totalActiveNodes(), 2, "two");
        (bool ok, string memory why) = nft.isAppAllowed(bootInfo(instance(2), COMPOSE));
        assertTrue(!ok, "boot refused");
        assertEq(why, "Instance marked inactive", "reason");
        vm.prank(owner);
        vm.expectRevert(bytes("Already evicted"));
        nft.evict(2);
        vm.prank(owner);
        vm.expectRevert(bytes("Token does not exist"));
        nft.evict(42);
        // The holder cannot undo it, not even through another wallet.
        vm.prank(wallet(2));
        nft.transferFrom(wallet(2), wallet(8), 2);
        vm.prank(wallet(8));
        vm.expectRevert(bytes("Token evicted"));
        nft.registerNode(2, instance(22), key(2), raftEp(2), httpEp(2));
        vm.prank(key(2));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.electLeaderByToken(2);
        vm.prank(wallet(8));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(8)));
        nft.readmit(2);
        vm.prank(owner);
        nft.readmit(2);
        vm.prank(owner);
        vm.expectRevert(bytes("Not evicted"));
        nft.readmit(2);
        vm.prank(wallet(8));
        nft.registerNode(2, instance(22), key(8), raftEp(2), httpEp(2));
        (,, uint32 e, bool a2) = _node(2);
        assertTrue(a2, "readmitted and registered");
        assertEq(e, 2, "a new epoch");
    }

    function test_release_a_squatted_instance() public {
        nodes(2, false);
        vm.prank(owner);
        nft.mintNodeAccess(wallet(3), "three");
        vm.prank(wallet(2)); // token 2 squats token 3's future instance
        nft.registerNode(2, instance(3), key(2), raftEp(2), httpEp(2));
        vm.prank(wallet(3));
        vm.expectRevert(bytes("Instance registered to another token"));
        nft.registerNode(3, instance(3), key(3), raftEp(3), httpEp(3));
        vm.prank(wallet(2));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(2)));
        nft.releaseInstance(instance(3));
        vm.prank(owner);
        vm.expectRevert(bytes("Instance not registered"));
        nft.releaseInstance(instance(9));
        vm.prank(owner);
        nft.releaseInstance(instance(3));
        (bytes32 id, address k,,) = _node(2);
        assertEq(id, bytes32(0), "token 2 lost it");
        assertEq(k, address(0), "and its key");
        vm.prank(wallet(3));
        nft.registerNode(3, instance(3), key(3), raftEp(3), httpEp(3));
        assertEq(nft.instanceToToken(instance(3)), 3, "rightful token");
    }

    function test_transfer_revokes_instance_key_and_endpoints() public {
        nodes(2, false);
        vm.prank(wallet(1));
        nft.safeTransferFrom(wallet(1), wallet(9), 1);
        (bytes32 id, address k, uint32 e, string memory r, string memory h, bool active) = nft.nodeOf(1);
        assertEq(id, bytes32(0), "instance revoked");
        assertEq(k, address(0), "key revoked");
        assertEq(r, "", "raft endpoint cleared");
        assertEq(h, "", "http endpoint cleared");
        assertTrue(!active, "inactive");
        assertEq(e, 1, "epoch kept");
        vm.prank(key(1));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.setEndpoints(1, "x:1", "http://x");
        vm.prank(wallet(9));
        nft.registerNode(1, instance(1), key(19), raftEp(1), httpEp(1));
        (,, e,) = _node(1);
        assertEq(e, 2, "the new owner's node: epoch 2");
    }

    function testFuzz_endpoint_lengths(uint16 rl, uint16 hl) public {
        rl = uint16(bound(rl, 0, 300));
        hl = uint16(bound(hl, 0, 300));
        vm.prank(owner);
        nft.mintNodeAccess(wallet(1), "one");
        bool ok = rl >= 1 && rl <= 256 && hl >= 1 && hl <= 256;
        vm.prank(wallet(1));
        if (!ok) {
            vm.expectRevert(bytes(rl >= 1 && rl <= 256 ? "Invalid http endpoint" : "Invalid raft endpoint"));
        }
        nft.registerNode(1, instance(1), key(1), string(new bytes(rl)), string(new bytes(hl)));
        (,, uint32 e,) = _node(1);
        assertEq(e, ok ? 1 : 0, "registered iff both lengths are within 1..256");
    }

    /// Random registrations, deactivations and transfers of one token: the
    /// epoch never decreases and grows exactly on a new or re-activated
    /// instance.
    function testFuzz_epochs_only_grow(uint8[12] memory ops) public {
        nodes(1, false);
        address h = wallet(1);
        for (uint256 i = 0; i < ops.length; i++) {
            (bytes32 before, , uint32 e0, bool wasActive) = _node(1);
            uint8 op = ops[i] % 4;
            bytes32 id = instance(uint256(ops[i] % 3) + 1);
            bool expectBump;
            vm.prank(h);
            if (op == 0) {
                nft.registerNode(1, id, key(1), "r:1", "http://h");
                expectBump = !wasActive || before != id;
            } else if (op == 1) {
                if (wasActive) nft.deactivateInstance(1);
            } else if (op == 2) {
                nft.registerInstance(id, 1);
                expectBump = !wasActive || before != id;
            } else {
                address to = h == wallet(1) ? wallet(2) : wallet(1);
                nft.transferFrom(h, to, 1);
                h = to;
            }
            (,, uint32 e1,) = _node(1);
            assertTrue(e1 >= e0, "epoch never decreases");
            assertEq(e1, expectBump ? e0 + 1 : e0, "epoch grows exactly on a new or re-activated instance");
        }
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
