package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/usbmux"
)

// Repository is where a backup is staged and committed: backup/repo's
// Repo, through an adapter, or a stand-in in tests.
type Repository interface {
	// Begin starts a backup of udid in a staging directory that holds a
	// clone of the latest backup, if there is one.
	Begin(ctx context.Context, udid string) (Staging, error)
}

// Staging is one backup in progress.
type Staging interface {
	// Dir is the staging root: device paths such as "<UDID>/Status.plist"
	// are relative to it.
	Dir() string
	// Commit verifies the staged backup and makes it the latest, keeping
	// the previous one as a version. It returns the committed backup's
	// path.
	Commit(ctx context.Context) (string, error)
	// Abort drops the staged backup; the latest one is untouched.
	Abort() error
}

// Target says where and how to back a device up.
type Target struct {
	// Repo receives the backup. Required.
	Repo Repository
	// ForceFull asks the device for a full backup even when the latest
	// backup would let it send only changes.
	ForceFull bool
	// Progress, if set, is called on the engine's goroutine as the backup
	// advances: at each device request and at most every 100 ms while
	// files arrive. It must return quickly.
	Progress func(Progress)
	// AwaitingPasscode, if set, is told true when the iPhone shows its
	// passcode prompt for the backup (iOS 16.1 and later ask at every
	// backup) and false when the prompt goes away or the device starts
	// sending. The device says so through notification_proxy
	// (notification.PasscodePresented, notification.PasscodeDismissed); an iOS 16.1 or
	// later that has said nothing PasscodeGuess after the Backup request
	// is reported as likely showing the prompt too. Calls come from
	// several goroutines, one at a time, each value once per change; it
	// must return quickly.
	AwaitingPasscode func(bool)
}

// Progress is how far a backup has come.
type Progress struct {
	// Percent is the device's own estimate of the whole backup, 0..100.
	Percent float64
	// Bytes and Files count the file content received so far.
	Bytes int64
	Files int64
	// Thinking: the engine waits for the phone at a point of the backup
	// where real iPhones go quiet for minutes (passcode, snapshot,
	// scanning, manifest), the phone is still attached, and the engine
	// itself bounds the silence (Options.ThinkTimeout). A watchdog on
	// progress should hold its timer until a report says false again.
	Thinking bool
}

// Result describes one run, successful or not.
type Result struct {
	UDID string
	// Full is true when the device sent a full backup, false when it sent
	// only the changes since the latest one.
	Full bool
	// Encrypted: the device encrypted the backup.
	Encrypted bool
	// Bytes and Files count the file content received from the device.
	Bytes int64
	Files int64
	// Duration is the run's wall time, staging and commit included.
	Duration time.Duration
	// DeviceErrorCode and DeviceErrorText are the device's final
	// ErrorCode and ErrorDescription (0 and "" on success or when the
	// device never said).
	DeviceErrorCode int
	DeviceErrorText string
	// Cause is cause.None on success, else why the backup failed.
	Cause cause.Code
	// VersionPath is the committed backup's directory (success only).
	VersionPath string
	// Unreadable lists the files the iPhone could not read when it sent
	// them (the first of them when there were very many), and
	// UnreadableCount counts them all. A successful backup keeps them
	// as what arrived of them and records the list in the backup
	// (unreadable.go).
	Unreadable      []UnreadableFile
	UnreadableCount int
}

// Engine runs backups of devices reached through one usbmuxd. It holds
// no per-backup state; one Engine may run backups of several devices at
// once.
type Engine struct {
	mux  *usbmux.Client
	opts Options
}

// New returns an engine using mux to reach devices.
func New(mux *usbmux.Client, opts Options) *Engine {
	return &Engine{mux: mux, opts: opts.withDefaults()}
}

// cleanupTimeout bounds each step of the goodbye (unlock, syncDidFinish,
// Shutdown), which runs even when the caller's context has ended.
const cleanupTimeout = 5 * time.Second

