#!/usr/bin/env bash
# Builds raft 0.22.1 (cowsql/raft, the maintained continuation of
# canonical/raft) from Debian's trixie source package into .deps/raft, a
# static library with raft_uv and raft_fixture, found by CMake through
# pkg-config. The machine's own apt sources are never touched: a private apt
# configuration under .deps/apt adds trixie deb-src only. The download is
# checked against the .dsc checksums (apt verifies the signed Release file and
# the Sources index; dpkg-source verifies the .dsc's checksums). A prefix that
# already holds this version is reused. On Debian 13 (trixie) or later the
# distribution's libraft-dev is 0.22 already and is installed instead.
# Local patches (each found by tests/sim, the deterministic simulation):
# scripts/raft-0.22.1-snapshot-term.patch: the
# legacy raft_io layer sends an InstallSnapshot whose index comes from a newer
# snapshot than the one it asked for but whose term is the older one's; the
# follower then records the wrong term at that index (found by tests/sim,
# seed 10; the follower later refuses its leader and raft double-frees).
# scripts/raft-0.22.1-snapshot-pending.patch: when an InstallSnapshot arrives
# while the node takes its own snapshot, the legacy layer clears the pending
# install before reading it and dereferences NULL (seed 196, a segfault).
# scripts/raft-0.22.1-follower-compacted.patch: a follower that compacted its
# log into its own snapshot rejected an AppendEntries anchored below that
# snapshot, then took the leader's retry from index 1 as new entries and
# overwrote its log (seed 9, a crash in the log).
# scripts/raft-0.22.1-install-leak.patch: an InstallSnapshot that arrives
# while another install runs was neither used nor freed (a leak of the whole
# snapshot per retry; ASan on the simulation).
# scripts/raft-0.22.1-probe-next-index.patch: a stale rejection could set a
# follower's next index at or below its match index; the leader then sent
# only empty heartbeats to it forever (seed 159, a follower stuck behind).
# scripts/raft-0.22.1-stale-snapshot.patch (applies after follower-compacted):
# a snapshot the node finished taking after a newer one was installed moved
# its log's snapshot point back, to an index it no longer has (seed 2918, a
# follower that could never match its leader again).
# scripts/raft-0.22.1-fixture-truncate.patch (test fixture only): the
# in-memory raft_io truncated at the wrong array position once a snapshot had
# been installed (tests/sim seed 14, a heap overflow).
# The Debian 13 path below uses the distribution's library, unpatched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
VERSION=0.22.1
DEBREV=0.22.1-1
BUILD="$DEBREV+nftraft7" # bump when the local patch changes
prefix="$root/.deps/raft"
stamp="$prefix/.nftraft-raft-version"

if [[ -f $stamp && $(cat "$stamp") == "$BUILD" && -f $prefix/lib/libraft.a ]]; then
  exit 0
fi
sudo_=""; [[ $(id -u) -eq 0 ]] || sudo_=sudo

# Debian 13+: the distribution ships raft >= 0.22; use it.
os_version=$(. /etc/os-release 2>/dev/null; echo "${VERSION_ID:-0}")
if [[ $os_version =~ ^[0-9]+$ ]] && ((os_version >= 13)); then
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libraft-dev >/dev/null
  exit 0
fi

echo "install-deps: building raft $VERSION from Debian's source package into .deps/raft" >&2
t0=$(date +%s)
apt_dir="$root/.deps/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
cat > "$apt_dir/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
apt-get "${apt_opts[@]}" update >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "raft=$DEBREV" >/dev/null)
dsc="$work/raft_$DEBREV.dsc"
[[ -f $dsc ]] || { echo "build-raft: raft_$DEBREV.dsc was not downloaded" >&2; exit 1; }
# Every file the .dsc names must match its SHA-256 (dpkg-source checks it too).
awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f&&NF==3{print $1"  "$3}' "$dsc" \
  | (cd "$work" && sha256sum --quiet -c -) \
  || { echo "build-raft: checksum mismatch against $dsc" >&2; exit 1; }
(cd "$work" && dpkg-source --no-check -x "$dsc" src >/dev/null)

cd "$work/src"
for p in snapshot-term snapshot-pending follower-compacted install-leak \
         probe-next-index stale-snapshot fixture-truncate; do
  patch -p1 --quiet < "$root/scripts/raft-0.22.1-$p.patch"
done
autoreconf -i >/dev/null 2>&1
./configure --prefix="$prefix" --disable-shared --enable-static --with-pic \
  --with-lz4 --disable-example --disable-benchmark >/dev/null
make -j"$(nproc 2>/dev/null || echo 2)" >/dev/null 2>&1 || { make >&2; exit 1; }
rm -rf "$prefix"
make install >/dev/null
echo "$BUILD" > "$stamp"
echo "install-deps: raft $VERSION built in $(( $(date +%s) - t0 ))s" >&2
