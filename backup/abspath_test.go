package backup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/sim"
)

// TestAbsoluteDevicePaths: real iPhones have named absolute-looking paths
// ("/.b/6/...") in file operations, and their backups completed on hosts
// that map them under the backup directory, as libimobiledevice does by
// joining with '/'. Each operation maps them under the staging root, and
// never reaches the host path they spell (here the sentinel's own
// absolute path), nor climbs out with "..", nor follows a symlink out.
func TestAbsoluteDevicePaths(t *testing.T) {
	type check func(t *testing.T, h *harness, r reply)
	has := func(t *testing.T, h *harness, rel, want string) {
		t.Helper()
		if got, err := h.read(rel); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	// sentinel is the host's absolute path of the bait beside the root.
	sentinel := func(h *harness) string { return filepath.ToSlash(filepath.Join(h.base, "sentinel")) }
	link := func(h *harness) {
		if err := os.Symlink(filepath.Join(h.base, "sentinel"), filepath.Join(h.stage, "U", "link")); err != nil {
			h.t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(h *harness)
		msg   func(h *harness) []any
		check check
	}{
		{
			name: "CreateDirectory maps under the root",
			msg:  func(h *harness) []any { return []any{devicelink.MsgCreateDirectory, "/.b/6/U/Snapshot"} },
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if fi, err := os.Stat(filepath.Join(h.stage, ".b", "6", "U", "Snapshot")); err != nil || !fi.IsDir() {
					t.Fatalf("not created under the root: %v", err)
				}
			},
		},
		{
			name: "CreateDirectory of a host path stays inside",
			msg:  func(h *harness) []any { return []any{devicelink.MsgCreateDirectory, sentinel(h) + "/made"} },
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if fi, err := os.Stat(filepath.Join(h.stage, filepath.FromSlash(sentinel(h)), "made")); err != nil || !fi.IsDir() {
					t.Fatalf("not created under the root: %v", err)
				}
			},
		},
		{
			name: "CreateDirectory climbing out is refused",
			msg:  func(h *harness) []any { return []any{devicelink.MsgCreateDirectory, "/../sentinel/made"} },
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
			},
		},
		{
			name:  "MoveItems with absolute sources and destinations",
			setup: func(h *harness) { h.write(".b/6/U/Snapshot/ab/f", "new"); h.write("U/ab/f", "old") },
			msg: func(h *harness) []any {
				return []any{devicelink.MsgMoveItems, map[string]any{"/.b/6/U/Snapshot/ab/f": "/U/ab/f"}, map[string]any{}, 95.0}
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				has(t, h, "U/ab/f", "new")
				if _, err := h.read(".b/6/U/Snapshot/ab/f"); err == nil {
					t.Error("the source is still there")
				}
			},
		},
		{
			name: "MoveItems onto a host path stays inside",
			setup: func(h *harness) {
				h.write("U/a", "a")
				h.write(filepath.ToSlash(filepath.Join(sentinel(h), "keep")), "old")
			},
			msg: func(h *harness) []any {
				return []any{devicelink.MsgMoveItems, map[string]any{"/U/a": sentinel(h) + "/keep"}, map[string]any{}, 95.0}
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				has(t, h, filepath.ToSlash(filepath.Join(sentinel(h), "keep")), "a")
			},
		},
		{
			name:  "MoveItems through a symlink is refused",
			setup: func(h *harness) { link(h); h.write("U/a", "a") },
			msg: func(h *harness) []any {
				return []any{devicelink.MsgMoveItems, map[string]any{"/U/a": "/U/link/keep"}, map[string]any{}, 95.0}
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
			},
		},
		{
			name:  "CopyItem with absolute paths",
			setup: func(h *harness) { h.write("U/src", "copied"); h.write(".b/6/other", "") },
			msg:   func(h *harness) []any { return []any{devicelink.MsgCopyItem, "/U/src", "/.b/6/dst"} },
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				has(t, h, ".b/6/dst", "copied")
				has(t, h, "U/src", "copied")
			},
		},
		{
			name:  "CopyItem from a host path reads inside",
			setup: func(h *harness) { h.write(filepath.ToSlash(filepath.Join(sentinel(h), "keep")), "inside") },
			msg: func(h *harness) []any {
				return []any{devicelink.MsgCopyItem, sentinel(h) + "/keep", "/U/got"}
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				has(t, h, "U/got", "inside") // not "bait"
			},
		},
		{
			name:  "CopyItem climbing out is refused",
			setup: func(h *harness) { h.write("U/src", "x") },
			msg:   func(h *harness) []any { return []any{devicelink.MsgCopyItem, "/U/src", "/../sentinel/copy"} },
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
			},
		},
		{
			name:  "DownloadFiles with absolute paths",
			setup: func(h *harness) { h.write("U/Status.plist", "status") },
			msg: func(h *harness) []any {
				return []any{devicelink.MsgDownloadFiles, []any{"/U/Status.plist", "/.b/6/none"}, map[string]any{}, 1.0}
			},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.st.Code != devicelink.CodeMultiStatus {
					t.Fatalf("host %v, status %+v", r.hostErr, r.st)
				}
				if got := string(r.files["/U/Status.plist"]); got != "status" {
					t.Errorf("downloaded %q; want the file under the root", got)
				}
				if _, ok := r.failed["/.b/6/none"]; !ok {
					t.Errorf("a missing file was not failed: %v", r.failed)
				}
			},
		},
		{
			name: "DownloadFiles of a host path never reads it",
			msg: func(h *harness) []any {
				return []any{devicelink.MsgDownloadFiles, []any{sentinel(h) + "/keep"}, map[string]any{}, 1.0}
			},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.st.Code != devicelink.CodeMultiStatus {
					t.Fatalf("host %v, status %+v", r.hostErr, r.st)
				}
				for p, b := range r.files {
					t.Errorf("sent %s: %q", p, b)
				}
			},
		},
		{
			name:  "DownloadFiles through a symlink is refused",
			setup: link,
			msg: func(h *harness) []any {
				return []any{devicelink.MsgDownloadFiles, []any{"/U/link/keep"}, map[string]any{}, 1.0}
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if len(r.files) > 0 {
					t.Errorf("sent %v", r.files)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			if tc.setup != nil {
				tc.setup(h)
			}
			r := h.exchange(tc.msg(h), nil)
			tc.check(t, h, r)
			h.checkSentinel()
		})
	}
}

