#!/usr/bin/env bash
# Runs every integration test (integration/test_*.sh and test_*.py) against the
# binaries in $NFTRAFT_BUILD (default build/). --soak also runs soak_*.
# A test that cannot run here exits 77 and is counted as skipped, not passed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export NFTRAFT_BUILD=${NFTRAFT_BUILD:-$here/../build}
export NFTRAFT_ROOT=$(cd "$here/.." && pwd)
patterns=("test_*.sh" "test_*.py")
[[ ${1:-} == --soak ]] && patterns=("soak_*.sh" "soak_*.py")
passed=0; failed=0; skipped=0; names=()
for pat in "${patterns[@]}"; do
  for t in "$here"/$pat; do
    [[ -e $t ]] || continue
    name=$(basename "$t")
    echo "--- $name"
    t0=$(date +%s)
    case "$t" in
      *.py) python3 "$t" ;;
      *) bash "$t" ;;
    esac
    rc=$?
    if ((rc == 0)); then passed=$((passed + 1)); echo "ok   $name ($(( $(date +%s) - t0 ))s)";
    elif ((rc == 77)); then skipped=$((skipped + 1)); echo "skip $name";
    else failed=$((failed + 1)); names+=("$name"); echo "FAIL $name (rc=$rc)"; fi
  done
done
((failed)) && echo "failed: ${names[*]}"
echo "integration: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
