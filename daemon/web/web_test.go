package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/doctor"
	"github.com/backupd/backupd/daemon/loopback"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const (
	udidA = "00008030-001A2B3C4D5E6F70"
	udidB = "00008110-000A1B2C3D4E5F60"
	// evilName is what a hostile phone could call itself.
	evilName = `<script>alert("pwned")</script>`
)

// fakeAPI is the daemon's API as the page sees it, in memory.
type fakeAPI struct {
	mu       sync.Mutex
	health   api.Health
	devs     []api.Device
	runs     map[string][]api.Run // newest first
	backups  []string             // UDIDs asked to back up
	verifies []string
	backErr  error
	events   chan api.Event
}

func newFakeAPI() *fakeAPI {
	fix := cause.Lookup(cause.Disconnected)
	f := &fakeAPI{
		health: api.Health{Status: "ok", BackupDir: "/srv/backups", Connected: 1, BackupsRunning: 1,
			Usbmuxd: api.Usbmuxd{Address: "UNIX:/var/run/usbmuxd", Connected: true}},
		devs: []api.Device{
			{UDID: udidA, Name: evilName, ProductType: "iPhone15,2", IOSVersion: "17.4", Connected: true, Link: "USB",
				State: api.StateBackingUp, Progress: &api.Progress{Percent: 42, Bytes: 3 << 30, Files: 1234, BytesPerSecond: 20 << 20, ETASeconds: 190},
				LastSuccess: now.Add(-26 * time.Hour), FirstSeen: now.Add(-60 * 24 * time.Hour)},
			{UDID: udidB, Name: "Ana's iPhone", ProductType: "iPhone13,1", IOSVersion: "16.7", State: api.StateAbsent,
				LastSuccess: now.Add(-9 * 24 * time.Hour), FirstSeen: now.Add(-80 * 24 * time.Hour),
				LastAttempt: &api.Run{ID: 9, Outcome: api.OutcomeFailed, Start: now.Add(-2 * time.Hour), Cause: cause.Disconnected, Summary: fix.Summary, Fix: fix.Fix},
				Trend:       &api.Trend{Cause: cause.Disconnected, Count: 3, NextStep: "replug", Text: "disconnected 3 times in a row: unplug the iPhone and plug it in again"}},
		},
		runs:   map[string][]api.Run{},
		events: make(chan api.Event, 16),
	}
	// A's runs: one every 2 days for 100 days, every fifth failed, so
	// the oldest fall outside the timeline.
	for i := range 50 {
		r := api.Run{ID: uint64(100 - i), UDID: udidA, Trigger: api.TriggerPlugIn, Start: now.Add(-time.Duration(i*48+1) * time.Hour), Outcome: api.OutcomeSuccess, Bytes: 1 << 20, Files: 10}
		r.End = r.Start.Add(5 * time.Minute)
		if i%5 == 4 {
			r.Outcome, r.Cause, r.Summary, r.Fix = api.OutcomeFailed, cause.Disconnected, fix.Summary, fix.Fix
		}
		f.runs[udidA] = append(f.runs[udidA], r)
	}
	return f
}

func (f *fakeAPI) Health(context.Context) (api.Health, error) { return f.health, nil }

func (f *fakeAPI) Devices(context.Context) ([]api.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Device(nil), f.devs...), nil
}

func (f *fakeAPI) Device(_ context.Context, udid string) (api.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.devs {
		if d.UDID == udid {
			return d, nil
		}
	}
	return api.Device{}, &client.Error{Status: http.StatusNotFound, Code: api.ErrNotFound, Message: "no device " + udid}
}

// History pages by index; the cursor is the index of the next run.
func (f *fakeAPI) History(_ context.Context, udid string, q api.RunsQuery) (api.RunsPage, error) {
	var all []api.Run
	for _, r := range f.runs[udid] {
		if q.Since.IsZero() || !r.Start.Before(q.Since) {
			all = append(all, r)
		}
	}
	from, _ := strconv.Atoi(q.Cursor)
	limit := q.Limit
	if limit == 0 {
		limit = 50
	}
	to := min(from+limit, len(all))
	if from > to {
		from = to
	}
	p := api.RunsPage{Runs: all[from:to]}
	if to < len(all) {
		p.Next = strconv.Itoa(to)
	}
	return p, nil
}

