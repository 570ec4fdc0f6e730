// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {Test} from "./lib/Test.sol";
import {DstackMembershipNFT} from "../src/DstackMembershipNFT.sol";

/// Random operations on the membership contract: mint, register, transfer,
/// burn, deactivate, vote, elect. It also keeps its own ledger of the live
/// votes to check the contract's counts against.
contract Handler is Test {
    DstackMembershipNFT public nft;
    address public owner;
    uint256 public constant WALLETS = 6;

    constructor(DstackMembershipNFT n, address o) {
        nft = n;
        owner = o;
    }

    function wallet(uint256 i) public pure returns (address) {
        return address(uint160(0x2000 + (i % WALLETS) + 1));
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

    function mint(uint256 w) external {
        if (nft.totalMinted() >= 12) return;
        vm.prank(owner);
        nft.mintNodeAccess(wallet(w), "n");
    }

    function register(uint256 t, uint256 inst) external {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        bytes32 id = bytes32(uint256(inst % 16) + 1);
        vm.prank(o);
        try nft.registerInstance(id, tok) {} catch {}
    }

    function transfer(uint256 t, uint256 w) external {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        vm.prank(o);
        nft.transferFrom(o, wallet(w), tok);
    }

    function burn(uint256 t) external {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        vm.prank(o);
        nft.burn(tok);
    }

    function deactivate(uint256 t) external {
        uint256 tok = _token(t);
        vm.prank(owner);
        try nft.deactivateInstance(tok) {} catch {}
    }

    function vote(uint256 t, uint256 target, bool against) external {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        address tgt = target % 3 == 0 ? nft.currentLeader() : wallet(target);
        if (tgt == address(0)) tgt = wallet(target);
        vm.prank(o);
        try nft.castVoteByToken(tok, tgt, against) {} catch {}
    }

    function elect(uint256 t) external {
        uint256 tok = _token(t);
        address o = _holder(tok);
        if (o == address(0)) return;
        vm.prank(o);
        try nft.electLeaderByToken(tok) {} catch {}
    }

    function recount() external {
        nft.updateClusterSize();
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

    function invariant_leader_is_owner_of_an_active_token() public view {
        address leader = nft.currentLeader();
        if (leader == address(0)) return;
        uint256 t = nft.currentLeaderTokenId();
        assertEq(nft.ownerOf(t), leader, "leader owns its token");
        assertTrue(nft.activeInstances(nft.tokenToInstance(t)), "leader's instance active");
    }
}
