#!/usr/bin/env bash
# The seed's "Testing Flow" with cast against a real anvil: deploy the KMS
# factory + NFT implementation, deployAndRegisterApp with a compose hash,
# mint three NFTs to three accounts, register three instances, vote the
# leader out with two no-confidence votes, check the new leader, clear the
# votes; isAppAllowed through the KMS for a registered instance and the
# exact reasons for an unregistered one, a wrong compose hash and an
# inactive instance. Also the own-proxy + registerApp path.
set -uo pipefail
root=${NFTRAFT_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
bin=$root/contracts/node_modules/.bin
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rpc=http://127.0.0.1:$port
# .bin/anvil is a node wrapper: run it in its own process group, kill the group.
setsid "$bin/anvil" --host 127.0.0.1 --port "$port" --silent >/dev/null 2>&1 &
anvil_pid=$!
trap 'kill -- -$anvil_pid 2>/dev/null' EXIT
for _ in $(seq 50); do "$bin/cast" block-number --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.1; done

# anvil's dev accounts 0..3, derived from its well-known mnemonic
MN="test test test test test test test test test test test junk"
devkey() { "$bin/cast" wallet private-key --mnemonic "$MN" --mnemonic-index "$1"; }
K0=$(devkey 0); K1=$(devkey 1); K2=$(devkey 2); K3=$(devkey 3)
addr() { "$bin/cast" wallet address --private-key "$1"; }
A1=$(addr $K1); A2=$(addr $K2); A3=$(addr $K3)
COMPOSE=0x$(printf 'c0%.0s' {1..32})
failures=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); }
expect() { # expect NAME WANT GOT
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: want '$2', got '$3'"; fi
}
# cast send can exit 0 without sending: success means a receipt with status 1.
send() {
  local k=$1; shift
  "$bin/cast" send --rpc-url "$rpc" --private-key "$k" --json "$@" 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("status") in ("0x1", 1) else 1)' 2>/dev/null
}
call() { "$bin/cast" call --rpc-url "$rpc" "$@" 2>&1; }
lower() { tr 'A-F' 'a-f'; }

out=$("$root/contracts/scripts/deploy-local.sh" "$rpc" "$K0" "$COMPOSE" 2>/dev/null) || { echo "FAIL deploy"; exit 1; }
eval "$out"
[[ -n ${KMS:-} && -n ${NFT:-} ]] && pass "deploy: KMS=$KMS NFT=$NFT" || { fail "deploy output: $out"; exit 1; }
expect "app registered in the KMS" true "$(call "$KMS" 'registeredApps(address)(bool)' "$NFT")"
expect "compose hash allowed" true "$(call "$NFT" 'allowedComposeHashes(bytes32)(bool)' "$COMPOSE")"

# 1. mint three NFTs to three owners
for i in 1 2 3; do
  a=A$i
  send $K0 "$NFT" "mintNodeAccess(address,string)" "${!a}" "node$i" || fail "mint $i"
done
expect "three tokens" 3 "$(call "$NFT" 'totalSupply()(uint256)')"
expect "mint is owner-only" reverted "$(send $K1 "$NFT" 'mintNodeAccess(address,string)' "$A1" x && echo sent || echo reverted)"

# 3. register three instances (bytes32("node1") ... as the CLI encodes names)
inst() { "$bin/cast" format-bytes32-string "node$1"; }
for i in 1 2 3; do
  k=K$i
  send "${!k}" "$NFT" "registerInstance(bytes32,uint256)" "$(inst $i)" "$i" || fail "register $i"
done
expect "totalActiveNodes" 3 "$(call "$NFT" 'totalActiveNodes()(uint256)')"
expect "requiredVotes (no updateClusterSize needed)" 2 "$(call "$NFT" 'requiredVotes()(uint256)')"
send $K0 "$NFT" "updateClusterSize()" && pass "updateClusterSize still callable" || fail "updateClusterSize"

# leader election and the no-confidence flow
send $K1 "$NFT" "electLeader()" || fail "electLeader"
expect "leader is node1's owner" "$(echo $A1 | lower)" "$(call "$NFT" 'currentLeader()(address)' | lower)"
send $K2 "$NFT" "castVote(address,bool)" "$A1" true || fail "vote 2"
expect "one vote against the leader" 1 "$(call "$NFT" 'noConfidenceCount(address)(uint256)' "$A1")"
send $K3 "$NFT" "castVote(address,bool)" "$A1" true || fail "vote 3"
expect "new leader after f+1 votes" "$(echo $A2 | lower)" "$(call "$NFT" 'currentLeader()(address)' | lower)"
expect "new leader token" 2 "$(call "$NFT" 'currentLeaderTokenId()(uint256)')"
expect "votes reset for the new term" 0 "$(call "$NFT" 'noConfidenceCount(address)(uint256)' "$A2")"
send $K3 "$NFT" "castVote(address,bool)" "$A2" true && send $K3 "$NFT" "castVote(address,bool)" "$A2" false \
  || fail "vote/clear"
expect "vote cleared" 0 "$(call "$NFT" 'noConfidenceCount(address)(uint256)' "$A2")"
send $K2 "$NFT" "leaderHeartbeat()" && pass "leader heartbeat" || fail "heartbeat"
members=$(call "$NFT" 'activeMembers()(uint256[],bytes32[],address[])' | head -1)
expect "activeMembers token ids" "[1, 2, 3]" "$members"

# isAppAllowed through the KMS (as the auth webhook asks)
TUP='isAppAllowed((address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,string[]))(bool,string)'
Z=0x$(printf '%064d' 0)
boot() { # boot COMPOSE INSTANCE_ADDR
  echo "($NFT,$1,$2,$Z,$Z,$Z,$Z,UpToDate,[])"
}
iaddr() { echo "0x$(inst $1 | cut -c3-42)"; }   # bytes32(bytes20(id)) <-> address
res=$(call "$KMS" "$TUP" "$(boot $COMPOSE "$(iaddr 1)")" | tr '\n' ' ')
expect "registered instance allowed" "true \"\" " "$res"
res=$(call "$KMS" "$TUP" "$(boot $COMPOSE 0x00000000000000000000000000000000000000ff)" | tr '\n' ' ')
expect "unregistered instance" 'false "Instance not registered with NFT" ' "$res"
res=$(call "$KMS" "$TUP" "$(boot 0x$(printf 'ee%.0s' {1..32}) "$(iaddr 1)")" | tr '\n' ' ')
expect "wrong compose hash" 'false "Compose hash not allowed" ' "$res"
send $K0 "$NFT" "deactivateInstance(uint256)" 3 || fail "deactivate"
res=$(call "$KMS" "$TUP" "$(boot $COMPOSE "$(iaddr 3)")" | tr '\n' ' ')
expect "inactive instance" 'false "Instance marked inactive" ' "$res"
expect "cluster shrank" 2 "$(call "$NFT" 'totalActiveNodes()(uint256)')"

# the path for a KMS you do not own: own proxy + permissionless registerApp
out=$("$root/contracts/scripts/deploy-local.sh" --own-proxy "$KMS" "$rpc" "$K1" "$COMPOSE" 2>/dev/null)
own=$(sed -n 's/^NFT=//p' <<<"$out")
expect "own proxy registered" true "$(call "$KMS" 'registeredApps(address)(bool)' "$own")"
expect "own proxy owner" "$(echo $A1 | lower)" "$(call "$own" 'owner()(address)' | lower)"

echo "contracts on anvil: $((failures == 0 ? 1 : 0)) passed, $((failures > 0 ? 1 : 0)) failed ($failures check(s) failed)"
exit $((failures > 0))
