package daemon

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/offline"
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
	stored, err := offline.StoredDevices(d.store)
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
			page.Runs = append(page.Runs, *offline.RunView(r))
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
	return *offline.RunView(r), nil
}

// requestActor returns udid's actor for a request someone makes of the
// device, or the API's answer: unavailable while the daemon stops,
// not_connected for a device the history knows that was not seen since
// the start, not_found for one it does not know.
func (d *Daemon) requestActor(udid string) (*actor, error) {
	if d.isStopping() {
		return nil, &api.Error{Code: api.ErrUnavailable, Message: errStopping.Error()}
	}
	a, ok := d.actor(udid)
	if !ok {
		if _, err := d.store.Device(udid); err == nil {
			return nil, &api.Error{Code: api.ErrNotConnected, Message: errNotConnected.Error()}
		}
		return nil, &api.Error{Code: api.ErrNotFound, Message: "no iPhone with UDID " + udid + " is known"}
	}
	return a, nil
}

// backupNow asks a connected device's actor for a backup.
func (d *Daemon) backupNow(ctx context.Context, udid string, full bool) error {
	a, err := d.requestActor(udid)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, manualTimeout)
	defer cancel()
	reply := make(chan error, 1)
	if !a.send(ctx, actorMsg{kind: msgManual, full: full, reply: reply}) {
		return untaken(ctx)
	}
	select {
	case err = <-reply:
	case <-ctx.Done():
		return &api.Error{Code: api.ErrUnavailable, Message: "the device's worker did not answer: " + ctx.Err().Error()}
	}
	if err == nil {
		return nil
	}
	return requestError(err)
}
