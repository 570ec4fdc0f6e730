// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {Ownable2StepUpgradeable} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts-upgradeable/proxy/utils/UUPSUpgradeable.sol";
import {ERC165Upgradeable} from "@openzeppelin/contracts-upgradeable/utils/introspection/ERC165Upgradeable.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IAppAuth} from "./IAppAuth.sol";
import {IAppAuthBasicManagement} from "./IAppAuthBasicManagement.sol";

/// @title The dstack app base: compose-hash and device allowlists, the TCB
/// rule, UUPS upgrades that can be disabled for good, two-step ownership,
/// and both dstack initializer forms. Behaves as dstack's DstackApp (same
/// events, reason strings, selectors and interface ids); contracts built on
/// it extend isAppAllowed.
abstract contract DstackAppBase is
    Initializable,
    Ownable2StepUpgradeable,
    UUPSUpgradeable,
    ERC165Upgradeable,
    IAppAuth,
    IAppAuthBasicManagement
{
    bytes4 internal constant APP_AUTH_INTERFACE_ID = 0x1e079198;
    bytes4 internal constant BASIC_MANAGEMENT_INTERFACE_ID = 0x8fd37527;

    mapping(bytes32 => bool) public allowedComposeHashes;
    bool private _upgradesDisabled;
    bool public allowAnyDevice;
    mapping(bytes32 => bool) public allowedDeviceIds;
    bool public requireTcbUpToDate;
    uint256[49] private __gap;

    event UpgradesDisabled();
    event AllowAnyDeviceSet(bool allowAny);
    event RequireTcbUpToDateSet(bool requireUpToDate);
    event PolicyChanged(address indexed actor, bytes32 indexed policy, bytes32 indexed value, bool enabled);

    /// @custom:oz-upgrades-unsafe-allow constructor
    constructor() {
        _disableInitializers();
    }

    /// Legacy 5-argument initializer (requireTcbUpToDate = false).
    function initialize(
        address initialOwner,
        bool _disableUpgrades,
        bool _allowAnyDevice,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) public virtual initializer {
        _initApp(initialOwner, _disableUpgrades, _allowAnyDevice, initialDeviceId, initialComposeHash);
    }

    /// 6-argument initializer, the one dstack's KMS factory calls.
    function initialize(
        address initialOwner,
        bool _disableUpgrades,
        bool _requireTcbUpToDate,
        bool _allowAnyDevice,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) public virtual initializer {
        requireTcbUpToDate = _requireTcbUpToDate;
        _initApp(initialOwner, _disableUpgrades, _allowAnyDevice, initialDeviceId, initialComposeHash);
    }

    function _initApp(
        address initialOwner,
        bool _disableUpgrades,
        bool _allowAnyDevice,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) internal onlyInitializing {
        require(initialOwner != address(0), "invalid owner address");
        _upgradesDisabled = _disableUpgrades;
        allowAnyDevice = _allowAnyDevice;
        if (initialDeviceId != bytes32(0)) {
            allowedDeviceIds[initialDeviceId] = true;
            emit DeviceAdded(initialDeviceId);
            emit PolicyChanged(msg.sender, keccak256("device"), initialDeviceId, true);
        }
        if (initialComposeHash != bytes32(0)) {
            allowedComposeHashes[initialComposeHash] = true;
            emit ComposeHashAdded(initialComposeHash);
            emit PolicyChanged(msg.sender, keccak256("compose-hash"), initialComposeHash, true);
        }
        __Ownable_init(initialOwner);
        __UUPSUpgradeable_init();
        __ERC165_init();
        _initExtension();
    }

    /// Hook for derived contracts' own initialization (runs inside the
    /// initializer).
    function _initExtension() internal virtual;

    function version() public pure virtual returns (uint256) {
        return 2;
    }

    function supportsInterface(bytes4 interfaceId) public view virtual override(ERC165Upgradeable, IERC165) returns (bool) {
        return interfaceId == APP_AUTH_INTERFACE_ID || interfaceId == BASIC_MANAGEMENT_INTERFACE_ID
            || super.supportsInterface(interfaceId);
    }

    function addComposeHash(bytes32 composeHash) external onlyOwner {
        allowedComposeHashes[composeHash] = true;
        emit ComposeHashAdded(composeHash);
        emit PolicyChanged(msg.sender, keccak256("compose-hash"), composeHash, true);
    }

    function removeComposeHash(bytes32 composeHash) external onlyOwner {
        allowedComposeHashes[composeHash] = false;
        emit ComposeHashRemoved(composeHash);
        emit PolicyChanged(msg.sender, keccak256("compose-hash"), composeHash, false);
    }

    function addDevice(bytes32 deviceId) external onlyOwner {
        allowedDeviceIds[deviceId] = true;
        emit DeviceAdded(deviceId);
        emit PolicyChanged(msg.sender, keccak256("device"), deviceId, true);
    }

    function removeDevice(bytes32 deviceId) external onlyOwner {
        allowedDeviceIds[deviceId] = false;
        emit DeviceRemoved(deviceId);
        emit PolicyChanged(msg.sender, keccak256("device"), deviceId, false);
    }

    function setAllowAnyDevice(bool allowAny) external onlyOwner {
        allowAnyDevice = allowAny;
        emit AllowAnyDeviceSet(allowAny);
        emit PolicyChanged(msg.sender, keccak256("allow-any-device"), bytes32(uint256(allowAny ? 1 : 0)), allowAny);
    }

    function setRequireTcbUpToDate(bool requireUpToDate) external onlyOwner {
        requireTcbUpToDate = requireUpToDate;
        emit RequireTcbUpToDateSet(requireUpToDate);
        emit PolicyChanged(
            msg.sender, keccak256("require-tcb-up-to-date"), bytes32(uint256(requireUpToDate ? 1 : 0)), requireUpToDate
        );
    }

    function disableUpgrades() external onlyOwner {
        _upgradesDisabled = true;
        emit UpgradesDisabled();
        emit PolicyChanged(msg.sender, keccak256("upgrades-disabled"), bytes32(uint256(1)), true);
    }

    function _authorizeUpgrade(address newImplementation) internal virtual override onlyOwner {
        require(!_upgradesDisabled, "Upgrades are permanently disabled");
        emit PolicyChanged(msg.sender, keccak256("implementation-upgrade"), bytes32(uint256(uint160(newImplementation))), true);
    }

    /// dstack's checks, in dstack's order, with dstack's reason strings.
    function _isAppAllowedBase(AppBootInfo calldata bootInfo) internal view returns (bool, string memory) {
        if (requireTcbUpToDate && keccak256(bytes(bootInfo.tcbStatus)) != keccak256(bytes("UpToDate"))) {
            return (false, "TCB status is not up to date");
        }
        if (!allowedComposeHashes[bootInfo.composeHash]) {
            return (false, "Compose hash not allowed");
        }
        if (!allowAnyDevice && !allowedDeviceIds[bootInfo.deviceId]) {
            return (false, "Device not allowed");
        }
        return (true, "");
    }
}
