#!/usr/bin/env bash
# Deploy the contracts to an Ethereum node with the project's own Foundry.
#
#   deploy-local.sh RPC_URL PRIVATE_KEY [COMPOSE_HASH]
#       KMS factory path (local / self-hosted KMS): DstackMembershipNFT
#       implementation, DstackKms (UUPS proxy) with it as appImplementation,
#       the app via deployAndRegisterApp(owner, false, true, 0, COMPOSE_HASH),
#       and the default OS image hash allowlisted in the KMS.
#   deploy-local.sh --own-proxy KMS_ADDRESS RPC_URL PRIVATE_KEY [COMPOSE_HASH]
#       For a KMS you do not own (its factory deploys plain DstackApps):
#       the NFT implementation, its own ERC1967 proxy initialized with the
#       6-argument initializer, then the permissionless registerApp(proxy).
#
# Prints KMS=0x... NFT=0x... NFT_IMPL=0x... lines on stdout; progress on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/node_modules/.bin
own_kms=
if [[ ${1:-} == --own-proxy ]]; then own_kms=${2:?KMS address}; shift 2; fi
rpc=${1:?usage: deploy-local.sh [--own-proxy KMS] RPC_URL PRIVATE_KEY [COMPOSE_HASH]}
key=${2:?private key}
compose=${3:-0x$(printf '%064d' 0)}
os_image=${NFTRAFT_OS_IMAGE:-0x$(printf '%064d' 0)}
cd "$here"
owner=$("$bin/cast" wallet address --private-key "$key")

create() { # create CONTRACT_PATH:NAME [constructor args...] -> address
  local target=$1; shift
  local out
  out=$("$bin/forge" create "$target" --rpc-url "$rpc" --private-key "$key" \
        --broadcast --json ${1:+--constructor-args "$@"} 2>/dev/null) || {
    echo "deploy-local: forge create $target failed" >&2; return 1; }
  python3 -c 'import json,sys; s=sys.stdin.read(); print(json.loads(s[s.index("{"):])["deployedTo"])' <<<"$out"
}
# cast send may exit 0 without sending: require a receipt with status 1.
send() {
  "$bin/cast" send --rpc-url "$rpc" --private-key "$key" --json "$@" 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("status") in ("0x1", 1) else 1)' ||
    { echo "deploy-local: cast send $* failed" >&2; return 1; }
}

"$bin/forge" build >/dev/null
echo "deploy-local: deployer $owner on $rpc" >&2
impl=$(create src/DstackMembershipNFT.sol:DstackMembershipNFT)
echo "deploy-local: NFT implementation $impl" >&2
if [[ -z $own_kms ]]; then
  kms_impl=$(create src/DstackKms.sol:DstackKms)
  init=$("$bin/cast" calldata "initialize(address,address)" "$owner" "$impl")
  kms=$(create node_modules/@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol:ERC1967Proxy "$kms_impl" "$init")
  echo "deploy-local: KMS $kms" >&2
  send "$kms" "addOsImageHash(bytes32)" "$os_image"
  receipt=$("$bin/cast" send --rpc-url "$rpc" --private-key "$key" --json "$kms" \
    "deployAndRegisterApp(address,bool,bool,bytes32,bytes32)" "$owner" false true \
    0x$(printf '%064d' 0) "$compose")
  topic=$("$bin/cast" keccak "AppDeployedViaFactory(address,address)")
  nft=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1]); t = sys.argv[2]
for l in r["logs"]:
    if l["topics"][0] == t:
        print("0x" + l["topics"][1][-40:]); break
else:
    sys.exit("no AppDeployedViaFactory log")' "$receipt" "$topic")
else
  kms=$own_kms
  init=$("$bin/cast" calldata "initialize(address,bool,bool,bool,bytes32,bytes32)" \
    "$owner" false false true 0x$(printf '%064d' 0) "$compose")
  nft=$(create node_modules/@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol:ERC1967Proxy "$impl" "$init")
  send "$kms" "registerApp(address)" "$nft"
fi
echo "deploy-local: NFT (app id) $nft" >&2
echo "KMS=$kms"
echo "NFT=$nft"
echo "NFT_IMPL=$impl"
