// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {DstackMembershipNFT} from "../src/DstackMembershipNFT.sol";
import {IAppAuth} from "../src/IAppAuth.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";

contract DstackMembershipNFTTest is Fixture {
    event LeaderChallenged(address indexed newLeader, address indexed oldLeader, uint256 voteCount);
    event LeaderElected(address indexed leader, uint256 indexed tokenId, bytes32 instanceId);
    event VoteCast(address indexed voter, address indexed target, bool isNoConfidence);

    function setUp() public {
        deploy();
    }

    function test_factory_deploys_a_dstack_app() public view {
        assertTrue(kms.registeredApps(address(nft)), "registered");
        assertEq(nft.owner(), owner, "owner");
        assertTrue(nft.allowedComposeHashes(COMPOSE), "compose hash");
        assertTrue(nft.allowAnyDevice(), "any device");
        assertTrue(!nft.requireTcbUpToDate(), "tcb default");
        assertEq(nft.version(), 2, "version");
        assertTrue(nft.supportsInterface(0x1e079198), "IAppAuth id");
        assertTrue(nft.supportsInterface(0x8fd37527), "management id");
        assertTrue(nft.supportsInterface(0x01ffc9a7), "erc165");
        assertTrue(nft.supportsInterface(0x80ac58cd), "erc721");
        assertTrue(!nft.supportsInterface(0x12345678), "unknown id");
        assertEq(nft.name(), "Dstack Node Access", "name");
        assertEq(nft.maxSupply(), 64, "cap");
    }

    function test_initializers_run_once() public {
        vm.expectRevert();
        nft.initialize(owner, false, true, bytes32(0), bytes32(0));
        vm.expectRevert();
        nftImpl.initialize(owner, false, false, true, bytes32(0), bytes32(0));
    }

    function test_mint_is_owner_only_and_capped() public {
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(1)));
        vm.prank(wallet(1));
        nft.mintNodeAccess(wallet(1), "node1");
        vm.startPrank(owner);
        nft.setMaxSupply(2);
        nft.mintNodeAccess(wallet(1), "node1");
        nft.mintNodeAccess(wallet(2), "node2");
        vm.expectRevert(bytes("Max supply reached"));
        nft.mintNodeAccess(wallet(3), "node3");
        vm.expectRevert(bytes("Invalid max supply"));
        nft.setMaxSupply(1);
        vm.expectRevert(bytes("Invalid max supply"));
        nft.setMaxSupply(257);
        vm.stopPrank();
        assertEq(nft.ownerOf(2), wallet(2), "owner of 2");
        assertEq(nft.nodeName(1), "node1", "name");
    }

    function test_register_and_its_errors() public {
        members(3);
        assertEq(nft.totalActiveNodes(), 3, "active");
        assertEq(nft.requiredVotes(), 2, "required");
        assertEq(nft.instanceToToken(instance(2)), 2, "instanceToToken");
        assertEq(nft.tokenToInstance(2), instance(2), "tokenToInstance");
        vm.prank(wallet(1));
        vm.expectRevert(bytes("Must own NFT"));
        nft.registerInstance(instance(9), 2);
        vm.prank(wallet(1));
        vm.expectRevert(bytes("Invalid instance id"));
        nft.registerInstance(bytes32(0), 1);
        vm.prank(wallet(1));
        vm.expectRevert(bytes("Instance registered to another token"));
        nft.registerInstance(instance(2), 1);
        // Replacing a token's instance frees the old one.
        vm.prank(wallet(1));
        nft.registerInstance(instance(7), 1);
        assertEq(nft.instanceToToken(instance(1)), 0, "old instance freed");
        assertTrue(!nft.activeInstances(instance(1)), "old inactive");
        assertEq(nft.totalActiveNodes(), 3, "still 3");
    }

    function test_deactivate() public {
        members(3);
        vm.prank(wallet(2));
        vm.expectRevert(bytes("Not authorized"));
        nft.deactivateInstance(1);
        vm.prank(wallet(1));
        nft.deactivateInstance(1);
        vm.prank(owner);
        nft.deactivateInstance(2);
        assertEq(nft.totalActiveNodes(), 1, "active");
        assertEq(nft.requiredVotes(), 1, "required");
        vm.prank(owner);
        vm.expectRevert(bytes("Instance not active"));
        nft.deactivateInstance(2);
        // Re-registering the same instance re-activates it.
        vm.prank(wallet(2));
        nft.registerInstance(instance(2), 2);
        assertEq(nft.totalActiveNodes(), 2, "reactivated");
    }

    function test_transfer_revokes_instance_and_leadership() public {
        members(3);
        vm.prank(wallet(1));
        nft.electLeader();
        assertEq(nft.currentLeader(), wallet(1), "leader");
        vm.prank(wallet(1));
        nft.transferFrom(wallet(1), wallet(9), 1);
        assertEq(nft.tokenToInstance(1), bytes32(0), "instance revoked");
        assertEq(nft.instanceToToken(instance(1)), 0, "mapping cleared");
        assertEq(nft.totalActiveNodes(), 2, "active");
        assertEq(nft.currentLeader(), address(0), "leader cleared");
        (bool ok, string memory why) = nft.isAppAllowed(bootInfo(instance(1), COMPOSE));
        assertTrue(!ok, "revoked instance denied");
        assertEq(why, "Instance not registered with NFT", "reason");
        vm.prank(wallet(9));
        nft.registerInstance(instance(11), 1);
        assertEq(nft.totalActiveNodes(), 3, "new owner registered");
    }

    function test_elect_heartbeat_expiry() public {
        members(3);
        vm.warp(1000);
        vm.prank(wallet(9));
        vm.expectRevert(bytes("Must own NFT with an active instance"));
        nft.electLeader();
        vm.expectEmit(true, true, false, true);
        emit LeaderElected(wallet(2), 2, instance(2));
        vm.prank(wallet(2));
        nft.electLeader();
        assertEq(nft.currentLeaderTokenId(), 2, "token");
        assertEq(nft.leadershipExpiry(), 1000 + nft.leaseDuration(), "expiry");
        vm.prank(wallet(3));
        nft.electLeader(); // a leader exists: no change
        assertEq(nft.currentLeader(), wallet(2), "kept");
        vm.warp(1100);
        vm.prank(wallet(2));
        nft.leaderHeartbeat();
        assertEq(nft.leadershipExpiry(), 1100 + nft.leaseDuration(), "extended");
        vm.prank(wallet(3));
        vm.expectRevert(bytes("Not the leader"));
        nft.leaderHeartbeat();
        vm.prank(owner);
        nft.setLeaseParameters(10, 20);
        vm.prank(owner);
        vm.expectRevert(bytes("Invalid lease parameters"));
        nft.setLeaseParameters(10, 5);
    }

    /// The seed's "Testing Flow": 3 nodes, two no-confidence votes move the
    /// leader; votes are scoped to the old term; clearing works.
    function test_no_confidence_moves_the_leader() public {
        members(3);
        vm.prank(wallet(1));
        nft.electLeader();
        vm.prank(wallet(2));
        nft.castVote(wallet(1), true);
        assertEq(nft.noConfidenceCount(wallet(1)), 1, "one vote");
        assertEq(nft.currentLeader(), wallet(1), "not yet");
        vm.expectEmit(true, true, false, true);
        emit LeaderChallenged(wallet(2), wallet(1), 2);
        vm.prank(wallet(3));
        nft.castVote(wallet(1), true);
        assertEq(nft.currentLeader(), wallet(2), "new leader: lowest token besides the old");
        assertEq(nft.noConfidenceCount(wallet(2)), 0, "fresh term");
        assertEq(nft.noConfidenceCount(wallet(1)), 0, "old votes are not live");
        // A vote cast and cleared in the new term.
        vm.prank(wallet(3));
        nft.castVote(wallet(2), true);
        assertEq(nft.noConfidenceCount(wallet(2)), 1, "vote");
        vm.prank(wallet(3));
        nft.castVote(wallet(2), false);
        assertEq(nft.noConfidenceCount(wallet(2)), 0, "cleared");
    }

    /// Seed defect: clearing a vote decremented the *new* target's count.
    function test_changing_a_vote_follows_its_own_target() public {
        members(3);
        vm.prank(wallet(1));
        nft.electLeader();
        vm.prank(wallet(2));
        nft.castVote(wallet(3), true);
        vm.prank(wallet(2));
        nft.castVote(wallet(1), false);
        assertEq(nft.noConfidenceCount(wallet(3)), 0, "old target decremented");
        assertEq(nft.noConfidenceCount(wallet(1)), 0, "new target untouched");
    }

    function test_per_token_votes_for_owners_of_several_tokens() public {
        members(3);
        vm.startPrank(owner);
        nft.mintNodeAccess(wallet(2), "node4");
        vm.stopPrank();
        vm.prank(wallet(2));
        nft.registerInstance(instance(4), 4);
        vm.prank(wallet(1));
        nft.electLeader();
        assertEq(nft.requiredVotes(), 3, "4 nodes need 3");
        vm.prank(wallet(2));
        vm.expectRevert(bytes("Several active tokens: use the ByToken call"));
        nft.castVote(wallet(1), true);
        vm.prank(wallet(2));
        nft.castVoteByToken(2, wallet(1), true);
        vm.prank(wallet(2));
        nft.castVoteByToken(4, wallet(1), true);
        assertEq(nft.noConfidenceCount(wallet(1)), 2, "one vote per token");
        vm.prank(wallet(3));
        vm.expectRevert(bytes("Not the token's owner or node key"));
        nft.castVoteByToken(2, wallet(1), true);
        vm.prank(wallet(3));
        nft.castVote(wallet(1), true);
        assertEq(nft.currentLeader(), wallet(2), "moved at 3 votes");
    }

    /// Seed defect: the election loop reverted on burned tokens.
    function test_election_skips_burned_tokens() public {
        members(4);
        vm.prank(wallet(1));
        nft.electLeader();
        vm.prank(wallet(2));
        nft.burn(2);
        assertEq(nft.totalActiveNodes(), 3, "burn revokes");
        vm.prank(wallet(3));
        nft.castVote(wallet(1), true);
        vm.prank(wallet(4));
        nft.castVote(wallet(1), true);
        assertEq(nft.currentLeader(), wallet(3), "burned token 2 skipped");
    }

    function test_is_app_allowed_reasons() public {
        members(2);
        (bool ok, string memory why) = nft.isAppAllowed(bootInfo(instance(1), COMPOSE));
        assertTrue(ok, why);
        (ok, why) = nft.isAppAllowed(bootInfo(instance(1), keccak256("other")));
        assertEq(why, "Compose hash not allowed", "compose");
        (ok, why) = nft.isAppAllowed(bootInfo(instance(8), COMPOSE));
        assertEq(why, "Instance not registered with NFT", "unregistered");
        vm.prank(owner);
        nft.deactivateInstance(2);
        (ok, why) = nft.isAppAllowed(bootInfo(instance(2), COMPOSE));
        assertEq(why, "Instance marked inactive", "inactive");
        vm.prank(owner);
        nft.setAllowAnyDevice(false);
        (ok, why) = nft.isAppAllowed(bootInfo(instance(1), COMPOSE));
        assertEq(why, "Device not allowed", "device");
        vm.prank(owner);
        nft.addDevice(bytes32(0));
        (ok, why) = nft.isAppAllowed(bootInfo(instance(1), COMPOSE));
        assertTrue(ok, "device allowed");
        vm.prank(owner);
        nft.setRequireTcbUpToDate(true);
        IAppAuth.AppBootInfo memory b = bootInfo(instance(1), COMPOSE);
        b.tcbStatus = "OutOfDate";
        (ok, why) = nft.isAppAllowed(b);
        assertEq(why, "TCB status is not up to date", "tcb");
        // Through the KMS, as the auth webhook calls it.
        (ok, why) = kms.isAppAllowed(bootInfo(instance(1), COMPOSE));
        assertTrue(ok, why);
    }

    function test_policy_setters_are_owner_only() public {
        vm.startPrank(wallet(5));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(5)));
        nft.addComposeHash(COMPOSE);
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(5)));
        nft.disableUpgrades();
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(5)));
        nft.setLeaseParameters(1, 2);
        vm.stopPrank();
        vm.startPrank(owner);
        nft.removeComposeHash(COMPOSE);
        assertTrue(!nft.allowedComposeHashes(COMPOSE), "removed");
        nft.addComposeHash(COMPOSE);
        nft.addDevice(bytes32(uint256(7)));
        nft.removeDevice(bytes32(uint256(7)));
        assertTrue(!nft.allowedDeviceIds(bytes32(uint256(7))), "device removed");
        vm.stopPrank();
    }

    function test_upgrades_and_two_step_ownership() public {
        DstackMembershipNFT next = new DstackMembershipNFT();
        vm.prank(wallet(5));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(5)));
        nft.upgradeToAndCall(address(next), "");
        vm.prank(owner);
        nft.upgradeToAndCall(address(next), "");
        vm.prank(owner);
        nft.disableUpgrades();
        vm.prank(owner);
        vm.expectRevert(bytes("Upgrades are permanently disabled"));
        nft.upgradeToAndCall(address(next), "");
        vm.prank(owner);
        nft.transferOwnership(wallet(6));
        assertEq(nft.owner(), owner, "not yet");
        assertEq(nft.pendingOwner(), wallet(6), "pending");
        vm.prank(wallet(6));
        nft.acceptOwnership();
        assertEq(nft.owner(), wallet(6), "accepted");
    }

    function testFuzz_registration(bytes32 id, uint8 who) public {
        vm.assume(id != bytes32(0));
        members(2);
        uint256 token = uint256(who % 2) + 1;
        address w = wallet(token);
        bool taken = id == instance(1) || id == instance(2);
        vm.prank(w);
        if (taken && nft.instanceToToken(id) != token) {
            vm.expectRevert(bytes("Instance registered to another token"));
            nft.registerInstance(id, token);
            return;
        }
        nft.registerInstance(id, token);
        assertEq(nft.instanceToToken(id), token, "mapped");
        assertEq(nft.tokenToInstance(token), id, "reverse");
        assertEq(nft.totalActiveNodes(), 2, "still two");
    }

    function testFuzz_votes_keep_counts(uint8 a, uint8 b, bool x, bool y) public {
        members(5);
        vm.prank(wallet(1));
        nft.electLeader();
        address ta = wallet(uint256(a % 5) + 1);
        address tb = wallet(uint256(b % 5) + 1);
        vm.prank(wallet(2));
        nft.castVote(ta, x);
        vm.prank(wallet(2));
        nft.castVote(tb, y);
        uint256 expectB = y ? 1 : 0;
        if (nft.leadershipTerm() == 1) {
            assertEq(nft.noConfidenceCount(tb), expectB, "b counted once");
            if (ta != tb) assertEq(nft.noConfidenceCount(ta), 0, "a cleared");
        }
    }
}
