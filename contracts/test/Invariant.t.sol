// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {Test} from "./lib/Test.sol";
import {DstackMembershipNFT} from "../src/DstackMembershipNFT.sol";

/// Random operations on the membership contract: mint, register (v1 and
/// v2), transfer, burn, deactivate, evict, readmit, release, vote (address
/// and token forms, by owners and node keys), elect, heartbeat, time. Before
/// each call it snapshots every token's epoch (the invariants check that no
/// call lowers one), and `replaceLeader` records whether an all-out vote
/// against the leader failed to replace it.
contract Handler is Test {
    DstackMembershipNFT public nft;
    address public owner;
    uint256 public constant WALLETS = 3; // few owners: shared-owner clusters are common
    mapping(uint256 => uint32) public epochBefore;
    bool public replaceFailed;
    uint256 public replacements;

    constructor(DstackMembershipNFT n, address o) {
        nft = n;
        owner = o;
    }

    function wallet(uint256 i) public pure returns (address) {
        return address(uint160(0x2000 + (i % WALLETS) + 1));
    }

    function nodeKey(uint256 i) public pure returns (address) {
        return address(uint160(0x7000 + (i % 4) + 1));
    }

    modifier snap() {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (,, uint32 e,,,) = nft.nodeOf(t);
            epochBefore[t] = e;
        }
        _;
    }

    function _token(uint256 seed) internal view returns (uint256) {
        uint256 m = nft.totalMinted();
        return m == 0 ? 0 : (seed % m) + 1;
    }

    function _holder(uint256 t) internal view returns (address o) {
        try nft.ownerOf(t) returns (address a) {
            o = a;
        } catch {}
    }

    function mint(uint256 w) external snap {
        if (nft.totalMinted() >= 12) return;
        vm.prank(owner);
        nft.mintNodeAccess(w % 4 == 0 ? wallet(w) : wallet(0), "n"); // mostly one owner
    }

    function register(uint256 t, uint256 inst) external snap {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        bytes32 id = bytes32(uint256(inst % 16) + 1);
        vm.prank(o);
        try nft.registerInstance(id, tok) {} catch {}
    }

    function transfer(uint256 t, uint256 w) external snap {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        vm.prank(o);
        nft.transferFrom(o, wallet(w), tok);
    }

    function burn(uint256 t) external snap {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        vm.prank(o);
        nft.burn(tok);
    }

    function deactivate(uint256 t) external snap {
        uint256 tok = _token(t);
        vm.prank(owner);
        try nft.deactivateInstance(tok) {} catch {}
    }

    function vote(uint256 t, uint256 target, bool against) external snap {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        address tgt = target % 3 == 0 ? nft.currentLeader() : wallet(target);
        if (tgt == address(0)) tgt = wallet(target);
        vm.prank(o);
        try nft.castVoteByToken(tok, tgt, against) {} catch {}
    }

    function elect(uint256 t) external snap {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        vm.prank(o);
        try nft.electLeaderByToken(tok) {} catch {}
    }

    function _active() internal view returns (uint256 n) {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (,,,,, bool active) = nft.nodeOf(t);
            if (active) n++;
        }
    }

    function recount() external snap {
        nft.updateClusterSize();
    }

    function registerNode(uint256 t, uint256 inst, uint256 k, bool badKey) external snap {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        bytes32 id = bytes32(uint256(inst % 16) + 1);
        vm.prank(o);
        try nft.registerNode(tok, id, badKey ? address(0) : nodeKey(k), "127.0.0.1:1", "http://127.0.0.1:2") {} catch {}
    }

    function evict(uint256 t) external snap {
        vm.prank(owner);
        try nft.evict(_token(t)) {} catch {}
    }

    function readmit(uint256 t) external snap {
        vm.prank(owner);
        try nft.readmit(_token(t)) {} catch {}
    }

    function release(uint256 inst) external snap {
        vm.prank(owner);
        try nft.releaseInstance(bytes32(uint256(inst % 16) + 1)) {} catch {}
    }

    /// v2 vote by the voter token's node key (or a wrong key).
    function voteByToken(uint256 t, uint256 k, bool leader, bool against) external snap {
        uint256 tok = _token(t);
        uint256 lt = leader ? nft.currentLeaderTokenId() : _token(k);
        vm.prank(nodeKey(k));
        try nft.castVoteByToken(tok, lt, against) {} catch {}
    }

    function heartbeat(uint256 k, uint16 dt) external snap {
        vm.warp(block.timestamp + (dt % 400));
        vm.prank(nodeKey(k));
        try nft.leaderHeartbeat() {} catch {}
    }

    /// Every active token except the leader's votes it out (by its node
    /// key): with enough of them, the leader token must change. First grows
    /// the cluster to 3 active tokens (new ones owned by wallet(0), so
    /// shared owners are the rule) and elects a leader if there is none.
    function replaceLeader() external snap {
        while (_active() < 3 && nft.totalMinted() < 12) {
            vm.prank(owner);
            uint256 tok = nft.mintNodeAccess(wallet(0), "r");
            vm.prank(wallet(0));
            nft.registerNode(tok, bytes32(100 + tok), nodeKey(tok), "127.0.0.1:1", "http://127.0.0.1:2");
        }
        if (nft.currentLeader() == address(0)) {
            for (uint256 t = 1; t <= nft.totalMinted(); t++) {
                (, address k,,,, bool active) = nft.nodeOf(t);
                if (!active) continue;
                vm.prank(k);
                nft.electLeaderByToken(t);
                break;
            }
        }
        uint256 lead = nft.currentLeaderTokenId();
        if (lead == 0 || _active() - 1 < nft.requiredVotes()) return;
        for (uint256 t = 1; t <= nft.totalMinted() && nft.currentLeaderTokenId() == lead; t++) {
            (, address k,,,, bool active) = nft.nodeOf(t);
            if (!active || t == lead) continue;
            vm.prank(k);
            nft.castVoteByToken(t, lead, true);
        }
        if (nft.currentLeaderTokenId() == lead) replaceFailed = true;
        else replacements++;
    }
}