func (f *fakeAPI) BackupNow(_ context.Context, udid string, _ api.BackupRequest) (api.BackupResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.backErr != nil {
		return api.BackupResponse{}, f.backErr
	}
	f.backups = append(f.backups, udid)
	return api.BackupResponse{UDID: udid, Message: "backup started"}, nil
}

func (f *fakeAPI) Verify(_ context.Context, udid string, _ api.VerifyRequest) (api.VerifyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verifies = append(f.verifies, udid)
	return api.VerifyResponse{Backups: []api.VerifyResult{
		{UDID: udid, Name: evilName, Path: "/srv/backups/" + udid, Latest: true, OK: true, Files: 1234, Size: 3 << 30, Time: now.Add(-time.Hour)},
		{UDID: udid, Path: "/srv/backups/.backupd/versions/" + udid + "/v1", Version: "v1", OK: false, Problems: []string{"Manifest.db lists 3 files that are missing"}},
	}}, nil
}

type fakeStream struct {
	ch     <-chan api.Event
	closed chan struct{}
	once   sync.Once
}

func (s *fakeStream) Next() (api.Event, error) {
	select {
	case ev, ok := <-s.ch:
		if !ok {
			return api.Event{}, io.EOF
		}
		return ev, nil
	case <-s.closed:
		return api.Event{}, io.EOF
	}
}

func (s *fakeStream) Close() error { s.once.Do(func() { close(s.closed) }); return nil }

func (f *fakeAPI) Events(context.Context, string) (EventStream, error) {
	return &fakeStream{ch: f.events, closed: make(chan struct{})}, nil
}

func (f *fakeAPI) asked() (backups, verifies []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.backups...), append([]string(nil), f.verifies...)
}

func fakeDoctor(_ context.Context, udid string) (doctor.Report, error) {
	return doctor.Report{
		Checks: []doctor.Check{{ID: doctor.IDUsbmuxd, Title: "usbmuxd", Status: doctor.OK, Found: "answers"}},
		Devices: []doctor.DeviceReport{{UDID: udid, Connected: true, Checks: []doctor.Check{
			{ID: doctor.IDBattery, Title: "battery", Status: doctor.OK, Found: "80%"},
			{ID: doctor.IDSyncLock, Title: "sync lock", Status: doctor.Failed, Found: "another program holds it", Fix: "Quit Finder, iTunes or any other phone tool."},
		}}},
	}, nil
}

func newTestServer(t *testing.T, f *fakeAPI, edit func(*Options)) *Server {
	t.Helper()
	opts := Options{
		API: f, Doctor: fakeDoctor, OverdueAfter: 7 * 24 * time.Hour, Version: "test",
		FreeSpace: func(string) (uint64, error) { return 512 << 30, nil },
		Now:       func() time.Time { return now },
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// req is one request to the page, from a browser on this computer unless
// the test says otherwise.
type req struct {
	method, path string
	host         string // default localhost:7374
	form         url.Values
	origin       string // default http://<host>; "-" for none
	cookies      []*http.Cookie
	header       http.Header
}

func serve(s http.Handler, q req) *httptest.ResponseRecorder {
	if q.host == "" {
		q.host = "localhost:7374"
	}
	var body io.Reader
	if q.form != nil {
		body = strings.NewReader(q.form.Encode())
	}
	r := httptest.NewRequest(q.method, "http://"+q.host+q.path, body)
	r.Host = q.host
	if q.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch q.origin {
	case "":
		if q.method == http.MethodPost {
			r.Header.Set("Origin", "http://"+q.host)
		}
	case "-":
	default:
		r.Header.Set("Origin", q.origin)
	}
	for _, c := range q.cookies {
		r.AddCookie(c)
	}
	for k, v := range q.header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// session opens a phone's page as a browser would and returns its cookies
// and the CSRF token of its forms.
func session(t *testing.T, s http.Handler) ([]*http.Cookie, string) {
	t.Helper()
	w := serve(s, req{method: "GET", path: "/phone/" + udidA})
	m := csrfRE.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("phone page: %d, no CSRF token:\n%s", w.Code, w.Body)
	}
	return w.Result().Cookies(), m[1]
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not contain %q", what, w)
		}
	}
}

