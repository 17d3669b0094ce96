package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/backupd/backupd/packaging/systemd"
	"github.com/backupd/backupd/sim/simtest"
)

var (
	debOnce sync.Once
	debPath string
	debOut  string
)

// buildDeb runs scripts/deb.sh for amd64 once per test binary and returns
// the package's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	requireLinuxAmd64(t)
	simtest.RequireTool(t, "dpkg-deb")
	debOnce.Do(func() {
		dir, err := os.MkdirTemp("", "backupd-deb")
		if err != nil {
			t.Fatal(err)
		}
		debOut = dir
		script(t, "deb.sh", append(fixedBuild(), "OUT="+dir, "ARCHES=amd64")...)
		debPath = filepath.Join(dir, "backupd_1.2.3+4.gabcdef0_amd64.deb")
	})
	if _, err := os.Stat(debPath); err != nil {
		t.Fatalf("no package: %v", err)
	}
	return debPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if debOut != "" {
		os.RemoveAll(debOut)
	}
	os.Exit(code)
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func TestDebControl(t *testing.T) {
	deb := buildDeb(t)
	tests := []struct{ field, want string }{
		{"Package", "backupd"},
		{"Version", "1.2.3+4.gabcdef0"},
		{"Architecture", "amd64"},
		{"Depends", "usbmuxd, adduser"},
		{"Section", "admin"},
	}
	for _, tt := range tests {
		if got := strings.TrimSpace(dpkgDeb(t, "-f", deb, tt.field)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.field, got, tt.want)
		}
	}
	dir := t.TempDir()
	dpkgDeb(t, "--control", deb, dir)
	conffiles, err := os.ReadFile(filepath.Join(dir, "conffiles"))
	if err != nil || string(conffiles) != "/etc/backupd/config.toml\n" {
		t.Errorf("conffiles %q, %v", conffiles, err)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(dir, s))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, %v", s, fi, err)
		}
	}
}

// TestDebFiles checks the package's file list, owners and modes, that
// its unit is packaging/systemd's with every hardening line, and that
// systemd-analyze verify accepts it in the unpacked package.
func TestDebFiles(t *testing.T) {
	deb := buildDeb(t)
	var files []string
	for line := range strings.SplitSeq(strings.TrimSpace(dpkgDeb(t, "--contents", deb)), "\n") {
		f := strings.Fields(line) // mode owner size date time path
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s", f[5], f[1])
		}
		if !strings.HasSuffix(f[5], "/") {
			files = append(files, f[5])
			want := "-rw-r--r--"
			if f[5] == "./usr/bin/backupd" {
				want = "-rwxr-xr-x"
			}
			if f[0] != want {
				t.Errorf("%s: mode %s, want %s", f[5], f[0], want)
			}
		}
	}
	want := []string{
		"./etc/backupd/config.toml",
		"./lib/systemd/system/backupd.service",
		"./usr/bin/backupd",
		"./usr/share/bash-completion/completions/backupd",
		"./usr/share/doc/backupd/README.md",
		"./usr/share/doc/backupd/changelog.gz",
		"./usr/share/doc/backupd/copyright",
		"./usr/share/fish/vendor_completions.d/backupd.fish",
		"./usr/share/lintian/overrides/backupd",
		"./usr/share/zsh/vendor-completions/_backupd",
	}
	slices.Sort(files)
	if !slices.Equal(files, want) {
		t.Errorf("files\n%q\nwant\n%q", files, want)
	}

	root := t.TempDir()
	dpkgDeb(t, "--extract", deb, root)
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/backupd.service"))
	if err != nil {
		t.Fatal(err)
	}
	same, err := systemd.Package().Render()
	if err != nil {
		t.Fatal(err)
	}
	if string(unit) != same {
		t.Errorf("the package's unit is not packaging/systemd's Package():\n%s", unit)
	}
	for _, line := range []string{
		"User=backupd", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/backupd -/var/lib/backupd/backups",
		"ProtectHome=yes", "PrivateTmp=yes", "UMask=0077",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
		"RestartPreventExitStatus=5", "After=network.target usbmuxd.service",
	} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("the unit lacks %q", line)
		}
	}
	// verify checks that ExecStart exists: the copy verified runs the
	// package's binary where it was unpacked, and is otherwise the same.
	analyze := simtest.RequireTool(t, "systemd-analyze")
	check := filepath.Join(t.TempDir(), "backupd.service")
	text := strings.Replace(string(unit), "ExecStart=/usr/bin/backupd ", "ExecStart="+filepath.Join(root, "usr/bin/backupd")+" ", 1)
	if err := os.WriteFile(check, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", check).CombinedOutput()
	if err != nil || strings.Contains(string(out), "backupd.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestLintian: lintian reports no error on the package. Its warnings are
// logged; overrides are in packaging/debian/lintian-overrides, each with
// its reason.
func TestLintian(t *testing.T) {
	deb := buildDeb(t)
	lintian := simtest.RequireTool(t, "lintian")
	out, _ := exec.Command(lintian, "--allow-root", deb).CombinedOutput()
	var errs []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		t.Errorf("lintian errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("lintian:\n%s", out)
}
