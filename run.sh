#!/usr/bin/env bash
# The project's entry point. The README's two commands are:
#   ./run.sh up      install what is missing, build, start a local 3-node cluster
#   ./run.sh test    install what is missing, build (normal + ASan/UBSan), run all tests
# Other subcommands: build, deps, bench, soak, fuzz, help.
# Other subcommands: build, deps, bench, soak, sim, help.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)

usage() {
  cat <<USAGE
usage: ./run.sh <command> [args]
  up [nftraft up flags]   install deps, build, run a local cluster (Ctrl-C stops it)
  test                    install deps, build twice, run unit, contract and integration tests
  build                   install deps and build build/ (release) only
  deps                    install missing Debian and npm packages only
  bench [flags]           run the benchmark (bench/bench.py) on a fresh local cluster
  bench --endurance [f]   endurance run (bench/endurance.py): 5 M increments, per-minute table + plot
  soak                    long fault-injection runs (not part of 'test')
  lifecycle [--repeat N]  NFT lifecycle scenarios on anvil (integration/test_lifecycle.py),
                          N times (default 3), with the median unavailability per transition
  fuzz [--seconds N] [T..] build the libFuzzer targets (clang) and run each
                          for N s (default 60); 'test' runs them for 15 s
  sim [--seeds N] [--seed S] [--steps K] [-v]
                          deterministic cluster simulation (tests/sim/README.md)
  jepsen [flags]          Jepsen-style fault run in network namespaces (root;
                          see ./run.sh jepsen --help; long run: --time 600)
USAGE
}

build() { # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

# Where the simulation keeps its per-seed SQLite files: tmpfs when there is
# one (each applied entry is a SQLite transaction), one directory per
# checkout and variant so parallel runs never share a file.
sim_dir() { # sim_dir VARIANT
  local base=$root/build
  [[ -d /dev/shm && -w /dev/shm ]] && base=/dev/shm
  echo "$base/nftraft-sim-$(id -u)-$(printf %s "$root" | cksum | cut -d' ' -f1)/$1"
}

# CI seeds for the simulation (about 1 minute in all on 2 busy cores).
SIM_CI_SEEDS=800
SIM_CI_SEEDS_ASAN=200

sim_ci() { # sim_ci BUILD_DIR SEEDS VARIANT
  mkdir -p "$(sim_dir "$3")"
  "$1/nftraft_sim" --seeds "$2" --dir "$(sim_dir "$3")"
}

# The mutant acknowledges increments when they are submitted, not when raft
# reports them applied: the simulation must catch it (exit 1 with violations).
sim_mutant() { # sim_mutant BUILD_DIR SEEDS
  local out rc=0 err
  mkdir -p "$(sim_dir mutant)"
  err=$(sim_dir mutant).stderr
  out=$("$1/nftraft_sim_mutant" --seeds "$2" --dir "$(sim_dir mutant)" 2>"$err") || rc=$?
  echo "mutant (ack before commit): ${out##*$'\n'}"
  echo "  first: $(grep -m1 VIOLATION "$err")"
  if [[ $rc -ne 1 || ! $out =~ [1-9][0-9]*\ violations$ ]]; then
    echo "run.sh: the simulation did not catch the ack-before-commit mutant (exit $rc)" >&2
    return 1
  fi
  rm -rf "$(sim_dir mutant)" "$err"
}

cmd=${1:-help}; shift || true
case "$cmd" in
  deps) ./scripts/install-deps.sh ;;
  build) ./scripts/install-deps.sh; build build ;;
  up) ./scripts/install-deps.sh; build build; exec ./build/nftraft up "$@" ;;
  test)
    start=$(date +%s)
    ./scripts/install-deps.sh
    echo "== tree checks (clang-format, tests/README.md, includes)"
    ./scripts/check-tree.sh
    echo "== build (release, -Werror)"
    build build -DNFTRAFT_WERROR=ON
    echo "== build (ASan+UBSan, -Werror)"
    build build-asan -DNFTRAFT_WERROR=ON -DNFTRAFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
    export LSAN_OPTIONS=suppressions=$root/scripts/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    echo "== unit tests (release)"
    ctest --test-dir build --output-on-failure -j"$jobs"
    echo "== cluster simulation (release, $SIM_CI_SEEDS seeds)"
    sim_ci build "$SIM_CI_SEEDS" release
    sim_mutant build "$SIM_CI_SEEDS"
    echo "== unit tests (ASan+UBSan)"
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
    echo "== cluster simulation (ASan+UBSan, $SIM_CI_SEEDS_ASAN seeds)"
    sim_ci build-asan "$SIM_CI_SEEDS_ASAN" asan
    if [[ -f contracts/foundry.toml ]]; then
      echo "== contract tests (forge)"
      (cd contracts && ./node_modules/.bin/forge test)
    fi
    echo "== fuzz targets (15 s each; seeds + regression inputs in tests/fuzz/corpus)"
    ./scripts/fuzz.sh --seconds 15
    echo "== integration tests (ASan+UBSan binaries)"
    NFTRAFT_BUILD="$root/build-asan" ./integration/run_all.sh
    echo "== all tests passed in $(( $(date +%s) - start ))s"
    ;;
  bench)
    ./scripts/install-deps.sh
    # The peer the figures are compared with: Debian's etcd.
    command -v etcd >/dev/null || { [[ $(id -u) -eq 0 ]] && s= || s=sudo;
      $s env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
    build build
    if [[ ${1:-} == --endurance ]]; then # millions of increments, flat state
      shift
      NFTRAFT_BUILD="$root/build" exec python3 bench/endurance.py "$@"
    fi
    NFTRAFT_BUILD="$root/build" exec python3 bench/bench.py "$@" ;;
  soak) ./scripts/install-deps.sh; build build; exec ./integration/run_all.sh --soak ;;
  lifecycle)
    ./scripts/install-deps.sh; build build
    NFTRAFT_BUILD="$root/build" exec python3 integration/test_lifecycle.py --repeat "${2:-3}" ;;
  fuzz) ./scripts/install-deps.sh; exec ./scripts/fuzz.sh "$@" ;;
  sim)
    ./scripts/install-deps.sh
    build build >/dev/null
    mkdir -p "$(sim_dir manual)"
    exec ./build/nftraft_sim --dir "$(sim_dir manual)" "$@" ;;
  jepsen)
    ./scripts/install-deps.sh; build build
    NFTRAFT_BUILD="$root/build" exec python3 integration/jepsen/run.py "$@" ;;
  help|-h|--help) usage ;;
  *) echo "run.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
