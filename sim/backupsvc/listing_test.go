package backupsvc

import (
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/sim/fileset"
)

// TestListingMismatch: the device lists the backup folder and Snapshot at
// the start and every xx/ folder at the end, and a listing that disagrees
// with its own manifest (a size, a 0-byte file left out, a missing
// directory) ends the backup with 205, as on real iPhones.
func TestListingMismatch(t *testing.T) {
	// Sizes 0..3: many 0-byte files.
	spec := fileset.Spec{Seed: 31, Files: 80, MinSize: 0, MaxSize: 3}
	isXX := func(dir string) bool { return len(path.Base(dir)) == 2 && path.Dir(dir) == udid }
	missedOne := false
	tests := []struct {
		name string
		// incremental runs a good backup first, then the lying one.
		incremental bool
		lie         func(dir string, entries map[string]any)
		want        int
	}{
		{"a truthful host", true, nil, CodeOK},
		{"a wrong size", false, func(dir string, entries map[string]any) {
			if isXX(dir) {
				for _, e := range entries {
					m := e.(map[string]any)
					m["DLFileSize"] = m["DLFileSize"].(uint64) + 1
				}
			}
		}, CodeCorruptManifest},
		{"0-byte files left out", false, func(dir string, entries map[string]any) {
			if isXX(dir) {
				for name, e := range entries {
					if e.(map[string]any)["DLFileSize"] == uint64(0) {
						delete(entries, name)
					}
				}
			}
		}, CodeCorruptManifest},
		{"a missing directory", false, func(dir string, entries map[string]any) {
			if isXX(dir) && len(entries) > 0 && !missedOne {
				missedOne = true
				clear(entries)
			}
		}, CodeCorruptManifest},
		{"a directory for a file", false, func(dir string, entries map[string]any) {
			if isXX(dir) {
				for _, e := range entries {
					e.(map[string]any)["DLFileType"] = "DLFileTypeDirectory"
				}
			}
		}, CodeCorruptManifest},
		{"Status.plist's size at the start", true, func(dir string, entries map[string]any) {
			if e, ok := entries["Status.plist"].(map[string]any); ok && dir == udid {
				e["DLFileSize"] = uint64(1)
			}
		}, CodeCorruptManifest},
		{"Status.plist left out", true, func(dir string, entries map[string]any) {
			if dir == udid {
				delete(entries, "Status.plist")
			}
		}, CodeCorruptManifest},
		{"an unknown file type", true, func(dir string, entries map[string]any) {
			if dir == udid {
				entries["x"] = map[string]any{"DLFileType": "DLFileTypeFifo", "DLFileSize": uint64(0)}
			}
		}, CodeCorruptManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, spec)
			if tt.incremental {
				r.mustBackup(true)
			}
			before := r.stats.BackupsCompleted.Load()
			r.host.lie = tt.lie
			hostErr, serveErr := r.exchange(backupReq(!tt.incremental), Faults{})
			if hostErr != nil || serveErr != nil {
				t.Fatalf("host %v, device %v", hostErr, serveErr)
			}
			if c := r.host.finalCode(); c != int64(tt.want) {
				t.Fatalf("ErrorCode %d, want %d (%v)", c, tt.want, r.host.final)
			}
			if !slices.Contains(r.host.msgs, devicelink.MsgContentsOfDir) {
				t.Fatal("the device listed nothing")
			}
			if completed := r.stats.BackupsCompleted.Load() - before; (completed == 1) != (tt.want == CodeOK) {
				t.Fatalf("%d backups completed", completed)
			}
		})
	}
}

// TestUnreadableFiles: a device that cannot read some of its files sends
// each as an error block alone and still reports success; it sends them
// again in the next backup. With ErrorCode 104 it gives up after the
// upload instead.
func TestUnreadableFiles(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 32, Files: 30, MinSize: 10, MaxSize: 1000})
	hostErr, serveErr := r.exchange(backupReq(true), Faults{UnreadableFiles: 2})
	if hostErr != nil || serveErr != nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if c := r.host.finalCode(); c != CodeOK {
		t.Fatalf("ErrorCode %d, want 0 (%v)", c, r.host.final)
	}
	if len(r.host.unreadable) != 2 {
		t.Fatalf("unreadable %v, want 2 files", r.host.unreadable)
	}
	if last := r.stats.Last(); last.Files != 28 {
		t.Fatalf("report %+v, want 28 files sent", last)
	}
	want := slices.Clone(r.host.unreadable)
	for i := range want {
		want[i] = strings.Replace(want[i], "/Snapshot/", "/", 1)
	}

	// Next time the device sends them again, and only them.
	r.host.uploaded, r.host.unreadable = nil, nil
	r.mustBackup(false)
	r.checkTree()
	var got []string
	for _, p := range r.host.uploaded {
		if isDataPath(p) {
			got = append(got, strings.Replace(p, "/Snapshot/", "/", 1))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the next backup sent %v, want the unread %v", got, want)
	}

	hostErr, serveErr = r.exchange(backupReq(true), Faults{UnreadableFiles: 3, ErrorCode: CodeUploadErrors})
	if hostErr != nil || serveErr != nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if c := r.host.finalCode(); c != CodeUploadErrors || !slices.Contains(r.host.msgs, devicelink.MsgUploadFiles) {
		t.Fatalf("ErrorCode %d after %v, want 104 after the upload", c, r.host.msgs)
	}
}