// Run backs dev up into t.Repo: it announces the sync, takes the sync
// lock, writes Info.plist into a staging clone of the latest backup, lets
// the device drive the mobilebackup2 exchange, and commits only when the
// device reported success and the repository verified the result. On any
// failure the staging is dropped and the latest backup is untouched.
//
// The error, when not nil, is a *cause.Error: its Code says why in terms
// a person can act on, and the device's own ErrorCode and text are kept
// in it and in Result.
func (e *Engine) Run(ctx context.Context, dev usbmux.Device, t Target) (res Result, err error) {
	start := e.opts.Now()
	res.UDID = dev.UDID
	log := e.opts.Logger.With("udid", dev.UDID)
	defer func() {
		res.Duration = e.opts.Now().Sub(start)
		if err != nil {
			ce := classify(err)
			res.Cause = ce.Code
			if res.DeviceErrorCode == 0 && res.DeviceErrorText == "" {
				res.DeviceErrorCode, res.DeviceErrorText = ce.DeviceErrorCode, ce.DeviceErrorText
			}
			log.Warn("backup failed", "cause", ce.Code, "err", err)
			err = ce
		}
	}()
	if t.Repo == nil {
		return res, errors.New("backup: Target.Repo is nil")
	}

	// A cancel the user asks for on the phone ends everything below,
	// through runCtx, with ErrCancelledByDevice as its cause.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	defer func() {
		if err != nil {
			err = explainCancel(ctx, runCtx, err)
		}
	}()

	pass := &passcodeState{report: t.AwaitingPasscode}
	defer pass.end()
	ph := newPhases(log, e.opts.Now)
	h, err := e.prepare(runCtx, dev, cancelRun, pass, log)
	ph.done("prepare")
	if h != nil {
		defer h.close(ctx, log)
	}
	if err != nil {
		return res, err
	}

	st, err := t.Repo.Begin(runCtx, dev.UDID)
	if err != nil {
		return res, fmt.Errorf("begin staging: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			if aerr := st.Abort(); aerr != nil {
				log.Warn("abort staging", "err", aerr)
			}
		}
	}()
	fs, err := openStagingFS(st.Dir())
	if err != nil {
		return res, err
	}
	defer fs.Close()
	if err := fs.mkdirAll(dev.UDID); err != nil {
		return res, fmt.Errorf("staging: %w", err)
	}
	if err := fs.writeFile(dev.UDID+"/Info.plist", h.info); err != nil {
		return res, fmt.Errorf("staging: write Info.plist: %w", err)
	}
	ph.done("staging")

	conn, err := e.mux.ConnectService(runCtx, dev, lockdown.ServiceMobileBackup2, true)
	if err != nil {
		return res, fmt.Errorf("mobilebackup2: %w", err)
	}
	s := newSession(conn, e.opts, fs, st.Dir(), t.Progress)
	s.onFirst = func() {
		ph.done("first_message")
		pass.started()
	}
	s.allowThinking(e.presence(runCtx, dev), e.opts.ThinkTimeout)
	final, serr := func() (*deviceResult, error) {
		defer conn.Close()
		defer s.watch(runCtx)()
		if err := s.handshake(); err != nil {
			return nil, err
		}
		ph.done("connect")
		req := map[string]any{
			"MessageName":      "Backup",
			"TargetIdentifier": dev.UDID,
			"SourceIdentifier": dev.UDID,
		}
		if t.ForceFull {
			req["Options"] = map[string]any{"ForceFullBackup": true}
		}
		if asksPasscode(h.values.productVersion()) {
			// Not every iOS relays the prompt's notifications: a
			// device that asks for its passcode says nothing at all.
			guess := time.AfterFunc(e.opts.PasscodeGuess, pass.guess)
			defer guess.Stop()
		}
		final, err := s.request(req)
		ph.done("transfer")
		s.disconnect()
		return final, err
	}()
	res.Files, res.Bytes = s.files, s.bytes
	res.Unreadable, res.UnreadableCount = s.unreadable.files, s.unreadable.count
	if final != nil {
		res.DeviceErrorCode, res.DeviceErrorText = final.Code, final.Text
	}
	// The device is done with us: let it go before the commit, which may
	// take a while.
	h.close(ctx, log)
	ph.done("release")
	if serr != nil {
		if s.hostErr != nil {
			// A full disk is often why the device gave up.
			return res, errors.Join(serr, s.hostErr)
		}
		return res, serr
	}
	if s.hostErr != nil {
		// The device was told and has most likely given up (105 for a
		// full disk); our own error says more.
		err := cause.New(cause.Of(s.hostErr), s.hostErr)
		if final != nil && final.Code != 0 {
			dev := cause.FromDevice(final.Code, final.Text)
			err.DeviceErrorCode, err.DeviceErrorText = dev.DeviceErrorCode, dev.DeviceErrorText
		}
		return res, err
	}
	if final.Code != 0 {
		return res, cause.FromDevice(final.Code, final.Text)
	}

	res.Full, res.Encrypted = stagedFacts(fs, dev.UDID, h.values.willEncrypt)
	if err := recordUnreadable(fs, dev.UDID, s.unreadable); err != nil {
		return res, err
	}
	fs.Close()
	// The commit flushes the staging (one syncfs on Linux) while it
	// verifies it.
	path, err := st.Commit(ctx)
	ph.done("commit")
	if err != nil {
		if cause.Of(err) == cause.Unknown {
			err = cause.New(cause.VerifyFailed, err)
		}
		return res, fmt.Errorf("commit: %w", err)
	}
	committed = true
	res.VersionPath = path
	log.Info("backup done", "files", res.Files, "bytes", res.Bytes, "full", res.Full, "path", path)
	return res, nil
}

