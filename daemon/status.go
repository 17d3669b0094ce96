package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
)

// This file answers the API's questions from the history and the actors'
// live state (the backend the handlers in api.go call).

// manualTimeout bounds the wait for an actor to take a manual request;
// actors answer at once unless the daemon is stopping.
const manualTimeout = 5 * time.Second

func (d *Daemon) health() api.Health {
	d.mu.Lock()
	u := d.usbmuxd
	d.mu.Unlock()
	connected := 0
	for _, a := range d.allActors() {
		if a.snapshot().connected {
			connected++
		}
	}
	status := "ok"
	if !u.Connected {
		status = "degraded"
	}
	if d.isStopping() {
		status = "stopping"
	}
	now := d.now()
	return api.Health{
		Status:         status,
		Version:        d.version,
		PID:            os.Getpid(),
		Started:        d.started,
		UptimeSeconds:  now.Sub(d.started).Seconds(),
		StateDir:       d.cfg.StateDir,
		BackupDir:      d.cfg.BackupDir,
		Usbmuxd:        u,
		Connected:      connected,
		BackupsRunning: len(d.slots),
		MaxConcurrent:  cap(d.slots),
		Goroutines:     runtime.NumGoroutine(),
	}
}

// devices lists every device the history knows or that is connected, by
// name then UDID.
func (d *Daemon) devices() ([]api.Device, error) {
	stored, err := StoredDevices(d.store)
	if err != nil {
		return nil, err
	}
	byUDID := map[string]*api.Device{}
	for i := range stored {
		byUDID[stored[i].UDID] = &stored[i]
	}
	for _, a := range d.allActors() {
		dev := byUDID[a.udid]
		if dev == nil {
			dev = &api.Device{UDID: a.udid, State: api.StateAbsent}
			byUDID[a.udid] = dev
		}
		applyView(dev, a.snapshot())
	}
	// Attached phones that have not settled yet have no actor.
	if d.tracker != nil {
		for _, s := range d.tracker.Statuses(d.now()) {
			if !s.Attached || s.Present {
				continue
			}
			dev := byUDID[s.UDID]
			if dev == nil {
				dev = &api.Device{UDID: s.UDID}
				byUDID[s.UDID] = dev
			}
			if !dev.Connected {
				dev.Connected, dev.Link, dev.LinkSpeed = true, "USB", s.Speed
				dev.State, dev.StateSince = api.StateSettling, s.AttachedSince
				dev.RecentFlaps = s.RecentFlaps
			}
		}
	}
	out := make([]api.Device, 0, len(byUDID))
	for _, dev := range byUDID {
		if dev.State == "" {
			dev.State = api.StateAbsent
		}
		out = append(out, *dev)
	}
	slices.SortFunc(out, func(a, b api.Device) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.UDID, b.UDID)
	})
	return out, nil
}

func (d *Daemon) device(udid string) (api.Device, error) {
	all, err := d.devices()
	if err != nil {
		return api.Device{}, err
	}
	for _, dev := range all {
		if dev.UDID == udid {
			return dev, nil
		}
	}
	return api.Device{}, &api.Error{Code: api.ErrNotFound, Message: "no iPhone with UDID " + udid + " is known"}
}

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

// applyView lays an actor's live state over what the history says.
func applyView(dev *api.Device, v view) {
	if v.name != "" {
		dev.Name = v.name
	}
	if v.productType != "" {
		dev.ProductType = v.productType
	}
	if v.iosVersion != "" {
		dev.IOSVersion = v.iosVersion
	}
	dev.Connected = v.connected
	dev.RecentFlaps = v.flaps
	dev.Transitions = v.transitions
	if !v.connected {
		dev.State = api.StateAbsent
		return
	}
	dev.Link, dev.LinkSpeed = v.link, v.speed
	dev.State, dev.StateSince, dev.NextAttempt = v.state, v.since, v.next
	dev.Cause, dev.Summary, dev.Note = v.cause, summary(v.cause), v.note
	if v.cause != cause.None {
		dev.Fix = cause.Lookup(v.cause).Fix
	}
	dev.Progress = v.progress
	if v.battery >= 0 {
		b := v.battery
		dev.BatteryLevel = &b
	}
	dev.Charging, dev.WillEncrypt = v.charging, v.willEncrypt
}

// history returns a page of one device's runs (all devices' when udid is
// empty), newest first.
func (d *Daemon) history(udid string, q api.RunsQuery) (api.RunsPage, error) {
	return d.runs(api.RunsQuery{UDID: udid, Outcomes: q.Outcomes, Causes: q.Causes, Since: q.Since, Until: q.Until, Limit: q.Limit, Cursor: q.Cursor})
}

