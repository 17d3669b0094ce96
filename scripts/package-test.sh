#!/usr/bin/env bash
# The Debian package installed into a throwaway Debian root (make
# package-test, run by CI): a minbase bookworm made by debootstrap (kept as
# a tarball in bin/cache and unpacked fresh each run), then the checks a
# person would make: the backupd user and group, the folders' owners and
# modes, the conffile and its mode, the service enabled; `backupd doctor
# --json` and a real backup of a simulated iPhone, both as the backupd
# user, against a usbmuxd socket with Debian's mode; remove and purge
# keeping the backups and saying so. Needs root (chroot, mounts).
#
#   MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   CACHE   the root's tarball (default bin/cache/debian-bookworm-minbase.tar)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" != 0 ]; then
	echo "package-test: needs root (chroot and mounts); run: sudo make package-test" >&2
	exit 1
fi
for tool in debootstrap chroot unshare dpkg-deb; do
	command -v "$tool" >/dev/null || { echo "package-test: $tool is missing (make deps installs it)" >&2; exit 1; }
done
# A private mount and PID namespace: /proc in the root and anything left
# running in it go away with the test.
if [ -z "${PACKAGE_TEST_NS:-}" ]; then
	exec unshare --mount --pid --fork --propagation private env PACKAGE_TEST_NS=1 "$0" "$@"
fi

GO=${GO:-go}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CACHE:-bin/cache/debian-bookworm-minbase.tar}
arch=$(dpkg --print-architecture)
t0=$SECONDS
work=$(mktemp -d /var/tmp/backupd-package-test.XXXXXX)
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
step() { echo "package-test: [$((SECONDS - t0))s] $*"; }

step "building the package and the simulator"
OUT=$work/deb ARCHES=$arch scripts/deb.sh
deb=$(ls "$work"/deb/backupd_*_"$arch".deb)
CGO_ENABLED=0 $GO build -trimpath -o "$work/iphonesim" ./cmd/iphonesim

if [ ! -f "$CACHE" ]; then
	step "debootstrap bookworm (once; kept in $CACHE)"
	debootstrap --variant=minbase --include=usbmuxd,adduser,init-system-helpers \
		bookworm "$work/seed" "$MIRROR" > "$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
	mkdir -p "$(dirname "$CACHE")"
	tar -C "$work/seed" -cf "$CACHE.tmp" . && mv "$CACHE.tmp" "$CACHE"
	rm -rf "$work/seed"
fi
step "unpacking a fresh root"
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$CACHE"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
as_backupd() { in_root setpriv --reuid=backupd --regid=backupd --init-groups "$@"; }

step "dpkg -i $(basename "$deb")"
cp "$deb" "$root/tmp/backupd.deb"
in_root dpkg -i /tmp/backupd.deb > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }

step "checking the user, the folders and the conffile"
IFS=: read -r _ _ uid gid _ home shell < <(in_root getent passwd backupd) || fail "no user backupd"
[ "$uid" -lt 1000 ] || fail "backupd is uid $uid, not a system user"
[ "$home" = /var/lib/backupd ] || fail "backupd's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "backupd's shell is $shell"
[ "$(in_root getent group backupd | cut -d: -f3)" = "$gid" ] || fail "no group backupd as backupd's group"
expect_stat() { # path owner:group mode
	local got
	got=$(in_root stat -c '%U:%G %a' "$1")
	[ "$got" = "$2 $3" ] || fail "$1 is $got, want $2 $3"
}
expect_stat /var/lib/backupd backupd:backupd 700
expect_stat /var/lib/backupd/backups backupd:backupd 700
expect_stat /etc/backupd/config.toml root:backupd 640
expect_stat /usr/bin/backupd root:root 755
in_root dpkg-query -W -f '${Conffiles}\n' backupd | grep -q '^ /etc/backupd/config.toml ' || fail "config.toml is not a conffile"
[ -L "$root/etc/systemd/system/multi-user.target.wants/backupd.service" ] || fail "the service is not enabled"
grep -qx 'User=backupd' "$root/lib/systemd/system/backupd.service" || fail "the unit does not run as backupd"

