package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

// ErrAlreadyRunning: another backupd holds this state_dir (its history
// database or its API socket) or this backup_dir.
var ErrAlreadyRunning = errors.New("another backupd is already running")

// Backuper runs one backup: *backup.Engine, or a stand-in in tests.
type Backuper interface {
	Run(ctx context.Context, dev usbmux.Device, t backup.Target) (backup.Result, error)
}

// Options are what the daemon takes besides its configuration.
type Options struct {
	// Logger receives the daemon's log; the zero Logger discards it.
	Logger zerolog.Logger
	// Version is reported by the health endpoint.
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Backuper runs the backups; nil means a backup.Engine over the
	// configured usbmuxd with the configured timeouts.
	Backuper Backuper
	// FreeSpace returns the free bytes on the disk holding a directory;
	// nil means the file system's own answer.
	FreeSpace func(dir string) (uint64, error)
	// RepoOptions, when set, adjusts the backup directory's options
	// before it is opened: backupd built with the failpoint tag arms its
	// failpoints there (the torture suite kills the daemon in one); nil
	// in a release build.
	RepoOptions func(repo.Options) repo.Options
}

// Daemon is backupd's service: it follows usbmuxd, runs one actor per
// connected iPhone, records every attempt in the history and serves the
// local API. New prepares it; Run runs it until its context ends.
type Daemon struct {
	cfg     Config
	log     zerolog.Logger
	now     func() time.Time
	version string
	free    func(string) (uint64, error)
	eng     Backuper
	repoOpt func(repo.Options) repo.Options // Options.RepoOptions
	bus     *bus

	ran atomic.Bool

	// Set by Run before any actor or handler reads them.
	store    *store.Store
	mux      *usbmux.Client
	tracker  *usbmux.StabilityTracker
	slots    chan struct{}
	started  time.Time
	stopping chan struct{} // closed when shutdown begins
	hooks    *hooks        // notifications and metrics (hooks.go)

	actorWG sync.WaitGroup

	mu      sync.Mutex
	actors  map[string]*actor
	open    map[store.RunID]store.Run // runs begun and not yet finished
	usbmuxd api.Usbmuxd
	repo    *repo.Repo // nil while backup_dir cannot be opened
	target  backup.Repository
}

// New checks cfg and returns a daemon; nothing is opened until Run.
func New(cfg Config, opts Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:      cfg,
		log:      opts.Logger,
		now:      opts.Now,
		version:  opts.Version,
		free:     opts.FreeSpace,
		eng:      opts.Backuper,
		repoOpt:  opts.RepoOptions,
		actors:   map[string]*actor{},
		open:     map[store.RunID]store.Run{},
		stopping: make(chan struct{}),
		slots:    make(chan struct{}, cfg.Policy.MaxConcurrent),
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.free == nil {
		d.free = backup.FreeSpace
	}
	d.bus = newBus(d.now)
	return d, nil
}

// storeTimeout is how long Run waits for the history database: long
// enough for a daemon that is just stopping to let go of it, short
// enough that a second daemon is refused at once.
const storeTimeout = time.Second

// serverStopTimeout bounds the API server's shutdown, after the backups
// have stopped.
const serverStopTimeout = time.Second

