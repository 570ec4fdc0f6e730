// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721Upgradeable} from "@openzeppelin/contracts-upgradeable/token/ERC721/ERC721Upgradeable.sol";
import {ERC165Upgradeable} from "@openzeppelin/contracts-upgradeable/utils/introspection/ERC165Upgradeable.sol";
import {DstackAppBase} from "./DstackAppBase.sol";

/// @title DstackMembershipNFT: 1 NFT = 1 authorized node.
/// A dstack app (compose-hash/device/TCB policy, deployable by a dstack KMS
/// factory or as its own UUPS proxy) that is also an ERC721. Each token may
/// register one active instance; the active instances are the cluster. The
/// contract arbitrates the leader: elected when there is none, kept alive by
/// heartbeats, replaced when a majority of active tokens vote no-confidence.
/// Votes are per token and scoped to a leadership term.
contract DstackMembershipNFT is DstackAppBase, ERC721Upgradeable {
    /// Hard bound on the supply: every loop over tokens is bounded by it.
    uint256 public constant MAX_SUPPLY_LIMIT = 256;

    struct Vote {
        address voter;
        uint256 tokenId;
        bool isNoConfidence;
        uint256 timestamp;
    }

    struct TokenVote {
        address target;
        uint256 term;
        bool isNoConfidence;
    }

    mapping(uint256 => bytes32) public tokenToInstance;
    mapping(bytes32 => uint256) public instanceToToken;
    mapping(bytes32 => bool) public activeInstances;
    mapping(uint256 => string) public nodeName;

    mapping(address => Vote) public currentVotes; // the seed's per-wallet view
    mapping(uint256 => TokenVote) public tokenVotes; // the live per-token votes
    mapping(uint256 => mapping(address => uint256)) private _votesAgainst; // term => target => count

    uint256 public totalActiveNodes;
    uint256 public requiredVotes;
    address public currentLeader;
    uint256 public currentLeaderTokenId;
    uint256 public leadershipTerm;
    uint256 public leadershipExpiry;
    uint256 public heartbeatPeriod;
    uint256 public leaseDuration;
    uint256 public maxSupply;
    uint256 public totalMinted;
    uint256 public totalBurned;

    event LeaderElected(address indexed leader, uint256 indexed tokenId, bytes32 instanceId);
    event VoteCast(address indexed voter, address indexed target, bool isNoConfidence);
    event LeaderChallenged(address indexed newLeader, address indexed oldLeader, uint256 voteCount);
    event LeaderHeartbeat(address indexed leader, uint256 indexed tokenId, uint256 expiry);
    event LeaderCleared(address indexed oldLeader, uint256 indexed tokenId, string reason);
    event NodeAccessMinted(address indexed to, uint256 indexed tokenId, string name);
    event InstanceRegistered(uint256 indexed tokenId, bytes32 indexed instanceId);
    event InstanceDeactivated(uint256 indexed tokenId, bytes32 indexed instanceId);
    event ClusterSizeUpdated(uint256 totalActiveNodes, uint256 requiredVotes);
    event LeaseParametersSet(uint256 heartbeatPeriod, uint256 leaseDuration);
    event MaxSupplySet(uint256 maxSupply);

    function _initExtension() internal override {
        __ERC721_init("Dstack Node Access", "DNODE");
        maxSupply = 64;
        requiredVotes = 1; // totalActiveNodes / 2 + 1 with no members
        heartbeatPeriod = 240; // the seed's "every 4 minutes"
        leaseDuration = 300;
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(DstackAppBase, ERC721Upgradeable)
        returns (bool)
    {
        return DstackAppBase.supportsInterface(interfaceId) || ERC721Upgradeable.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------- admin

    function setMaxSupply(uint256 newMax) external onlyOwner {
        require(newMax >= totalMinted && newMax <= MAX_SUPPLY_LIMIT, "Invalid max supply");
        maxSupply = newMax;
        emit MaxSupplySet(newMax);
    }

    function setLeaseParameters(uint256 period, uint256 lease) external onlyOwner {
        require(period > 0 && lease >= period && lease <= 30 days, "Invalid lease parameters");
        heartbeatPeriod = period;
        leaseDuration = lease;
        emit LeaseParametersSet(period, lease);
    }

    /// Mint one node-access token (owner only; capped by maxSupply).
    function mintNodeAccess(address to, string calldata name) external onlyOwner returns (uint256 tokenId) {
        require(totalMinted < maxSupply, "Max supply reached");
        require(bytes(name).length <= 64, "Name too long");
        tokenId = ++totalMinted;
        nodeName[tokenId] = name;
        _mint(to, tokenId);
        emit NodeAccessMinted(to, tokenId, name);
    }

    function totalSupply() external view returns (uint256) {
        return totalMinted - totalBurned;
    }

    /// The token's owner gives the token up (its instance is revoked).
    function burn(uint256 tokenId) external {
        require(ownerOf(tokenId) == msg.sender, "Must own NFT");
        _burn(tokenId);
        totalBurned++;
    }

    // ------------------------------------------------------------ instances

    /// Register (or re-activate) the instance of a token the caller owns.
    /// One instance per token and one token per instance: a token that had
    /// another instance gives it up.
    function registerInstance(bytes32 instanceId, uint256 tokenId) external {
        require(_ownerOf(tokenId) == msg.sender, "Must own NFT");
        require(instanceId != bytes32(0), "Invalid instance id");
        uint256 holder = instanceToToken[instanceId];
        require(holder == 0 || holder == tokenId, "Instance registered to another token");
        bytes32 old = tokenToInstance[tokenId];
        if (old != bytes32(0) && old != instanceId) {
            _revoke(tokenId, "instance replaced");
        }
        tokenToInstance[tokenId] = instanceId;
        instanceToToken[instanceId] = tokenId;
        if (!activeInstances[instanceId]) {
            activeInstances[instanceId] = true;
            _setClusterSize(totalActiveNodes + 1);
        }
        emit InstanceRegistered(tokenId, instanceId);
    }

    /// Mark a token's instance inactive (its owner or the contract owner).
    function deactivateInstance(uint256 tokenId) external {
        require(_ownerOf(tokenId) == msg.sender || owner() == msg.sender, "Not authorized");
        bytes32 id = tokenToInstance[tokenId];
        require(id != bytes32(0) && activeInstances[id], "Instance not active");
        activeInstances[id] = false;
        _setClusterSize(totalActiveNodes - 1);
        _dropVote(tokenId);
        if (currentLeaderTokenId == tokenId) {
            _clearLeader("leader deactivated");
        }
        emit InstanceDeactivated(tokenId, id);
    }

    /// Transfers and burns revoke the token's instance: "NFT sales transfer
    /// node authorization", and the new owner registers its own instance.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && from != to) {
            _revoke(tokenId, to == address(0) ? "token burned" : "token transferred");
        }
    }

    function _revoke(uint256 tokenId, string memory reason) internal {
        bytes32 id = tokenToInstance[tokenId];
        if (id == bytes32(0)) return;
        if (activeInstances[id]) {
            activeInstances[id] = false;
            _setClusterSize(totalActiveNodes - 1);
            emit InstanceDeactivated(tokenId, id);
        }
        delete instanceToToken[id];
        delete tokenToInstance[tokenId];
        _dropVote(tokenId);
        if (currentLeaderTokenId == tokenId) {
            _clearLeader(reason);
        }
    }

    function _setClusterSize(uint256 active) internal {
        totalActiveNodes = active;
        requiredVotes = active / 2 + 1;
        emit ClusterSizeUpdated(active, requiredVotes);
    }

    /// Recount the active instances (kept from the seed; registration and
    /// deactivation already keep the count current).
    function updateClusterSize() external {
        uint256 n;
        for (uint256 t = 1; t <= totalMinted; t++) {
            if (_isActiveToken(t)) n++;
        }
        _setClusterSize(n);
    }

    function _isActiveToken(uint256 tokenId) internal view returns (bool) {
        bytes32 id = tokenToInstance[tokenId];
        return id != bytes32(0) && activeInstances[id] && _ownerOf(tokenId) != address(0);
    }

    /// The caller's one active token (the seed's wallet-based calls).
    function _soleActiveToken(address wallet) internal view returns (uint256 found) {
        for (uint256 t = 1; t <= totalMinted; t++) {
            if (_ownerOf(t) == wallet && _isActiveToken(t)) {
                require(found == 0, "Several active tokens: use the ByToken call");
                found = t;
            }
        }
        require(found != 0, "Must own NFT with an active instance");
    }

    function _requireActiveOwner(uint256 tokenId) internal view {
        require(_ownerOf(tokenId) == msg.sender, "Must own NFT");
        require(_isActiveToken(tokenId), "Instance not active");
    }

    // -------------------------------------------------------------- leader

    /// Become leader when there is none (or the leader's token is no longer
    /// active). The caller must own exactly one active token.
    function electLeader() external {
        _elect(_soleActiveToken(msg.sender));
    }

    function electLeaderByToken(uint256 tokenId) external {
        _requireActiveOwner(tokenId);
        _elect(tokenId);
    }

    function _elect(uint256 tokenId) internal {
        if (currentLeader != address(0) && _isActiveToken(currentLeaderTokenId)) return;
        _setLeader(ownerOf(tokenId), tokenId);
    }

    function _setLeader(address leader, uint256 tokenId) internal {
        currentLeader = leader;
        currentLeaderTokenId = tokenId;
        leadershipTerm++;
        leadershipExpiry = block.timestamp + leaseDuration;
        emit LeaderElected(leader, tokenId, tokenToInstance[tokenId]);
    }

    function _clearLeader(string memory reason) internal {
        emit LeaderCleared(currentLeader, currentLeaderTokenId, reason);
        currentLeader = address(0);
        currentLeaderTokenId = 0;
        leadershipTerm++;
        leadershipExpiry = 0;
    }

    /// The leader extends its lease.
    function leaderHeartbeat() external {
        require(msg.sender == currentLeader && currentLeader != address(0), "Not the leader");
        require(_isActiveToken(currentLeaderTokenId), "Instance not active");
        leadershipExpiry = block.timestamp + leaseDuration;
        emit LeaderHeartbeat(msg.sender, currentLeaderTokenId, leadershipExpiry);
    }

    // --------------------------------------------------------------- votes

    /// Vote (or clear a vote) about target with the caller's one active
    /// token. At requiredVotes no-confidence votes against the current
    /// leader, the contract elects a new leader.
    function castVote(address target, bool isNoConfidence) external {
        _castVote(_soleActiveToken(msg.sender), target, isNoConfidence);
    }

    function castVoteByToken(uint256 tokenId, address target, bool isNoConfidence) external {
        _requireActiveOwner(tokenId);
        _castVote(tokenId, target, isNoConfidence);
    }

    function _castVote(uint256 tokenId, address target, bool isNoConfidence) internal {
        require(target != address(0), "Invalid target");
        _dropVote(tokenId);
        uint256 term = leadershipTerm;
        tokenVotes[tokenId] = TokenVote({target: target, term: term, isNoConfidence: isNoConfidence});
        currentVotes[msg.sender] =
            Vote({voter: msg.sender, tokenId: tokenId, isNoConfidence: isNoConfidence, timestamp: block.timestamp});
        emit VoteCast(msg.sender, target, isNoConfidence);
        if (isNoConfidence) {
            uint256 n = ++_votesAgainst[term][target];
            if (target == currentLeader && n >= requiredVotes) {
                _electNewLeader(n);
            }
        }
    }

    /// Remove a token's live vote from the count of the vote's own target.
    function _dropVote(uint256 tokenId) internal {
        TokenVote memory v = tokenVotes[tokenId];
        if (v.isNoConfidence && v.term == leadershipTerm) {
            _votesAgainst[v.term][v.target]--;
        }
        delete tokenVotes[tokenId];
    }

    /// The active token, not owned by the old leader, with the fewest votes
    /// against its owner this term (ties: lowest token id).
    function _electNewLeader(uint256 voteCount) internal {
        address oldLeader = currentLeader;
        uint256 term = leadershipTerm;
        uint256 best;
        uint256 bestVotes = type(uint256).max;
        for (uint256 t = 1; t <= totalMinted; t++) {
            address o = _ownerOf(t);
            if (o == address(0) || o == oldLeader || !_isActiveToken(t)) continue;
            uint256 v = _votesAgainst[term][o];
            if (v < bestVotes) {
                bestVotes = v;
                best = t;
            }
        }
        if (best == 0) return; // nobody else can lead: keep the leader
        _setLeader(ownerOf(best), best);
        emit LeaderChallenged(currentLeader, oldLeader, voteCount);
    }

    /// Live no-confidence votes against leader in the current term.
    function noConfidenceCount(address leader) external view returns (uint256) {
        return _votesAgainst[leadershipTerm][leader];
    }

    // ---------------------------------------------------------------- views

    /// Every active member in one call: token ids, instance ids, owners.
    function activeMembers()
        external
        view
        returns (uint256[] memory tokenIds, bytes32[] memory instanceIds, address[] memory owners)
    {
        uint256 n = totalActiveNodes;
        tokenIds = new uint256[](n);
        instanceIds = new bytes32[](n);
        owners = new address[](n);
        uint256 k;
        for (uint256 t = 1; t <= totalMinted && k < n; t++) {
            if (!_isActiveToken(t)) continue;
            tokenIds[k] = t;
            instanceIds[k] = tokenToInstance[t];
            owners[k] = _ownerOf(t);
            k++;
        }
    }

    /// The leader state the nodes poll, in one call.
    function clusterState()
        external
        view
        returns (
            address leader,
            uint256 leaderTokenId,
            uint256 term,
            uint256 expiry,
            uint256 votesAgainstLeader,
            uint256 required,
            uint256 active,
            uint256 period
        )
    {
        return (
            currentLeader,
            currentLeaderTokenId,
            leadershipTerm,
            leadershipExpiry,
            _votesAgainst[leadershipTerm][currentLeader],
            requiredVotes,
            totalActiveNodes,
            heartbeatPeriod
        );
    }

    // ----------------------------------------------------------- dstack

    /// dstack's checks (TCB, compose hash, device), then: the instance is
    /// registered to a token, the token exists, the instance is active.
    function isAppAllowed(AppBootInfo calldata bootInfo)
        external
        view
        override
        returns (bool isAllowed, string memory reason)
    {
        (isAllowed, reason) = _isAppAllowedBase(bootInfo);
        if (!isAllowed) return (false, reason);
        bytes32 id = bytes32(bytes20(bootInfo.instanceId));
        uint256 tokenId = instanceToToken[id];
        if (tokenId == 0) return (false, "Instance not registered with NFT");
        if (_ownerOf(tokenId) == address(0)) return (false, "NFT no longer exists");
        if (!activeInstances[id]) return (false, "Instance marked inactive");
        return (true, "");
    }
}
