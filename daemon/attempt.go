package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

// This file is one attempt: the checks before a backup, the decision,
// and the backup itself, run in a goroutine of its own for the actor.

// attemptReq is what an attempt is asked to do.
type attemptReq struct {
	trigger store.Trigger
	manual  bool
	full    bool
	dev     usbmux.Device
	// unstable: the cable flapped and has not been quiet since.
	unstable bool
	// slow: the device reported a slow link during this attachment.
	slow bool
	// flaps is the cable's recent disconnect count, for the note.
	flaps int
	// recheck: a timer's look at a device that waits for a condition;
	// it does not announce "checking" each time.
	recheck bool
	// metByCurrent: a manual request made while the attempt under way
	// was still checking; that attempt's backup, if it succeeds, is the
	// one asked for.
	metByCurrent bool
	// restore, when set, makes the attempt a restore (restore.go).
	restore *restoreReq
	// note goes into the backup's run record (a safety backup says so).
	note string
}

// resultKind is how an attempt ended.
type resultKind int

const (
	resSuccess resultKind = iota + 1
	resFailed
	resSkipped
	resRecent
	// resGone: the device left, or the daemon is stopping; nothing to
	// schedule.
	resGone
	// resRestored: a restore ended, however it went; nothing to
	// schedule.
	resRestored
)

// attemptResult is what an attempt tells the actor.
type attemptResult struct {
	kind  resultKind
	cause cause.Code
	// next is when to try again by itself; zero waits for an event.
	next        time.Time
	nextTrigger store.Trigger
	// waitTrust: a Trust prompt or a lock is in the way; usbmuxd's Paired
	// wakes the actor at once.
	waitTrust bool
	slow      bool
}

// attemptHandle is a running attempt.
type attemptHandle struct {
	req    attemptReq
	cancel context.CancelCauseFunc
	done   chan attemptResult
	// conn is the connection type it runs over; gone is set once that
	// connection went away and the attempt was told to stop.
	conn string
	gone bool
}

// attempt runs one pass for the device: check trust, read its facts,
// apply the policy, and back it up if the policy says so. It records
// what it decided and tells the actor when to look again.
func (a *actor) attempt(ctx context.Context, req attemptReq) attemptResult {
	if req.restore != nil {
		return a.restoreAttempt(ctx, req)
	}
	d := a.d
	a.setPhase(phaseChecking)
	defer a.setPhase(phaseIdle)
	if !req.recheck {
		a.setState(api.StateChecking, cause.None, "", time.Time{})
	}
	if req.unstable {
		return a.skip(req, cause.CableUnstable,
			fmt.Sprintf("the cable disconnected %d times recently; waiting for it to stay connected for %v", req.flaps, d.cfg.Stability.QuietPeriod),
			time.Time{}, false)
	}
	if dev, ok := d.findDevice(ctx, a.udid, req.dev.ConnType); ok {
		req.dev = dev
	}
	trust, err := a.checkTrust(ctx, req.dev)
	if ctx.Err() != nil {
		return a.gone()
	}
	if err != nil {
		return a.checkFailed(req, err)
	}
	if trust != usbmux.Trusted {
		next := d.now().Add(d.cfg.Policy.TrustRecheck.D())
		if trust == usbmux.TrustDenied {
			// Nothing changes until the phone is plugged in again.
			next = time.Time{}
		}
		return a.skip(req, trust.Cause(), "", next, true)
	}
	facts, err := d.mux.Facts(ctx, req.dev)
	if ctx.Err() != nil {
		return a.gone()
	}
	if err != nil {
		return a.checkFailed(req, err)
	}
	now := d.now()
	slow := a.noteFacts(req, facts, now)
	res := a.decide(ctx, req, facts, slow, now)
	res.slow = slow
	return res
}

// checkTrust asks whether the phone trusts this computer, first without
// pairing, so that a phone that forgot this computer is told apart from
// one never paired: both then get the Trust prompt, but the person hears
// which it is (pairing_invalid says the phone was reset or told to forget
// its computers).
func (a *actor) checkTrust(ctx context.Context, dev usbmux.Device) (usbmux.Trust, error) {
	trust, err := a.d.mux.CheckTrust(ctx, dev, usbmux.TrustOptions{})
	if err == nil && (trust == usbmux.NotPaired || trust == usbmux.PairingInvalid) {
		forgot := trust == usbmux.PairingInvalid
		trust, err = a.d.mux.CheckTrust(ctx, dev, usbmux.TrustOptions{StartPairing: true})
		if forgot && trust == usbmux.TrustPending {
			trust = usbmux.PairingInvalid
		}
	}
	return trust, err
}