// classify is cause.Classify, except that an error that already is a
// *cause.Error with the winning code is kept as it is, so its text does
// not name the code twice.
func classify(err error) *cause.Error {
	ce := cause.Classify(err)
	if top, ok := err.(*cause.Error); ok && top.Code == ce.Code {
		if top.DeviceErrorCode == 0 && top.DeviceErrorText == "" {
			top.DeviceErrorCode, top.DeviceErrorText = ce.DeviceErrorCode, ce.DeviceErrorText
		}
		if top.Errno == 0 {
			top.Errno = ce.Errno
		}
		return top
	}
	return ce
}

// explainCancel names why runCtx ended when that is what cut the run
// short: the phone's cancel, the caller stopping backupd, or a reason the
// caller gave as a cause (context.WithCancelCause with a *cause.Error:
// the phone was unplugged, the backup stalled), which is joined to err so
// that the most specific cause in either wins.
func explainCancel(ctx, runCtx context.Context, err error) error {
	if c := context.Cause(runCtx); errors.Is(c, ErrCancelledByDevice) && !errors.Is(err, ErrCancelledByDevice) {
		return cause.New(cause.Interrupted, fmt.Errorf("%w: %w", ErrCancelledByDevice, err))
	}
	if ctx.Err() != nil && cause.Of(err) != cause.Interrupted {
		why := context.Cause(ctx)
		if c := cause.Of(why); c != cause.Unknown && c != cause.None {
			return errors.Join(err, why)
		}
		return cause.New(cause.Interrupted, fmt.Errorf("backup stopped: %w: %w", why, err))
	}
	return err
}

// stagedFacts reads from the staged Status.plist and Manifest.plist
// whether the backup is full and encrypted.
func stagedFacts(fs *stagingFS, udid string, willEncrypt bool) (full, encrypted bool) {
	encrypted = willEncrypt
	if b, err := fs.readFile(udid+"/Status.plist", 1<<20); err == nil {
		var st map[string]any
		if wire.Decode(b, &st) == nil {
			full, _ = st["IsFullBackup"].(bool)
		}
	}
	if b, err := fs.readFile(udid+"/Manifest.plist", 16<<20); err == nil {
		var mp map[string]any
		if wire.Decode(b, &mp) == nil {
			if v, ok := mp["IsEncrypted"].(bool); ok {
				encrypted = v
			}
		}
	}
	return full, encrypted
}

// helpers are the services held around the transfer.
type helpers struct {
	values deviceValues
	info   []byte
	np     *notificationClient
	afc    *afc.Client
	afcC   net.Conn
	lock   *afc.SyncLock
	closed bool
}

// prepare does what a host does before it asks for a backup, in
// libimobiledevice's order: read the device's values, observe its
// cancel requests, post syncWillStart and syncLockRequest, take the sync
// lock (device_busy when another tool keeps it), post syncDidStart, and
// gather what Info.plist records. The returned helpers, even with an
// error, must be closed.
func (e *Engine) prepare(ctx context.Context, dev usbmux.Device, cancelRun context.CancelCauseFunc, pass *passcodeState, log *slog.Logger) (*helpers, error) {
	return e.prepareSync(ctx, dev, cancelRun, pass, log, true)
}