func TestOverview(t *testing.T) {
	s := newTestServer(t, newFakeAPI(), nil)
	w := serve(s, req{method: "GET", path: "/"})
	if w.Code != http.StatusOK {
		t.Fatalf("GET / = %d:\n%s", w.Code, w.Body)
	}
	body := w.Body.String()
	fix := cause.Lookup(cause.Disconnected).Fix
	mustContain(t, "the overview", body,
		`data-live-src="/live/overview"`,
		"usbmuxd:</strong>\nrunning (UNIX:/var/run/usbmuxd)",
		"512.0 GiB free",
		`id="card-`+udidA+`"`,
		"&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;",
		"iPhone15,2", "iOS 17.4",
		`<progress id="bar-`+udidA+`" max="100" value="42.0">`,
		"20.0 MiB/s", "3 minutes left",
		`<time datetime="2026-03-09T10:00:00Z">2026-03-09 10:00 UTC</time>`, "26 hours ago",
		"Ana&#39;s iPhone", "OVERDUE", "Last attempt failed", `<code class="cause">disconnected</code>`,
		"Fix:</strong> "+htmlEscape(fix),
		"disconnected 3 times in a row: unplug the iPhone and plug it in again",
	)
	if strings.Contains(body, evilName) {
		t.Error("the phone's name is in the page unescaped")
	}
	// Only Ana's phone is overdue (9 days; the other was backed up a day ago).
	if n := strings.Count(body, ">OVERDUE<"); n != 1 {
		t.Errorf("OVERDUE %d times, want 1", n)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "onclick") {
		t.Error("the page has an inline script or style, which its CSP refuses")
	}
	// The live fragment is the same rendering, without the layout.
	w = serve(s, req{method: "GET", path: "/live/overview"})
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "<html") || !strings.Contains(w.Body.String(), `id="card-`+udidB+`"`) {
		t.Errorf("GET /live/overview = %d:\n%s", w.Code, w.Body)
	}
}