// noteFacts records the device's facts in the history and its view, and
// says whether its link is slow for what it is (a USB 3 phone on USB 2).
func (a *actor) noteFacts(req attemptReq, facts usbmux.Facts, now time.Time) (slow bool) {
	d := a.d
	if err := d.store.UpsertDevice(store.DeviceFacts{UDID: a.udid, Name: facts.Name, ProductType: facts.ProductType, IOSVersion: facts.ProductVersion}, now); err != nil {
		a.log.Error().Err(err).Msg("record the device's facts")
	}
	a.setFacts(facts)
	slow = req.slow
	if req.dev.ConnType == usbmux.ConnUSB {
		for _, t := range d.tracker.SetProductType(a.udid, facts.ProductType, now) {
			slow = slow || t.Kind == usbmux.TransitionSlowLink
		}
	}
	if slow && !req.slow {
		a.log.Warn().Uint64("speed", req.dev.Speed).Str("product_type", facts.ProductType).Msg(cause.Lookup(cause.SlowLink).Summary)
	}
	return slow
}

// decide applies the policy at now to a trusted device whose facts are
// read, and backs it up when the policy says so.
func (a *actor) decide(ctx context.Context, req attemptReq, facts usbmux.Facts, slow bool, now time.Time) attemptResult {
	d := a.d
	pol := d.cfg.Policy
	rp, target, err := d.ensureRepo(ctx)
	if err != nil {
		return a.skip(req, cause.Of(err), err.Error(), now.Add(pol.ConditionRecheck.D()), false)
	}
	_, hasLatest := rp.Latest(a.udid)
	free, freeErr := d.free(d.cfg.BackupDir)
	if freeErr != nil {
		a.log.Debug().Err(freeErr).Msg("free space unknown")
	}
	dec := pol.decide(checkInput{
		now:         now,
		manual:      req.manual,
		forceFull:   req.full,
		lastSuccess: d.lastSuccess(a.udid),
		facts:       facts,
		hasLatest:   hasLatest,
		free:        free,
		freeErr:     freeErr,
	})
	switch dec.verdict {
	case verdictRecent:
		if pol.RecordRecent && a.markRecorded(cause.Recent) {
			d.recordSkip(a.skipRun(req, cause.Recent, dec.note, now))
		}
		a.setState(api.StateUpToDate, cause.Recent, dec.note, dec.until)
		return attemptResult{kind: resRecent, cause: cause.Recent, next: dec.until, nextTrigger: store.TriggerSchedule}
	case verdictSkip:
		res := a.skip(req, dec.cause, dec.note, dec.until, false)
		if dec.cause == cause.QuietHours {
			res.nextTrigger = store.TriggerSchedule
		}
		return res
	}
	return a.backup(ctx, req, facts, target, slow)
}

// gone is the result of an attempt cut short by a detach or a stop.
func (a *actor) gone() attemptResult {
	return attemptResult{kind: resGone}
}

// checkFailed handles an error before any backup started. A device that
// went away, or a usbmuxd that did, records nothing: the detach (or the
// watcher) reports it. Anything else is recorded as a skip with its
// cause.
func (a *actor) checkFailed(req attemptReq, err error) attemptResult {
	pol := a.d.cfg.Policy
	code := cause.Of(err)
	now := a.d.now()
	a.log.Debug().Err(err).Str("cause", string(code)).Msg("check before the backup failed")
	switch code {
	case cause.Disconnected, cause.UsbmuxdUnavailable:
		a.setState(api.StateWaiting, code, err.Error(), now.Add(pol.TrustRecheck.D()))
		return attemptResult{kind: resGone, cause: code, next: now.Add(pol.TrustRecheck.D()), nextTrigger: req.trigger}
	case cause.DeviceLocked, cause.TrustPending, cause.PairingInvalid, cause.NotPaired:
		return a.skip(req, code, "", now.Add(pol.TrustRecheck.D()), true)
	}
	return a.skip(req, code, err.Error(), now.Add(pol.ConditionRecheck.D()), false)
}