// Run runs the daemon until ctx ends, then stops the backups under way
// (recorded interrupted, staging discarded) and returns within the
// configured shutdown timeout plus a second. It fails at once, changing
// nothing, when another backupd holds the same state_dir: the error then
// wraps ErrAlreadyRunning and says which file is held. Run may be called
// once.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return errors.New("daemon: Run called twice")
	}
	// Everything below stops when Run's own context ends, even if the
	// watcher were to return by itself.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.started = d.now()
	if err := os.MkdirAll(d.cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	st, err := store.Open(filepath.Join(d.cfg.StateDir, "history.db"), store.Options{Timeout: storeTimeout})
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("%w with state_dir %s: %w", ErrAlreadyRunning, d.cfg.StateDir, err)
	}
	if err != nil {
		return fmt.Errorf("open history: %w", err)
	}
	d.store = st
	defer func() {
		if err := st.Close(); err != nil {
			d.log.Error().Err(err).Msg("close history")
		}
	}()
	ln, err := listenSocket(filepath.Join(d.cfg.StateDir, api.SocketName))
	if err != nil {
		return err
	}
	defer ln.Close()

	if d.hooks, err = d.startHooks(); err != nil {
		return err
	}
	defer d.stopHooks()
	_, _ = d.openRepo()
	if err := d.recover(ctx); err != nil {
		return err
	}
	defer func() {
		if r := d.currentRepo(); r != nil {
			if err := r.Close(); err != nil {
				d.log.Error().Err(err).Msg("close backup directory")
			}
		}
	}()

	addr, err := d.usbmuxAddr()
	if err != nil {
		return err
	}
	d.mux = usbmux.NewClient(usbmux.Config{Addr: addr, Logger: SlogLogger(d.log, "usbmux")})
	d.mu.Lock()
	d.usbmuxd.Address = addr.String()
	d.mu.Unlock()
	if d.eng == nil {
		d.eng = backup.New(d.mux, backup.Options{
			StallTimeout:        d.cfg.Backup.StallTimeout.D(),
			FirstMessageTimeout: d.cfg.Backup.FirstMessageTimeout.D(),
			LockTimeout:         d.cfg.Backup.LockTimeout.D(),
			SkipIcons:           d.cfg.Backup.SkipIcons,
			Logger:              SlogLogger(d.log, "backup"),
			Now:                 d.now,
		})
	}
	if d.tracker, err = usbmux.NewStabilityTracker(d.cfg.Stability.stability()); err != nil {
		return fmt.Errorf("stability: %w", err)
	}

	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	servers := []*http.Server{d.newServer(srvCtx, d.handler())}
	listeners := []net.Listener{ln}
	if d.cfg.API.TCP != "" {
		tln, err := net.Listen("tcp", d.cfg.API.TCP)
		if err != nil {
			return fmt.Errorf("api.tcp: %w", err)
		}
		defer tln.Close()
		servers = append(servers, d.newServer(srvCtx, requireToken(d.cfg.API.Token, d.handler())))
		listeners = append(listeners, tln)
	}
	if d.cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", d.cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		defer mln.Close()
		servers = append(servers, d.newServer(srvCtx, d.hooks.metrics.Handler()))
		listeners = append(listeners, mln)
		d.log.Info().Str("addr", mln.Addr().String()).Msg("serving metrics at /metrics")
	}
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error().Err(err).Str("addr", listeners[i].Addr().String()).Msg("API server stopped")
			}
		}()
	}
	d.log.Info().Str("socket", ln.Addr().String()).Str("usbmuxd", addr.String()).
		Str("backup_dir", d.cfg.BackupDir).Int("max_concurrent", d.cfg.Policy.MaxConcurrent).Msg("backupd started")

	d.follow(ctx)

	cancel()
	d.shutdown(stopSrv, servers)
	return nil
}

func (d *Daemon) usbmuxAddr() (usbmux.Addr, error) {
	if d.cfg.Usbmuxd == "" {
		return usbmux.DefaultAddr(), nil
	}
	a, err := usbmux.ParseAddr(d.cfg.Usbmuxd)
	if err != nil {
		return usbmux.Addr{}, fmt.Errorf("usbmuxd: %w", err)
	}
	return a, nil
}

func (d *Daemon) newServer(base context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// follow watches usbmuxd until ctx ends and hands each change to the
// device's actor. While nothing happens it blocks on usbmuxd's socket and
// on the stability tracker's next deadline only: no polling.
func (d *Daemon) follow(ctx context.Context) {
	w := usbmux.NewWatcher(usbmux.WatcherConfig{
		Client: d.mux,
		// On Linux usbmuxd often runs only while a phone is plugged in
		// (udev starts it), so "unavailable" is a normal idle state: retry
		// at a pace that costs next to nothing (about 4 ms of CPU a
		// minute) and still notices it before a phone would have settled.
		Backoff: usbmux.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second},
		Now:     d.now,
		Logger:  SlogLogger(d.log, "usbmux"),
	})
	p := usbmux.NewPresence(w, d.tracker, d.now)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error().Err(err).Msg("usbmuxd watcher stopped")
		}
	}()
	for ev := range p.Events() {
		d.dispatch(ctx, ev)
	}
	<-done
}