func TestOverviewNoPhoneAndNoUsbmuxd(t *testing.T) {
	f := newFakeAPI()
	f.devs = nil
	u := cause.Lookup(cause.UsbmuxdUnavailable)
	f.health.Usbmuxd = api.Usbmuxd{Address: "UNIX:/var/run/usbmuxd", Cause: cause.UsbmuxdUnavailable, Summary: u.Summary, Fix: u.Fix}
	s := newTestServer(t, f, nil)
	body := serve(s, req{method: "GET", path: "/"}).Body.String()
	mustContain(t, "the overview", body, "No iPhone seen yet", "not reachable at UNIX:/var/run/usbmuxd", string(cause.UsbmuxdUnavailable), htmlEscape(u.Fix))
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

func TestPhonePage(t *testing.T) {
	f := newFakeAPI()
	f.devs[0].State, f.devs[0].Progress = api.StateSucceeded, nil
	s := newTestServer(t, f, nil)
	w := serve(s, req{method: "GET", path: "/phone/" + udidA})
	if w.Code != http.StatusOK {
		t.Fatalf("phone page = %d:\n%s", w.Code, w.Body)
	}
	body := w.Body.String()
	// 90 days hold runs 0..44 (every 2 days), of which every fifth failed.
	if got := strings.Count(body, `class="run o-success"`); got != 36 {
		t.Errorf("%d success marks, want 36", got)
	}
	if got := strings.Count(body, `class="run o-failed"`); got != 9 {
		t.Errorf("%d failed marks, want 9", got)
	}
	mustContain(t, "the phone's page", body,
		"45 runs in the last 90 days: 36 succeeded, 9 failed",
		"<title>2026-03-02 11:00 UTC: failed (disconnected) ",
		`<form method="post" action="/phone/`+udidA+`/backup">`,
		`<form method="post" action="/phone/`+udidA+`/verify">`,
		">Back up now</button>", ">Verify</button>",
		`href="/phone/`+udidA+`?cursor=20"`, "Older runs →",
		"sync lock</strong>: another program holds it", "Quit Finder, iTunes or any other phone tool.", "✗", "✓",
		`data-live-src="/live/phone/`+udidA+`"`, `data-udid="`+udidA+`"`,
	)
	if got := strings.Count(body, `<tr class="run-row`); got != runsPerPage {
		t.Errorf("%d rows in the runs table, want %d", got, runsPerPage)
	}
	if strings.Contains(body, "Kept versions") {
		t.Error("a versions section without a versions API")
	}
	// The next page: older runs, a way back to the newest, and the live
	// refresh keeps to it.
	body = serve(s, req{method: "GET", path: "/phone/" + udidA + "?cursor=40"}).Body.String()
	if got := strings.Count(body, `<tr class="run-row`); got != 10 {
		t.Errorf("page 3: %d rows, want 10", got)
	}
	mustContain(t, "page 3", body, "Newest runs", "Runs (older)", `data-live-src="/live/phone/`+udidA+`?cursor=40"`)
	if strings.Contains(body, "Older runs") {
		t.Error("the last page links to an older one")
	}
	// The live fragment leaves doctor out: it talks to the phone.
	live := serve(s, req{method: "GET", path: "/live/phone/" + udidA}).Body.String()
	if strings.Contains(live, "sync lock") || !strings.Contains(live, `class="run o-failed"`) || strings.Contains(live, "<html") {
		t.Errorf("live fragment:\n%.800s", live)
	}
}

// TestPhonePageBusy: doctor's checks wait while a backup is under way;
// they would take the sync lock from under it.
func TestPhonePageBusy(t *testing.T) {
	for _, st := range []api.State{api.StateBackingUp, api.StateQueued, api.StateChecking, api.StateSucceeded, api.StateAbsent} {
		f := newFakeAPI()
		f.devs[0].State = st
		ran := 0
		s := newTestServer(t, f, func(o *Options) {
			o.Doctor = func(ctx context.Context, udid string) (doctor.Report, error) { ran++; return fakeDoctor(ctx, udid) }
		})
		body := serve(s, req{method: "GET", path: "/phone/" + udidA}).Body.String()
		want := 1
		if busy(st) {
			want = 0
			mustContain(t, string(st)+" page", body, "The checks run when no backup is under way")
		}
		if ran != want {
			t.Errorf("state %s: doctor ran %d times, want %d", st, ran, want)
		}
	}
}

func TestPhonePageVersions(t *testing.T) {
	s := newTestServer(t, newFakeAPI(), func(o *Options) {
		o.Versions = func(context.Context, string) ([]Version, error) {
			return []Version{{Name: "v2", Time: now.Add(-24 * time.Hour), Size: 5 << 30, Files: 4321, Encrypted: true}}, nil
		}
	})
	body := serve(s, req{method: "GET", path: "/phone/" + udidA}).Body.String()
	mustContain(t, "the phone's page", body, "Kept versions", "5.0 GiB", "<td>4321</td>", "<td>yes</td>")
}

func TestPhonePageErrors(t *testing.T) {
	s := newTestServer(t, newFakeAPI(), nil)
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/phone/00008030-00000000000000FF", http.StatusNotFound, "no device 00008030-00000000000000FF"},
		{"/phone/..%2Fetc", http.StatusNotFound, "is not an iPhone&#39;s UDID"},
		{"/nothing", http.StatusNotFound, "There is nothing at /nothing"},
	}
	for _, tt := range tests {
		w := serve(s, req{method: "GET", path: tt.path})
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("GET %s = %d, want %d with %q:\n%s", tt.path, w.Code, tt.code, tt.want, w.Body)
		}
	}
}

func TestBackupNowAndVerify(t *testing.T) {
	f := newFakeAPI()
	s := newTestServer(t, f, nil)
	cookies, tok := session(t, s)
	w := serve(s, req{method: "POST", path: "/phone/" + udidA + "/backup", form: url.Values{"csrf": {tok}}, cookies: cookies})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/phone/"+udidA+"?done=backup" {
		t.Fatalf("Back up now = %d, Location %q:\n%s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if b, _ := f.asked(); len(b) != 1 || b[0] != udidA {
		t.Errorf("backups asked of the API: %v", b)
	}
	if body := serve(s, req{method: "GET", path: "/phone/" + udidA + "?done=backup"}).Body.String(); !strings.Contains(body, "You asked for a backup") {
		t.Error("no note that the backup started")
	}

	w = serve(s, req{method: "POST", path: "/phone/" + udidA + "/verify", form: url.Values{"csrf": {tok}}, cookies: cookies})
	if w.Code != http.StatusOK {
		t.Fatalf("Verify = %d:\n%s", w.Code, w.Body)
	}
	mustContain(t, "the verify page", w.Body.String(), "✗ A backup is not whole", "Latest backup", "Version v1", "Manifest.db lists 3 files that are missing", "backupd verify "+udidA, "&lt;script&gt;")
	if _, v := f.asked(); len(v) != 1 || v[0] != udidA {
		t.Errorf("verifies asked of the API: %v", v)
	}

	// The API's refusal reaches the person, with its status.
	f.backErr = &client.Error{Status: http.StatusConflict, Code: api.ErrBusy, Message: "a backup of this iPhone is already under way"}
	w = serve(s, req{method: "POST", path: "/phone/" + udidA + "/backup", form: url.Values{"csrf": {tok}}, cookies: cookies})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "already under way") {
		t.Errorf("Back up now while busy = %d:\n%s", w.Code, w.Body)
	}
}

