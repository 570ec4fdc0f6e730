#!/usr/bin/env bash
# Jepsen runner in CI: (1) a ~60 s run of the real daemon, every node in its
# own network namespace, under mixed nemeses including partitions: any
# anomaly fails (with the clock nemesis: nodes under libfaketime, a skew
# that does not take effect fails too); (2) the checker's self-test on that run's history (each
# corruption must be flagged); (3) the test-only nftraftd-unsafe (acks before
# commit) under leader partitions must be caught losing writes; (4) a ~40 s
# chain-mode run (anvil in its own namespace) under the NFT lifecycle
# nemeses (eviction and sale of a token, the leader's half the time, then
# readmission / buy-back and re-registration), a kill and a lagging RPC;
# (5) a ~30 s --workload pg run (every node supervises a PostgreSQL; kills
# of a node with its postgres, partitions of the primary): no acknowledged
# row lost, every node's rows equal once every standby streams from the
# primary on its timeline; (6) the checker's self-test on that run (pgcorrupt).
# Needs root (network namespaces, iptables): without it, says so and exits
# 77 (skipped).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ $(id -u) -ne 0 ]] || ! command -v iptables >/dev/null; then
  echo "SKIP test_jepsen.sh: needs root and iptables (network namespaces)"; exit 77
fi
out=$(mktemp -d /tmp/nftraft-jepsen-ci.XXXXXX)
chmod 711 "$out"  # the pg run's PostgreSQL runs as user postgres below it
rc=0
python3 "$here/jepsen/run.py" --time 60 --quiet --out "$out/run" \
  --nemesis partition-leader,partition-halves,bridge,kill,pause,loss,delay,stall-leader,clock || rc=1
if ((rc == 0)); then
  python3 "$here/jepsen/selftest.py" corrupt "$out/run" || rc=1
fi
python3 "$here/jepsen/selftest.py" unsafe "$out/unsafe" >"$out/unsafe.txt" 2>&1 || rc=1
tail -n 1 "$out/unsafe.txt"
python3 "$here/jepsen/run.py" --chain anvil --time 40 --quiet --out "$out/chain" \
  --nemesis nft-evict,nft-transfer,kill,chain-lag || rc=1
pgrc=0
python3 "$here/jepsen/run.py" --workload pg --time 30 --quiet --out "$out/pg" \
  --nemesis pg-kill,pg-partition || pgrc=1
if ((pgrc == 0)); then
  python3 "$here/jepsen/selftest.py" pgcorrupt "$out/pg" || pgrc=1
fi
((pgrc == 0)) || rc=1
# Only this test's own runs count (other runs may share the machine): each
# run wrote its namespaces' prefix.
left=""
for f in "$out"/run/netns-prefix "$out"/chain/netns-prefix "$out"/pg/netns-prefix "$out"/unsafe/netns-prefix \
         "$out"/unsafe/*/netns-prefix; do
  [[ -f $f ]] || continue
  p=$(cat "$f")
  left+=$(ip netns list | awk -v p="$p" 'index($1, p) == 1 {print $1}')
done
if [[ -n $left ]]; then echo "FAIL: namespaces left behind: $left"; rc=1; fi
if ((rc == 0)); then rm -rf "$out"; else echo "kept: $out"; fi
exit $rc
