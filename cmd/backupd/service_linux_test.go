package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/packaging/systemd"
	"github.com/backupd/backupd/sim/simtest"
)

// TestInstallWritesSystemdUnit runs `backupd install` and `uninstall` as
// root in a private mount namespace, where /etc/systemd/system and /run are
// empty tmpfs mounts, systemctl is a stand-in that records its calls,
// useradd one that adds the user to a private copy of /etc/passwd, and the
// binary and configuration sit in a root-only /mnt (install refuses them
// anywhere others can write). It checks that the unit is backupd's own,
// rendered from packaging/systemd, and that the backupd user was made and
// given state_dir and the backups, 0700.
func TestInstallWritesSystemdUnit(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("CI must run the install test as root: it mounts tmpfs over /etc/systemd/system")
		}
		t.Skip("not root: the install test mounts tmpfs over /etc/systemd/system")
	}
	unshare := simtest.RequireTool(t, "unshare")
	bin := filepath.Join(binaries(t), "backupd")
	dir := shortDir(t)
	fake := filepath.Join(dir, "bin")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	systemctl := `#!/bin/sh
echo "$*" >> "$OUT/systemctl.log"
case "$1" in
--version) echo "systemd 252 (252.33-1~deb12u1)";;
is-active) echo inactive; exit 3;;
esac
exit 0
`
	const uid = 64123
	useradd := `#!/bin/sh
echo "$*" >> "$OUT/useradd.log"
for name; do :; done
echo "$name:x:64123:64123::/nonexistent:/usr/sbin/nologin" >> /etc/passwd
echo "$name:x:64123:" >> /etc/group
`
	for name, text := range map[string]string{"systemctl": systemctl, "useradd": useradd} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	backups := filepath.Join(state, "backups")
	cfgSrc := filepath.Join(dir, "backupd.toml")
	if err := os.WriteFile(cfgSrc, []byte("backup_dir = \""+backups+"\"\nstate_dir = \""+state+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const exe, cfg = "/mnt/backupd", "/mnt/config.toml"
	script := `set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
mkdir -p /etc/systemd/system
mount -t tmpfs tmpfs /etc/systemd/system
mount -t tmpfs -o mode=0755 tmpfs /mnt
install -m 0755 "$BIN" /mnt/backupd
install -m 0644 "$CFG" /mnt/config.toml
cp /etc/passwd "$OUT/passwd"; cp /etc/group "$OUT/group"
mount --bind "$OUT/passwd" /etc/passwd
mount --bind "$OUT/group" /etc/group
/mnt/backupd install --config /mnt/config.toml > "$OUT/install.txt" 2>&1
cp /etc/systemd/system/backupd.service "$OUT/unit"
/mnt/backupd install --config /mnt/config.toml > "$OUT/install-again.txt" 2>&1 && exit 9
/mnt/backupd uninstall > "$OUT/uninstall.txt" 2>&1
ls -A /etc/systemd/system > "$OUT/left"
`
	cmd := exec.Command(unshare, "--mount", "--fork", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"), "BIN="+bin, "CFG="+cfgSrc, "OUT="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		inst, _ := os.ReadFile(filepath.Join(dir, "install.txt"))
		t.Fatalf("install in a mount namespace: %v\n%s\ninstall said:\n%s", err, out, inst)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want, err := systemd.Unit{Exec: exe, Config: cfg, User: "backupd", StateDir: state, BackupDir: backups}.Render()
	if err != nil {
		t.Fatal(err)
	}
	if unit := read("unit"); unit != want {
		t.Errorf("the unit is not packaging/systemd's:\n%s\nwant:\n%s", unit, want)
	}
	for _, line := range []string{
		"ExecStart=" + exe + " run --config " + cfg + " --log-format json",
		"User=backupd",
		"ReadWritePaths=" + state + " -" + backups,
		"RestartPreventExitStatus=5",
	} {
		if !strings.Contains(want, "\n"+line+"\n") {
			t.Errorf("the unit lacks %q:\n%s", line, want)
		}
	}
	if got := read("install.txt"); !strings.Contains(got, "/etc/systemd/system/backupd.service") || !strings.Contains(got, "journalctl -u backupd") || !strings.Contains(got, "created the system user backupd") {
		t.Errorf("install does not say where the unit went, how to read the logs and that it made the user:\n%s", got)
	}
	if got := read("useradd.log"); !strings.Contains(got, "--system") || !strings.HasSuffix(strings.TrimSpace(got), " backupd") {
		t.Errorf("useradd was called as %q", got)
	}
	for _, d := range []string{state, backups} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := fileOwner(fi); u != uid || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: uid %d mode %04o, want uid %d mode 0700", d, u, fi.Mode().Perm(), uid)
		}
	}
	if got := read("install-again.txt"); !strings.Contains(got, "already exists") {
		t.Errorf("a second install should refuse: %s", got)
	}
	calls := read("systemctl.log")
	for _, want := range []string{"enable backupd.service", "daemon-reload", "start backupd.service", "disable backupd.service"} {
		if !strings.Contains(calls, want) {
			t.Errorf("systemctl was not asked to %q; calls:\n%s", want, calls)
		}
	}
	if left := strings.TrimSpace(read("left")); left != "" {
		t.Errorf("uninstall left %q in /etc/systemd/system", left)
	}
}

func TestInstallRefusesBadConfig(t *testing.T) {
	dir := shortDir(t)
	cfg := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(cfg, []byte("min_interval = \"-1h\"\nnosuchkey = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := run([]string{"install", "--config", cfg}, &out, &errOut); code != exitBadConfig || !strings.Contains(errOut.String(), cfg) {
		t.Fatalf("install with a bad config = %d, %q", code, errOut.String())
	}
}