// TestRefusals: requests the page must not act on.
func TestRefusals(t *testing.T) {
	f := newFakeAPI()
	s := newTestServer(t, f, nil)
	cookies, tok := session(t, s)
	_, otherTok := session(t, s) // another browser's token
	good := url.Values{"csrf": {tok}}
	tests := []struct {
		name string
		q    req
		code int
		want string
	}{
		{"foreign host", req{method: "GET", path: "/", host: "evil.example:7374"}, http.StatusMisdirectedRequest, "loopback name"},
		{"rebinding name", req{method: "GET", path: "/", host: "127.0.0.1.nip.io:7374"}, http.StatusMisdirectedRequest, "loopback name"},
		{"localhost lookalike", req{method: "GET", path: "/", host: "localhost.evil.example"}, http.StatusMisdirectedRequest, "loopback name"},
		{"LAN address", req{method: "GET", path: "/", host: "192.168.1.20:7374"}, http.StatusMisdirectedRequest, "loopback name"},
		{"foreign host POST", req{method: "POST", path: "/phone/" + udidA + "/backup", host: "evil.example", form: good, cookies: cookies}, http.StatusMisdirectedRequest, "loopback name"},
		{"foreign host events", req{method: "GET", path: "/events", host: "evil.example"}, http.StatusMisdirectedRequest, "loopback name"},
		{"no CSRF token", req{method: "POST", path: "/phone/" + udidA + "/backup", form: url.Values{}, cookies: cookies}, http.StatusForbidden, "security token"},
		{"wrong CSRF token", req{method: "POST", path: "/phone/" + udidA + "/backup", form: url.Values{"csrf": {strings.Repeat("0", 64)}}, cookies: cookies}, http.StatusForbidden, "security token"},
		{"another browser's token", req{method: "POST", path: "/phone/" + udidA + "/backup", form: url.Values{"csrf": {otherTok}}, cookies: cookies}, http.StatusForbidden, "security token"},
		{"no CSRF cookie", req{method: "POST", path: "/phone/" + udidA + "/backup", form: good}, http.StatusForbidden, "security token"},
		{"cross-origin", req{method: "POST", path: "/phone/" + udidA + "/backup", form: good, cookies: cookies, origin: "http://evil.example"}, http.StatusForbidden, "another web site"},
		{"other port", req{method: "POST", path: "/phone/" + udidA + "/backup", form: good, cookies: cookies, origin: "http://localhost:8080"}, http.StatusForbidden, "another web site"},
		{"no Origin", req{method: "POST", path: "/phone/" + udidA + "/backup", form: good, cookies: cookies, origin: "-"}, http.StatusForbidden, "another web site"},
		{"null Origin", req{method: "POST", path: "/phone/" + udidA + "/verify", form: good, cookies: cookies, origin: "null"}, http.StatusForbidden, "another web site"},
		{"verify without token", req{method: "POST", path: "/phone/" + udidA + "/verify", form: url.Values{}, cookies: cookies}, http.StatusForbidden, "security token"},
		{"GET on an action", req{method: "GET", path: "/phone/" + udidA + "/backup"}, http.StatusNotFound, "nothing at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(s, tt.q)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("%s %s = %d, want %d with %q:\n%.400s", tt.q.method, tt.q.path, w.Code, tt.code, tt.want, w.Body)
			}
		})
	}
	if b, v := f.asked(); len(b)+len(v) != 0 {
		t.Errorf("a refused request reached the API: backups %v, verifies %v", b, v)
	}
	// And the same request, from the page, is done.
	w := serve(s, req{method: "POST", path: "/phone/" + udidA + "/backup", host: "127.0.0.1:7374", form: good, cookies: cookies})
	if b, _ := f.asked(); w.Code != http.StatusSeeOther || len(b) != 1 {
		t.Errorf("the page's own POST = %d, backups %v", w.Code, b)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:7374": true, "LOCALHOST.:80": true, "app.localhost:1": true,
		"127.0.0.1:7374": true, "127.1.2.3": true, "[::1]:7374": true, "[::1]": true,
		"": false, "evil.example": false, "localhost.evil.example": false, "127.0.0.1.nip.io": false,
		"10.0.0.1:7374": false, "[::ffff:10.0.0.1]:1": false, "0.0.0.0:7374": false,
	} {
		if got := loopback.Host(host); got != want {
			t.Errorf("loopback.Host(%q) = %t, want %t", host, got, want)
		}
	}
}