// dispatch routes one presence event.
func (d *Daemon) dispatch(ctx context.Context, ev usbmux.PresenceEvent) {
	switch ev.Mux {
	case usbmux.MuxUp, usbmux.MuxDown:
		d.setUsbmuxd(ev)
		return
	case usbmux.Paired:
		d.actorFor(ctx, ev.Device.UDID).send(ctx, actorMsg{kind: msgPaired})
		return
	}
	// Transitions from the stability tracker carry its status and are
	// about the USB attachment; Wi-Fi presence comes without one.
	fromTracker := ev.Status.UDID != ""
	udid := ev.Device.UDID
	if fromTracker {
		udid = ev.Status.UDID
	}
	if udid == "" {
		return
	}
	a := d.actorFor(ctx, udid)
	switch ev.Kind {
	case usbmux.TransitionPresent:
		dev := ev.Device
		if fromTracker && dev.ConnType != usbmux.ConnUSB {
			// Presence names a device by its latest attachment, which
			// for a phone on USB and Wi-Fi may be the Wi-Fi one; the
			// settled attachment is the USB one.
			usb, ok := d.findDevice(ctx, udid, usbmux.ConnUSB)
			if !ok {
				return
			}
			dev = usb
		}
		a.send(ctx, actorMsg{kind: msgPresent, dev: dev, status: ev.Status, at: ev.At})
	case usbmux.TransitionAbsent:
		conn := usbmux.ConnUSB
		if !fromTracker {
			conn = ev.Device.ConnType
		}
		a.send(ctx, actorMsg{kind: msgAbsent, conn: conn, status: ev.Status, at: ev.At})
	case usbmux.TransitionUnstable:
		a.send(ctx, actorMsg{kind: msgUnstable, status: ev.Status, at: ev.At})
	case usbmux.TransitionStable:
		a.send(ctx, actorMsg{kind: msgStable, status: ev.Status, at: ev.At})
	case usbmux.TransitionSlowLink:
		a.send(ctx, actorMsg{kind: msgSlowLink, status: ev.Status, at: ev.At})
	}
}

// findDevice asks usbmuxd for udid's current attachment of a connection
// type. The DeviceID changes when usbmuxd restarts, and the watcher does
// not report a device that stayed, so an attempt asks afresh.
func (d *Daemon) findDevice(ctx context.Context, udid, connType string) (usbmux.Device, bool) {
	list, err := d.mux.ListDevices(ctx)
	if err != nil {
		d.log.Debug().Err(err).Str("udid", udid).Msg("list devices")
		return usbmux.Device{}, false
	}
	for _, dev := range list {
		if dev.UDID == udid && dev.ConnType == connType {
			return dev, true
		}
	}
	return usbmux.Device{}, false
}

func (d *Daemon) setUsbmuxd(ev usbmux.PresenceEvent) {
	d.mu.Lock()
	d.usbmuxd.Connected = ev.Mux == usbmux.MuxUp
	d.usbmuxd.Error, d.usbmuxd.Cause = "", cause.None
	if ev.Err != nil {
		d.usbmuxd.Error, d.usbmuxd.Cause = ev.Err.Error(), cause.Of(ev.Err)
	}
	u := d.usbmuxd
	d.mu.Unlock()
	if u.Connected {
		d.log.Info().Str("usbmuxd", u.Address).Msg("usbmuxd connected")
	} else {
		d.log.Warn().Str("usbmuxd", u.Address).Str("cause", string(u.Cause)).Str("err", u.Error).Msg("usbmuxd unavailable")
	}
	d.bus.publish(api.Event{Type: api.EventUsbmuxd, Time: ev.At, Usbmuxd: &u, Cause: u.Cause, Summary: summary(u.Cause)})
}

// actorFor returns udid's actor, starting it the first time. Actors live
// as long as the daemon: an absent device's actor is a goroutine blocked
// on its inbox, which costs nothing, and keeping it keeps its per-device
// state simple.
func (d *Daemon) actorFor(ctx context.Context, udid string) *actor {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.actors[udid]; ok {
		return a
	}
	a := newActor(d, udid)
	d.actors[udid] = a
	d.actorWG.Add(1)
	go func() {
		defer d.actorWG.Done()
		a.run(ctx)
	}()
	return a
}

func (d *Daemon) actor(udid string) (*actor, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.actors[udid]
	return a, ok
}

func (d *Daemon) allActors() []*actor {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*actor, 0, len(d.actors))
	for _, a := range d.actors {
		out = append(out, a)
	}
	return out
}

// acquire takes a backup slot: at most max_concurrent backups run at
// once; the others wait here, first come first served.
func (d *Daemon) acquire(ctx context.Context) error {
	select {
	case d.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (d *Daemon) release() { <-d.slots }

func (d *Daemon) isStopping() bool {
	select {
	case <-d.stopping:
		return true
	default:
		return false
	}
}

// shutdown runs once ctx has ended: the actors have been told (their
// contexts derive from it) and stop their backups; each records its run
// interrupted and the engine discards its staging. Runs whose backup did
// not wind down within the shutdown timeout are recorded interrupted here,
// and their staging is left for the next start's recovery.
func (d *Daemon) shutdown(stopSrv context.CancelFunc, servers []*http.Server) {
	close(d.stopping)
	start := time.Now()
	d.log.Info().Msg("stopping")
	done := make(chan struct{})
	go func() {
		d.actorWG.Wait()
		close(done)
	}()
	timer := time.NewTimer(d.cfg.ShutdownTimeout.D())
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		d.log.Warn().Dur("waited", d.cfg.ShutdownTimeout.D()).Msg("backups did not stop in time; recording them interrupted")
	}
	d.mu.Lock()
	open := make([]store.Run, 0, len(d.open))
	for _, r := range d.open {
		open = append(open, r)
	}
	d.mu.Unlock()
	for _, r := range open {
		d.finishInterrupted(r, "backupd stopped and the backup did not wind down in time; its staging is removed at the next start")
	}
	// Event streams end first: Shutdown waits for every handler.
	d.bus.closeAll()
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		d.stopHooks() // beside the servers' stop: the same second bounds both
	}()
	stopSrv()
	sctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}
	<-hooksDone
	d.log.Info().Dur("took", time.Since(start)).Msg("stopped")
}

