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
/// v2: a registration names the node's own key (which may act for the token:
/// elections, heartbeats, votes, endpoints) and its raft/http endpoints; a
/// per-token epoch grows with each new instance or re-activation (raft id =
/// tokenId << 32 | epoch); the contract owner can evict a token and release
/// an instance id. The v1 functions keep their ABI.
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

    // ---- v2 state (appended: the proxy's existing layout is unchanged)

    /// Cap on each endpoint string (bytes).
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    struct Node {
        address nodeKey; // may act for the token; zero when nothing is registered
        uint32 epoch; // grows on each new instance or re-activation
        bool evicted; // set by the contract owner; blocks registration
        string raftEndpoint;
        string httpEndpoint;
    }

    /// One active member as activeNodes() returns it.
    struct NodeInfo {
        uint256 tokenId;
        bytes32 instanceId;
        address owner;
        address nodeKey;
        uint32 epoch;
        string raftEndpoint;
        string httpEndpoint;
    }

    mapping(uint256 => Node) private _nodes;
    /// The leader token a token's live no-confidence vote counts against (0:
    /// a vote about an address that was not the leader's).
    mapping(uint256 => uint256) public tokenVoteLeader;
    mapping(uint256 => mapping(uint256 => uint256)) private _votesAgainstToken; // term => leader token => count

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
    event NodeRegistered(uint256 indexed tokenId, bytes32 indexed instanceId, address nodeKey, uint32 epoch);
    event EndpointsSet(uint256 indexed tokenId, string raftEndpoint, string httpEndpoint);
    event TokenEvicted(uint256 indexed tokenId);
    event TokenReadmitted(uint256 indexed tokenId);
    event InstanceReleased(bytes32 indexed instanceId, uint256 indexed tokenId);
    event TokenVoteCast(uint256 indexed voterToken, uint256 indexed leaderToken, uint256 term, bool isNoConfidence);

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

    /// Register (or re-activate) the instance of a token the caller owns
    /// (the seed's form: the node key is the caller, no endpoints).
    /// One instance per token and one token per instance: a token that had
    /// another instance gives it up.
    function registerInstance(bytes32 instanceId, uint256 tokenId) external {
        _checkRegistration(tokenId, instanceId);
        _register(tokenId, instanceId, msg.sender, "", "");
    }

    /// Register a token's node: its instance, its own key (which may then
    /// elect, heartbeat, vote and set endpoints for the token; the owner's
    /// key can stay cold) and its endpoints. A new instance, or the
    /// re-activation of an inactive one, starts a new epoch: the node's raft
    /// id is `tokenId << 32 | epoch`. Re-registering the active instance
    /// keeps the epoch (and updates the key and endpoints).
    function registerNode(
        uint256 tokenId,
        bytes32 instanceId,
        address nodeKey,
        string calldata raftEndpoint,
        string calldata httpEndpoint
    ) external {
        _checkRegistration(tokenId, instanceId);
        require(nodeKey != address(0), "Invalid node key");
        _checkEndpoints(raftEndpoint, httpEndpoint);
        _register(tokenId, instanceId, nodeKey, raftEndpoint, httpEndpoint);
    }

    /// New endpoints for a registered token (its owner or its node key).
    function setEndpoints(uint256 tokenId, string calldata raftEndpoint, string calldata httpEndpoint) external {
        require(_isOwnerOrKey(tokenId), "Not the token's owner or node key");
        require(!_nodes[tokenId].evicted, "Token evicted");
        require(tokenToInstance[tokenId] != bytes32(0), "No instance registered");
        _checkEndpoints(raftEndpoint, httpEndpoint);
        _nodes[tokenId].raftEndpoint = raftEndpoint;
        _nodes[tokenId].httpEndpoint = httpEndpoint;
        emit EndpointsSet(tokenId, raftEndpoint, httpEndpoint);
    }

    function _checkRegistration(uint256 tokenId, bytes32 instanceId) internal view {
        require(_ownerOf(tokenId) == msg.sender, "Must own NFT");
        require(!_nodes[tokenId].evicted, "Token evicted");
        require(instanceId != bytes32(0), "Invalid instance id");
        uint256 holder = instanceToToken[instanceId];
        require(holder == 0 || holder == tokenId, "Instance registered to another token");
    }

    function _checkEndpoints(string calldata raftEndpoint, string calldata httpEndpoint) internal pure {
        uint256 r = bytes(raftEndpoint).length;
        uint256 h = bytes(httpEndpoint).length;
        require(r > 0 && r <= MAX_ENDPOINT_LENGTH, "Invalid raft endpoint");
        require(h > 0 && h <= MAX_ENDPOINT_LENGTH, "Invalid http endpoint");
    }

    function _register(
        uint256 tokenId,
        bytes32 instanceId,
        address nodeKey,
        string memory raftEndpoint,
        string memory httpEndpoint
    ) internal {
        bytes32 old = tokenToInstance[tokenId];
        if (old != bytes32(0) && old != instanceId) {
            _revoke(tokenId, "instance replaced");
        }
        tokenToInstance[tokenId] = instanceId;
        instanceToToken[instanceId] = tokenId;
        Node storage n = _nodes[tokenId];
        n.nodeKey = nodeKey;
        n.raftEndpoint = raftEndpoint;
        n.httpEndpoint = httpEndpoint;
        if (!activeInstances[instanceId]) {
            require(n.epoch < type(uint32).max, "Epoch exhausted");
            n.epoch++;
            activeInstances[instanceId] = true;
            _setClusterSize(totalActiveNodes + 1);
        }
        emit InstanceRegistered(tokenId, instanceId);
        emit NodeRegistered(tokenId, instanceId, nodeKey, n.epoch);
    }

    /// Mark a token's instance inactive (its owner or the contract owner).
    function deactivateInstance(uint256 tokenId) external {
        require(_ownerOf(tokenId) == msg.sender || owner() == msg.sender, "Not authorized");
        bytes32 id = tokenToInstance[tokenId];
        require(id != bytes32(0) && activeInstances[id], "Instance not active");
        _deactivate(tokenId, id, "leader deactivated");
    }

    function _deactivate(uint256 tokenId, bytes32 id, string memory reason) internal {
        activeInstances[id] = false;
        _setClusterSize(totalActiveNodes - 1);
        _dropVote(tokenId);
        if (currentLeaderTokenId == tokenId) {
            _clearLeader(reason);
        }
        emit InstanceDeactivated(tokenId, id);
    }

    /// Contract owner: deactivate a token's instance and refuse any
    /// registration of the token (by any holder, after any transfer) until
    /// readmit(). The instance stays mapped to the token (isAppAllowed:
    /// "Instance marked inactive"); releaseInstance() frees it.
    function evict(uint256 tokenId) external onlyOwner {
        require(_ownerOf(tokenId) != address(0), "Token does not exist");
        Node storage n = _nodes[tokenId];
        require(!n.evicted, "Already evicted");
        n.evicted = true;
        bytes32 id = tokenToInstance[tokenId];
        if (id != bytes32(0) && activeInstances[id]) {
            _deactivate(tokenId, id, "leader evicted");
        }
        emit TokenEvicted(tokenId);
    }

    /// Contract owner: lift an eviction. The holder registers again (a new
    /// epoch).
    function readmit(uint256 tokenId) external onlyOwner {
        Node storage n = _nodes[tokenId];
        require(n.evicted, "Not evicted");
        n.evicted = false;
        emit TokenReadmitted(tokenId);
    }

    /// Contract owner: free an instance id (one squatted by another token):
    /// the token holding it loses it, as on a transfer.
    function releaseInstance(bytes32 instanceId) external onlyOwner {
        uint256 tokenId = instanceToToken[instanceId];
        require(tokenId != 0, "Instance not registered");
        _revoke(tokenId, "instance released");
        emit InstanceReleased(instanceId, tokenId);
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
        Node storage n = _nodes[tokenId];
        delete n.nodeKey;
        delete n.raftEndpoint;
        delete n.httpEndpoint;
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

    function _isOwnerOrKey(uint256 tokenId) internal view returns (bool) {
        address o = _ownerOf(tokenId);
        address k = _nodes[tokenId].nodeKey;
        return (o != address(0) && o == msg.sender) || (k != address(0) && k == msg.sender);
    }

    /// The caller is the token's owner or its node key, and the token is
    /// active.
    function _requireActor(uint256 tokenId) internal view {
        require(_isOwnerOrKey(tokenId), "Not the token's owner or node key");
        require(_isActiveToken(tokenId), "Instance not active");
    }

    // -------------------------------------------------------------- leader

    /// Become leader when there is none, the leader's token is no longer
    /// active, or its lease has expired. The caller must own exactly one
    /// active token.
    function electLeader() external {
        _elect(_soleActiveToken(msg.sender));
    }

    /// The same for a token (its owner or its node key).
    function electLeaderByToken(uint256 tokenId) external {
        _requireActor(tokenId);
        _elect(tokenId);
    }

    function _leaseExpired() internal view returns (bool) {
        return block.timestamp > leadershipExpiry;
    }

    function _elect(uint256 tokenId) internal {
        if (currentLeader != address(0) && _isActiveToken(currentLeaderTokenId)) {
            if (!_leaseExpired()) return;
            _clearLeader("lease expired");
        }
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

    /// The leader (its owner or its token's node key) extends its lease.
    /// After the lease has expired a heartbeat does not revive it: the call
    /// succeeds but clears the leader (LeaderCleared "lease expired", a new
    /// term, no leader) and the next electLeader* picks one.
    function leaderHeartbeat() external {
        uint256 t = currentLeaderTokenId;
        require(
            currentLeader != address(0)
                && (msg.sender == currentLeader || (msg.sender == _nodes[t].nodeKey && _nodes[t].nodeKey != address(0))),
            "Not the leader"
        );
        require(_isActiveToken(t), "Instance not active");
        if (_leaseExpired()) {
            _clearLeader("lease expired");
            return;
        }
        leadershipExpiry = block.timestamp + leaseDuration;
        emit LeaderHeartbeat(currentLeader, t, leadershipExpiry);
    }

    // --------------------------------------------------------------- votes

    /// Vote (or clear a vote) about target with the caller's one active
    /// token. At requiredVotes no-confidence votes against the current
    /// leader, the contract elects a new leader.
    function castVote(address target, bool isNoConfidence) external {
        _castVote(_soleActiveToken(msg.sender), target, isNoConfidence);
    }

    /// The same for a token (its owner or its node key). A vote about the
    /// current leader's address counts against the current leader's token.
    function castVoteByToken(uint256 tokenId, address target, bool isNoConfidence) external {
        _requireActor(tokenId);
        _castVote(tokenId, target, isNoConfidence);
    }

    /// v2: voterToken (its owner or its node key) votes about the leader by
    /// token. A no-confidence vote must name the current leader's token
    /// ("Not the current leader"); a clear (false) may name any token.
    function castVoteByToken(uint256 voterToken, uint256 leaderToken, bool isNoConfidence) external {
        _requireActor(voterToken);
        if (isNoConfidence) {
            require(leaderToken != 0 && leaderToken == currentLeaderTokenId, "Not the current leader");
            _record(voterToken, currentLeader, leaderToken, true);
        } else {
            address o = leaderToken == currentLeaderTokenId ? currentLeader : _ownerOf(leaderToken);
            _record(voterToken, o, 0, false);
        }
    }

    function _castVote(uint256 tokenId, address target, bool isNoConfidence) internal {
        require(target != address(0), "Invalid target");
        uint256 leaderToken = target == currentLeader ? currentLeaderTokenId : 0;
        _record(tokenId, target, isNoConfidence ? leaderToken : 0, isNoConfidence);
    }

    /// Replace tokenId's live vote. A no-confidence vote counts against
    /// target (the address count) and, when leaderToken is not 0 (it is
    /// then the current leader's token), against leaderToken: at
    /// requiredVotes the contract elects a new leader.
    function _record(uint256 tokenId, address target, uint256 leaderToken, bool isNoConfidence) internal {
        _dropVote(tokenId);
        uint256 term = leadershipTerm;
        tokenVotes[tokenId] = TokenVote({target: target, term: term, isNoConfidence: isNoConfidence});
        tokenVoteLeader[tokenId] = leaderToken;
        currentVotes[msg.sender] =
            Vote({voter: msg.sender, tokenId: tokenId, isNoConfidence: isNoConfidence, timestamp: block.timestamp});
        emit VoteCast(msg.sender, target, isNoConfidence);
        emit TokenVoteCast(tokenId, leaderToken, term, isNoConfidence);
        if (isNoConfidence) {
            ++_votesAgainst[term][target];
            if (leaderToken != 0) {
                uint256 n = ++_votesAgainstToken[term][leaderToken];
                if (n >= requiredVotes) {
                    _electNewLeader(n);
                }
            }
        }
    }

    /// Remove a token's live vote from the counts of the vote's own target.
    function _dropVote(uint256 tokenId) internal {
        TokenVote memory v = tokenVotes[tokenId];
        if (v.isNoConfidence && v.term == leadershipTerm) {
            _votesAgainst[v.term][v.target]--;
            uint256 lt = tokenVoteLeader[tokenId];
            if (lt != 0) _votesAgainstToken[v.term][lt]--;
        }
        delete tokenVotes[tokenId];
        delete tokenVoteLeader[tokenId];
    }

    /// The active token other than the old leader's token whose owner has
    /// the fewest votes against it this term (ties: lowest token id). Tokens
    /// of the old leader's owner are eligible, so a cluster whose tokens
    /// share one owner can replace its leader.
    function _electNewLeader(uint256 voteCount) internal {
        address oldLeader = currentLeader;
        uint256 oldToken = currentLeaderTokenId;
        uint256 term = leadershipTerm;
        uint256 best;
        uint256 bestVotes = type(uint256).max;
        for (uint256 t = 1; t <= totalMinted; t++) {
            if (t == oldToken || !_isActiveToken(t)) continue;
            uint256 v = _votesAgainst[term][_ownerOf(t)];
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

    /// Live no-confidence votes against a leader token in the current term.
    function noConfidenceCountByToken(uint256 leaderToken) external view returns (uint256) {
        return _votesAgainstToken[leadershipTerm][leaderToken];
    }

    // ---------------------------------------------------------------- views

    /// A token's node: instance, node key, epoch, endpoints, and whether it
    /// is an active member. Raft id: raftIdOf(tokenId).
    function nodeOf(uint256 tokenId)
        external
        view
        returns (
            bytes32 instanceId,
            address nodeKey,
            uint32 epoch,
            string memory raftEndpoint,
            string memory httpEndpoint,
            bool active
        )
    {
        Node storage n = _nodes[tokenId];
        return (tokenToInstance[tokenId], n.nodeKey, n.epoch, n.raftEndpoint, n.httpEndpoint, _isActiveToken(tokenId));
    }

    /// The raft id of a token's current registration: tokenId << 32 | epoch.
    function raftIdOf(uint256 tokenId) external view returns (uint256) {
        return tokenId << 32 | _nodes[tokenId].epoch;
    }

    function isEvicted(uint256 tokenId) external view returns (bool) {
        return _nodes[tokenId].evicted;
    }

    /// v2: every active member with its node key, epoch and endpoints, in
    /// one call (token order).
    function activeNodes() external view returns (NodeInfo[] memory nodes) {
        uint256 n = totalActiveNodes;
        nodes = new NodeInfo[](n);
        uint256 k;
        for (uint256 t = 1; t <= totalMinted && k < n; t++) {
            if (!_isActiveToken(t)) continue;
            Node storage x = _nodes[t];
            nodes[k] = NodeInfo({
                tokenId: t,
                instanceId: tokenToInstance[t],
                owner: _ownerOf(t),
                nodeKey: x.nodeKey,
                epoch: x.epoch,
                raftEndpoint: x.raftEndpoint,
                httpEndpoint: x.httpEndpoint
            });
            k++;
        }
    }


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