func TestToken(t *testing.T) {
	const token = "correct horse battery staple"
	s := newTestServer(t, newFakeAPI(), func(o *Options) { o.Token = token })
	// Without it: the sign-in form, and nothing about the phones.
	for _, path := range []string{"/", "/phone/" + udidA, "/live/overview", "/events"} {
		w := serve(s, req{method: "GET", path: path})
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "web.token") || strings.Contains(w.Body.String(), "Ana") {
			t.Errorf("GET %s without the token = %d:\n%.300s", path, w.Code, w.Body)
		}
	}
	if w := serve(s, req{method: "GET", path: "/static/style.css"}); w.Code != http.StatusOK {
		t.Errorf("the stylesheet without the token = %d", w.Code)
	}
	// A proxy's header.
	if w := serve(s, req{method: "GET", path: "/", header: http.Header{"Authorization": {"Bearer " + token}}}); w.Code != http.StatusOK {
		t.Errorf("with the bearer token = %d", w.Code)
	}
	if w := serve(s, req{method: "GET", path: "/", header: http.Header{"Authorization": {"Bearer wrong"}}}); w.Code != http.StatusUnauthorized {
		t.Errorf("with a wrong bearer token = %d", w.Code)
	}
	// The sign-in form: CSRF-protected like every POST.
	w := serve(s, req{method: "GET", path: "/"})
	cookies, tok := w.Result().Cookies(), csrfRE.FindStringSubmatch(w.Body.String())
	if tok == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", w.Body)
	}
	if w := serve(s, req{method: "POST", path: "/login", form: url.Values{"csrf": {tok[1]}, "token": {"guess"}}, cookies: cookies}); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "not the token") {
		t.Errorf("a wrong token = %d", w.Code)
	}
	if w := serve(s, req{method: "POST", path: "/login", form: url.Values{"token": {token}}, cookies: cookies}); w.Code != http.StatusForbidden {
		t.Errorf("sign-in without the CSRF token = %d", w.Code)
	}
	w = serve(s, req{method: "POST", path: "/login", form: url.Values{"csrf": {tok[1]}, "token": {token}}, cookies: cookies})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d", w.Code)
	}
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || strings.Contains(session.Value, token) {
		t.Fatalf("session cookie %+v", session)
	}
	if w := serve(s, req{method: "GET", path: "/", cookies: append(cookies, session)}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Ana") {
		t.Errorf("signed in: GET / = %d", w.Code)
	}
}

func TestEvents(t *testing.T) {
	f := newFakeAPI()
	srv := httptest.NewServer(newTestServer(t, f, nil))
	defer srv.Close()
	r, _ := http.NewRequest("GET", srv.URL+"/events?udid="+udidA, nil)
	r.Host = "localhost"
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	f.events <- api.Event{Seq: 7, Type: api.EventProgress, UDID: udidA, Name: evilName, Progress: &api.Progress{Percent: 12.5}}
	f.events <- api.Event{Seq: 8, Type: api.EventState, UDID: udidA, State: api.StateFailed, Cause: cause.Disconnected}
	br := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 8 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if line = strings.TrimRight(line, "\n"); line != "" && !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "retry:") {
			got = append(got, line)
		}
		if len(got) == 6 {
			break
		}
	}
	want := []string{"id: 7", "event: progress", `"percent":12.5`, "id: 8", "event: state", `"cause":"disconnected"`}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("line %d = %q, want %q", i, got[i], w)
		}
	}
}