// skip records a skipped run for code, once per connection, shows the
// device as waiting (when something will be rechecked) or skipped, and
// returns the result that schedules the recheck.
func (a *actor) skip(req attemptReq, code cause.Code, note string, next time.Time, waitTrust bool) attemptResult {
	if a.markRecorded(code) {
		a.d.recordSkip(a.skipRun(req, code, note, a.d.now()))
		a.log.Info().Str("cause", string(code)).Str("note", note).Msg("backup skipped: " + cause.Lookup(code).Summary)
	}
	state := api.StateSkipped
	if waitTrust {
		state = api.StateWaiting
	}
	a.setState(state, code, note, next)
	return attemptResult{kind: resSkipped, cause: code, next: next, nextTrigger: req.trigger, waitTrust: waitTrust}
}

func (a *actor) skipRun(req attemptReq, code cause.Code, note string, at time.Time) store.Run {
	a.mu.Lock()
	name, ios := a.v.name, a.v.iosVersion
	a.mu.Unlock()
	return store.Run{
		UDID: a.udid, DeviceName: name, IOSVersion: ios, Trigger: req.trigger, Start: at,
		Cause: code, Note: note, Link: req.dev.ConnType, LinkSpeed: req.dev.Speed,
	}
}

// backup runs the backup itself: it waits for a slot, records the run,
// runs the engine under the stall watchdog and records how it ended.
func (a *actor) backup(ctx context.Context, req attemptReq, facts usbmux.Facts, target backup.Repository, slow bool) attemptResult {
	d := a.d
	a.setState(api.StateQueued, cause.None, "", time.Time{})
	a.setPhase(phaseBackup)
	if err := d.acquire(ctx); err != nil {
		return a.gone()
	}
	// The slot is given back once the run is recorded and the device
	// shows its outcome, so that nobody ever sees more than
	// max_concurrent devices backing up.
	defer d.release()
	// A password change under way ends first (it is bounded by the
	// first-message timeout).
	select {
	case a.mb2 <- struct{}{}:
	case <-ctx.Done():
		return a.gone()
	}
	defer func() { <-a.mb2 }()

	start := d.now()
	run, err := d.beginRun(store.Run{
		UDID: a.udid, DeviceName: facts.Name, IOSVersion: facts.ProductVersion, Trigger: req.trigger,
		Start: start, Link: req.dev.ConnType, LinkSpeed: req.dev.Speed, Note: req.note,
	})
	if err != nil {
		// Without a record there is no telling anyone how it went; the
		// history is what is broken.
		a.log.Error().Err(err).Msg("record the start of a backup")
		a.setState(api.StateFailed, cause.Of(err), "the history could not be written: "+err.Error(), time.Time{})
		return attemptResult{kind: resFailed, cause: cause.Of(err)}
	}
	a.log.Info().Uint64("run", uint64(run.ID)).Str("trigger", string(req.trigger)).Str("link", req.dev.ConnType).Bool("full", req.full).Msg("backup started")
	a.setState(api.StateBackingUp, cause.None, "", time.Time{})
	a.setProgress(&api.Progress{Started: start})

	res, berr, why := a.runEngine(ctx, req, target, start)
	// A manual request from here on asks for a new backup, not this one.
	a.setPhase(phaseIdle)
	a.setProgress(nil)

	run.End = d.now()
	run.Bytes, run.Files, run.Encrypted = res.Bytes, res.Files, res.Encrypted
	run.Note = req.note
	recordUnreadable(&run, res)
	out := attemptResult{kind: a.outcome(&run, res, berr, why, slow)}
	stored, _ := d.finishRun(run)
	out.cause = stored.Cause
	a.showEnded(run, berr, start, slow, &out)
	return out
}

// runEngine runs the engine for req under the stall watchdog, reporting
// its progress. why is what cut it short, if anything did: a detach, a
// stall, or the daemon stopping.
func (a *actor) runEngine(ctx context.Context, req attemptReq, target backup.Repository, start time.Time) (res backup.Result, berr, why error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(a.d.cfg.Backup.StallTimeout.D(), func() { cancel(errStalled) })
	prog := progressReporter{a: a, started: start}
	res, berr = a.d.eng.Run(wctx, req.dev, backup.Target{
		Repo:      target,
		ForceFull: req.full,
		Progress: func(p backup.Progress) {
			wd.kick(p)
			prog.report(p)
		},
		AwaitingPasscode: a.awaitingPasscode,
	})
	wd.stop()
	prog.stop()
	return res, berr, context.Cause(wctx)
}

