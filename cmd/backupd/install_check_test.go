package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTree is a file system of owners for notRootOnly.
type fakeTree map[string]owner

func (f fakeTree) stat(p string) (owner, error) {
	o, ok := f[p]
	if !ok {
		return owner{}, fs.ErrNotExist
	}
	return o, nil
}

func rootDir(mode fs.FileMode) owner { return owner{mode: fs.ModeDir | mode} }

func TestNotRootOnly(t *testing.T) {
	base := fakeTree{
		"/":              rootDir(0o755),
		"/usr":           rootDir(0o755),
		"/usr/bin":       rootDir(0o755),
		"/usr/bin/bd":    {mode: 0o755},
		"/tmp":           rootDir(0o1777),
		"/tmp/bd":        {mode: 0o755},
		"/home":          rootDir(0o755),
		"/home/al":       {uid: 1000, gid: 1000, mode: fs.ModeDir | 0o755},
		"/home/al/bd":    {mode: 0o755},
		"/opt":           rootDir(0o755),
		"/opt/staff":     {gid: 50, mode: fs.ModeDir | 0o2775},
		"/opt/staff/bd":  {mode: 0o755},
		"/opt/wheel":     {gid: 0, mode: fs.ModeDir | 0o775},
		"/opt/wheel/bd":  {mode: 0o755},
		"/etc":           rootDir(0o755),
		"/etc/b":         rootDir(0o755),
		"/etc/b/c.toml":  {mode: 0o666},
		"/etc/b/ok.toml": {mode: 0o644},
		"/etc/b/al.toml": {uid: 1000, mode: 0o644},
	}
	tests := []struct {
		path, want string // want: "" for fine, else a part of the reason
	}{
		{"/usr/bin/bd", ""},
		{"/etc/b/ok.toml", ""},
		{"/etc/b/missing.toml", ""}, // judged by its folders
		{"/opt/wheel/bd", ""},       // root's group may write
		{"/tmp/bd", "/tmp is writable by everyone"},
		{"/home/al/bd", "/home/al is owned by uid 1000"},
		{"/opt/staff/bd", "/opt/staff is writable by group 50"},
		{"/etc/b/c.toml", "/etc/b/c.toml is writable by everyone"},
		{"/etc/b/al.toml", "/etc/b/al.toml is owned by uid 1000"},
		{"/tmp/missing.toml", "/tmp is writable by everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := notRootOnly(tt.path, base.stat)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want a reason with %q", err, tt.want)
			}
		})
	}
}

func TestCheckInstallPathsSaysWhatToDo(t *testing.T) {
	tree := fakeTree{
		"/":         rootDir(0o755),
		"/tmp":      rootDir(0o1777),
		"/tmp/bd":   {mode: 0o755},
		"/etc":      rootDir(0o755),
		"/etc/c":    {mode: 0o644},
		"/etc/open": {mode: 0o646},
	}
	tests := []struct {
		exe, config string
		want        []string
	}{
		{"/tmp/bd", "/etc/c", []string{"/tmp is writable by everyone", "sudo install -m 0755 /tmp/bd /usr/local/bin/backupd", "--config /etc/c"}},
		{"/etc/c", "/etc/open", []string{"configuration /etc/open", "/etc/open is writable by everyone", "sudo install -D -m 0644 /etc/open /etc/backupd/config.toml"}},
	}
	for _, tt := range tests {
		err := checkInstallPaths(tt.exe, tt.config, tree.stat)
		if err == nil {
			t.Errorf("%s with %s: accepted", tt.exe, tt.config)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s with %s: %q lacks %q", tt.exe, tt.config, err, w)
			}
		}
	}
	if err := checkInstallPaths("/etc/c", "/etc/c", tree.stat); err != nil {
		t.Errorf("root's files refused: %v", err)
	}
}

// TestInstallRefusesWritableConfig runs install with a configuration
// file anyone can write: it is refused before anything is installed.
func TestInstallRefusesWritableConfig(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have ACLs, not modes")
	}
	dir := shortDir(t)
	cfg := filepath.Join(dir, "open.toml")
	writeFile(t, cfg, "backup_dir = \""+dir+"\"\n")
	if err := os.Chmod(cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	code := run([]string{"install", "--config", cfg}, &out, &errOut)
	if code != exitError || !strings.Contains(errOut.String(), "refusing to install") || !strings.Contains(errOut.String(), "writable by everyone") {
		t.Fatalf("install = %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	if out.String() != "" {
		t.Errorf("a refused install said: %s", out.String())
	}
}
