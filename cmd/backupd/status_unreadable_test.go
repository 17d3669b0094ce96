package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
)

// TestStatusUnreadableFiles: the files the iPhone could not read are
// named in status, with what became of the backup and the fix, and are
// in status --json.
func TestStatusUnreadableFiles(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.Local)
	files := []api.UnreadableFile{
		{Name: "CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC", Path: "U/Snapshot/d0/d0d3", Message: "Input/output error"},
		{Name: "HomeDomain/Library/a.plist", Path: "U/Snapshot/08/08d8", Message: "Input/output error"},
		{Name: "HomeDomain/Library/b.plist", Path: "U/Snapshot/09/09aa", Message: "Input/output error"},
		{Name: "HomeDomain/Library/c.plist", Path: "U/Snapshot/0a/0abb", Message: "Input/output error"},
	}
	kept := &api.Run{Start: now.Add(-time.Hour), Outcome: api.OutcomeSuccess, Cause: cause.DeviceUploadErrors, UnreadableCount: 5, Unreadable: files}
	fillCause(kept)
	failed := &api.Run{Start: now.Add(-time.Hour), Outcome: api.OutcomeFailed, Cause: cause.DeviceUploadErrors, DeviceErrorCode: 104, UnreadableCount: 1, Unreadable: files[:1]}
	fillCause(failed)
	fix := cause.Lookup(cause.DeviceUploadErrors).Fix
	tests := []struct {
		name string
		run  *api.Run
		want []string
		not  []string
	}{
		{"kept", kept, []string{
			"last attempt 2026-11-24 11:00 success",
			"the iPhone could not read 5 files (CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC, HomeDomain/Library/a.plist, HomeDomain/Library/b.plist, 2 more), the backup was kept without them. Fix: " + fix,
		}, []string{"c.plist"}},
		{"104", failed, []string{
			"failed (device_upload_errors): ",
			"the iPhone could not read 1 file (CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC), the backup was not kept",
		}, nil},
		{"none", &api.Run{Start: now.Add(-time.Hour), Outcome: api.OutcomeSuccess}, nil, []string{"could not read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deviceEntry{Device: api.Device{UDID: "U", LastSuccess: now.Add(-time.Hour), LastAttempt: tt.run}}
			got := statusLine(d, now)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q does not contain %q", got, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("%q contains %q", got, w)
				}
			}
			if n := strings.Count(got, "Fix: "); n != 1 && tt.run.UnreadableCount > 0 {
				t.Errorf("%q gives the fix %d times", got, n)
			}
		})
	}
	b, err := json.Marshal(statusReport{Devices: []deviceEntry{{Device: api.Device{UDID: "U", LastAttempt: kept}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"unreadable_count":5`, `"name":"HomeDomain/Library/c.plist"`, `"message":"Input/output error"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("status --json lacks %s: %s", w, b)
		}
	}
}
