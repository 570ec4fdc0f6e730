#!/usr/bin/env bash
# Formats the project's C sources with clang-format (.clang-format), or
# with --check only reports the files that differ (exit 1), as ./run.sh
# test does. Covers every .c/.h under the code and test folders.
#   scripts/format.sh [--check]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
  *) echo "format.sh: unknown argument $1 (usage: scripts/format.sh [--check])" >&2; exit 2 ;;
esac
command -v clang-format >/dev/null ||
  { echo "format.sh: clang-format not found (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(find core fsm chain pg net recon dstack cmd tests \
  -path tests/fuzz/corpus -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print | sort)
if ((check)); then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    echo "format.sh: ${#bad[@]} of ${#files[@]} files differ from .clang-format (run scripts/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format: ${#files[@]} C files follow .clang-format"
else
  clang-format -i "${files[@]}"
  echo "format: ${#files[@]} C files formatted"
fi