// TestRestoreAbsolutePaths: in a restore too, a leading '/' maps under
// the backup directory, and the path must still name the backup being
// restored.
func TestRestoreAbsolutePaths(t *testing.T) {
	r := &restoreFS{prefix: "SRC/"}
	tests := []struct{ in, want string }{ // want "" = refused
		{"SRC/Status.plist", "Status.plist"},
		{"/SRC/Status.plist", "Status.plist"},
		{"//SRC/ab/abcd", "ab/abcd"},
		{"/etc/passwd", ""},
		{"/SRC/../OTHER/Status.plist", ""},
		{"/SRC/", ""},
	}
	for _, tc := range tests {
		got, err := r.path("Test", tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrHostile) {
				t.Errorf("path(%q) = %q, %v; want a refusal", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("path(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestAbsolutePathsBackup: a phone that names every path of its backup
// with a leading '/' backs up as it does with idevicebackup2: full and
// incremental, everything in its usual place, nothing beside the backups.
func TestAbsolutePathsBackup(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 40}, Faults: sim.Faults{AbsolutePaths: true}}, testOptions(t))
	before, err := listTree(r.base)
	if err != nil {
		t.Fatal(err)
	}
	r.mustBackup(Target{Repo: r.target, ForceFull: true})
	checkMatchesDevice(t, r.latest(), r.dev)
	r.dev.Mutate(0.1)
	res := r.mustBackup(Target{Repo: r.target})
	if res.Full {
		t.Fatal("the second backup was not incremental")
	}
	checkMatchesDevice(t, r.latest(), r.dev)
	after, err := listTree(r.base)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		if !slices.Contains(before, p) && p != "backups" && !strings.HasPrefix(p, "backups/") {
			t.Errorf("new beside the backups: %s", p)
		}
	}
}
