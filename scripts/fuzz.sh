#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang, -fsanitize=fuzzer,
# address,undefined) in build-fuzz/ and runs each for N seconds (default
# 60) from its committed seed corpus (tests/fuzz/corpus/NAME/, which also
# holds the regression inputs of crashes found before). New inputs go to
# build-fuzz/corpus/NAME/, crashes to build-fuzz/crashes/NAME/. Exit 1 if
# any target crashed, leaked or timed out.
#   scripts/fuzz.sh [--seconds N] [NAME...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=60
names=()
while (($#)); do
  case "$1" in
    --seconds) secs=${2:?--seconds needs a value}; shift 2 ;;
    --seconds=*) secs=${1#*=}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown flag $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
[[ $secs =~ ^[0-9]+$ ]] && ((secs > 0)) || { echo "fuzz.sh: --seconds wants a positive integer" >&2; exit 2; }
command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

out=$root/build-fuzz
# -Werror is for gcc (the builds that ship); clang warns about other things.
cmake -S "$root" -B "$out" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DNFTRAFT_FUZZ=ON -DNFTRAFT_WERROR=OFF >/dev/null
mkdir -p "$out"
cmake --build "$out" --target fuzz_all -j"$(nproc 2>/dev/null || echo 2)" >"$out/build.log" 2>&1 ||
  { tail -30 "$out/build.log" >&2; echo "fuzz.sh: build failed (build-fuzz/build.log)" >&2; exit 1; }
if ((${#names[@]} == 0)); then
  for b in "$out"/tests/fuzz/fuzz_*; do
    [[ -x $b && -f $b ]] && names+=("$(basename "$b" | sed 's/^fuzz_//')")
  done
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for n in "${names[@]}"; do
  bin=$out/tests/fuzz/fuzz_$n
  seeds=$root/tests/fuzz/corpus/$n
  [[ -x $bin ]] || { echo "fuzz.sh: no target '$n'" >&2; exit 2; }
  [[ -d $seeds ]] || { echo "fuzz.sh: no seed corpus $seeds" >&2; exit 2; }
  mkdir -p "$out/corpus/$n" "$out/crashes/$n"
  log=$out/fuzz_$n.log
  t0=$(date +%s)
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -max_len=8192 -print_final_stats=1 \
       -artifact_prefix="$out/crashes/$n/" "$out/corpus/$n" "$seeds" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "ok   fuzz_$n ($(( $(date +%s) - t0 ))s, ${execs:-?} runs, corpus $(ls "$out/corpus/$n" | wc -l) new + $(ls "$seeds" | wc -l) seeds)"
  else
    failed+=("$n")
    echo "FAIL fuzz_$n: see $log; the input is in $out/crashes/$n/"
    grep -E "ERROR: |runtime error|SUMMARY|Test unit written" "$log" | head -5 | sed 's/^/     /'
    echo "     after fixing, commit that input as a regression seed: cp $out/crashes/$n/<file> tests/fuzz/corpus/$n/"
  fi
done
((${#failed[@]} == 0)) || { echo "fuzz: crashes in ${failed[*]}"; exit 1; }
echo "fuzz: ${#names[@]} targets clean (${secs}s each)"
