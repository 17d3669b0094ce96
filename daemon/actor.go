package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

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
	msgRestore                     // someone asked for a restore (restore, reply)
)

// actorMsg is one thing an actor is told.
type actorMsg struct {
	kind   msgKind
	dev    usbmux.Device
	conn   string // msgAbsent: usbmux.ConnUSB or usbmux.ConnNetwork
	status usbmux.DeviceStability
	at     time.Time
	full   bool
	// restore is a restore the API accepted (msgRestore).
	restore *restoreReq
	reply   chan error
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

	// senders and retired are guarded by d.mu (actors.go): a retired
	// actor takes no more messages.
	senders int
	retired bool
}

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

// send delivers m unless ctx ends first or the actor has retired
// (actors.go).
func (a *actor) send(ctx context.Context, m actorMsg) bool {
	if !a.enter() {
		return false
	}
	defer a.leave()
	select {
	case a.inbox <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// run is the actor's loop, until ctx ends; then it stops its attempt and
// waits for it to record how it ended.
func (a *actor) run(ctx context.Context) {
	l := newLoop(ctx, a)
	defer l.timer.Stop()
	idle := time.NewTimer(a.d.actorIdle)
	defer idle.Stop()
	for {
		// Idle: the phone is gone and nothing is under way or due.
		if !l.connected() && l.cur == nil && l.pending == nil && !l.timerOn {
			idle.Reset(a.d.actorIdle)
		} else {
			idle.Stop()
		}
		select {
		case <-ctx.Done():
			l.stop(ctx)
			return
		case <-idle.C:
			if a.d.retire(a) {
				a.log.Debug().Msg("the phone is gone; its worker ends")
				return
			}
		case m := <-a.inbox:
			l.handle(m)
		case res := <-l.curDone():
			l.done(res)
		case <-l.timerC():
			l.timerOn = false
			if l.connected() && l.cur == nil {
				l.start(l.timerReq)
			}
		}
	}
}

// loop is the state of an actor's loop: what the device is connected by,
// the attempt under way and the one to follow it, the retries and the
// timer. Only the actor's goroutine touches it, through one method per
// message.
type loop struct {
	a   *actor
	ctx context.Context
	pol Policy

	usb, wifi *usbmux.Device
	// unstable: the cable flapped and has not been quiet since.
	unstable bool
	// slow: the device reported a slow link during this attachment.
	slow  bool
	flaps int

	cur     *attemptHandle
	pending *attemptReq // what to start once cur has ended
	retries int
	// waitTrust: the latest attempt waits for a Trust tap or an unlock,
	// which usbmuxd's Paired announces.
	waitTrust bool

	timer    *time.Timer
	timerOn  bool
	timerReq attemptReq
	// lastReq is what the latest attempt asked to be tried next, for a
	// wake-up that comes before its timer (Paired).
	lastReq attemptReq
}

func newLoop(ctx context.Context, a *actor) *loop {
	l := &loop{a: a, ctx: ctx, pol: a.d.cfg.Policy, timer: time.NewTimer(time.Hour)}
	l.timer.Stop()
	return l
}

// handle hands a message to its method. A new kind of request (a restore,
// an extract) is a msgKind, a method beside manual, and a case here.
func (l *loop) handle(m actorMsg) {
	switch m.kind {
	case msgPresent:
		l.present(m)
	case msgAbsent:
		l.absent(m)
	case msgUnstable:
		l.unstable = true
		l.flaps = m.status.RecentFlaps
		l.a.log.Warn().Int("flaps", m.status.FlapsInWindow).Msg("the cable keeps disconnecting")
	case msgStable:
		l.unstable = false
		if l.connected() && l.cur == nil {
			l.start(attemptReq{trigger: store.TriggerPlugIn})
		}
	case msgSlowLink:
		l.slow = true
	case msgPaired:
		if l.waitTrust && l.connected() && l.cur == nil {
			l.start(l.lastReq)
		}
	case msgManual:
		l.manual(m)
	case msgRestore:
		l.restore(m)
	}
}

func (l *loop) connected() bool { return l.usb != nil || l.wifi != nil }

// curDone is the running attempt's result channel; nil (never ready)
// without one.
func (l *loop) curDone() <-chan attemptResult {
	if l.cur == nil {
		return nil
	}
	return l.cur.done
}

// timerC is the timer's channel while it is armed; nil otherwise.
func (l *loop) timerC() <-chan time.Time {
	if !l.timerOn {
		return nil
	}
	return l.timer.C
}

func (l *loop) stopTimer() {
	l.timer.Stop()
	l.timerOn = false
}

func (l *loop) arm(at time.Time, req attemptReq) {
	l.timer.Stop()
	l.timer.Reset(max(at.Sub(l.a.d.now()), 0))
	l.timerOn, l.timerReq = true, req
}

// stop ends the attempt under way, as the daemon stops, and waits for it
// to record how it ended.
func (l *loop) stop(ctx context.Context) {
	if l.cur != nil {
		l.cur.cancel(context.Cause(ctx))
		<-l.cur.done
	}
	l.dropPending()
}

// present: a connection settled.
func (l *loop) present(m actorMsg) {
	wasConnected := l.connected()
	dev := m.dev
	if dev.ConnType == usbmux.ConnNetwork {
		l.wifi = &dev
	} else {
		l.usb = &dev
		l.flaps = m.status.RecentFlaps
		l.unstable = m.status.Unstable
		l.slow = l.slow || m.status.SlowLink
	}
	l.a.setConn(l.usb, l.wifi, l.flaps)
	if !wasConnected {
		// A new plug-in: every cause may be recorded again, and the
		// retries start over.
		l.a.newConnection()
		l.retries = 0
	}
	switch {
	case l.cur == nil:
		l.start(attemptReq{trigger: store.TriggerPlugIn})
	case l.cur.gone:
		// The attempt over the old connection is winding down; start
		// afresh when it has.
		l.dropPending()
		l.pending = &attemptReq{trigger: store.TriggerPlugIn}
	}
}

// absent: a connection went away.
func (l *loop) absent(m actorMsg) {
	if m.conn == usbmux.ConnNetwork {
		l.wifi = nil
	} else {
		l.usb, l.slow = nil, false
		l.flaps = m.status.RecentFlaps
	}
	l.a.setConn(l.usb, l.wifi, l.flaps)
	if l.cur != nil && l.cur.conn == m.conn && !l.cur.gone {
		l.cur.gone = true
		l.cur.cancel(errDetached)
	}
	if !l.connected() {
		l.stopTimer()
		l.dropPending()
		if l.cur == nil {
			l.a.setState(api.StateAbsent, cause.None, "", time.Time{})
		}
	}
}

// manual: someone asked for a backup. It follows a check under way, or a
// backup winding down, unless the check goes on to make the backup asked
// for.
func (l *loop) manual(m actorMsg) {
	if err := l.refusal(); err != nil {
		m.reply <- err
		return
	}
	req := attemptReq{trigger: store.TriggerManual, manual: true, full: m.full}
	if l.pending != nil && l.pending.restore != nil {
		// A restore waits to run; a backup now would overwrite nothing
		// useful and delay it.
		m.reply <- errBusy
		return
	}
	if l.cur == nil {
		l.start(req)
		m.reply <- nil
		return
	}
	req.metByCurrent = l.a.currentPhase() == phaseChecking && !req.full
	if l.pending != nil && l.pending.manual {
		req.full = req.full || l.pending.full
		req.metByCurrent = req.metByCurrent && l.pending.metByCurrent
	}
	l.pending = &req
	m.reply <- nil
}

// refusal says why a request someone makes cannot be taken now, or nil:
// the daemon is stopping, the device is not connected, a backup of it is
// under way, or the configuration excludes it.
func (l *loop) refusal() error {
	switch {
	case l.a.d.isStopping():
		return errStopping
	case !l.connected():
		return errNotConnected
	case l.cur != nil && (l.a.currentPhase() == phaseBackup || l.a.currentPhase() == phaseRestore):
		return errBusy
	}
	if conn, why := l.admission(); conn == nil {
		return &refusedError{why}
	}
	return nil
}

// admission picks the connection to back the device up over and says
// whether the configuration admits it over that one; why says why not.
func (l *loop) admission() (conn *usbmux.Device, why string) {
	conn = l.pol.pickConn(l.usb, l.wifi)
	if conn == nil {
		return nil, l.pol.admit(l.a.udid, usbmux.ConnNetwork).why
	}
	if adm := l.pol.admit(l.a.udid, conn.ConnType); !adm.ok {
		return nil, adm.why
	}
	return conn, ""
}

// start runs an attempt for req over the admitted connection, or shows
// the device as ignored when none is.
func (l *loop) start(req attemptReq) {
	conn, why := l.admission()
	if conn == nil {
		l.a.setState(api.StateIgnored, cause.None, why, time.Time{})
		return
	}
	l.stopTimer()
	l.waitTrust = false
	if req.trigger == "" {
		req.trigger = store.TriggerPlugIn
	}
	req.dev = *conn
	req.unstable = l.unstable && conn.ConnType == usbmux.ConnUSB
	req.slow = l.slow && conn.ConnType == usbmux.ConnUSB
	req.flaps = l.flaps
	actx, cancel := context.WithCancelCause(l.ctx)
	h := &attemptHandle{req: req, cancel: cancel, done: make(chan attemptResult, 1), conn: conn.ConnType}
	l.cur = h
	go func() {
		defer cancel(nil)
		h.done <- l.a.attempt(actx, req)
	}()
}

// done: the attempt under way ended. What was asked meanwhile runs next;
// otherwise the attempt's result says when to look again.
func (l *loop) done(res attemptResult) {
	h := l.cur
	l.cur = nil
	l.slow = l.slow || res.slow
	if !l.connected() {
		l.a.setState(api.StateAbsent, cause.None, "", time.Time{})
		l.dropPending()
		return
	}
	if l.pending != nil {
		req := *l.pending
		l.pending = nil
		if !req.metByCurrent || res.kind != resSuccess {
			l.start(req)
			return
		}
		// The attempt under way when the request came made the backup
		// that was asked for.
		l.a.log.Debug().Msg("manual request met by the backup that just succeeded")
	}
	l.schedule(h.req, res)
}

// schedule arms the timer for what an attempt made for req asked next: a
// recheck, the next scheduled backup, or a retry after a transient
// failure.
func (l *loop) schedule(req attemptReq, res attemptResult) {
	if res.kind == resRestored {
		// Nothing to retry: a person asked for the restore and hears how
		// it went. A phone that restarts after it comes back as a
		// plug-in.
		return
	}
	l.waitTrust = res.waitTrust
	next := res.next
	nextReq := attemptReq{trigger: res.nextTrigger, recheck: true}
	if nextReq.trigger == "" || nextReq.trigger == req.trigger {
		// A recheck or a retry keeps what was asked: a manual request
		// stays manual.
		nextReq.trigger, nextReq.manual, nextReq.full = req.trigger, req.manual, req.full
	}
	switch res.kind {
	case resSuccess:
		l.retries = 0
	case resFailed:
		// Interrupted here means someone cancelled on the phone:
		// retrying would overrule them.
		if cause.Lookup(res.cause).Transient && res.cause != cause.Interrupted {
			nextReq.recheck = false
			next = l.retry(next)
		}
	}
	l.lastReq = nextReq
	if !next.IsZero() {
		l.arm(next, nextReq)
	}
}

// retry counts a transient failure and returns when to try again: after
// the policy's backoff, or next once the retries are used up.
func (l *loop) retry(next time.Time) time.Time {
	l.retries++
	if delay, ok := l.pol.retryDelay(l.retries); ok {
		next = l.a.d.now().Add(delay)
		l.a.setNext(next, fmt.Sprintf("retry %d of %d at %s", l.retries, l.pol.RetryLimit, next.Format(time.TimeOnly)))
	} else if l.pol.RetryLimit > 0 {
		l.a.setNext(time.Time{}, fmt.Sprintf("gave up after %d retries; unplug and plug in again, or ask for a backup", l.pol.RetryLimit))
	}
	return next
}
