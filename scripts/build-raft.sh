#!/usr/bin/env bash
# Builds raft 0.22.1 (cowsql/raft, the maintained continuation of
# canonical/raft) from Debian's trixie source package into .deps/raft, a
# static library with raft_uv and raft_fixture, found by CMake through
# pkg-config. The machine's own apt sources are never touched: a private apt
# configuration under .deps/apt adds trixie deb-src only. apt verifies the
# signed Release file and the Sources index; the download is then checked
# against the SHA-256 sums the .dsc lists. The project's own patches in
# scripts/raft-patches/ (each says what it fixes) are applied on top. A
# prefix built from the same version and patches is reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
VERSION=0.22.1
DEBREV=0.22.1-1
BUILD="$DEBREV+nftraft11" # bump when the local patch changes
prefix="$root/.deps/raft"
stamp="$prefix/.nftraft-raft-version"
patches=("$root"/scripts/raft-patches/*.patch)
want="$DEBREV $(cat "${patches[@]}" | sha256sum | cut -c1-16)"

if [[ -f $stamp && $(cat "$stamp") == "$want" && -f $prefix/lib/libraft.a ]]; then
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
for p in "${patches[@]}"; do
  patch -p1 -s --no-backup-if-mismatch < "$p" || { echo "build-raft: $p does not apply" >&2; exit 1; }
done
autoreconf -i >/dev/null 2>&1
./configure --prefix="$prefix" --disable-shared --enable-static --with-pic \
  --with-lz4 --disable-example --disable-benchmark >/dev/null
make -j"$(nproc 2>/dev/null || echo 2)" >/dev/null 2>&1 || { make >&2; exit 1; }
rm -rf "$prefix"
make install >/dev/null
echo "$want" > "$stamp"
echo "install-deps: raft $VERSION built in $(( $(date +%s) - t0 ))s" >&2
