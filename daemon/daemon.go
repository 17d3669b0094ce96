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
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/loopback"
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
	// ActorIdle is how long the worker of a phone that is gone, with
	// nothing to do, is kept before it ends; 0 means defaultActorIdle.
	ActorIdle time.Duration
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
	// actorIdle: Options.ActorIdle (actors.go)
	actorIdle time.Duration

	ran atomic.Bool

	// Set by Run before any actor or handler reads them.
	store     *store.Store
	mux       *usbmux.Client
	tracker   *usbmux.StabilityTracker
	slots     chan struct{}
	started   time.Time
	stopping  chan struct{} // closed when shutdown begins
	observers *observers    // the hooks and the metrics (observers.go)

	actorWG sync.WaitGroup

	mu     sync.Mutex
	actors map[string]*actor
	// actorsFull: the cap on actors was met (logged once until it is not).
	actorsFull bool
	open       map[store.RunID]store.Run // runs begun and not yet finished
	usbmuxd    api.Usbmuxd
	repo       *repo.Repo // nil while backup_dir cannot be opened
	target     backup.Repository
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
	d.actorIdle = opts.ActorIdle
	if d.actorIdle <= 0 {
		d.actorIdle = defaultActorIdle
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
	if err := d.openStore(); err != nil {
		return err
	}
	defer d.closeStore()
	ln, err := listenSocket(filepath.Join(d.cfg.StateDir, api.SocketName))
	if err != nil {
		return err
	}
	defer ln.Close()

	if d.observers, err = d.startObservers(); err != nil {
		return err
	}
	defer d.stopObservers()
	_, _ = d.openRepo()
	if err := d.recover(ctx); err != nil {
		return err
	}
	defer d.closeRepo()
	addr, err := d.startUsbmux()
	if err != nil {
		return err
	}

	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	servers, closeListeners, err := d.serve(srvCtx, ln)
	if err != nil {
		return err
	}
	defer closeListeners()
	d.log.Info().Str("socket", ln.Addr().String()).Str("usbmuxd", addr.String()).
		Str("backup_dir", d.cfg.BackupDir).Int("max_concurrent", d.cfg.Policy.MaxConcurrent).Msg("backupd started")

	d.follow(ctx)

	cancel()
	d.shutdown(stopSrv, servers)
	return nil
}

// openStore opens the history in state_dir, refusing one another daemon
// holds.
func (d *Daemon) openStore() error {
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
	return nil
}

func (d *Daemon) closeStore() {
	if err := d.store.Close(); err != nil {
		d.log.Error().Err(err).Msg("close history")
	}
}

// startUsbmux makes the usbmuxd client, the backup engine over it (unless
// Options gave one) and the stability tracker, and returns usbmuxd's
// address.
func (d *Daemon) startUsbmux() (usbmux.Addr, error) {
	addr, err := d.usbmuxAddr()
	if err != nil {
		return addr, err
	}
	d.mux = usbmux.NewClient(usbmux.Config{Addr: addr, Logger: SlogLogger(d.log, "usbmux")})
	d.mu.Lock()
	d.usbmuxd.Address = addr.String()
	d.mu.Unlock()
	if d.eng == nil {
		d.eng = backup.New(d.mux, backup.Options{
			StallTimeout:        d.cfg.Backup.StallTimeout.D(),
			FirstMessageTimeout: d.cfg.Backup.FirstMessageTimeout.D(),
			ThinkTimeout:        d.cfg.Backup.ThinkTimeout.D(),
			MaxFileSize:         int64(d.cfg.Backup.MaxFileSize),
			FreeSpaceMargin:     int64(max(d.cfg.Policy.FreeSpaceMargin, 0)),
			LockTimeout:         d.cfg.Backup.LockTimeout.D(),
			SkipIcons:           d.cfg.Backup.SkipIcons,
			MaxFiles:            d.cfg.Backup.MaxFiles,
			Logger:              SlogLogger(d.log, "backup"),
			Now:                 d.now,
		})
	}
	if d.tracker, err = usbmux.NewStabilityTracker(d.cfg.Stability.stability()); err != nil {
		return addr, fmt.Errorf("stability: %w", err)
	}
	return addr, nil
}

// serve starts the API server on the socket ln and, when configured, on
// api.tcp (with the token) and the metrics server. closeListeners closes
// the TCP listeners it opened.
func (d *Daemon) serve(ctx context.Context, ln net.Listener) (servers []*http.Server, closeListeners func(), err error) {
	// One handler for the socket and the TCP port: they share its cap on
	// event streams.
	api := d.handler()
	servers = []*http.Server{d.newServer(ctx, api)}
	listeners := []net.Listener{ln}
	closeListeners = func() {
		for _, l := range listeners[1:] {
			l.Close()
		}
	}
	if d.cfg.API.TCP != "" {
		tln, err := net.Listen("tcp", d.cfg.API.TCP)
		if err != nil {
			return nil, nil, fmt.Errorf("api.tcp: %w", err)
		}
		servers = append(servers, d.newServer(ctx, loopback.Only(requireToken(d.cfg.API.Token, api), d.refusedHost)))
		listeners = append(listeners, limitListener(tln, maxConns))
	}
	if d.cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", d.cfg.Metrics.Listen)
		if err != nil {
			closeListeners()
			return nil, nil, fmt.Errorf("metrics.listen: %w", err)
		}
		servers = append(servers, d.newServer(ctx, loopback.Only(d.observers.metrics.Handler(), d.refusedHost)))
		listeners = append(listeners, limitListener(mln, maxConns))
		d.log.Info().Str("addr", mln.Addr().String()).Msg("serving metrics at /metrics")
	}
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error().Err(err).Str("addr", listeners[i].Addr().String()).Msg("API server stopped")
			}
		}()
	}
	return servers, closeListeners, nil
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

// newServer serves h. A client gets a few seconds to send a request and
// a minute idle between requests: without the bounds, connections left
// open (300 of them each got a 401 and stayed) each held a descriptor
// for good. The read timeout ends once the request is read (net/http
// lifts it for the answer); no write timeout: the event stream lasts as
// long as its reader.
func (d *Daemon) newServer(base context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// refusedHost logs a request refused for its Host header.
func (d *Daemon) refusedHost(r *http.Request) {
	d.log.Warn().Str("host", r.Host).Str("remote", r.RemoteAddr).Str("path", r.URL.Path).
		Msg("refused a request for a foreign host name (DNS rebinding?)")
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
		d.stopObservers() // beside the servers' stop: the same second bounds both
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
