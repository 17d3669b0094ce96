package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/hook"
	"github.com/backupd/backupd/daemon/metrics"
)

// observers feed the hooks and the metrics from the event bus and fire
// the overdue events. It only reads the bus, so nothing in it can hold up
// a backup: the bus never waits for it, and the hook runner never waits for
// a hook.
type observers struct {
	d       *Daemon
	runner  *hook.Runner     // nil without hooks
	metrics *metrics.Metrics // nil without [metrics] listen

	// passcode holds the devices whose current run has already said it
	// waits for the passcode: the prompt may come and go within one run.
	passcode map[string]bool
	// wake tells the overdue check that a run ended.
	wake chan struct{}

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// overdueRecheck bounds the overdue timer: a machine that sleeps does
// not advance the timer's clock, so it looks again at least this often.
const overdueRecheck = time.Hour

// startObservers starts the hooks and the metrics, if configured, reading
// the last successes from the history. Call it before recovery, so the
// runs recovery ends are told too.
func (d *Daemon) startObservers() (*observers, error) {
	o := &observers{d: d, passcode: map[string]bool{}, wake: make(chan struct{}, 1)}
	if len(d.cfg.Notify.Hooks) > 0 {
		opts := d.cfg.Notify.hookOptions()
		opts.Logger = SlogLogger(d.log, "hook")
		r, err := hook.New(opts)
		if err != nil {
			return nil, fmt.Errorf("hooks: %w", err)
		}
		o.runner = r
	}
	if d.cfg.Metrics.Listen != "" {
		o.metrics = metrics.New(metrics.Options{Version: d.version, Gauges: func() metrics.Gauges {
			hl := d.health()
			return metrics.Gauges{DevicesConnected: hl.Connected, BackupsRunning: hl.BackupsRunning, UsbmuxdUp: hl.Usbmuxd.Connected}
		}})
		devs, err := d.store.Devices()
		if err != nil {
			d.log.Warn().Err(err).Msg("metrics: read the last successes")
		}
		for _, dev := range devs {
			o.metrics.SetLastSuccess(dev.UDID, dev.Name, dev.LastSuccess.Time)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	if o.runner == nil && o.metrics == nil {
		return o, nil
	}
	events, unsubscribe := d.bus.subscribe()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.follow(events, unsubscribe)
	}()
	if o.runner != nil {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.overdue(ctx)
		}()
	}
	return o, nil
}

// stop ends the feed (closing the bus, which shutdown has done already
// unless Run failed) once the events it holds are handled, and gives the
// hooks until ctx ends to deliver what they hold. Later calls do nothing.
func (o *observers) stop(ctx context.Context) {
	o.stopOnce.Do(func() {
		o.d.bus.closeAll()
		o.cancel()
		o.wg.Wait()
		if o.runner != nil {
			o.runner.Close(ctx)
			st := o.runner.Stats()
			o.d.log.Debug().Uint64("delivered", st.Delivered).Uint64("failed", st.Failed).Uint64("dropped", st.Dropped).Msg("hooks stopped")
		}
	})
}

// follow handles the bus's events until the bus closes; the events a
// closing bus still holds are handled first. A subscription the bus
// dropped for falling behind is taken up again.
func (o *observers) follow(events <-chan api.Event, unsubscribe func()) {
	for {
		for ev := range events {
			o.handle(ev)
		}
		unsubscribe()
		o.d.bus.mu.Lock()
		closed := o.d.bus.closed
		o.d.bus.mu.Unlock()
		if closed {
			return
		}
		o.d.log.Warn().Msg("hooks fell behind the event stream; some events were not told")
		events, unsubscribe = o.d.bus.subscribe()
	}
}

// handle turns one bus event into metrics and hook events.
func (o *observers) handle(ev api.Event) {
	switch {
	case ev.Type == api.EventRun && ev.Run != nil:
		r := ev.Run
		if r.Outcome == api.OutcomeRunning {
			delete(o.passcode, r.UDID)
			return
		}
		delete(o.passcode, r.UDID)
		if o.metrics != nil && r.Kind != api.KindRestore {
			// The metrics count backups; a restore is none.
			o.metrics.ObserveRun(metrics.Run{UDID: r.UDID, Name: r.DeviceName, Outcome: r.Outcome, Cause: string(r.Cause),
				Bytes: r.Bytes, Duration: runDuration(r), End: r.End})
		}
		if o.runner != nil {
			o.runner.Fire(o.runEvent(r))
			select {
			case o.wake <- struct{}{}:
			default:
			}
		}
	case ev.Type == api.EventState && ev.State == api.StateAwaitingPasscode && o.runner != nil:
		if o.passcode[ev.UDID] {
			return
		}
		o.passcode[ev.UDID] = true
		o.runner.Fire(hook.Event{Event: hook.KindPasscode, Time: ev.Time, UDID: ev.UDID, Device: ev.Name, Note: ev.Note})
	}
}

// runEvent is a finished run as a hook event.
func (o *observers) runEvent(r *api.Run) hook.Event {
	kind := map[string]hook.Kind{
		api.OutcomeSuccess: hook.KindSuccess, api.OutcomeFailed: hook.KindFailure,
		api.OutcomeSkipped: hook.KindSkip, api.OutcomeInterrupted: hook.KindInterrupted,
	}[r.Outcome]
	if r.Kind == api.KindRestore {
		// A restore cut short by a stop failed as far as the phone is
		// concerned: it may hold part of the backup.
		kind = hook.KindRestoreFailure
		if r.Outcome == api.OutcomeSuccess {
			kind = hook.KindRestoreSuccess
		}
	}
	ev := hook.Event{
		Event: kind, Time: r.End, UDID: r.UDID, Device: r.DeviceName, Outcome: r.Outcome,
		Cause: string(r.Cause), Summary: r.Summary, Fix: r.Fix, Note: r.Note,
		DeviceErrorCode: r.DeviceErrorCode, DeviceErrorText: r.DeviceErrorText,
		Bytes: r.Bytes, Files: r.Files, DurationSeconds: runDuration(r).Seconds(),
		RunID: r.ID, Trigger: r.Trigger, Source: r.Source, BackupVersion: r.Version,
	}
	if r.Outcome == api.OutcomeSuccess && r.Kind != api.KindRestore {
		ev.LastSuccess = r.End
	} else if dev, err := o.d.store.Device(r.UDID); err == nil {
		ev.LastSuccess = dev.LastSuccess.Time
	}
	return ev
}

// runDuration is how long a run ran; a skip did not run.
func runDuration(r *api.Run) time.Duration {
	if r.Outcome == api.OutcomeSkipped || r.Start.IsZero() || r.End.Before(r.Start) {
		return 0
	}
	return r.End.Sub(r.Start)
}

// overdue fires the overdue events (hook.Overdue says when), looking
// again when a run ends, at the next period's end, or after
// overdueRecheck.
func (o *observers) overdue(ctx context.Context) {
	od := &hook.Overdue{After: o.d.cfg.OverdueAfter.D()}
	for {
		devs, err := o.d.store.Devices()
		if err != nil {
			o.d.log.Warn().Err(err).Msg("overdue check: read the history")
		}
		backed := make([]hook.Backed, 0, len(devs))
		for _, dev := range devs {
			backed = append(backed, hook.Backed{UDID: dev.UDID, Name: dev.Name, LastSuccess: dev.LastSuccess.Time})
		}
		now := o.d.now()
		due, next := od.Check(now, backed)
		for _, b := range due {
			o.runner.Fire(hook.Event{
				Event: hook.KindOverdue, Time: now, UDID: b.UDID, Device: b.Name, LastSuccess: b.LastSuccess,
				Summary: fmt.Sprintf("No successful backup for %s (overdue_after is %s)", ago(now.Sub(b.LastSuccess)), o.d.cfg.OverdueAfter),
				Fix:     "Plug the iPhone in and unlock it; backupd status says why its last backups did not happen",
			})
		}
		wait := overdueRecheck
		if !next.IsZero() {
			wait = min(max(next.Sub(now), time.Second), overdueRecheck)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-o.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// ago says a long duration in days or hours.
func ago(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

// stopObservers gives the hooks serverStopTimeout to deliver what they hold.
func (d *Daemon) stopObservers() {
	if d.observers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
	defer cancel()
	d.observers.stop(ctx)
}
