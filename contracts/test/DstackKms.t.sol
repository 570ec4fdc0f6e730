// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {DstackKms} from "../src/DstackKms.sol";
import {IAppAuth} from "../src/IAppAuth.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";

contract DstackKmsTest is Fixture {
    event AppDeployedViaFactory(address indexed appId, address indexed deployer);

    function setUp() public {
        deploy();
        members(1);
    }

    function test_app_checks_in_dstack_order() public {
        IAppAuth.AppBootInfo memory b = bootInfo(instance(1), COMPOSE);
        (bool ok, string memory why) = kms.isAppAllowed(b);
        assertTrue(ok, why);
        b.appId = address(0xdead);
        (ok, why) = kms.isAppAllowed(b);
        assertEq(why, "App not registered", "unregistered");
        kms.registerApp(address(0xdead)); // permissionless
        (ok, why) = kms.isAppAllowed(b);
        assertEq(why, "App not deployed or invalid address", "no code");
        b = bootInfo(instance(1), COMPOSE);
        b.osImageHash = keccak256("other-os");
        (ok, why) = kms.isAppAllowed(b);
        assertEq(why, "OS image is not allowed", "os image");
        vm.expectRevert(bytes("Invalid app ID"));
        kms.registerApp(address(0));
    }

    function test_kms_checks() public {
        IAppAuth.AppBootInfo memory b = bootInfo(instance(1), COMPOSE);
        b.mrAggregated = keccak256("mr");
        b.deviceId = keccak256("dev");
        b.tcbStatus = "Outdated";
        (bool ok, string memory why) = kms.isKmsAllowed(b);
        assertEq(why, "TCB status is not up to date", "tcb");
        b.tcbStatus = "UpToDate";
        b.osImageHash = keccak256("x");
        (ok, why) = kms.isKmsAllowed(b);
        assertEq(why, "OS image is not allowed", "os");
        b.osImageHash = OS_IMAGE;
        (ok, why) = kms.isKmsAllowed(b);
        assertEq(why, "Aggregated MR not allowed", "mr");
        vm.prank(owner);
        kms.addKmsAggregatedMr(b.mrAggregated);
        (ok, why) = kms.isKmsAllowed(b);
        assertEq(why, "KMS is not allowed to boot on this device", "device");
        vm.prank(owner);
        kms.addKmsDevice(b.deviceId);
        (ok, why) = kms.isKmsAllowed(b);
        assertTrue(ok, why);
    }

    function test_factory_rules() public {
        DstackKms bare = DstackKms(
            address(new ERC1967Proxy(address(new DstackKms()), abi.encodeCall(DstackKms.initialize, (owner, address(0)))))
        );
        vm.expectRevert(bytes("DstackApp implementation not set"));
        bare.deployAndRegisterApp(owner, false, true, bytes32(0), COMPOSE);
        vm.expectRevert(bytes("Invalid owner address"));
        kms.deployAndRegisterApp(address(0), false, true, bytes32(0), COMPOSE);
        vm.prank(owner);
        vm.expectRevert(bytes("Invalid implementation address"));
        kms.setAppImplementation(address(0));
        vm.prank(wallet(3));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(3)));
        kms.addOsImageHash(bytes32(0));
        // The 6-argument form with requireTcbUpToDate.
        vm.prank(wallet(3));
        address app = kms.deployAndRegisterApp(wallet(3), true, true, false, bytes32(0), COMPOSE);
        assertTrue(kms.registeredApps(app), "registered");
        assertTrue(IAppAuthLike(app).requireTcbUpToDate(), "tcb flag");
        assertTrue(kms.supportsInterface(0x1e079198), "iface");
        vm.prank(owner);
        kms.setGatewayAppId("gw");
        assertEq(kms.gatewayAppId(), "gw", "gateway");
    }
}

contract DstackKmsAdminTest is Fixture {
    function setUp() public {
        deploy();
    }

    function test_kms_info_and_allowlists() public {
        vm.startPrank(owner);
        kms.setKmsInfo(DstackKms.KmsInfo({k256Pubkey: hex"01", caPubkey: hex"02", quote: hex"03", eventlog: hex"04"}));
        kms.setKmsQuote(hex"33");
        kms.setKmsEventlog(hex"44");
        (bytes memory k, bytes memory ca, bytes memory q, bytes memory ev) = kms.kmsInfo();
        assertEq(keccak256(k), keccak256(hex"01"), "k256");
        assertEq(keccak256(ca), keccak256(hex"02"), "ca");
        assertEq(keccak256(q), keccak256(hex"33"), "quote");
        assertEq(keccak256(ev), keccak256(hex"44"), "eventlog");
        kms.addKmsAggregatedMr(bytes32(uint256(1)));
        kms.removeKmsAggregatedMr(bytes32(uint256(1)));
        assertTrue(!kms.kmsAllowedAggregatedMrs(bytes32(uint256(1))), "mr removed");
        kms.addKmsDevice(bytes32(uint256(2)));
        kms.removeKmsDevice(bytes32(uint256(2)));
        assertTrue(!kms.kmsAllowedDeviceIds(bytes32(uint256(2))), "device removed");
        kms.removeOsImageHash(OS_IMAGE);
        assertTrue(!kms.allowedOsImages(OS_IMAGE), "os image removed");
        kms.setAppImplementation(address(0xbeef));
        assertEq(kms.appImplementation(), address(0xbeef), "implementation");
        vm.stopPrank();
    }

    function test_kms_setters_are_owner_only() public {
        bytes memory err = abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(1));
        vm.startPrank(wallet(1));
        vm.expectRevert(err);
        kms.setKmsQuote(hex"01");
        vm.expectRevert(err);
        kms.setKmsEventlog(hex"01");
        vm.expectRevert(err);
        kms.setGatewayAppId("x");
        vm.expectRevert(err);
        kms.setAppImplementation(address(1));
        vm.expectRevert(err);
        kms.addKmsAggregatedMr(bytes32(0));
        vm.expectRevert(err);
        kms.removeKmsDevice(bytes32(0));
        vm.expectRevert(err);
        kms.removeOsImageHash(bytes32(0));
        vm.stopPrank();
    }

    function test_kms_upgrade_and_two_step_ownership() public {
        DstackKms next = new DstackKms();
        vm.prank(wallet(1));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(1)));
        kms.upgradeToAndCall(address(next), "");
        vm.prank(owner);
        kms.upgradeToAndCall(address(next), "");
        assertTrue(kms.registeredApps(address(nft)), "state kept across the upgrade");
        vm.prank(owner);
        kms.transferOwnership(wallet(2));
        vm.prank(wallet(3));
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, wallet(3)));
        kms.acceptOwnership();
        vm.prank(wallet(2));
        kms.acceptOwnership();
        assertEq(kms.owner(), wallet(2), "new owner");
    }
}

interface IAppAuthLike {
    function requireTcbUpToDate() external view returns (bool);
}