// outcome fills in how run ended, from the engine's result and error and
// from why it was cut short, and returns what the attempt tells the
// actor.
func (a *actor) outcome(run *store.Run, res backup.Result, berr, why error, slow bool) resultKind {
	switch {
	case berr == nil:
		run.Outcome, run.VersionPath, run.Verify = store.OutcomeSuccess, res.VersionPath, "ok"
		run.Kind = store.KindIncremental
		if res.Full {
			run.Kind = store.KindFull
		}
		if slow {
			// A success that took longer than it needed: say why.
			run.Cause = cause.SlowLink
		} else if run.UnreadableCount > 0 {
			// Kept, but without the files the phone could not read.
			run.Cause = cause.DeviceUploadErrors
		}
		return resSuccess
	// A detach or a stall is joined to what the engine said, not put in
	// its place, so the one classifier keeps the most specific cause: a
	// full disk that made the phone hang up is the disk.
	case errors.Is(why, errDetached):
		run.Outcome = store.OutcomeFailed
		run.SetError(cutShort(berr, why))
		return resFailed
	case errors.Is(why, errStalled):
		run.Outcome = store.OutcomeFailed
		run.SetError(cutShort(berr, why))
		run.Note = fmt.Sprintf("no progress for %v", a.d.cfg.Backup.StallTimeout)
		return resFailed
	case why != nil:
		// The daemon is stopping.
		run.Outcome = store.OutcomeInterrupted
		run.SetError(berr)
		run.Cause = cause.Interrupted
		return resGone
	}
	run.Outcome = store.OutcomeFailed
	run.SetError(berr)
	return resFailed
}

// showEnded logs how a backup begun at start ended and shows it in the
// device's view; after a success, out says when the next one is due.
func (a *actor) showEnded(run store.Run, berr error, start time.Time, slow bool, out *attemptResult) {
	ev := a.log.Info()
	if run.Outcome != store.OutcomeSuccess {
		ev = a.log.Warn().Err(berr)
	}
	ev.Uint64("run", uint64(run.ID)).Str("outcome", string(run.Outcome)).Str("cause", string(run.Cause)).
		Int64("bytes", run.Bytes).Int64("files", run.Files).Dur("took", run.End.Sub(start)).Msg("backup ended")

	switch run.Outcome {
	case store.OutcomeSuccess:
		next := a.d.cfg.Policy.nextDue(run.End)
		note := ""
		if slow {
			note = cause.Lookup(cause.SlowLink).Summary
		} else if run.UnreadableCount > 0 {
			note = keptWithout(run.UnreadableCount)
		}
		a.setState(api.StateSucceeded, run.Cause, note, next)
		out.next, out.nextTrigger = next, store.TriggerSchedule
	case store.OutcomeFailed:
		a.setState(api.StateFailed, run.Cause, run.Note, time.Time{})
	}
}

// cutShort is what is recorded for a backup the daemon cancelled for
// why (a detach, a stall): why joined to the engine's error, so that the
// most specific cause of the two wins, except that an engine's
// interrupted only echoes the cancel and is kept as text.
func cutShort(berr, why error) error {
	if cause.Of(berr) == cause.Interrupted {
		return fmt.Errorf("%w (%v)", why, berr)
	}
	return errors.Join(berr, why)
}

// awaitingPasscode shows, at once, that the iPhone waits for its passcode
// before it sends anything (iOS 16.1 and later ask at every backup), and
// back to backing up when the prompt goes away. Without it the person
// would hear about it only three minutes later, when the device gives up
// with passcode_not_entered.
func (a *actor) awaitingPasscode(showing bool) {
	if showing {
		a.setState(api.StateAwaitingPasscode, cause.None, passcodeNote(a.snapshotName()), time.Time{})
		return
	}
	a.mu.Lock()
	waiting := a.v.state == api.StateAwaitingPasscode
	a.mu.Unlock()
	if waiting {
		a.setState(api.StateBackingUp, cause.None, "", time.Time{})
	}
}

// passcodeNote is what status says while the iPhone asks for its
// passcode.
func passcodeNote(name string) string {
	if name == "" {
		name = "the iPhone"
	}
	return "enter your passcode on " + name + " to start the backup"
}

// lastSuccess is when the device's latest successful backup ended.
func (d *Daemon) lastSuccess(udid string) time.Time {
	dev, err := d.store.Device(udid)
	if err != nil {
		return time.Time{}
	}
	return dev.LastSuccess.Time
}
