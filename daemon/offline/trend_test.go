package offline

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/store"
)

// TestStoredDevicesTrend: the device list carries the trend of the
// latest failures, counted from the history, with the next rung of the
// fix ladder; a success, a different cause, or fewer than three make
// none.
func TestStoredDevicesTrend(t *testing.T) {
	type run struct {
		outcome store.Outcome
		cause   cause.Code
	}
	fail := func(c cause.Code) run { return run{store.OutcomeFailed, c} }
	ok := run{store.OutcomeSuccess, cause.None}
	tests := []struct {
		name  string
		runs  []run // oldest first
		cause cause.Code
		count int
		step  string
	}{
		{"no runs", nil, cause.None, 0, ""},
		{"two failures", []run{fail(cause.Disconnected), fail(cause.Disconnected)}, cause.None, 0, ""},
		{"three failures", []run{ok, fail(cause.Disconnected), fail(cause.Disconnected), fail(cause.Disconnected)}, cause.Disconnected, 3, string(cause.RungReplug)},
		{"five stalls", []run{fail(cause.Stalled), fail(cause.Stalled), fail(cause.Stalled), fail(cause.Stalled), fail(cause.Stalled)}, cause.Stalled, 5, string(cause.RungRestartPhone)},
		{"then a success", []run{fail(cause.Disconnected), fail(cause.Disconnected), fail(cause.Disconnected), ok}, cause.None, 0, ""},
		{"skips count", []run{{store.OutcomeSkipped, cause.BatteryLow}, {store.OutcomeSkipped, cause.BatteryLow}, {store.OutcomeSkipped, cause.BatteryLow}}, cause.BatteryLow, 3, string(cause.RungOwnFix)},
		{"disk full is not about cables", []run{fail(cause.HostDiskFull), fail(cause.HostDiskFull), fail(cause.HostDiskFull), fail(cause.HostDiskFull)}, cause.HostDiskFull, 4, string(cause.RungOwnFix)},
		{"mixed causes", []run{fail(cause.Disconnected), fail(cause.Stalled), fail(cause.Disconnected), fail(cause.Disconnected)}, cause.None, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(filepath.Join(t.TempDir(), "history.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			const udid = "00008030-001A2B3C4D5E802E"
			at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
			if err := st.UpsertDevice(store.DeviceFacts{UDID: udid, Name: "iPhone"}, at); err != nil {
				t.Fatal(err)
			}
			for i, r := range tt.runs {
				start := at.Add(time.Duration(i) * time.Hour)
				if r.outcome == store.OutcomeSkipped {
					if _, err := st.RecordSkip(store.Run{UDID: udid, Trigger: store.TriggerPlugIn, Start: start, Cause: r.cause}); err != nil {
						t.Fatal(err)
					}
					continue
				}
				rec, err := st.BeginRun(store.Run{UDID: udid, Trigger: store.TriggerPlugIn, Start: start})
				if err != nil {
					t.Fatal(err)
				}
				rec.Outcome, rec.Cause, rec.End = r.outcome, r.cause, start.Add(time.Minute)
				if _, err := st.FinishRun(rec); err != nil {
					t.Fatal(err)
				}
			}
			devs, err := StoredDevices(st)
			if err != nil || len(devs) != 1 {
				t.Fatalf("StoredDevices: %v, %d devices", err, len(devs))
			}
			tr := devs[0].Trend
			if tt.cause == cause.None {
				if tr != nil {
					t.Fatalf("trend %+v, want none", *tr)
				}
				return
			}
			if tr == nil {
				t.Fatal("no trend")
			}
			_, step := cause.NextStep(tt.cause, tt.count)
			if tr.Cause != tt.cause || tr.Count != tt.count || tr.NextStep != tt.step || tr.Text == "" || tr.Text[len(tr.Text)-len(step):] != step {
				t.Fatalf("trend %+v, want %s×%d next %s", *tr, tt.cause, tt.count, tt.step)
			}
		})
	}
}