// runs answers a filtered query, newest first. The history's index
// filters by device and outcome; cause and time are filtered here, page
// by page, asking each time for no more runs than are still wanted so
// that the cursor handed back continues exactly after the last run
// returned.
func (d *Daemon) runs(q api.RunsQuery) (api.RunsPage, error) {
	want := q.Limit
	if want <= 0 {
		want = store.DefaultHistoryLimit
	}
	want = min(want, store.MaxHistoryLimit)
	var outcomes []store.Outcome
	for _, o := range q.Outcomes {
		outcomes = append(outcomes, store.Outcome(o))
	}
	page := api.RunsPage{Runs: []api.Run{}}
	cursor := q.Cursor
	for {
		hp, err := d.store.History(q.UDID, store.HistoryQuery{Cursor: cursor, Limit: want - len(page.Runs), Outcomes: outcomes})
		if errors.Is(err, store.ErrBadCursor) {
			return api.RunsPage{}, &api.Error{Code: api.ErrBadRequest, Message: err.Error()}
		}
		if err != nil {
			return api.RunsPage{}, err
		}
		past := false
		for _, r := range hp.Runs {
			if !q.Until.IsZero() && !r.Start.Before(q.Until) {
				continue
			}
			if !q.Since.IsZero() && r.Start.Before(q.Since) {
				past = true
				break
			}
			if len(q.Causes) > 0 && !slices.Contains(q.Causes, r.Cause) {
				continue
			}
			page.Runs = append(page.Runs, *RunView(r))
		}
		switch {
		case past || hp.Next == "":
			return page, nil
		case len(page.Runs) >= want:
			page.Next = hp.Next
			return page, nil
		}
		cursor = hp.Next
	}
}

func (d *Daemon) run(id uint64) (api.Run, error) {
	r, err := d.store.Run(store.RunID(id))
	if errors.Is(err, store.ErrNotFound) {
		return api.Run{}, &api.Error{Code: api.ErrNotFound, Message: "no run " + store.RunID(id).String()}
	}
	if err != nil {
		return api.Run{}, err
	}
	return *RunView(r), nil
}

// backupNow asks a connected device's actor for a backup.
func (d *Daemon) backupNow(ctx context.Context, udid string, full bool) error {
	if d.isStopping() {
		return &api.Error{Code: api.ErrUnavailable, Message: errStopping.Error()}
	}
	a, ok := d.actor(udid)
	if !ok {
		if _, err := d.store.Device(udid); err == nil {
			return &api.Error{Code: api.ErrNotConnected, Message: errNotConnected.Error()}
		}
		return &api.Error{Code: api.ErrNotFound, Message: "no iPhone with UDID " + udid + " is known"}
	}
	ctx, cancel := context.WithTimeout(ctx, manualTimeout)
	defer cancel()
	reply := make(chan error, 1)
	if !a.send(ctx, actorMsg{kind: msgManual, full: full, reply: reply}) {
		return &api.Error{Code: api.ErrUnavailable, Message: "the device's worker did not answer: " + ctx.Err().Error()}
	}
	var err error
	select {
	case err = <-reply:
	case <-ctx.Done():
		return &api.Error{Code: api.ErrUnavailable, Message: "the device's worker did not answer: " + ctx.Err().Error()}
	}
	var refused *refusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotConnected):
		return &api.Error{Code: api.ErrNotConnected, Message: err.Error()}
	case errors.Is(err, errBusy):
		return &api.Error{Code: api.ErrBusy, Message: err.Error()}
	case errors.Is(err, errStopping):
		return &api.Error{Code: api.ErrUnavailable, Message: err.Error()}
	case errors.As(err, &refused):
		return &api.Error{Code: api.ErrRefused, Message: err.Error()}
	}
	return err
}

// RunView converts a history record for the API, with its cause in words.
func RunView(r store.Run) *api.Run {
	out := &api.Run{
		ID: uint64(r.ID), UDID: r.UDID, DeviceName: r.DeviceName, IOSVersion: r.IOSVersion,
		Trigger: string(r.Trigger), Start: r.Start, End: r.End, Outcome: string(r.Outcome),
		Cause: r.Cause, DeviceErrorCode: r.DeviceErrorCode, DeviceErrorText: r.DeviceErrorText,
		Errno: r.Errno, Bytes: r.Bytes, Files: r.Files, Kind: string(r.Kind), Encrypted: r.Encrypted,
		Link: r.Link, LinkSpeed: r.LinkSpeed, Verify: r.Verify, VersionPath: r.VersionPath, Note: r.Note,
	}
	if r.Cause != cause.None {
		in := cause.Lookup(r.Cause)
		out.Summary, out.Fix = in.Summary, in.Fix
	}
	return out
}