// finishInterrupted records an open run as interrupted.
func (d *Daemon) finishInterrupted(r store.Run, note string) {
	r.Outcome, r.End, r.Note = store.OutcomeInterrupted, d.now(), note
	r.SetError(cause.New(cause.Interrupted, nil))
	d.finishRun(r)
}

// finishRun writes a run's end and publishes it.
func (d *Daemon) finishRun(r store.Run) (store.Run, error) {
	d.mu.Lock()
	delete(d.open, r.ID)
	d.mu.Unlock()
	stored, err := d.store.FinishRun(r)
	if err != nil {
		if !errors.Is(err, store.ErrNotRunning) {
			d.log.Error().Err(err).Str("udid", r.UDID).Uint64("run", uint64(r.ID)).Msg("record the end of a run")
		}
		return r, err
	}
	d.bus.publish(api.Event{Type: api.EventRun, UDID: stored.UDID, Name: stored.DeviceName, Cause: stored.Cause, Summary: summary(stored.Cause), Run: RunView(stored)})
	if err := d.pruneDevice(stored.UDID); err != nil {
		d.log.Warn().Err(err).Str("udid", stored.UDID).Msg("prune history")
	}
	return stored, nil
}

// beginRun records that a backup starts.
func (d *Daemon) beginRun(r store.Run) (store.Run, error) {
	stored, err := d.store.BeginRun(r)
	if err != nil {
		return r, err
	}
	d.mu.Lock()
	d.open[stored.ID] = stored
	d.mu.Unlock()
	d.bus.publish(api.Event{Type: api.EventRun, UDID: stored.UDID, Name: stored.DeviceName, Run: RunView(stored)})
	return stored, nil
}

// recordSkip records a run decided against.
func (d *Daemon) recordSkip(r store.Run) {
	stored, err := d.store.RecordSkip(r)
	if err != nil {
		d.log.Error().Err(err).Str("udid", r.UDID).Msg("record a skipped backup")
		return
	}
	d.bus.publish(api.Event{Type: api.EventRun, UDID: stored.UDID, Name: stored.DeviceName, Cause: stored.Cause, Summary: summary(stored.Cause), Note: stored.Note, Run: RunView(stored)})
	if err := d.pruneDevice(stored.UDID); err != nil {
		d.log.Warn().Err(err).Str("udid", stored.UDID).Msg("prune history")
	}
}

func (d *Daemon) retention() store.Retention {
	return store.Retention{MaxRuns: d.cfg.History.KeepRuns, MaxAge: d.cfg.History.KeepFor.D()}
}

func (d *Daemon) pruneDevice(udid string) error {
	ret := d.retention()
	if ret == (store.Retention{}) {
		return nil
	}
	_, err := d.store.PruneDevice(udid, d.now(), ret)
	return err
}

// openRepo opens backup_dir. A directory that is not there (a disk not
// mounted yet) is not fatal: the daemon still serves its history and
// says host_not_writable for each device until the directory appears.
func (d *Daemon) openRepo() (*repo.Repo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.repo != nil {
		return d.repo, nil
	}
	opts := d.cfg.Backup.repoOptions()
	opts.Logger = SlogLogger(d.log, "repo")
	opts.Notice = func(msg string) { d.log.Warn().Msg(msg) }
	opts.Now = d.now
	if d.repoOpt != nil {
		opts = d.repoOpt(opts)
	}
	r, err := repo.Open(d.cfg.BackupDir, opts)
	if err != nil {
		d.log.Error().Err(err).Str("backup_dir", d.cfg.BackupDir).Msg("backup directory unavailable")
		return nil, err
	}
	d.repo, d.target = r, backup.FromRepo(r)
	return r, nil
}

