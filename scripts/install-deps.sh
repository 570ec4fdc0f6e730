#!/usr/bin/env bash
# Installs what is missing on a Debian bookworm machine: the C toolchain and
# libraries (apt-get; PostgreSQL 15 for --pg, Debian's own cluster kept
# stopped), raft 0.22.1 built from Debian's trixie source package
# into .deps/raft (scripts/build-raft.sh), and the Solidity toolchain (npm ci
# in contracts/). Idempotent: a second run with everything present does
# nothing but check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

APT_PKGS=(build-essential cmake pkg-config git curl ca-certificates
  libuv1-dev liblz4-dev autoconf automake libtool dpkg-dev patch libh2o-dev libssl-dev libsecp256k1-dev
  libcurl4-openssl-dev libmsgpack-dev libsqlite3-dev libjansson-dev
  sqlite3 python3 python3-yaml nodejs npm wrk gnuplot-nox procps iproute2
  clang clang-format libclang-rt-14-dev chromium chromium-driver iptables libfaketime
  postgresql-15 libpq-dev)

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node/npm may come from outside Debian (e.g. a preinstalled nodejs); accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  keep=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || keep+=("$p"); done
  missing=("${keep[@]+"${keep[@]}"}")
fi
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_=sudo
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's postgresql-15 creates and starts a cluster "15 main" on port
# 5432: nftraft never uses it (each node runs its own postgres), keep it down.
if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql/15/main ]]; then
  sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_=sudo
  if pg_lsclusters -h 2>/dev/null | awk '$1 == 15 && $2 == "main" && $4 == "online"' | grep -q .; then
    echo "install-deps: stopping Debian's unused cluster 15/main" >&2
    $sudo_ pg_ctlcluster 15 main stop || true
  fi
fi

# raft 0.22.1 into the project-local prefix (reused when the version matches).
"$root/scripts/build-raft.sh"

# Solidity toolchain, pinned by contracts/package-lock.json.
lock="$root/contracts/package-lock.json"
stamp="$root/contracts/node_modules/.nftraft-lock.sha256"
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" || ! -x $root/contracts/node_modules/.bin/forge ]]; then
  echo "install-deps: npm ci in contracts/" >&2
  (cd "$root/contracts" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
