#!/usr/bin/env bash
# The project's entry point. The README's two commands are:
#   ./run.sh up      install what is missing, build, start a local 3-node cluster
#   ./run.sh test    install what is missing, build (normal + ASan/UBSan), run all tests
# Other subcommands: build, deps, bench, soak, help.
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
  soak                    long fault-injection runs (not part of 'test')
  jepsen [flags]          Jepsen-style fault run in network namespaces (root;
                          see ./run.sh jepsen --help; long run: --time 600)
USAGE
}

build() { # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

cmd=${1:-help}; shift || true
case "$cmd" in
  deps) ./scripts/install-deps.sh ;;
  build) ./scripts/install-deps.sh; build build ;;
  up) ./scripts/install-deps.sh; build build; exec ./build/nftraft up "$@" ;;
  test)
    start=$(date +%s)
    ./scripts/install-deps.sh
    echo "== build (release, -Werror)"
    build build -DNFTRAFT_WERROR=ON
    echo "== build (ASan+UBSan, -Werror)"
    build build-asan -DNFTRAFT_WERROR=ON -DNFTRAFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    echo "== unit tests (release)"
    ctest --test-dir build --output-on-failure -j"$jobs"
    echo "== unit tests (ASan+UBSan)"
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
    if [[ -f contracts/foundry.toml ]]; then
      echo "== contract tests (forge)"
      (cd contracts && ./node_modules/.bin/forge test)
    fi
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
    NFTRAFT_BUILD="$root/build" exec python3 bench/bench.py "$@" ;;
  soak) ./scripts/install-deps.sh; build build; exec ./integration/run_all.sh --soak ;;
  jepsen)
    ./scripts/install-deps.sh; build build
    NFTRAFT_BUILD="$root/build" exec python3 integration/jepsen/run.py "$@" ;;
  help|-h|--help) usage ;;
  *) echo "run.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