// prepareSync is prepare; withInfo says whether to gather what Info.plist
// records (a restore needs none of it).
func (e *Engine) prepareSync(ctx context.Context, dev usbmux.Device, cancelRun context.CancelCauseFunc, pass *passcodeState, log *slog.Logger, withInfo bool) (*helpers, error) {
	sess, err := e.mux.OpenSession(ctx, dev)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	h := &helpers{}
	sctx, cancel := context.WithTimeout(ctx, e.opts.ServiceTimeout)
	defer cancel()
	if h.values, err = readValues(sctx, sess.Lockdown()); err != nil {
		return h, err
	}
	dial := func(name string) (net.Conn, error) {
		svc, err := sess.StartService(sctx, name, false)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		return sess.DialService(sctx, svc)
	}
	npc, err := dial(lockdown.ServiceNotificationProxy)
	if err != nil {
		return h, err
	}
	h.np = newNotificationClient(npc, e.opts.ServiceTimeout, func(name string) {
		switch name {
		case notification.SyncCancelRequest:
			log.Warn("the iPhone asked to cancel the backup")
			cancelRun(ErrCancelledByDevice)
		case notification.PasscodePresented:
			log.Info("the iPhone asks for its passcode to start the backup")
			pass.fromNotification(true)
		case notification.PasscodeDismissed:
			pass.fromNotification(false)
		default:
			// Suspend and resume have no meaning for a backup in
			// progress: the stall timer covers a device that pauses.
			log.Debug("notification from the device", "name", name)
		}
	})
	if err := h.np.Observe(sctx, notification.SyncCancelRequest, notification.SyncSuspendRequest, notification.SyncResumeRequest, notification.PasscodePresented, notification.PasscodeDismissed); err != nil {
		return h, err
	}
	if h.afcC, err = dial(lockdown.ServiceAFC); err != nil {
		return h, err
	}
	h.afc = afc.NewClient(h.afcC)

	if err := h.np.Post(sctx, notification.SyncWillStart); err != nil {
		return h, err
	}
	if err := h.np.Post(sctx, notification.SyncLockRequest); err != nil {
		return h, err
	}
	lctx, lcancel := context.WithTimeout(ctx, e.opts.LockTimeout)
	h.lock, err = h.afc.AcquireSyncLock(lctx, e.opts.LockRetry)
	lcancel()
	if err != nil {
		switch {
		case errors.Is(err, afc.ErrWouldBlock) && ctx.Err() == nil:
			return h, cause.New(cause.DeviceBusy, fmt.Errorf("another program holds the iPhone's sync lock after %v: %w", e.opts.LockTimeout, err))
		case errors.As(err, new(*afc.StatusError)):
			return h, cause.New(cause.ProtocolError, err)
		default:
			return h, cause.New(cause.Disconnected, err)
		}
	}
	if err := h.np.Post(sctx, notification.SyncDidStart); err != nil {
		return h, err
	}
	if !withInfo {
		return h, nil
	}

	// Info.plist. Like libimobiledevice, a service that fails here costs
	// only what it would have added.
	budget := newInfoBudget(maxInfoData)
	var apps []app
	if c, err := dial(lockdown.ServiceInstallationProxy); err != nil {
		log.Warn("installation_proxy unavailable; Info.plist lists no apps", "err", err)
	} else {
		apps, err = browseApps(sctx, plistService{conn: c, timeout: e.opts.ServiceTimeout, format: wire.XML}, budget)
		c.Close()
		if err != nil {
			log.Warn("installation_proxy Browse", "err", err)
		}
	}
	if !e.opts.SkipIcons && len(apps) > 0 {
		if c, err := dial(lockdown.ServiceSpringboard); err != nil {
			log.Warn("springboardservices unavailable; Info.plist has no app icons", "err", err)
		} else {
			fetchIcons(sctx, plistService{conn: c, timeout: e.opts.ServiceTimeout, format: wire.Binary, max: maxIconMessage}, apps, budget, log)
			c.Close()
		}
	}
	files := map[string][]byte{}
	for _, name := range iTunesFiles {
		if b, err := afcFile(sctx, h.afc, "/iTunes_Control/iTunes/"+name); err == nil && b != nil {
			if b = budget.keepFile(b); b != nil {
				files[name] = b
			}
		}
	}
	books, _ := afcFile(sctx, h.afc, "/Books/iBooksData2.plist")
	books = budget.keepFile(books)
	budget.report(log)
	if h.info, err = infoPlist(dev.UDID, h.values, apps, files, books, e.opts.Now()); err != nil {
		return h, fmt.Errorf("build Info.plist: %w", err)
	}
	return h, nil
}

// close releases the sync lock, posts syncDidFinish and closes the
// services, each bounded even when ctx has ended. It is idempotent.
func (h *helpers) close(ctx context.Context, log *slog.Logger) {
	if h.closed {
		return
	}
	h.closed = true
	cctx := context.WithoutCancel(ctx)
	step := func(what string, f func(context.Context) error) {
		c, cancel := context.WithTimeout(cctx, cleanupTimeout)
		defer cancel()
		if err := f(c); err != nil {
			log.Debug("goodbye to the device", "step", what, "err", err)
		}
	}
	if h.lock != nil {
		step("release sync lock", h.lock.Release)
	}
	if h.afcC != nil {
		h.afcC.Close()
	}
	if h.np != nil {
		if h.lock != nil {
			step("post syncDidFinish", func(c context.Context) error { return h.np.Post(c, notification.SyncDidFinish) })
		}
		step("notification_proxy shutdown", h.np.Close)
	}
}