// ensureRepo returns the backup directory, opening it if it could not be
// opened so far (and then recovering what a crash left in it).
func (d *Daemon) ensureRepo(ctx context.Context) (*repo.Repo, backup.Repository, error) {
	d.mu.Lock()
	r, t := d.repo, d.target
	d.mu.Unlock()
	if r != nil {
		return r, t, nil
	}
	r, err := d.openRepo()
	if err != nil {
		return nil, nil, err
	}
	if _, err := r.Recover(ctx); err != nil {
		d.log.Error().Err(err).Msg("recovery of the backup directory")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.repo, d.target, nil
}

func (d *Daemon) currentRepo() *repo.Repo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.repo
}

// recover runs before anything else writes: it finishes or discards the
// backups a crash or a kill left in staging, and records the runs left
// running as interrupted. A run whose commit had passed its commit point
// is complete, so it is recorded as the success it was.
func (d *Daemon) recover(ctx context.Context) error {
	now := d.now()
	completed := map[string]repo.Recovered{}
	if r := d.currentRepo(); r != nil {
		recs, err := r.Recover(ctx)
		if errors.Is(err, repo.ErrLocked) {
			return fmt.Errorf("%w with backup_dir %s: %w", ErrAlreadyRunning, d.cfg.BackupDir, err)
		}
		if err != nil {
			// The devices recovery could not make sense of are left as
			// they are, and their backups fail until someone looks; the
			// others were recovered.
			d.log.Error().Err(err).Msg("start-up recovery of the backup directory")
		}
		for _, rec := range recs {
			d.log.Warn().Str("udid", rec.UDID).Bool("completed", rec.Completed).Msg("found an interrupted backup in staging")
			if rec.Completed {
				completed[rec.UDID] = rec
			}
		}
	}
	page, err := d.store.History("", store.HistoryQuery{Outcomes: []store.Outcome{store.OutcomeRunning}, Limit: store.MaxHistoryLimit})
	if err != nil {
		return fmt.Errorf("start-up recovery: %w", err)
	}
	seen := map[string]bool{}
	for _, run := range page.Runs {
		// Newest first: only a device's newest open run can be the one
		// whose backup was committed.
		if seen[run.UDID] {
			continue
		}
		seen[run.UDID] = true
		rec, ok := completed[run.UDID]
		switch {
		case ok:
			run.Note = "backupd stopped during the commit; the next start completed it"
		case d.committedSince(run.UDID, run.Start):
			// Stopped after the commit's renames (in its clean-up or
			// retention, or before the run was recorded): no staging was
			// left, but the latest backup is this run's.
			rec.Latest.Path = filepath.Join(d.cfg.BackupDir, run.UDID)
			run.Note = "backupd stopped after the commit, before it recorded the run"
		default:
			continue
		}
		run.Outcome, run.End = store.OutcomeSuccess, now
		run.VersionPath, run.Verify = rec.Latest.Path, "verified before its commit"
		if _, err := d.store.FinishRun(run); err != nil {
			d.log.Error().Err(err).Str("udid", run.UDID).Msg("record a recovered backup")
		}
	}
	ended, err := d.store.MarkInterrupted(now)
	if err != nil {
		return fmt.Errorf("start-up recovery: %w", err)
	}
	for _, r := range ended {
		d.log.Warn().Str("udid", r.UDID).Uint64("run", uint64(r.ID)).Time("started", r.Start).Msg("a backup was interrupted when backupd last stopped")
		d.bus.publish(api.Event{Type: api.EventRun, UDID: r.UDID, Name: r.DeviceName, Cause: r.Cause, Summary: summary(r.Cause), Run: RunView(r)})
	}
	if ret := d.retention(); ret != (store.Retention{}) {
		if n, err := d.store.Prune(now, ret); err != nil {
			d.log.Warn().Err(err).Msg("prune history")
		} else if n > 0 {
			d.log.Info().Int("runs", n).Msg("pruned old history")
		}
	}
	return nil
}

// committedSince reports whether udid's latest backup was committed at or
// after start: a commit stamps the latest backup's directory with its time
// (repo.Commit), and nothing else changes it.
func (d *Daemon) committedSince(udid string, start time.Time) bool {
	r := d.currentRepo()
	if r == nil || start.IsZero() {
		return false
	}
	dir, ok := r.Latest(udid)
	if !ok {
		return false
	}
	fi, err := os.Stat(dir)
	return err == nil && !fi.ModTime().Before(start.Truncate(time.Millisecond))
}

// summary is the plain sentence for a cause, or nothing for none.
func summary(c cause.Code) string {
	if c == cause.None {
		return ""
	}
	return cause.Lookup(c).Summary
}
