// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";

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
