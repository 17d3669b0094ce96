package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

// msgKind says what an actorMsg reports.
type msgKind int

const (
	msgPresent  msgKind = iota + 1 // a connection settled (dev)
	msgAbsent                      // a connection went away (conn)
	msgUnstable                    // the cable flapped
	msgStable                      // the cable stayed put for the quiet period
	msgSlowLink                    // a USB 3 device is on a USB 2 link
	msgPaired                      // usbmuxd saved a pair record for it
	msgManual                      // someone asked for a backup (full, reply)
)

// actorMsg is one thing an actor is told.
type actorMsg struct {
	kind   msgKind
	dev    usbmux.Device
	conn   string // msgAbsent: usbmux.ConnUSB or usbmux.ConnNetwork
	status usbmux.DeviceStability
	at     time.Time
	full   bool
	reply  chan error
}

// Why an attempt's context was cancelled, besides the daemon stopping.
// They carry their cause, so the engine joins it to its own error and
// the most specific of the two is recorded.
var (
	errDetached = cause.New(cause.Disconnected, errors.New("the device was disconnected"))
	errStalled  = cause.New(cause.Stalled, errors.New("the backup made no progress"))
)

// Errors a manual request can meet; the API turns them into its codes.
var (
	errNotConnected = errors.New("the iPhone is not connected")
	errBusy         = errors.New("a backup of this iPhone is already under way")
	errStopping     = errors.New("backupd is stopping")
)

// refusedError: the configuration excludes the device.
type refusedError struct{ why string }

func (e *refusedError) Error() string { return "the configuration excludes this iPhone: " + e.why }

// actor owns one device. Its goroutine (run) reacts to what the daemon
// tells it and runs one attempt at a time in a goroutine of its own: an
// attempt walks checking → (queued → backing up) → succeeded, failed or
// skipped, and says when to try again. Between attempts the actor waits
// on its inbox and at most one timer, so an idle device costs nothing.
type actor struct {
	d    *Daemon
	udid string
	log  zerolog.Logger

	inbox chan actorMsg
	// mb2 is held by whoever talks mobilebackup2 to the phone (a backup,
	// or a change of its backup password): the phone serves one such
	// request at a time.
	mb2 chan struct{}

	mu sync.Mutex
	v  view
	// recorded holds the causes recorded as skipped runs during this
	// connection, so that rechecks (every few seconds while a Trust
	// prompt waits) record a cause once per plug-in, not once per look.
	recorded map[cause.Code]bool
}

// view is the actor's state as the API shows it.
type view struct {
	name, productType, iosVersion string
	connected                     bool
	link                          string
	speed                         uint64
	state                         api.State
	since                         time.Time
	cause                         cause.Code
	note                          string
	next                          time.Time
	progress                      *api.Progress
	battery                       int // -1 unknown
	charging, willEncrypt         bool
	flaps                         int
	phase                         phase
	// transitions are the latest state changes, oldest first.
	transitions []api.Transition
}

// phase is how far the current attempt has come, for telling a manual
// request apart from a duplicate.
type phase int

const (
	phaseIdle     phase = iota // no attempt, or its backup has ended
	phaseChecking              // checking trust, facts and policy
	phaseBackup                // queued for a slot or backing up
)

// keepTransitions bounds view.transitions: enough for the story of the
// latest plug-in or two.
const keepTransitions = 32

func newActor(d *Daemon, udid string) *actor {
	return &actor{
		d:        d,
		udid:     udid,
		log:      d.log.With().Str("udid", udid).Logger(),
		inbox:    make(chan actorMsg, 64),
		mb2:      make(chan struct{}, 1),
		v:        view{state: api.StateAbsent, battery: -1},
		recorded: map[cause.Code]bool{},
	}
}

