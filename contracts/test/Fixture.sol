// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./lib/Test.sol";
import {DstackMembershipNFT} from "../src/DstackMembershipNFT.sol";
import {DstackKms} from "../src/DstackKms.sol";
import {IAppAuth} from "../src/IAppAuth.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";

/// KMS proxy + NFT implementation + NFT proxy deployed through the factory,
/// the way `contracts/scripts/deploy-local.sh` does it on anvil.
abstract contract Fixture is Test {
    DstackKms internal kms;
    DstackMembershipNFT internal nft;
    DstackMembershipNFT internal nftImpl;
    address internal owner = address(0xA11CE);
    bytes32 internal constant COMPOSE = keccak256("compose");
    bytes32 internal constant OS_IMAGE = keccak256("os-image");

    function deploy() internal {
        nftImpl = new DstackMembershipNFT();
        DstackKms kmsImpl = new DstackKms();
        kms = DstackKms(
            address(new ERC1967Proxy(address(kmsImpl), abi.encodeCall(DstackKms.initialize, (owner, address(nftImpl)))))
        );
        vm.prank(owner);
        address app = kms.deployAndRegisterApp(owner, false, true, bytes32(0), COMPOSE);
        nft = DstackMembershipNFT(app);
        vm.prank(owner);
        kms.addOsImageHash(OS_IMAGE);
    }

    function wallet(uint256 i) internal pure returns (address) {
        return address(uint160(0x1000 + i));
    }

    function instance(uint256 i) internal pure returns (bytes32) {
        return bytes32(bytes20(address(uint160(0xBEEF00 + i))));
    }

    /// Mint token i to wallet(i) and register instance(i), for i in 1..n.
    function members(uint256 n) internal {
        for (uint256 i = 1; i <= n; i++) {
            vm.prank(owner);
            nft.mintNodeAccess(wallet(i), "node");
            vm.prank(wallet(i));
            nft.registerInstance(instance(i), i);
        }
    }

    function bootInfo(bytes32 inst, bytes32 compose) internal view returns (IAppAuth.AppBootInfo memory b) {
        b.appId = address(nft);
        b.composeHash = compose;
        b.instanceId = address(bytes20(inst));
        b.osImageHash = OS_IMAGE;
        b.tcbStatus = "UpToDate";
    }
}
