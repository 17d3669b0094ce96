package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/doctor"
	"github.com/backupd/backupd/proto/devicestring"
)

// runsPerPage is the length of a page of a phone's runs table.
const runsPerPage = 20

// maxTimelineRuns bounds the runs the timeline reads: a phone tried
// every few minutes for 90 days would make a chart nobody can read and a
// page too slow to load.
const maxTimelineRuns = 2000

// apiTimeout bounds what one page asks the daemon.
const apiTimeout = 10 * time.Second

// doctorTimeout bounds doctor's checks on a phone's page.
const doctorTimeout = 15 * time.Second

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"bytes": func(n int64) string { return api.FormatBytes(n) },
		"mark":  func(s doctor.Status) string { return s.Mark() },
		"short": func(u string) string {
			if len(u) > 12 {
				return u[:8] + "…"
			}
			return u
		},
		"pct": func(f float64) string { return fmt.Sprintf("%.0f", f) },
		"f1":  func(f float64) string { return fmt.Sprintf("%.1f", f) },
	}
	pages := map[string]*template.Template{}
	for _, p := range []string{"overview", "phone", "message", "login", "verify"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/parts.html", "assets/templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("web: templates: %w", err)
		}
		pages[p] = t
	}
	return pages, nil
}

// common is what every page's layout needs.
type common struct {
	Title    string
	CSRF     string
	Version  string
	Now      time.Time
	NowText  string
	LiveSrc  string // the fragment the script refreshes; empty: none
	EventsOf string // the UDID the page follows; empty: all
}

func (s *Server) common(w http.ResponseWriter, r *http.Request, title string) common {
	now := s.now()
	return common{Title: title, CSRF: s.csrfToken(w, r), Version: s.opts.Version, Now: now, NowText: now.UTC().Format("2006-01-02 15:04 UTC")}
}

// render executes a page, or a fragment of it, and writes it whole: a
// template that fails halfway must not leave half a page.
func (s *Server) render(w http.ResponseWriter, status int, page, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		s.opts.Logger.Error().Err(err).Str("template", name).Msg("web: render")
		http.Error(w, "backupd could not draw this page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageData struct {
	common
	Heading, Text, Fix string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, text, fix string) {
	s.render(w, status, "message", "layout", messageData{common: s.common(w, r, heading), Heading: heading, Text: text, Fix: fix})
}

// apiError shows an error the API answered with, or the daemon's silence.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		status := ce.Status
		if status < 400 {
			status = http.StatusBadGateway
		}
		s.errorPage(w, r, status, "backupd said no", ce.Message, "")
	case errors.Is(err, client.ErrNoDaemon):
		s.errorPage(w, r, http.StatusServiceUnavailable, "backupd is not answering", err.Error(), "Wait a moment and reload: the service may be starting or stopping.")
	default:
		s.opts.Logger.Error().Err(err).Str("path", r.URL.Path).Msg("web: asking the API failed")
		s.errorPage(w, r, http.StatusBadGateway, "backupd did not answer", err.Error(), "Reload the page; if it goes on, look at backupd's log.")
	}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, status int, problem string) {
	s.render(w, status, "login", "layout", messageData{common: s.common(w, r, "Sign in"), Text: problem})
}

// overviewData is the overview page: the computer at the top, a card per
// phone.
type overviewData struct {
	common
	Health    api.Health
	FreeSpace string
	FreeErr   string
	Cards     []card
}