// TestAssets: everything the page loads is in the binary, and nothing
// names another site.
func TestAssets(t *testing.T) {
	s := newTestServer(t, newFakeAPI(), nil)
	for path, ctype := range map[string]string{"/static/style.css": "text/css", "/static/app.js": "text/javascript"} {
		w := serve(s, req{method: "GET", path: path})
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() < 500 {
			t.Errorf("GET %s = %d %s, %d bytes", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	}
	err := fs.WalkDir(assets, "assets", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "//fonts.", "@import", "cdn"} {
			if strings.Contains(string(data), bad) {
				t.Errorf("%s names %q: the page must load nothing from elsewhere", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTimeline(t *testing.T) {
	runs := []api.Run{
		{Start: now.Add(-time.Hour), Outcome: api.OutcomeRunning},
		{Start: now.Add(-45 * 24 * time.Hour), Outcome: api.OutcomeSkipped, Cause: cause.BatteryLow, Summary: "low"},
		{Start: now.Add(-89 * 24 * time.Hour), Outcome: api.OutcomeInterrupted},
		{Start: now.Add(-91 * 24 * time.Hour), Outcome: api.OutcomeSuccess},
	}
	tl := buildTimeline(runs, now)
	if tl.Count != 3 || len(tl.Marks) != 3 {
		t.Fatalf("%d marks, want 3 (the run of 91 days ago is out)", len(tl.Marks))
	}
	plot := float64(tlWidth - tlLeft - tlRight)
	for i, tt := range []struct {
		x    float64
		lane int
		cls  string
	}{
		{float64(tlLeft) + plot*(1-1.0/(90*24)), 0, "o-running"},
		{float64(tlLeft) + plot*0.5, 2, "o-skipped"},
		{float64(tlLeft) + plot*(1.0/90), 1, "o-interrupted"},
	} {
		m := tl.Marks[i]
		if d := m.X + tlMarkW/2 - tt.x; d < -0.01 || d > 0.01 || m.Class != tt.cls || int(m.Y) != tlTop+tt.lane*tlLaneH+(tlLaneH-tlMarkH)/2 {
			t.Errorf("mark %d = %+v, want x %.2f lane %d class %s", i, m, tt.x, tt.lane, tt.cls)
		}
	}
	if !strings.Contains(tl.Marks[1].Title, "(battery_low) low") || tl.Summary != "3 runs in the last 90 days: 1 interrupted, 1 skipped, 1 running" {
		t.Errorf("title %q, summary %q", tl.Marks[1].Title, tl.Summary)
	}
}

func TestAPIDown(t *testing.T) {
	s := newTestServer(t, newFakeAPI(), func(o *Options) { o.API = downAPI{o.API} })
	w := serve(s, req{method: "GET", path: "/"})
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "backupd is not answering") {
		t.Errorf("GET / with the daemon gone = %d:\n%s", w.Code, w.Body)
	}
}

type downAPI struct{ API }

func (downAPI) Health(context.Context) (api.Health, error) {
	return api.Health{}, fmt.Errorf("%w (no answer on /x): %w", client.ErrNoDaemon, errors.New("connection refused"))
}

// TestOverviewThinking: a phone quiet at a point where iPhones think is
// said to be preparing its data, so that nobody unplugs it; a phone that
// sends is not.
func TestOverviewThinking(t *testing.T) {
	f := newFakeAPI()
	s := newTestServer(t, f, nil)
	const words = "The iPhone is preparing its data (quiet since "
	if body := serve(s, req{method: "GET", path: "/"}).Body.String(); strings.Contains(body, words) {
		t.Fatal("a phone that sends is said to be thinking")
	}
	f.devs[0].Progress.ThinkingSince = now.Add(-4 * time.Minute)
	body := serve(s, req{method: "GET", path: "/"}).Body.String()
	mustContain(t, "the overview", body, `<p class="thinking">`+words+now.Add(-4*time.Minute).Local().Format("15:04")+"). This is normal: keep it connected.</p>")
}
