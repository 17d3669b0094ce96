#!/usr/bin/env bash
# Release archives (make dist): for each target, a .tar.gz (.zip for
# Windows) holding the stripped pure-Go binary with the version stamped
# in, README.md, config.example.toml and the completion scripts, then
# SHA256SUMS over the archives. Reproducible: the same commit gives the
# same bytes (go build -trimpath with a fixed build ID; distpack fixes
# the archive's order, times and owners to SOURCE_DATE_EPOCH, the
# commit's time unless set).
#
#   OUT      where the archives go (default dist)
#   TARGETS  os/arch words (default: all six below; linux/armv7 is
#            GOARCH=arm GOARM=7, the Raspberry Pi's)
#   VERSION  default: git describe
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
OUT=${OUT:-dist}
TARGETS=${TARGETS:-linux/amd64 linux/arm64 linux/armv7 darwin/amd64 darwin/arm64 windows/amd64}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# The tools that run here: the archiver, and a backupd for this machine
# to print the completion scripts (the same on every platform).
$GO build -trimpath -o "$work/distpack" ./packaging/distpack
$GO build -trimpath -o "$work/backupd-host" ./cmd/backupd
mkdir -p "$work/completions"
"$work/backupd-host" completion bash > "$work/completions/backupd.bash"
"$work/backupd-host" completion zsh > "$work/completions/_backupd"
"$work/backupd-host" completion fish > "$work/completions/backupd.fish"

# build OS ARCH OUTFILE: the release binary.
build() {
	local os=$1 arch=$2 out=$3 goarch=$2 goarm=
	if [ "$arch" = armv7 ]; then goarch=arm goarm=7; fi
	CGO_ENABLED=0 GOOS=$os GOARCH=$goarch GOARM=$goarm \
		$GO build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$out" ./cmd/backupd
}

archives=()
for target in $TARGETS; do
	os=${target%/*} arch=${target#*/}
	name=backupd-$VERSION-$os-$arch
	dir=$work/$name
	mkdir -p "$dir/completions"
	exe=backupd
	[ "$os" = windows ] && exe=backupd.exe
	build "$os" "$arch" "$dir/$exe"
	cp README.md config.example.toml "$dir/"
	cp "$work"/completions/* "$dir/completions/"
	if [ "$os" = windows ]; then
		archive=$OUT/$name.zip
		"$work/distpack" zip "$archive" "$dir"
	else
		archive=$OUT/$name.tar.gz
		"$work/distpack" tar "$archive" "$dir"
	fi
	archives+=("$archive")
	echo "dist: $archive"
done
"$work/distpack" sums "$OUT/SHA256SUMS" "${archives[@]}"
echo "dist: $OUT/SHA256SUMS"
