package daemon

import (
	"sync"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/daemon/api"
)

// This file watches a backup's progress: it reports it to the device's
// view and the event stream, and cancels a backup whose progress stops.

// progressReporter turns engine progress into the device's view and the
// event stream, at most a few times a second. A report held back by that
// limit is published when the limit allows, so the view never lags the
// engine by more than progressEvery: a round of small files can end
// within it, and the phone then goes quiet for minutes.
type progressReporter struct {
	a       *actor
	started time.Time

	mu      sync.Mutex
	last    time.Time
	pending *backup.Progress // held back, published by flush
	timer   *time.Timer      // runs flush; nil when none is due
	stopped bool
	// state is what the events say the device does: backing_up when
	// empty, restoring for a restore.
	state api.State
	// thinkingSince is when the engine last reported the phone thinking
	// after it had not; zero while the phone sends.
	thinkingSince time.Time
}

// progressEvery throttles progress events; the engine reports up to ten
// times a second, more than a person reads and enough to fill a slow
// stream reader's buffer.
const progressEvery = 250 * time.Millisecond

func (r *progressReporter) report(p backup.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	now := r.a.d.now()
	// A phone that starts or stops thinking is news however soon.
	changed := p.Thinking == r.thinkingSince.IsZero()
	if changed {
		r.thinkingSince = time.Time{}
		if p.Thinking {
			r.thinkingSince = now
		}
	}
	if wait := progressEvery - now.Sub(r.last); wait > 0 && p.Percent < 100 && !changed {
		r.pending = &p
		if r.timer == nil {
			r.timer = time.AfterFunc(wait, r.flush)
		}
		return
	}
	r.publish(p, now)
}

// flush publishes the report held back, if the run is still going.
func (r *progressReporter) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer = nil
	if r.stopped || r.pending == nil {
		return
	}
	r.publish(*r.pending, r.a.d.now())
}

// stop ends the reports: none is published after it returns, so a late
// one cannot overwrite what the end of the run shows.
func (r *progressReporter) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// publish puts p in the device's view and on the event stream.
func (r *progressReporter) publish(p backup.Progress, now time.Time) {
	r.last, r.pending = now, nil
	ap := &api.Progress{Percent: p.Percent, Bytes: p.Bytes, Files: p.Files, Started: r.started, ThinkingSince: r.thinkingSince}
	if el := now.Sub(r.started).Seconds(); el > 0 {
		ap.BytesPerSecond = float64(p.Bytes) / el
		// The device's percentage covers the whole backup, so it is the
		// better measure of what is left than bytes (whose total is not
		// known); below a few percent it says too little.
		if p.Percent >= 2 && p.Percent < 100 {
			ap.ETASeconds = el * (100 - p.Percent) / p.Percent
		}
	}
	r.a.setProgress(ap)
	r.a.mu.Lock()
	name := r.a.v.name
	r.a.mu.Unlock()
	state := r.state
	if state == "" {
		state = api.StateBackingUp
	}
	r.a.d.bus.publish(api.Event{Type: api.EventProgress, UDID: r.a.udid, Name: name, State: state, Progress: ap})
}

// watchdog cancels a backup whose progress stops: no change in the
// device's percentage, bytes or files for the stall timeout. It arms at
// the first progress report, because before it the engine bounds each
// step itself (the wait for the device's first message may rightly take
// minutes while the phone asks for its passcode), and it disarms when the
// device reports 100%, because the commit that follows (verify, fsync,
// rename) reports no progress and must not be cut off. It holds while the
// engine reports the phone thinking (Progress.Thinking): the engine then
// bounds the silence itself (backup.think_timeout, and the phone staying
// attached), and the timer starts afresh when the phone speaks again.
type watchdog struct {
	stall time.Duration
	fire  func()

	mu      sync.Mutex
	timer   *time.Timer
	last    backup.Progress
	off     bool
	holding bool
}

func newWatchdog(stall time.Duration, fire func()) *watchdog {
	return &watchdog{stall: stall, fire: fire}
}

// kick notes a progress report.
func (w *watchdog) kick(p backup.Progress) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.off {
		return
	}
	if p.Percent >= 100 {
		w.off = true
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	if p.Thinking {
		w.holding = true
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	if w.timer == nil {
		w.last, w.holding = p, false
		w.timer = time.AfterFunc(w.stall, w.fire)
		return
	}
	if p == w.last && !w.holding {
		return // a report without news is no progress
	}
	w.last, w.holding = p, false
	w.timer.Reset(w.stall)
}

// stop disarms the watchdog for good.
func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.off = true
	if w.timer != nil {
		w.timer.Stop()
	}
}
