package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
)

// TestRunRecordsUnreadableFiles: the files the iPhone could not read are
// kept in the run's record, read back whole, and seen in the device's
// latest run.
func TestRunRecordsUnreadableFiles(t *testing.T) {
	s := newStore(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r := begin(t, s, run("U1", t0))
	r.Cause = cause.DeviceUploadErrors
	r.UnreadableCount = 3
	r.Unreadable = []UnreadableFile{
		{Name: "CameraRollDomain/Media/DCIM/100APPLE/IMG_0001.HEIC", Path: "U1/Snapshot/d0/d0d309050701fd9807cbc9d2f332630c4c25a718", Message: "Input/output error"},
		{Name: "HomeDomain/Library/x.plist", Path: "U1/Snapshot/08/08d813d2381cb98a4c5bc4093054c223d295ecfd", Message: "Input/output error"},
	}
	want := finish(t, s, r, OutcomeSuccess, t0.Add(time.Minute))
	got, err := s.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.UnreadableCount != 3 || !reflect.DeepEqual(got.Unreadable, want.Unreadable) || len(got.Unreadable) != 2 {
		t.Fatalf("read back %d: %+v, want %+v", got.UnreadableCount, got.Unreadable, want.Unreadable)
	}
	latest, err := s.LatestPerDevice()
	if err != nil || len(latest) != 1 || latest[0].UnreadableCount != 3 || len(latest[0].Unreadable) != 2 {
		t.Fatalf("latest %+v, %v", latest, err)
	}
}
