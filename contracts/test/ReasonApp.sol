// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAppAuth} from "../src/IAppAuth.sol";

/// @title A test-only dstack app whose isAppAllowed answers a decision and
/// raw reason bytes set beforehand (any length, NUL bytes, invalid UTF-8),
/// so that `nftraft kms-auth` can be checked on reasons no real app gives.
contract ReasonApp is IAppAuth {
    bool public allowed;
    bytes public reason;
    uint256 public repeat;

    /// The reason answered is reason_ repeated repeat_ times (long reasons
    /// without paying for their storage).
    function set(bool allowed_, bytes calldata reason_, uint256 repeat_) external {
        allowed = allowed_;
        reason = reason_;
        repeat = repeat_;
    }

    function isAppAllowed(AppBootInfo calldata) external view returns (bool, string memory) {
        bytes memory r = reason;
        bytes memory out = new bytes(r.length * repeat);
        for (uint256 i = 0; i < out.length; i++) {
            out[i] = r[i % r.length];
        }
        return (allowed, string(out));
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x1e079198 || id == 0x01ffc9a7;
    }
}