contract MembershipInvariants is Fixture {
    Handler internal handler;

    function setUp() public {
        deploy();
        handler = new Handler(nft, owner);
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function _activeCount() internal view returns (uint256 n, uint256 votes) {
        uint256 term = nft.leadershipTerm();
        address leader = nft.currentLeader();
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            bytes32 id = nft.tokenToInstance(t);
            if (id != bytes32(0) && nft.activeInstances(id)) n++;
            (address target, uint256 vterm, bool against) = nft.tokenVotes(t);
            if (against && vterm == term && target == leader && leader != address(0)) votes++;
        }
    }

    function invariant_active_nodes_and_required_votes() public view {
        (uint256 n,) = _activeCount();
        assertEq(nft.totalActiveNodes(), n, "totalActiveNodes");
        assertEq(nft.requiredVotes(), n / 2 + 1, "requiredVotes");
    }

    function invariant_no_confidence_count_is_the_live_votes() public view {
        (, uint256 votes) = _activeCount();
        address leader = nft.currentLeader();
        if (leader != address(0)) assertEq(nft.noConfidenceCount(leader), votes, "noConfidenceCount");
    }

    function invariant_one_instance_per_token_and_back() public view {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            bytes32 id = nft.tokenToInstance(t);
            if (id != bytes32(0)) assertEq(nft.instanceToToken(id), t, "instance maps back to its token");
        }
        for (uint256 i = 1; i <= 16; i++) {
            uint256 t = nft.instanceToToken(bytes32(i));
            if (t != 0) assertEq(nft.tokenToInstance(t), bytes32(i), "token maps back to its instance");
        }
    }

    function invariant_active_token_has_exactly_one_instance() public view {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (bytes32 id, address k,,,, bool active) = nft.nodeOf(t);
            if (!active) continue;
            assertTrue(id != bytes32(0), "active token has an instance");
            assertTrue(k != address(0), "active token has a node key");
            assertEq(nft.instanceToToken(id), t, "its instance is its own");
            assertTrue(nft.activeInstances(id), "its instance is active");
            for (uint256 u = 1; u <= nft.totalMinted(); u++) {
                if (u != t) assertTrue(nft.tokenToInstance(u) != id, "no other token has it");
            }
        }
    }

    function invariant_epochs_only_grow() public view {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (,, uint32 e,,,) = nft.nodeOf(t);
            assertTrue(e >= handler.epochBefore(t), "epoch decreased");
            assertEq(nft.raftIdOf(t), (t << 32) | e, "raft id");
        }
    }

    function invariant_token_votes_counted_are_the_live_votes() public view {
        uint256 lead = nft.currentLeaderTokenId();
        if (lead == 0) return;
        uint256 term = nft.leadershipTerm();
        uint256 live;
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (, uint256 vterm, bool against) = nft.tokenVotes(t);
            if (against && vterm == term && nft.tokenVoteLeader(t) == lead) live++;
        }
        assertEq(nft.noConfidenceCountByToken(lead), live, "noConfidenceCountByToken");
        (,,,, uint256 against_,,,) = nft.clusterState();
        assertEq(against_, live, "clusterState votes against the leader");
        assertTrue(live < nft.requiredVotes() || !_otherActive(lead), "a deciding count was acted on");
    }

    function _otherActive(uint256 lead) internal view returns (bool) {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (,,,,, bool active) = nft.nodeOf(t);
            if (active && t != lead) return true;
        }
        return false;
    }

    function invariant_evicted_token_is_never_active() public view {
        for (uint256 t = 1; t <= nft.totalMinted(); t++) {
            (,,,,, bool active) = nft.nodeOf(t);
            if (nft.isEvicted(t)) assertTrue(!active, "evicted token active");
        }
    }

    function invariant_leader_can_always_be_replaced() public view {
        assertTrue(!handler.replaceFailed(), "an all-out vote did not replace the leader");
    }

    function invariant_leader_is_owner_of_an_active_token() public view {
        address leader = nft.currentLeader();
        if (leader == address(0)) return;
        uint256 t = nft.currentLeaderTokenId();
        assertEq(nft.ownerOf(t), leader, "leader owns its token");
        assertTrue(nft.activeInstances(nft.tokenToInstance(t)), "leader's instance active");
    }
}
