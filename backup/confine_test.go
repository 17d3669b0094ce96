package backup

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDevicePath(t *testing.T) {
	long := strings.Repeat("a/", 2100)
	tests := []struct {
		in        string
		allowRoot bool
		want      string // "" = refused
	}{
		{"UDID/Status.plist", false, "UDID/Status.plist"},
		{"UDID/Snapshot/ab/abcdef", false, "UDID/Snapshot/ab/abcdef"},
		{"UDID//Snapshot/./x", false, "UDID/Snapshot/x"},
		{"UDID/", false, "UDID"},
		{"...", false, "..."},
		{"UDID/..x/y", false, "UDID/..x/y"},
		{".", true, "."},
		{".", false, ""},
		{"UDID/.", false, "UDID"},
		{"", true, ""},
		// Absolute-looking paths map under the root, as in
		// libimobiledevice; climbing out of it is still refused.
		{"/etc/passwd", false, "etc/passwd"},
		{"/.b/6/UDID/Snapshot", false, ".b/6/UDID/Snapshot"},
		{"//UDID/Status.plist", false, "UDID/Status.plist"},
		{"/", true, "."},
		{"/", false, ""},
		{"/../etc/passwd", false, ""},
		{"/UDID/../../x", false, ""},
		{"UDID/../x", false, ""},
		{"..", true, ""},
		{"UDID/..", true, ""},
		{"../UDID", false, ""},
		{"UDID/a\x00b", false, ""},
		{`UDID\..\x`, false, ""},
		{long, false, ""},
	}
	for _, tc := range tests {
		got, err := devicePath("Test", tc.in, DefaultMaxPathLen, tc.allowRoot)
		if tc.want == "" {
			var esc *EscapeError
			if err == nil || !errors.As(err, &esc) || !errors.Is(err, ErrHostile) {
				t.Errorf("devicePath(%.40q) = %q, %v; want a refusal", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("devicePath(%.40q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if runtime.GOOS == "windows" {
		for _, p := range []string{"UDID/NUL", "UDID/C:x", "C:/x"} {
			if _, err := devicePath("Test", p, DefaultMaxPathLen, false); err == nil {
				t.Errorf("devicePath(%q) accepted on Windows", p)
			}
		}
	}
}

// TestRootEscapeError pins the text of os.Root's escape error, which
// isRootEscape relies on, and the cases it must recognise.
func TestRootEscapeError(t *testing.T) {
	base := t.TempDir()
	inside := filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(inside, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(inside, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(inside, "d", "rel")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(inside)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"..", "abs/x", "d/rel/x", "abs"} {
		_, err := r.Open(p)
		if !isRootEscape(err) {
			t.Errorf("Open(%q): %v is not recognised as an escape", p, err)
		}
	}
	if _, err := r.OpenRoot("abs"); !isRootEscape(err) {
		t.Errorf("OpenRoot through a symlink: %v", err)
	}
	if err := r.Rename("d", "abs/d"); !isRootEscape(err) {
		t.Errorf("Rename through a symlink: %v", err)
	}
	if _, err := r.Open("missing"); isRootEscape(err) {
		t.Errorf("a missing file counts as an escape: %v", err)
	}
	if isRootEscape(nil) {
		t.Error("nil counts as an escape")
	}
}

// FuzzDevicePathClean holds devicePath's shortcut (path.Clean only for
// paths that need it) and split to what path.Clean and path.Split give.
func FuzzDevicePathClean(f *testing.F) {
	for _, s := range []string{"a/b", "/a//b/", "./a/./b", "a/../b", "..", "a/..b/c", ".", "/", "a/b/.", "..a", "a/.../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := devicePath("Test", p, DefaultMaxPathLen, true)
		rel := strings.TrimLeft(p, "/")
		hasDotDot := slices.Contains(strings.Split(rel, "/"), "..")
		if err != nil {
			return
		}
		if hasDotDot {
			t.Fatalf("devicePath(%q) = %q: accepted a .. component", p, got)
		}
		if want := path.Clean(rel); rel != "" && got != want {
			t.Fatalf("devicePath(%q) = %q, path.Clean gives %q", p, got, want)
		}
		d, name := split(got)
		wd, wn := path.Split(got)
		if wd = path.Clean(wd); wd == "" || wd == "/" {
			wd = "."
		}
		if d != wd || name != wn {
			t.Fatalf("split(%q) = %q, %q; want %q, %q", got, d, name, wd, wn)
		}
	})
}

func TestScanPath(t *testing.T) {
	for _, c := range []struct {
		p             string
		dotdot, clean bool
	}{
		{"a/b", false, true},
		{"Snapshot/0a/0a1b2c", false, true},
		{"a.b/c.d", false, true},
		{"..a/b..", false, true},
		{"a//b", false, false},
		{"a/", false, false},
		{"/a", false, false},
		{"", false, false},
		{".", false, false},
		{"a/./b", false, false},
		{"a/.", false, false},
		{"..", true, false},
		{"a/../b", true, false},
		{"a/..", true, false},
	} {
		dotdot, clean := scanPath(c.p)
		if dotdot != c.dotdot || clean != c.clean {
			t.Errorf("scanPath(%q) = %v, %v; want %v, %v", c.p, dotdot, clean, c.dotdot, c.clean)
		}
	}
}
