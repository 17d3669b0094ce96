// Package web serves backupd's local web page: an overview card for each
// iPhone (its state, live progress, last success, what went wrong and
// what to do), a page per phone (a 90-day timeline of its runs, the runs
// table, its versions when the API has them, doctor's checks) and the
// "Back up now" and "Verify" buttons.
//
// The page asks the daemon's local API, as the CLI does (API is satisfied
// by the API client through FromClient), so it shows nothing a shell
// command cannot. Everything it serves is embedded in the binary: the
// templates, one stylesheet and one small script, which only adds live
// updates from the event stream; every page renders and every button
// works without it.
//
// It is meant for a loopback address. It refuses requests whose Host is
// not a loopback name or address (DNS rebinding), every POST needs the
// page's CSRF token and a same-origin Origin, responses carry a strict
// Content-Security-Policy (no inline script or style), and an optional
// token guards it behind a proxy.
package web

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/doctor"
	"github.com/backupd/backupd/daemon/loopback"
)

//go:embed assets
var assets embed.FS

// API is the part of the local API the page uses; FromClient adapts the
// CLI's client to it.
type API interface {
	Health(ctx context.Context) (api.Health, error)
	Devices(ctx context.Context) ([]api.Device, error)
	Device(ctx context.Context, udid string) (api.Device, error)
	History(ctx context.Context, udid string, q api.RunsQuery) (api.RunsPage, error)
	BackupNow(ctx context.Context, udid string, req api.BackupRequest) (api.BackupResponse, error)
	Verify(ctx context.Context, udid string, req api.VerifyRequest) (api.VerifyResponse, error)
	// Events streams the live events, one device's when udid is set.
	Events(ctx context.Context, udid string) (EventStream, error)
}

// EventStream is a subscription to the live events.
type EventStream interface {
	// Next blocks for the next event; io.EOF when the stream ends.
	Next() (api.Event, error)
	Close() error
}

// Version is one kept backup of a phone, as its page lists it.
type Version struct {
	Name      string
	Time      time.Time
	Size      int64
	Files     int
	Encrypted bool
}

// Options configure the page.
type Options struct {
	API API
	// Doctor runs doctor's checks for one phone; nil leaves them off the
	// phone's page.
	Doctor func(ctx context.Context, udid string) (doctor.Report, error)
	// Versions lists a phone's kept versions; nil (an API without them)
	// leaves the section off the phone's page.
	Versions func(ctx context.Context, udid string) ([]Version, error)
	// FreeSpace returns the free bytes of the disk holding a directory
	// (the backup folder); nil leaves it out.
	FreeSpace func(dir string) (uint64, error)
	// OverdueAfter is the configuration's overdue_after.
	OverdueAfter time.Duration
	// Token, when set, must be shown once (a form, or a proxy's
	// "Authorization: Bearer") before anything else is served.
	Token string
	// Version is backupd's version, in the page's footer.
	Version string
	Logger  zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the page's http.Handler.
type Server struct {
	opts   Options
	now    func() time.Time
	secret []byte // keys the CSRF tokens; new at each start
	pages  map[string]*template.Template
	static fs.FS
	mux    *http.ServeMux
}

// New returns the page's handler.
func New(opts Options) (*Server, error) {
	if opts.API == nil {
		return nil, fmt.Errorf("web: no API")
	}
	s := &Server{opts: opts, now: opts.Now, secret: make([]byte, 32)}
	if s.now == nil {
		s.now = time.Now
	}
	if _, err := rand.Read(s.secret); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	var err error
	if s.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	if s.static, err = fs.Sub(assets, "assets/static"); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.overview)
	m.HandleFunc("GET /phone/{udid}", s.phone)
	m.HandleFunc("POST /phone/{udid}/backup", s.backupNow)
	m.HandleFunc("POST /phone/{udid}/verify", s.verify)
	m.HandleFunc("GET /live/overview", s.liveOverview)
	m.HandleFunc("GET /live/phone/{udid}", s.livePhone)
	m.HandleFunc("GET /events", s.events)
	m.HandleFunc("POST /login", s.login)
	m.Handle("GET /static/", http.StripPrefix("/static/", s.staticHandler()))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusNotFound, "No such page", "There is nothing at "+r.URL.Path+".", "")
	})
	s.mux = m
}

// ServeHTTP applies the guards, then serves the page.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	if !loopback.Host(r.Host) {
		s.opts.Logger.Warn().Str("host", r.Host).Str("remote", r.RemoteAddr).Msg("web: refused a request for a foreign host name")
		http.Error(w, "This page answers only to a loopback name (localhost, 127.0.0.1, [::1]); reach it through an SSH tunnel or a proxy that sends Host: localhost.", http.StatusMisdirectedRequest)
		return
	}
	if r.Method == http.MethodPost && !s.checkPost(w, r) {
		return
	}
	if s.opts.Token != "" && !s.authorized(r) && !publicPath(r) {
		s.loginPage(w, r, http.StatusUnauthorized, "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// staticHandler serves the embedded stylesheet and script.
func (s *Server) staticHandler() http.Handler {
	fsrv := http.FileServerFS(s.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The files change only with the binary; an hour saves a phone on
		// a slow link a little.
		w.Header().Set("Cache-Control", "private, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}