func (s *Server) overviewData(ctx context.Context) (overviewData, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var d overviewData
	h, err := s.opts.API.Health(ctx)
	if err != nil {
		return d, err
	}
	devs, err := s.opts.API.Devices(ctx)
	if err != nil {
		return d, err
	}
	d.Health = h
	if s.opts.FreeSpace != nil && h.BackupDir != "" {
		if free, err := s.opts.FreeSpace(h.BackupDir); err == nil {
			d.FreeSpace = api.FormatBytes(free)
		} else {
			d.FreeErr = err.Error()
		}
	}
	for _, dev := range devs {
		d.Cards = append(d.Cards, s.card(dev))
	}
	return d, nil
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewData(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d.common = s.common(w, r, "iPhone backups")
	d.LiveSrc = "/live/overview"
	s.render(w, http.StatusOK, "overview", "layout", d)
}

func (s *Server) liveOverview(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewData(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d.common = s.common(w, r, "")
	s.render(w, http.StatusOK, "overview", "overview-live", d)
}

// phoneData is a phone's page.
type phoneData struct {
	common
	Card     card
	Timeline timeline
	Runs     []runRow
	// Cursor is this page of runs (empty: the newest), Next the older one.
	Cursor, Next string
	// Versions: VersionsOn when the API lists them.
	VersionsOn  bool
	Versions    []Version
	VersionsErr string
	// Doctor: DoctorOn when the checks can run here.
	DoctorOn  bool
	Doctor    *doctor.Report
	DoctorDev *doctor.DeviceReport
	DoctorErr string
	Flash     string
}

// phoneData gathers a phone's page; withDoctor runs doctor's checks too
// (they talk to the phone, so the live refreshes leave them out).
func (s *Server) phoneData(ctx context.Context, udid, cursor string, withDoctor bool) (phoneData, error) {
	var d phoneData
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	dev, err := s.opts.API.Device(actx, udid)
	if err != nil {
		return d, err
	}
	d.Card = s.card(dev)
	page, err := s.opts.API.History(actx, udid, api.RunsQuery{Limit: runsPerPage, Cursor: cursor})
	if err != nil {
		return d, err
	}
	for _, r := range page.Runs {
		d.Runs = append(d.Runs, rowOf(r))
	}
	d.Cursor, d.Next = cursor, page.Next
	runs, err := s.recentRuns(actx, udid)
	if err != nil {
		return d, err
	}
	d.Timeline = buildTimeline(runs, s.now())
	if s.opts.Versions != nil {
		d.VersionsOn = true
		if d.Versions, err = s.opts.Versions(actx, udid); err != nil {
			d.VersionsErr = err.Error()
		}
	}
	if s.opts.Doctor != nil {
		d.DoctorOn = true
		if withDoctor && !busy(dev.State) {
			s.runDoctor(ctx, udid, &d)
		}
	}
	return d, nil
}

// busy: a backup is about to start or under way. doctor's checks would
// take the sync lock from under it, and say another program holds it.
func busy(st api.State) bool {
	switch st {
	case api.StateSettling, api.StateChecking, api.StateQueued, api.StateBackingUp, api.StateAwaitingPasscode:
		return true
	}
	return false
}

// recentRuns reads the runs of the timeline's span, page by page.
func (s *Server) recentRuns(ctx context.Context, udid string) ([]api.Run, error) {
	q := api.RunsQuery{Since: s.now().Add(-timelineDays * 24 * time.Hour), Limit: 500}
	var runs []api.Run
	for {
		page, err := s.opts.API.History(ctx, udid, q)
		if err != nil {
			return nil, err
		}
		runs = append(runs, page.Runs...)
		if page.Next == "" || len(runs) >= maxTimelineRuns {
			return runs, nil
		}
		q.Cursor = page.Next
	}
}

func (s *Server) runDoctor(ctx context.Context, udid string, d *phoneData) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	rep, err := s.opts.Doctor(ctx, udid)
	if err != nil {
		d.DoctorErr = err.Error()
		return
	}
	d.Doctor = &rep
	for i := range rep.Devices {
		if strings.EqualFold(rep.Devices[i].UDID, udid) {
			d.DoctorDev = &rep.Devices[i]
		}
	}
}

// flashes are the notes a redirect after a button leaves on the page.
var flashes = map[string]string{
	"backup": "You asked for a backup; it shows below as it goes",
}

func (s *Server) phone(w http.ResponseWriter, r *http.Request) {
	udid, ok := s.udidParam(w, r)
	if !ok {
		return
	}
	cursor := r.URL.Query().Get("cursor")
	d, err := s.phoneData(r.Context(), udid, cursor, true)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d.common = s.common(w, r, d.Card.Name)
	d.Flash = flashes[r.URL.Query().Get("done")]
	d.EventsOf = udid
	d.LiveSrc = "/live/phone/" + url.PathEscape(udid)
	if cursor != "" {
		// An older page of runs stays as it is; the rest follows live.
		d.LiveSrc += "?cursor=" + url.QueryEscape(cursor)
	}
	s.render(w, http.StatusOK, "phone", "layout", d)
}

func (s *Server) livePhone(w http.ResponseWriter, r *http.Request) {
	udid, ok := s.udidParam(w, r)
	if !ok {
		return
	}
	d, err := s.phoneData(r.Context(), udid, r.URL.Query().Get("cursor"), false)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d.common = s.common(w, r, "")
	s.render(w, http.StatusOK, "phone", "phone-live", d)
}

// udidParam is the path's UDID, refused before it reaches the API when
// it cannot be one.
func (s *Server) udidParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	udid := devicestring.UDID(r.PathValue("udid"))
	if err := repo.ValidUDID(udid); err != nil {
		s.errorPage(w, r, http.StatusNotFound, "No such iPhone", fmt.Sprintf("%q is not an iPhone's UDID.", udid), "")
		return "", false
	}
	return udid, true
}

func (s *Server) backupNow(w http.ResponseWriter, r *http.Request) {
	udid, ok := s.udidParam(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	full := r.PostFormValue("full") == "1"
	if _, err := s.opts.API.BackupNow(ctx, udid, api.BackupRequest{Full: full}); err != nil {
		s.apiError(w, r, err)
		return
	}
	s.opts.Logger.Info().Str("udid", udid).Bool("full", full).Msg("backup requested on the web page")
	http.Redirect(w, r, "/phone/"+url.PathEscape(udid)+"?done=backup", http.StatusSeeOther)
}

type verifyData struct {
	common
	UDID    string
	Name    string
	Results []api.VerifyResult
	OK      bool
}

// verifyTimeout bounds a verify from the page: a large backup takes
// minutes to read.
const verifyTimeout = 30 * time.Minute

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	udid, ok := s.udidParam(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
	defer cancel()
	resp, err := s.opts.API.Verify(ctx, udid, api.VerifyRequest{Versions: r.PostFormValue("versions") == "1"})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	d := verifyData{UDID: udid, Results: resp.Backups, OK: len(resp.Backups) > 0}
	for _, b := range resp.Backups {
		d.OK = d.OK && b.OK
		if b.Name != "" {
			d.Name = b.Name
		}
	}
	d.Name = displayName(d.Name)
	d.common = s.common(w, r, "Verify "+d.Name)
	s.render(w, http.StatusOK, "verify", "layout", d)
}
