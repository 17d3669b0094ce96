package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDistReproducible builds the linux/amd64 archive twice, from the same
// commit into two folders, and compares the bytes; then checks what the
// archive holds and that its binary is stripped, static and stamped.
// make dist builds all six targets the same way.
func TestDistReproducible(t *testing.T) {
	requireLinuxAmd64(t)
	var outs [2]string
	for i := range outs {
		outs[i] = t.TempDir()
		script(t, "dist.sh", append(fixedBuild(), "OUT="+outs[i], "TARGETS=linux/amd64")...)
	}
	names := []string{"SHA256SUMS", "backupd-v1.2.3-4-gabcdef0-linux-amd64.tar.gz"}
	for _, n := range names {
		a, err := os.ReadFile(filepath.Join(outs[0], n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(outs[1], n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of one commit (%d and %d bytes)", n, len(a), len(b))
		}
	}
	sums, _ := os.ReadFile(filepath.Join(outs[0], "SHA256SUMS"))
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = outs[0]
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s\n%s", err, out, sums)
	}

	dir := filepath.Join(t.TempDir(), "x")
	entries := untar(t, filepath.Join(outs[0], names[1]), dir)
	top := "backupd-v1.2.3-4-gabcdef0-linux-amd64/"
	want := []string{"", "README.md", "backupd", "completions/", "completions/_backupd", "completions/backupd.bash", "completions/backupd.fish", "config.example.toml"}
	for i := range want {
		want[i] = top + want[i]
	}
	if !slices.Equal(entries, want) {
		t.Errorf("archive entries\n%q\nwant\n%q", entries, want)
	}
	bin := filepath.Join(dir, top, "backupd")
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "backupd v1.2.3-4-gabcdef0\n" {
		t.Errorf("backupd version = %q, %v", out, err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, sec := range []string{".symtab", ".debug_info", ".interp"} {
		if f.Section(sec) != nil {
			t.Errorf("the release binary has %s: not stripped, or not static (cgo)", sec)
		}
	}
}

// untar extracts a .tar.gz into dir and returns its entry names in order,
// checking every entry is root's with the fixed time.
func untar(t *testing.T, archive, dir string) []string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 1767225600 {
			t.Errorf("%s: uid %d gid %d time %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if strings.HasSuffix(h.Name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	return names
}