step "backupd doctor --json as backupd (no usbmuxd running)"
set +e
as_backupd backupd doctor --json --config /etc/backupd/config.toml > "$work/doctor.json" 2> "$work/doctor.err"
code=$?
set -e
compact=$(tr -d ' \n\t' < "$work/doctor.json")
[ "$code" -le 1 ] || { cat "$work/doctor.err"; fail "doctor exited $code"; }
[[ $compact == '{'*'"checks":'*'}' ]] || fail "doctor --json printed no report: $(head -c 300 "$work/doctor.json")"
[[ $compact =~ \"id\":\"backup_dir\",\"title\":\"[^\"]*\",\"status\":\"ok\" ]] ||
	fail "doctor as backupd does not find backup_dir usable: $(head -c 2000 "$work/doctor.json")"
[[ $compact =~ \"id\":\"usbmuxd\",\"title\":\"[^\"]*\",\"status\":\"failed\" ]] ||
	fail "doctor as backupd should fail usbmuxd, which is not running: $(head -c 2000 "$work/doctor.json")"

step "a backup of a simulated iPhone, the service running as backupd"
# The simulator stands for usbmuxd, on its socket with the mode Debian's
# usbmuxd gives it (0666), so the unprivileged service reaches it.
cp "$work/iphonesim" "$root/usr/local/bin/iphonesim"
in_root /usr/local/bin/iphonesim --socket /run/usbmuxd --devices 1 --files 30 --max-size 8192 > "$work/sim.log" 2>&1 &
for _ in $(seq 100); do [ -S "$root/run/usbmuxd" ] && break; sleep 0.1; done
[ -S "$root/run/usbmuxd" ] || { cat "$work/sim.log"; fail "the simulator did not start"; }
chmod 0666 "$root/run/usbmuxd"
in_root test -S /var/run/usbmuxd || fail "/var/run/usbmuxd is not /run/usbmuxd in the root"
# The unit's umask, as systemd would set it.
(umask 0077; exec chroot "$root" env -i PATH=/usr/bin:/bin setpriv --reuid=backupd --regid=backupd --init-groups \
	backupd run --config /etc/backupd/config.toml) > "$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S "$root/var/lib/backupd/backupd.sock" ] && break; sleep 0.2; done
# The phone is backed up when it is plugged in (after it settles).
ok=
for _ in $(seq 240); do
	if as_backupd backupd history --json --config /etc/backupd/config.toml 2>/dev/null | grep -q '"outcome": *"success"'; then
		ok=1
		break
	fi
	sleep 0.5
done
kill "$daemon" 2>/dev/null || true
wait "$daemon" 2>/dev/null || true
[ -n "$ok" ] || { tail -30 "$work/daemon.log"; fail "no successful backup as backupd within 120s"; }
others=$(find "$root/var/lib/backupd" ! -user "$uid" -print | head -5)
[ -z "$others" ] || fail "files under /var/lib/backupd not owned by backupd: $others"
loose=$(find "$root/var/lib/backupd/backups" -mindepth 1 \( -type f ! -perm 600 -o -type d ! -perm 700 \) -print | head -5)
[ -z "$loose" ] || fail "backup files not 0600/0700: $loose"
[ -f "$root/var/lib/backupd/history.db" ] || fail "no history.db"
nfiles=$(find "$root/var/lib/backupd/backups" -type f | wc -l)
[ "$nfiles" -gt 30 ] || fail "only $nfiles files backed up"

step "dpkg -r keeps the history, the backups and the configuration"
in_root dpkg -r backupd > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r"; }
[ -f "$root/var/lib/backupd/history.db" ] || fail "remove took history.db"
[ -f "$root/etc/backupd/config.toml" ] || fail "remove took the conffile"
[ ! -e "$root/usr/bin/backupd" ] || fail "remove left /usr/bin/backupd"

step "dpkg --purge says what it leaves"
in_root dpkg --purge backupd > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
grep -q 'Left in place' "$work/purge.log" || { cat "$work/purge.log"; fail "purge does not say what it leaves"; }
[ ! -e "$root/etc/backupd" ] || fail "purge left /etc/backupd"
[ -f "$root/var/lib/backupd/history.db" ] || fail "purge took history.db"
[ "$nfiles" = "$(find "$root/var/lib/backupd/backups" -type f | wc -l)" ] || fail "purge took backups"
in_root getent passwd backupd >/dev/null || fail "purge removed the user, who still owns the backups"

step "passed: $nfiles files backed up as backupd (uid $uid)"
