#!/usr/bin/env bash
# Debian packages (make deb) for amd64, arm64 and armhf, built with
# dpkg-deb from the release binary (pure Go, stripped, version stamped),
# the systemd unit rendered from packaging/systemd (the one `backupd
# install` writes), config.example.toml as the conffile
# /etc/backupd/config.toml, the completion scripts and packaging/debian's
# maintainer scripts. Same commit, same bytes: times are
# SOURCE_DATE_EPOCH, owners root.
#
#   OUT     where the .debs go (default dist)
#   ARCHES  Debian architectures (default: amd64 arm64 armhf)
#   VERSION default: git describe; the Debian version is made from it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
OUT=${OUT:-dist}
ARCHES=${ARCHES:-amd64 arm64 armhf}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
MAINTAINER=${MAINTAINER:-backupd maintainers <backupd@users.noreply.github.com>}
export SOURCE_DATE_EPOCH

for tool in dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		echo "deb: $tool is missing: it comes with dpkg (Debian and its derivatives)" >&2
		exit 1
	fi
done

# debian_version turns a git describe into a Debian version, which must
# start with a digit: v1.2.0 -> 1.2.0, v1.2.0-3-gabc -> 1.2.0+3.gabc,
# a bare commit abc123(-dirty) -> 0.0~git20261204.abc123(.dirty).
debian_version() {
	local v=${1#v}
	if [[ $v =~ ^[0-9]+\.[0-9] ]]; then
		echo "${v//-/+}" | sed 's/+\([0-9]*\)+g/+\1.g/'
	else
		echo "0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).${v//-/.}"
	fi
}
debver=$(debian_version "$VERSION")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

$GO run ./packaging/unitgen > "$work/backupd.service"
$GO build -trimpath -o "$work/backupd-host" ./cmd/backupd

# The Debian changelog lintian wants: one entry for this build.
changelog() {
	cat <<-CL
	backupd ($debver) unstable; urgency=medium

	  * Built from backupd $VERSION.

	 -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
	CL
}

for arch in $ARCHES; do
	case $arch in
	amd64) goarch=amd64 goarm= ;;
	arm64) goarch=arm64 goarm= ;;
	armhf) goarch=arm goarm=7 ;;
	*) echo "deb: unknown architecture $arch" >&2; exit 1 ;;
	esac
	root=$work/$arch
	doc=$root/usr/share/doc/backupd
	mkdir -p "$root/DEBIAN" "$doc"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		$GO build -trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$work/backupd-$arch" ./cmd/backupd
	install -D -m 0755 "$work/backupd-$arch" "$root/usr/bin/backupd"
	install -D -m 0644 "$work/backupd.service" "$root/lib/systemd/system/backupd.service"
	install -D -m 0644 config.example.toml "$root/etc/backupd/config.toml"
	mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
	"$work/backupd-host" completion bash > "$root/usr/share/bash-completion/completions/backupd"
	"$work/backupd-host" completion zsh > "$root/usr/share/zsh/vendor-completions/_backupd"
	"$work/backupd-host" completion fish > "$root/usr/share/fish/vendor_completions.d/backupd.fish"
	install -m 0644 packaging/debian/copyright "$doc/copyright"
	install -m 0644 README.md "$doc/README.md"
	changelog | gzip -9n > "$doc/changelog.gz" # a native package's name
	install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/backupd"
	install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
	install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
	find "$root" -type d -exec chmod 0755 {} +
	(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
	chmod 0644 "$root/DEBIAN/md5sums"
	size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
	sed -e "s/@VERSION@/$debver/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
		-e "s/@MAINTAINER@/$MAINTAINER/" packaging/debian/control.in > "$root/DEBIAN/control"
	find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	deb=$OUT/backupd_${debver}_$arch.deb
	dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
	echo "deb: $deb"
done
