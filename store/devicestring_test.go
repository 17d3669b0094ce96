package store

import (
	"strings"
	"testing"
)

// TestOldRecordsNameCleaned: a record written before names were cleaned
// where they leave the phone (issue #16) holds the name as the phone sent
// it; reading it gives the cleaned name, so status, history, hooks and
// metrics never print CR, LF, ESC or a megabyte from the history.
func TestOldRecordsNameCleaned(t *testing.T) {
	hostile := "Phone\r\nFAKE LINE\x1b[2J\xff" + strings.Repeat("x", 1_000_000)
	s := newStore(t)
	r := run("00008030-001A2B3C4D5E802E", t0)
	r.DeviceName = hostile
	r = finish(t, s, begin(t, s, r), OutcomeSuccess, t0.Add(1))
	if err := s.UpsertDevice(DeviceFacts{UDID: r.UDID, Name: hostile, IOSVersion: "18.3\n"}, t0); err != nil {
		t.Fatal(err)
	}
	check := func(what, name string) {
		t.Helper()
		if len(name) > 255 || strings.ContainsAny(name, "\r\n\x1b") || !strings.HasPrefix(name, "Phone\uFFFD\uFFFDFAKE LINE\uFFFD[2J\uFFFD") {
			t.Errorf("%s name: %d bytes, %.60q", what, len(name), name)
		}
	}
	got, err := s.Run(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	check("run", got.DeviceName)
	page, err := s.History(r.UDID, HistoryQuery{})
	if err != nil || len(page.Runs) != 1 {
		t.Fatalf("History: %+v, %v", page, err)
	}
	check("history", page.Runs[0].DeviceName)
	devs, err := s.Devices()
	if err != nil || len(devs) != 1 {
		t.Fatalf("Devices: %+v, %v", devs, err)
	}
	check("devices", devs[0].Name)
	d, err := s.Device(r.UDID)
	if err != nil {
		t.Fatal(err)
	}
	check("device", d.Name)
	if d.IOSVersion != "18.3\uFFFD" {
		t.Errorf("device iOS version %q", d.IOSVersion)
	}
}
