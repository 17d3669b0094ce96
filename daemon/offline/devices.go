// Package offline reads what backupd keeps on disk the way the local API
// shows it: the devices the history knows with their latest run and
// trend, runs with their causes in words, and the backups in backup_dir,
// verified. The daemon lays its live state over it; the command line and
// doctor use it as it is when no daemon runs.
package offline

import (
	"fmt"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
)

// StoredDevices lists what the history knows of each device and its latest
// run: the daemon adds what it sees live, and the CLI shows it as it is
// when no daemon runs.
func StoredDevices(st *store.Store) ([]api.Device, error) {
	known, err := st.Devices()
	if err != nil {
		return nil, err
	}
	latest, err := st.LatestPerDevice()
	if err != nil {
		return nil, err
	}
	last := make(map[string]store.Run, len(latest))
	for _, r := range latest {
		last[r.UDID] = r
	}
	out := make([]api.Device, 0, len(known))
	for _, k := range known {
		dev := api.Device{
			UDID: k.UDID, Name: k.Name, ProductType: k.ProductType, IOSVersion: k.IOSVersion,
			State: api.StateAbsent, FirstSeen: k.FirstSeen, LastSeen: k.LastSeen, LastSuccess: k.LastSuccess.Time,
		}
		if r, ok := last[k.UDID]; ok {
			dev.LastAttempt = RunView(r)
		}
		tr, err := deviceTrend(st, k.UDID)
		if err != nil {
			return nil, err
		}
		dev.Trend = tr
		out = append(out, dev)
	}
	return out, nil
}

// trendRuns is how many of a device's latest runs the trend looks at:
// enough to reach the last rung of the fix ladder and a few more.
const trendRuns = 12

// deviceTrend reads the device's latest runs for a run of failures with
// one cause (cause.TrendOf), nil when there is none.
func deviceTrend(st *store.Store, udid string) (*api.Trend, error) {
	page, err := st.History(udid, store.HistoryQuery{Limit: trendRuns})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", udid, err)
	}
	causes := make([]cause.Code, 0, len(page.Runs))
	for _, r := range page.Runs {
		if r.Kind == store.KindRestore {
			continue // a restore says nothing about the backups
		}
		switch r.Outcome {
		case store.OutcomeRunning:
			continue // not over yet: it neither breaks nor extends the run
		case store.OutcomeSuccess:
			causes = append(causes, cause.None)
		default:
			causes = append(causes, r.Cause)
		}
	}
	tr, ok := cause.TrendOf(causes)
	if !ok {
		return nil, nil
	}
	return &api.Trend{Cause: tr.Code, Count: tr.Count, NextStep: string(tr.Rung), Text: tr.Text}, nil
}

// RunView converts a history record for the API, with its cause in words.
func RunView(r store.Run) *api.Run {
	out := &api.Run{
		ID: uint64(r.ID), UDID: r.UDID, DeviceName: r.DeviceName, IOSVersion: r.IOSVersion,
		Trigger: string(r.Trigger), Start: r.Start, End: r.End, Outcome: string(r.Outcome),
		Cause: r.Cause, DeviceErrorCode: r.DeviceErrorCode, DeviceErrorText: r.DeviceErrorText,
		Errno: r.Errno, Bytes: r.Bytes, Files: r.Files, Kind: string(r.Kind), Encrypted: r.Encrypted,
		Link: r.Link, LinkSpeed: r.LinkSpeed, Verify: r.Verify, VersionPath: r.VersionPath, Note: r.Note,
		Source: r.Source, Version: r.Version, UnreadableCount: r.UnreadableCount,
	}
	for _, u := range r.Unreadable {
		out.Unreadable = append(out.Unreadable, api.UnreadableFile{Name: u.Name, Path: u.Path, Message: u.Message})
	}
	if r.Cause != cause.None {
		in := cause.Lookup(r.Cause)
		out.Summary, out.Fix = in.Summary, in.Fix
	}
	return out
}
