// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {DstackMembershipNFT} from "../src/DstackMembershipNFT.sol";

/// Gas of the calls the nodes make, for 3, 7 and 31 members. Run with
/// `forge test --match-contract GasReport -vv` to see the figures.
contract GasReport is Fixture {
    function _measure(uint256 n) internal {
        deploy();
        vm.prank(owner);
        nft.setMaxSupply(n + 1);
        members(n - 1);
        vm.prank(owner);
        nft.mintNodeAccess(wallet(n), "last");
        uint256 g = gasleft();
        vm.prank(wallet(n));
        nft.registerInstance(instance(n), n);
        log(string.concat("members=", _u(n), " registerInstance"), g - gasleft());
        g = gasleft();
        vm.prank(wallet(1));
        nft.electLeader();
        log(string.concat("members=", _u(n), " electLeader"), g - gasleft());
        g = gasleft();
        vm.prank(wallet(1));
        nft.leaderHeartbeat();
        log(string.concat("members=", _u(n), " leaderHeartbeat"), g - gasleft());
        g = gasleft();
        vm.prank(wallet(2));
        nft.castVote(wallet(1), true);
        log(string.concat("members=", _u(n), " castVote (wallet form)"), g - gasleft());
        uint256 need = nft.requiredVotes();
        for (uint256 i = 3; i < need + 1; i++) {
            vm.prank(wallet(i));
            nft.castVoteByToken(i, wallet(1), true);
        }
        g = gasleft();
        vm.prank(wallet(need + 1));
        nft.castVoteByToken(need + 1, wallet(1), true);
        log(string.concat("members=", _u(n), " leader change (deciding vote)"), g - gasleft());
        assertTrue(nft.currentLeader() != wallet(1), "leader changed");
        g = gasleft();
        nft.activeMembers();
        log(string.concat("members=", _u(n), " activeMembers (eth_call)"), g - gasleft());
    }

    function key(uint256 i) internal pure returns (address) {
        return address(uint160(0x5000 + i));
    }

    /// The v2 paths in a cluster of n tokens of ONE owner (as `nftraft up
    /// --wallet-key` makes), each with its own node key and endpoints.
    function _measureV2(uint256 n) internal {
        deploy();
        vm.prank(owner);
        nft.setMaxSupply(n + 1);
        address o = wallet(1);
        for (uint256 i = 1; i <= n; i++) {
            vm.prank(owner);
            nft.mintNodeAccess(o, "node");
            if (i == n) break;
            vm.prank(o);
            nft.registerNode(i, instance(i), key(i), "127.0.0.1:17001", "http://127.0.0.1:18001");
        }
        string memory m = string.concat("members=", _u(n), " v2 ");
        uint256 g = gasleft();
        vm.prank(o);
        nft.registerNode(n, instance(n), key(n), "127.0.0.1:17001", "http://127.0.0.1:18001");
        log(string.concat(m, "registerNode (the N-th)"), g - gasleft());
        g = gasleft();
        vm.prank(key(n));
        nft.setEndpoints(n, "127.0.0.1:17002", "http://127.0.0.1:18002");
        log(string.concat(m, "setEndpoints (node key)"), g - gasleft());
        g = gasleft();
        vm.prank(key(1));
        nft.electLeaderByToken(1);
        log(string.concat(m, "electLeaderByToken (node key)"), g - gasleft());
        g = gasleft();
        vm.prank(key(1));
        nft.leaderHeartbeat();
        log(string.concat(m, "leaderHeartbeat (node key)"), g - gasleft());
        g = gasleft();
        vm.prank(key(2));
        nft.castVoteByToken(2, 1, true);
        log(string.concat(m, "castVoteByToken(uint256,uint256,bool) (not deciding)"), g - gasleft());
        uint256 need = nft.requiredVotes();
        for (uint256 i = 3; i < need + 1; i++) {
            vm.prank(key(i));
            nft.castVoteByToken(i, 1, true);
        }
        g = gasleft();
        vm.prank(key(need + 1));
        nft.castVoteByToken(need + 1, 1, true);
        log(string.concat(m, "leader change, one owner (deciding vote)"), g - gasleft());
        assertTrue(nft.currentLeaderTokenId() != 1, "leader changed");
        g = gasleft();
        nft.activeNodes();
        log(string.concat(m, "activeNodes (eth_call)"), g - gasleft());
        g = gasleft();
        vm.prank(owner);
        nft.evict(n);
        log(string.concat(m, "evict (an active member)"), g - gasleft());
        g = gasleft();
        vm.prank(owner);
        nft.readmit(n);
        log(string.concat(m, "readmit"), g - gasleft());
        g = gasleft();
        vm.prank(owner);
        nft.releaseInstance(instance(n));
        log(string.concat(m, "releaseInstance"), g - gasleft());
    }

    /// activeNodes() at the cap: 256 active tokens, two 256-byte endpoints
    /// each (the worst answer a node can be asked to read).
    function test_gas_v2_activeNodes_at_cap() public {
        deploy();
        vm.prank(owner);
        nft.setMaxSupply(256);
        bytes memory ep = new bytes(256);
        for (uint256 i = 0; i < 256; i++) {
            ep[i] = "e";
        }
        for (uint256 i = 1; i <= 256; i++) {
            vm.prank(owner);
            nft.mintNodeAccess(wallet(1), "n");
            vm.prank(wallet(1));
            nft.registerNode(i, instance(i), key(i), string(ep), string(ep));
        }
        uint256 g = gasleft();
        DstackMembershipNFT.NodeInfo[] memory a = nft.activeNodes();
        log("members=256 (cap) v2 activeNodes with 256-byte endpoints (eth_call)", g - gasleft());
        assertEq(a.length, 256, "all");
    }

    function test_gas_v2_3() public {
        _measureV2(3);
    }

    function test_gas_v2_7() public {
        _measureV2(7);
    }

    function test_gas_v2_31() public {
        _measureV2(31);
    }

    function test_gas_3() public {
        _measure(3);
    }

    function test_gas_7() public {
        _measure(7);
    }

    function test_gas_31() public {
        _measure(31);
    }
}
