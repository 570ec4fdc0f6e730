#!/usr/bin/env bash
# Static checks of the source tree that ./run.sh test runs before building:
#  - every C file follows .clang-format (scripts/format.sh --check);
#  - tests/README.md names the test of every module (.c in a layer folder);
#  - nothing outside cmd/ includes cmd/ (the build enforces the other layer
#    rules: cmake/layers.cmake).
#   scripts/check-tree.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rc=0
./scripts/format.sh --check || rc=1
missing=()
for f in core/*.c fsm/*.c chain/*.c pg/*.c net/*.c recon/*.c dstack/*.c cmd/*.c; do
  grep -qF "\`$f\`" tests/README.md || missing+=("$f")
done
if ((${#missing[@]})); then
  echo "check-tree: tests/README.md does not name the test of: ${missing[*]}" >&2
  rc=1
fi
up=$(grep -rln '#include "cmd/' core fsm chain pg net recon dstack tests 2>/dev/null)
if [[ -n $up ]]; then
  echo "check-tree: these files include cmd/ (nothing may): $up" >&2
  rc=1
fi
((rc == 0)) && echo "tree: format, tests/README.md and includes checked"
exit $rc
