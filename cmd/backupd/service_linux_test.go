package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/sim/simtest"
)

// TestInstallWritesSystemdUnit runs `backupd install` and `uninstall` as
// root in a private mount namespace, where /etc/systemd/system and /run are
// empty tmpfs mounts and systemctl is a stand-in that records its calls,
// and checks the unit kardianos/service wrote.
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
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte(systemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "backupd.toml")
	if err := os.WriteFile(cfg, []byte("backup_dir = \""+dir+"\"\nstate_dir = \""+dir+"/state\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
mkdir -p /etc/systemd/system
mount -t tmpfs tmpfs /etc/systemd/system
"$BIN" install --config "$CFG" > "$OUT/install.txt" 2>&1
cp /etc/systemd/system/backupd.service "$OUT/unit"
"$BIN" install --config "$CFG" > "$OUT/install-again.txt" 2>&1 && exit 9
"$BIN" uninstall > "$OUT/uninstall.txt" 2>&1
ls -A /etc/systemd/system > "$OUT/left"
`
	cmd := exec.Command(unshare, "--mount", "--fork", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"), "BIN="+bin, "CFG="+cfg, "OUT="+dir)
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
	unit := read("unit")
	for _, want := range []string{
		"ExecStart=" + bin + ` "run" "--config" "` + cfg + `" "--log-format" "json"` + "\n",
		"Restart=on-failure\n",
		"After=network.target usbmuxd.service\n",
		"Wants=usbmuxd.service\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if got := read("install.txt"); !strings.Contains(got, "/etc/systemd/system/backupd.service") || !strings.Contains(got, "journalctl -u backupd") {
		t.Errorf("install does not say where the unit went and how to read the logs:\n%s", got)
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
