package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/metrics"
	"github.com/backupd/backupd/daemon/notify"
)

// hooks feeds the notifier and the metrics from the event bus and fires
// the overdue events. It only reads the bus, so nothing in it can hold up
// a backup: the bus never waits for it, and the notifier never waits for
// a hook.
type hooks struct {
	d        *Daemon
	notifier *notify.Notifier // nil without hooks
	metrics  *metrics.Metrics // nil without [metrics] listen

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

// startHooks starts the hooks and the metrics, if configured, reading
// the last successes from the history. Call it before recovery, so the
// runs recovery ends are told too.
func (d *Daemon) startHooks() (*hooks, error) {
	h := &hooks{d: d, passcode: map[string]bool{}, wake: make(chan struct{}, 1)}
	if len(d.cfg.Notify.Hooks) > 0 {
		opts := d.cfg.Notify.notifyOptions()
		opts.Logger = SlogLogger(d.log, "notify")
		n, err := notify.New(opts)
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		h.notifier = n
	}
	if d.cfg.Metrics.Listen != "" {
		h.metrics = metrics.New(metrics.Options{Version: d.version, Gauges: func() metrics.Gauges {
			hl := d.health()
			return metrics.Gauges{DevicesConnected: hl.Connected, BackupsRunning: hl.BackupsRunning, UsbmuxdUp: hl.Usbmuxd.Connected}
		}})
		devs, err := d.store.Devices()
		if err != nil {
			d.log.Warn().Err(err).Msg("metrics: read the last successes")
		}
		for _, dev := range devs {
			h.metrics.SetLastSuccess(dev.UDID, dev.Name, dev.LastSuccess.Time)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if h.notifier == nil && h.metrics == nil {
		return h, nil
	}
	events, unsubscribe := d.bus.subscribe()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.follow(events, unsubscribe)
	}()
	if h.notifier != nil {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.overdue(ctx)
		}()
	}
	return h, nil
}

// stop ends the feed (closing the bus, which shutdown has done already
// unless Run failed) once the events it holds are handled, and gives the
// hooks until ctx ends to deliver what they hold. Later calls do nothing.
func (h *hooks) stop(ctx context.Context) {
	h.stopOnce.Do(func() {
		h.d.bus.closeAll()
		h.cancel()
		h.wg.Wait()
		if h.notifier != nil {
			h.notifier.Close(ctx)
			st := h.notifier.Stats()
			h.d.log.Debug().Uint64("delivered", st.Delivered).Uint64("failed", st.Failed).Uint64("dropped", st.Dropped).Msg("hooks stopped")
		}
	})
}

// follow handles the bus's events until the bus closes; the events a
// closing bus still holds are handled first. A subscription the bus
// dropped for falling behind is taken up again.
func (h *hooks) follow(events <-chan api.Event, unsubscribe func()) {
	for {
		for ev := range events {
			h.handle(ev)
		}
		unsubscribe()
		h.d.bus.mu.Lock()
		closed := h.d.bus.closed
		h.d.bus.mu.Unlock()
		if closed {
			return
		}
		h.d.log.Warn().Msg("hooks fell behind the event stream; some events were not told")
		events, unsubscribe = h.d.bus.subscribe()
	}
}

// handle turns one bus event into metrics and hook events.
func (h *hooks) handle(ev api.Event) {
	switch {
	case ev.Type == api.EventRun && ev.Run != nil:
		r := ev.Run
		if r.Outcome == api.OutcomeRunning {
			delete(h.passcode, r.UDID)
			return
		}
		delete(h.passcode, r.UDID)
		if h.metrics != nil {
			h.metrics.ObserveRun(metrics.Run{UDID: r.UDID, Name: r.DeviceName, Outcome: r.Outcome, Cause: string(r.Cause),
				Bytes: r.Bytes, Duration: runDuration(r), End: r.End})
		}
		if h.notifier != nil {
			h.notifier.Notify(h.runEvent(r))
			select {
			case h.wake <- struct{}{}:
			default:
			}
		}
	case ev.Type == api.EventState && ev.State == api.StateAwaitingPasscode && h.notifier != nil:
		if h.passcode[ev.UDID] {
			return
		}
		h.passcode[ev.UDID] = true
		h.notifier.Notify(notify.Event{Event: notify.KindPasscode, Time: ev.Time, UDID: ev.UDID, Device: ev.Name, Note: ev.Note})
	}
}

// runEvent is a finished run as a hook event.
func (h *hooks) runEvent(r *api.Run) notify.Event {
	kind := map[string]notify.Kind{
		api.OutcomeSuccess: notify.KindSuccess, api.OutcomeFailed: notify.KindFailure,
		api.OutcomeSkipped: notify.KindSkip, api.OutcomeInterrupted: notify.KindInterrupted,
	}[r.Outcome]
	ev := notify.Event{
		Event: kind, Time: r.End, UDID: r.UDID, Device: r.DeviceName, Outcome: r.Outcome,
		Cause: string(r.Cause), Summary: r.Summary, Fix: r.Fix, Note: r.Note,
		DeviceErrorCode: r.DeviceErrorCode, DeviceErrorText: r.DeviceErrorText,
		Bytes: r.Bytes, Files: r.Files, DurationSeconds: runDuration(r).Seconds(),
		RunID: r.ID, Trigger: r.Trigger,
	}
	if r.Outcome == api.OutcomeSuccess {
		ev.LastSuccess = r.End
	} else if dev, err := h.d.store.Device(r.UDID); err == nil {
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

// overdue fires the overdue events (notify.Overdue says when), looking
// again when a run ends, at the next period's end, or after
// overdueRecheck.
func (h *hooks) overdue(ctx context.Context) {
	o := &notify.Overdue{After: h.d.cfg.OverdueAfter.D()}
	for {
		devs, err := h.d.store.Devices()
		if err != nil {
			h.d.log.Warn().Err(err).Msg("overdue check: read the history")
		}
		backed := make([]notify.Backed, 0, len(devs))
		for _, dev := range devs {
			backed = append(backed, notify.Backed{UDID: dev.UDID, Name: dev.Name, LastSuccess: dev.LastSuccess.Time})
		}
		now := h.d.now()
		due, next := o.Check(now, backed)
		for _, b := range due {
			h.notifier.Notify(notify.Event{
				Event: notify.KindOverdue, Time: now, UDID: b.UDID, Device: b.Name, LastSuccess: b.LastSuccess,
				Summary: fmt.Sprintf("No successful backup for %s (overdue_after is %s)", ago(now.Sub(b.LastSuccess)), h.d.cfg.OverdueAfter),
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
		case <-h.wake:
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

// stopHooks gives the hooks serverStopTimeout to deliver what they hold.
func (d *Daemon) stopHooks() {
	if d.hooks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
	defer cancel()
	d.hooks.stop(ctx)
}