// send delivers m unless ctx ends first.
func (a *actor) send(ctx context.Context, m actorMsg) bool {
	select {
	case a.inbox <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

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

// run is the actor's loop, until ctx ends; then it stops its attempt and
// waits for it to record how it ended.
func (a *actor) run(ctx context.Context) {
	var (
		usb, wifi *usbmux.Device
		unstable  bool
		slow      bool
		flaps     int
		cur       *attemptHandle
		pending   *attemptReq
		retries   int
		waitTrust bool
		timer     = time.NewTimer(time.Hour)
		timerOn   bool
		timerReq  attemptReq
		// lastReq is what the latest attempt asked to be tried next,
		// for a wake-up that comes before its timer (Paired).
		lastReq attemptReq
	)
	timer.Stop()
	defer timer.Stop()
	pol := a.d.cfg.Policy

	stopTimer := func() {
		timer.Stop()
		timerOn = false
	}
	connected := func() bool { return usb != nil || wifi != nil }
	// admitted says whether the device may be backed up over what it is
	// connected by, and shows it as ignored when not.
	admitted := func() (*usbmux.Device, bool) {
		conn := pol.pickConn(usb, wifi)
		if conn == nil {
			a.setState(api.StateIgnored, cause.None, pol.admit(a.udid, usbmux.ConnNetwork).why, time.Time{})
			return nil, false
		}
		if adm := pol.admit(a.udid, conn.ConnType); !adm.ok {
			a.setState(api.StateIgnored, cause.None, adm.why, time.Time{})
			return nil, false
		}
		return conn, true
	}
	start := func(req attemptReq) {
		conn, ok := admitted()
		if !ok {
			return
		}
		stopTimer()
		waitTrust = false
		if req.trigger == "" {
			req.trigger = store.TriggerPlugIn
		}
		req.dev = *conn
		req.unstable = unstable && conn.ConnType == usbmux.ConnUSB
		req.slow = slow && conn.ConnType == usbmux.ConnUSB
		req.flaps = flaps
		actx, cancel := context.WithCancelCause(ctx)
		h := &attemptHandle{req: req, cancel: cancel, done: make(chan attemptResult, 1), conn: conn.ConnType}
		cur = h
		go func() {
			defer cancel(nil)
			h.done <- a.attempt(actx, req)
		}()
	}
	arm := func(at time.Time, req attemptReq) {
		timer.Stop()
		timer.Reset(max(at.Sub(a.d.now()), 0))
		timerOn, timerReq = true, req
	}

	for {
		var curDone <-chan attemptResult
		if cur != nil {
			curDone = cur.done
		}
		var timerC <-chan time.Time
		if timerOn {
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			if cur != nil {
				cur.cancel(context.Cause(ctx))
				<-cur.done
			}
			return

		case m := <-a.inbox:
			switch m.kind {
			case msgPresent:
				wasConnected := connected()
				dev := m.dev
				if dev.ConnType == usbmux.ConnNetwork {
					wifi = &dev
				} else {
					usb = &dev
					flaps = m.status.RecentFlaps
					unstable = m.status.Unstable
					slow = slow || m.status.SlowLink
				}
				a.setConn(usb, wifi, flaps)
				if !wasConnected {
					// A new plug-in: every cause may be recorded again,
					// and the retries start over.
					a.newConnection()
					retries = 0
				}
				switch {
				case cur == nil:
					start(attemptReq{trigger: store.TriggerPlugIn})
				case cur.gone:
					// The attempt over the old connection is winding
					// down; start afresh when it has.
					pending = &attemptReq{trigger: store.TriggerPlugIn}
				}

			case msgAbsent:
				if m.conn == usbmux.ConnNetwork {
					wifi = nil
				} else {
					usb, slow = nil, false
					flaps = m.status.RecentFlaps
				}
				a.setConn(usb, wifi, flaps)
				if cur != nil && cur.conn == m.conn && !cur.gone {
					cur.gone = true
					cur.cancel(errDetached)
				}
				if !connected() {
					stopTimer()
					pending = nil
					if cur == nil {
						a.setState(api.StateAbsent, cause.None, "", time.Time{})
					}
				}

			case msgUnstable:
				unstable = true
				flaps = m.status.RecentFlaps
				a.log.Warn().Int("flaps", m.status.FlapsInWindow).Msg("the cable keeps disconnecting")

			case msgStable:
				unstable = false
				if connected() && cur == nil {
					start(attemptReq{trigger: store.TriggerPlugIn})
				}

			case msgSlowLink:
				slow = true

			case msgPaired:
				if waitTrust && connected() && cur == nil {
					start(lastReq)
				}

			case msgManual:
				switch {
				case a.d.isStopping():
					m.reply <- errStopping
				case !connected():
					m.reply <- errNotConnected
				case cur != nil && a.currentPhase() == phaseBackup:
					m.reply <- errBusy
				default:
					if conn := pol.pickConn(usb, wifi); conn == nil {
						m.reply <- &refusedError{pol.admit(a.udid, usbmux.ConnNetwork).why}
						break
					} else if adm := pol.admit(a.udid, conn.ConnType); !adm.ok {
						m.reply <- &refusedError{adm.why}
						break
					}
					req := attemptReq{trigger: store.TriggerManual, manual: true, full: m.full}
					if cur != nil {
						// A check is under way, or a backup is winding
						// down: the manual backup follows it, unless the
						// check goes on to make the backup asked for.
						req.metByCurrent = a.currentPhase() == phaseChecking && !req.full
						if pending != nil && pending.manual {
							req.full = req.full || pending.full
							req.metByCurrent = req.metByCurrent && pending.metByCurrent
						}
						pending = &req
					} else {
						start(req)
					}
					m.reply <- nil
				}
			}

		case res := <-curDone:
			h := cur
			cur = nil
			slow = slow || res.slow
			if !connected() {
				a.setState(api.StateAbsent, cause.None, "", time.Time{})
				pending = nil
				continue
			}
			if pending != nil {
				req := *pending
				pending = nil
				if req.metByCurrent && res.kind == resSuccess {
					// The attempt under way when the request came made
					// the backup that was asked for.
					a.log.Debug().Msg("manual request met by the backup that just succeeded")
				} else {
					start(req)
					continue
				}
			}
			waitTrust = res.waitTrust
			next := res.next
			nextReq := attemptReq{trigger: res.nextTrigger, recheck: true}
			if nextReq.trigger == "" || nextReq.trigger == h.req.trigger {
				// A recheck or a retry keeps what was asked: a manual
				// request stays manual.
				nextReq.trigger, nextReq.manual, nextReq.full = h.req.trigger, h.req.manual, h.req.full
			}
			switch res.kind {
			case resSuccess:
				retries = 0
			case resFailed:
				// Interrupted here means someone cancelled on the phone:
				// retrying would overrule them.
				if !cause.Lookup(res.cause).Transient || res.cause == cause.Interrupted {
					break
				}
				retries++
				nextReq.recheck = false
				if delay, ok := pol.retryDelay(retries); ok {
					next = a.d.now().Add(delay)
					a.setNext(next, fmt.Sprintf("retry %d of %d at %s", retries, pol.RetryLimit, next.Format(time.TimeOnly)))
				} else if pol.RetryLimit > 0 {
					a.setNext(time.Time{}, fmt.Sprintf("gave up after %d retries; unplug and plug in again, or ask for a backup", pol.RetryLimit))
				}
			}
			lastReq = nextReq
			if !next.IsZero() {
				arm(next, nextReq)
			}

		case <-timerC:
			timerOn = false
			if connected() && cur == nil {
				start(timerReq)
			}
		}
	}
}

// attempt runs one pass for the device: check trust, read its facts,
// apply the policy, and back it up if the policy says so. It records
// what it decided and tells the actor when to look again.
func (a *actor) attempt(ctx context.Context, req attemptReq) attemptResult {
	d := a.d
	pol := d.cfg.Policy
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

	// First without pairing, so that a phone that forgot this computer
	// is told apart from one never paired: both then get the Trust
	// prompt, but the person hears which it is (pairing_invalid says
	// the phone was reset or told to forget its computers).
	trust, err := d.mux.CheckTrust(ctx, req.dev, usbmux.TrustOptions{})
	if err == nil && (trust == usbmux.NotPaired || trust == usbmux.PairingInvalid) {
		forgot := trust == usbmux.PairingInvalid
		trust, err = d.mux.CheckTrust(ctx, req.dev, usbmux.TrustOptions{StartPairing: true})
		if forgot && trust == usbmux.TrustPending {
			trust = usbmux.PairingInvalid
		}
	}
	if ctx.Err() != nil {
		return a.gone()
	}
	if err != nil {
		return a.checkFailed(req, err)
	}
	if trust != usbmux.Trusted {
		next := d.now().Add(pol.TrustRecheck.D())
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
	if err := d.store.UpsertDevice(store.DeviceFacts{UDID: a.udid, Name: facts.Name, ProductType: facts.ProductType, IOSVersion: facts.ProductVersion}, now); err != nil {
		a.log.Error().Err(err).Msg("record the device's facts")
	}
	a.setFacts(facts)
	slow := req.slow
	if req.dev.ConnType == usbmux.ConnUSB {
		for _, t := range d.tracker.SetProductType(a.udid, facts.ProductType, now) {
			slow = slow || t.Kind == usbmux.TransitionSlowLink
		}
	}
	if slow && !req.slow {
		a.log.Warn().Uint64("speed", req.dev.Speed).Str("product_type", facts.ProductType).Msg(cause.Lookup(cause.SlowLink).Summary)
	}

	rp, target, err := d.ensureRepo(ctx)
	if err != nil {
		res := a.skip(req, cause.Of(err), err.Error(), now.Add(pol.ConditionRecheck.D()), false)
		res.slow = slow
		return res
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
		return attemptResult{kind: resRecent, cause: cause.Recent, next: dec.until, nextTrigger: store.TriggerSchedule, slow: slow}
	case verdictSkip:
		res := a.skip(req, dec.cause, dec.note, dec.until, false)
		if dec.cause == cause.QuietHours {
			res.nextTrigger = store.TriggerSchedule
		}
		res.slow = slow
		return res
	}
	res := a.backup(ctx, req, facts, target, slow)
	res.slow = slow
	return res
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
		Start: start, Link: req.dev.ConnType, LinkSpeed: req.dev.Speed,
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

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(d.cfg.Backup.StallTimeout.D(), func() { cancel(errStalled) })
	prog := progressReporter{a: a, started: start}
	res, berr := d.eng.Run(wctx, req.dev, backup.Target{
		Repo:      target,
		ForceFull: req.full,
		Progress: func(p backup.Progress) {
			wd.kick(p)
			prog.report(p)
		},
		AwaitingPasscode: a.awaitingPasscode,
	})
	wd.stop()
	// A manual request from here on asks for a new backup, not this one.
	a.setPhase(phaseIdle)
	a.setProgress(nil)

	run.End = d.now()
	run.Bytes, run.Files, run.Encrypted = res.Bytes, res.Files, res.Encrypted
	why := context.Cause(wctx)
	out := attemptResult{}
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
		}
		out.kind = resSuccess
	// A detach or a stall is joined to what the engine said, not put in
	// its place, so the one classifier keeps the most specific cause: a
	// full disk that made the phone hang up is the disk.
	case errors.Is(why, errDetached):
		run.Outcome = store.OutcomeFailed
		run.SetError(cutShort(berr, why))
		out.kind = resFailed
	case errors.Is(why, errStalled):
		run.Outcome = store.OutcomeFailed
		run.SetError(cutShort(berr, why))
		run.Note = fmt.Sprintf("no progress for %v", d.cfg.Backup.StallTimeout)
		out.kind = resFailed
	case wctx.Err() != nil:
		// The daemon is stopping.
		run.Outcome = store.OutcomeInterrupted
		run.SetError(berr)
		run.Cause = cause.Interrupted
		out.kind = resGone
	default:
		run.Outcome = store.OutcomeFailed
		run.SetError(berr)
		out.kind = resFailed
	}
	stored, _ := d.finishRun(run)
	out.cause = stored.Cause
	ev := a.log.Info()
	if run.Outcome != store.OutcomeSuccess {
		ev = a.log.Warn().Err(berr)
	}
	ev.Uint64("run", uint64(run.ID)).Str("outcome", string(run.Outcome)).Str("cause", string(run.Cause)).
		Int64("bytes", run.Bytes).Int64("files", run.Files).Dur("took", run.End.Sub(start)).Msg("backup ended")

	switch run.Outcome {
	case store.OutcomeSuccess:
		next := d.cfg.Policy.nextDue(run.End)
		note := ""
		if slow {
			note = cause.Lookup(cause.SlowLink).Summary
		}
		a.setState(api.StateSucceeded, run.Cause, note, next)
		out.next, out.nextTrigger = next, store.TriggerSchedule
	case store.OutcomeFailed:
		a.setState(api.StateFailed, run.Cause, run.Note, time.Time{})
	}
	return out
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

func (a *actor) snapshotName() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v.name
}

// lastSuccess is when the device's latest successful backup ended.
func (d *Daemon) lastSuccess(udid string) time.Time {
	dev, err := d.store.Device(udid)
	if err != nil {
		return time.Time{}
	}
	return dev.LastSuccess.Time
}

// progressReporter turns engine progress into the device's view and the
// event stream, at most a few times a second.
type progressReporter struct {
	a       *actor
	started time.Time
	last    time.Time
}

// progressEvery throttles progress events; the engine reports up to ten
// times a second, more than a person reads and enough to fill a slow
// stream reader's buffer.
const progressEvery = 250 * time.Millisecond

func (r *progressReporter) report(p backup.Progress) {
	now := r.a.d.now()
	if now.Sub(r.last) < progressEvery && p.Percent < 100 {
		return
	}
	r.last = now
	ap := &api.Progress{Percent: p.Percent, Bytes: p.Bytes, Files: p.Files, Started: r.started}
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
	r.a.d.bus.publish(api.Event{Type: api.EventProgress, UDID: r.a.udid, Name: name, State: api.StateBackingUp, Progress: ap})
}

// watchdog cancels a backup whose progress stops: no change in the
// device's percentage, bytes or files for the stall timeout. It arms at
// the first progress report, because before it the engine bounds each
// step itself (the wait for the device's first message may rightly take
// minutes while the phone asks for its passcode), and it disarms when the
// device reports 100%, because the commit that follows (verify, fsync,
// rename) reports no progress and must not be cut off.
type watchdog struct {
	stall time.Duration
	fire  func()

	mu    sync.Mutex
	timer *time.Timer
	last  backup.Progress
	off   bool
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
	if w.timer == nil {
		w.last = p
		w.timer = time.AfterFunc(w.stall, w.fire)
		return
	}
	if p == w.last {
		return // a report without news is no progress
	}
	w.last = p
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

// View updates. Each state change is logged at debug level and published.

// setState moves the device to state s. Every change is recorded: kept
// in the device's transitions (the API shows them), logged, and published
// on the event stream.
func (a *actor) setState(s api.State, c cause.Code, note string, next time.Time) {
	now := a.d.now()
	a.mu.Lock()
	changed := a.v.state != s || a.v.cause != c || a.v.note != note
	if a.v.state != s {
		a.v.since = now
	}
	a.v.state, a.v.cause, a.v.note, a.v.next = s, c, note, next
	if changed {
		if len(a.v.transitions) == keepTransitions {
			a.v.transitions = slices.Delete(a.v.transitions, 0, 1)
		}
		a.v.transitions = append(a.v.transitions, api.Transition{At: now, State: s, Cause: c, Note: note})
	}
	name := a.v.name
	a.mu.Unlock()
	if !changed {
		return
	}
	a.log.Info().Str("state", string(s)).Str("cause", string(c)).Str("note", note).Msg("device state")
	a.d.bus.publish(api.Event{Type: api.EventState, Time: now, UDID: a.udid, Name: name, State: s, Cause: c, Summary: summary(c), Note: note})
}

// setNext changes when the next attempt is due, and the note saying so.
func (a *actor) setNext(next time.Time, note string) {
	a.mu.Lock()
	a.v.next = next
	if note != "" {
		if a.v.note != "" {
			note = a.v.note + "; " + note
		}
		a.v.note = note
	}
	a.mu.Unlock()
}

func (a *actor) setConn(usb, wifi *usbmux.Device, flaps int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.v.connected = usb != nil || wifi != nil
	a.v.flaps = flaps
	switch {
	case usb != nil:
		a.v.link, a.v.speed = usb.ConnType, usb.Speed
	case wifi != nil:
		a.v.link, a.v.speed = wifi.ConnType, wifi.Speed
	default:
		a.v.link, a.v.speed = "", 0
	}
}

func (a *actor) setFacts(f usbmux.Facts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f.Name != "" {
		a.v.name = f.Name
	}
	if f.ProductType != "" {
		a.v.productType = f.ProductType
	}
	if f.ProductVersion != "" {
		a.v.iosVersion = f.ProductVersion
	}
	a.v.battery, a.v.charging, a.v.willEncrypt = f.BatteryLevel, f.Charging, f.WillEncrypt
}

func (a *actor) setProgress(p *api.Progress) {
	a.mu.Lock()
	a.v.progress = p
	a.mu.Unlock()
}

func (a *actor) setPhase(p phase) {
	a.mu.Lock()
	a.v.phase = p
	a.mu.Unlock()
}

func (a *actor) currentPhase() phase {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.v.phase
}

func (a *actor) newConnection() {
	a.mu.Lock()
	clear(a.recorded)
	a.mu.Unlock()
}

// markRecorded reports whether code has not been recorded during this
// connection yet, and notes that it now is.
func (a *actor) markRecorded(code cause.Code) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.recorded[code] {
		return false
	}
	a.recorded[code] = true
	return true
}

func (a *actor) snapshot() view {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.v
	if v.progress != nil {
		p := *v.progress
		v.progress = &p
	}
	v.transitions = slices.Clone(v.transitions)
	return v
}
