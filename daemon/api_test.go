package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/store"
)

// fakeBackend answers the API handlers from fixed data and records what
// it was asked.
type fakeBackend struct {
	bus *bus

	mu      sync.Mutex
	queries []api.RunsQuery
	manual  []string
	// backupErr is what backupNow answers.
	backupErr error
	// verified records verify's arguments ("udid versions=bool").
	verified []string
	// encryption records the encryption requests; encryptionErr is what
	// setEncryption answers with.
	encryption    []api.EncryptionRequest
	encryptionErr error
	// restores records the restore requests; versionsFrom the from of
	// each versions request.
	restores     []api.RestoreRequest
	versionsFrom []string
}

func newFakeBackend() *fakeBackend { return &fakeBackend{bus: newBus(time.Now)} }

var fakeDevice = api.Device{UDID: "00008110-000A11112222801E", Name: "Anna's iPhone", Connected: true, State: api.StateBackingUp,
	Progress: &api.Progress{Percent: 42, Bytes: 1 << 20, Files: 10, ETASeconds: 30}}

func (f *fakeBackend) health() api.Health {
	return api.Health{Status: "ok", PID: 42, MaxConcurrent: 1, Usbmuxd: api.Usbmuxd{Connected: true, Address: "UNIX:/x"}}
}

func (f *fakeBackend) devices() ([]api.Device, error) { return []api.Device{fakeDevice}, nil }

func (f *fakeBackend) device(udid string) (api.Device, error) {
	if udid == fakeDevice.UDID {
		return fakeDevice, nil
	}
	return api.Device{}, &api.Error{Code: api.ErrNotFound, Message: "no iPhone " + udid}
}

func (f *fakeBackend) history(udid string, q api.RunsQuery) (api.RunsPage, error) {
	q.UDID = udid
	return f.runs(q)
}

func (f *fakeBackend) runs(q api.RunsQuery) (api.RunsPage, error) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	if q.Cursor == "broken" {
		return api.RunsPage{}, errors.New("the history is on fire")
	}
	return api.RunsPage{Runs: []api.Run{{ID: 7, UDID: fakeDevice.UDID, Outcome: api.OutcomeFailed, Cause: cause.Stalled}}, Next: "c2"}, nil
}

func (f *fakeBackend) run(id uint64) (api.Run, error) {
	if id == 7 {
		return api.Run{ID: 7, Outcome: api.OutcomeSuccess}, nil
	}
	return api.Run{}, &api.Error{Code: api.ErrNotFound, Message: "no run"}
}

func (f *fakeBackend) backupNow(_ context.Context, udid string, full bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.manual = append(f.manual, udid)
	return f.backupErr
}

func (f *fakeBackend) subscribe() (<-chan api.Event, func()) { return f.bus.subscribe() }

func (f *fakeBackend) verify(_ context.Context, udid string, req api.VerifyRequest) ([]api.VerifyResult, error) {
	versions := req.Versions
	f.mu.Lock()
	f.verified = append(f.verified, fmt.Sprintf("%s versions=%t", udid, versions))
	f.mu.Unlock()
	if udid != "" && udid != fakeDevice.UDID {
		return nil, &api.Error{Code: api.ErrNotFound, Message: "no backup of " + udid}
	}
	return []api.VerifyResult{
		{UDID: fakeDevice.UDID, Latest: true, OK: true, Files: 10, Size: 1 << 20},
		{UDID: fakeDevice.UDID, Version: "2025-01-02T03-04-05.000Z", OK: false, Problems: []string{"Manifest.db is missing"}, Cause: cause.VerifyFailed},
	}, nil
}

func (f *fakeBackend) restore(_ context.Context, udid string, req api.RestoreRequest) (api.RestoreResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores = append(f.restores, req)
	if udid != fakeDevice.UDID {
		return api.RestoreResponse{}, &api.Error{Code: api.ErrNotFound, Message: "no iPhone with UDID " + udid + " is known"}
	}
	return api.RestoreResponse{UDID: udid, Source: req.Source, Version: "v1", SafetyBackup: req.WantsSafetyBackup(), Message: "accepted"}, nil
}

func (f *fakeBackend) versions(_ context.Context, udid, from string) (api.VersionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versionsFrom = append(f.versionsFrom, from)
	return api.VersionsResponse{UDID: udid, Versions: []api.VersionInfo{{ID: "v1", Latest: true, Verified: true}}}, nil
}

func (f *fakeBackend) setEncryption(_ context.Context, udid string, enable bool, password string) (api.EncryptionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.encryption = append(f.encryption, api.EncryptionRequest{Enable: enable, Password: password})
	if f.encryptionErr != nil {
		return api.EncryptionResponse{}, f.encryptionErr
	}
	if password != "right" {
		return api.EncryptionResponse{UDID: udid, Cause: cause.WrongBackupPassword}, nil
	}
	return api.EncryptionResponse{UDID: udid, OK: true, Encrypted: enable}, nil
}

// serveFake serves the handlers over a unix socket, as the daemon does,
// and returns a client for it.
func serveFake(t *testing.T, b backend) (*client.Client, string) {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), api.SocketName)
	ln, err := listenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newAPIHandler(b, testLogger(t)))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	c := client.New(sock)
	t.Cleanup(func() { c.Close() })
	return c, sock
}

func TestAPIOverUnixSocket(t *testing.T) {
	f := newFakeBackend()
	c, sock := serveFake(t, f)
	ctx := ctxT(t)

	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v (%v), want 0660", fi.Mode(), err)
	}

	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || h.PID != 42 {
		t.Errorf("Health = %+v, %v", h, err)
	}
	devs, err := c.Devices(ctx)
	if err != nil || len(devs) != 1 || devs[0].Progress == nil || devs[0].Progress.Percent != 42 {
		t.Errorf("Devices = %+v, %v", devs, err)
	}
	if _, err := c.Device(ctx, "nope"); !isAPIError(err, api.ErrNotFound, http.StatusNotFound) {
		t.Errorf("Device(unknown) = %v", err)
	}

	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	page, err := c.Runs(ctx, api.RunsQuery{UDID: fakeDevice.UDID, Outcomes: []string{api.OutcomeFailed, api.OutcomeSkipped},
		Causes: []cause.Code{cause.Stalled}, Since: since, Limit: 5, Cursor: "c1"})
	if err != nil || len(page.Runs) != 1 || page.Next != "c2" || page.Runs[0].Cause != cause.Stalled {
		t.Errorf("Runs = %+v, %v", page, err)
	}
	if _, err := c.History(ctx, fakeDevice.UDID, api.RunsQuery{Limit: 3}); err != nil {
		t.Error(err)
	}
	f.mu.Lock()
	q := f.queries
	f.mu.Unlock()
	if len(q) != 2 || q[0].UDID != fakeDevice.UDID || len(q[0].Outcomes) != 2 || len(q[0].Causes) != 1 ||
		!q[0].Since.Equal(since) || q[0].Limit != 5 || q[0].Cursor != "c1" || q[1].UDID != fakeDevice.UDID || q[1].Limit != 3 {
		t.Errorf("the backend was asked %+v", q)
	}
	if _, err := c.Runs(ctx, api.RunsQuery{Cursor: "broken"}); !isAPIError(err, api.ErrInternal, http.StatusInternalServerError) {
		t.Errorf("Runs with a backend failure = %v", err)
	}
	if r, err := c.Run(ctx, 7); err != nil || r.ID != 7 {
		t.Errorf("Run(7) = %+v, %v", r, err)
	}
	if _, err := c.Run(ctx, 8); !isAPIError(err, api.ErrNotFound, http.StatusNotFound) {
		t.Errorf("Run(8) = %v", err)
	}

	resp, err := c.BackupNow(ctx, fakeDevice.UDID, api.BackupRequest{Full: true})
	if err != nil || resp.UDID != fakeDevice.UDID {
		t.Errorf("BackupNow = %+v, %v", resp, err)
	}
	for _, tt := range []struct {
		err    error
		code   string
		status int
	}{
		{&api.Error{Code: api.ErrBusy, Message: "busy"}, api.ErrBusy, http.StatusConflict},
		{&api.Error{Code: api.ErrNotConnected, Message: "gone"}, api.ErrNotConnected, http.StatusConflict},
		{&api.Error{Code: api.ErrRefused, Message: "denied"}, api.ErrRefused, http.StatusForbidden},
		{&api.Error{Code: api.ErrUnavailable, Message: "stopping"}, api.ErrUnavailable, http.StatusServiceUnavailable},
	} {
		f.mu.Lock()
		f.backupErr = tt.err
		f.mu.Unlock()
		if _, err := c.BackupNow(ctx, fakeDevice.UDID, api.BackupRequest{}); !isAPIError(err, tt.code, tt.status) {
			t.Errorf("BackupNow with %v = %v", tt.err, err)
		}
	}
}

func TestAPIVerifyAndEncryption(t *testing.T) {
	f := newFakeBackend()
	c, _ := serveFake(t, f)
	ctx := ctxT(t)

	all, err := c.Verify(ctx, "", api.VerifyRequest{Versions: true})
	if err != nil || len(all.Backups) != 2 || !all.Backups[0].OK || all.Backups[1].OK || all.Backups[1].Cause != cause.VerifyFailed {
		t.Errorf("Verify(all) = %+v, %v", all, err)
	}
	if one, err := c.Verify(ctx, fakeDevice.UDID, api.VerifyRequest{}); err != nil || len(one.Backups) != 2 {
		t.Errorf("Verify(one) = %+v, %v", one, err)
	}
	if _, err := c.Verify(ctx, "nope", api.VerifyRequest{}); !isAPIError(err, api.ErrNotFound, http.StatusNotFound) {
		t.Errorf("Verify(unknown) = %v", err)
	}
	f.mu.Lock()
	got := strings.Join(f.verified, ", ")
	f.mu.Unlock()
	if want := " versions=true, " + fakeDevice.UDID + " versions=false, nope versions=false"; got != want {
		t.Errorf("verify was asked %q, want %q", got, want)
	}

	on, err := c.SetEncryption(ctx, fakeDevice.UDID, api.EncryptionRequest{Enable: true, Password: "right"})
	if err != nil || !on.OK || !on.Encrypted {
		t.Errorf("SetEncryption(on) = %+v, %v", on, err)
	}
	off, err := c.SetEncryption(ctx, fakeDevice.UDID, api.EncryptionRequest{Enable: false, Password: "wrong"})
	if err != nil || off.OK || off.Cause != cause.WrongBackupPassword {
		t.Errorf("SetEncryption(off, wrong password) = %+v, %v", off, err)
	}
	f.mu.Lock()
	reqs := slices.Clone(f.encryption)
	f.encryptionErr = &api.Error{Code: api.ErrBusy, Message: "a backup runs"}
	f.mu.Unlock()
	if len(reqs) != 2 || reqs[0] != (api.EncryptionRequest{Enable: true, Password: "right"}) || reqs[1] != (api.EncryptionRequest{Password: "wrong"}) {
		t.Errorf("setEncryption was asked %+v", reqs)
	}
	if _, err := c.SetEncryption(ctx, fakeDevice.UDID, api.EncryptionRequest{Enable: true, Password: "right"}); !isAPIError(err, api.ErrBusy, http.StatusConflict) {
		t.Errorf("SetEncryption during a backup = %v", err)
	}
}

func isAPIError(err error, code string, status int) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Code == code && ce.Status == status
}

func TestAPIBadRequests(t *testing.T) {
	_, sock := serveFake(t, newFakeBackend())
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	tests := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/runs?limit=-3", "", 400, api.ErrBadRequest},
		{"GET", "/v1/runs?since=yesterday", "", 400, api.ErrBadRequest},
		{"GET", "/v1/runs?outcome=exploded", "", 400, api.ErrBadRequest},
		{"GET", "/v1/runs/abc", "", 400, api.ErrBadRequest},
		{"GET", "/v1/runs/0", "", 400, api.ErrBadRequest},
		{"POST", "/v1/devices/x/backup", "{not json", 400, api.ErrBadRequest},
		{"POST", "/v1/devices/x/backup", strings.Repeat("x", 5000), 400, api.ErrBadRequest},
		{"POST", "/v1/devices/x/encryption", `{"enable":"yes"}`, 400, api.ErrBadRequest},
		{"POST", "/v1/verify", "{not json", 400, api.ErrBadRequest},
		{"GET", "/v1/verify", "", 404, api.ErrNotFound},
		{"GET", "/v2/health", "", 404, api.ErrNotFound},
		{"DELETE", "/v1/devices", "", 404, api.ErrNotFound},
		// What a web page may send without a CORS preflight (issue #16).
		{"POST", "/v1/devices/x/backup#text/plain", `{"full":true}`, 415, api.ErrBadRequest},
		{"POST", "/v1/devices/x/backup#application/x-www-form-urlencoded", "full=true", 415, api.ErrBadRequest},
		{"POST", "/v1/verify#", "", 415, api.ErrBadRequest},
	}
	for _, tt := range tests {
		// A path#type sends that Content-Type; a POST otherwise sends JSON.
		path, ctype, typed := strings.Cut(tt.path, "#")
		if !typed && tt.method == "POST" {
			ctype = "application/json"
		}
		req, _ := http.NewRequest(tt.method, "http://backupd"+path, strings.NewReader(tt.body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(string(body), `"code":"`+tt.code+`"`)) {
			t.Errorf("%s %s: %d %s; want %d %s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.code)
		}
	}
}

func TestAPIEventStream(t *testing.T) {
	f := newFakeBackend()
	c, _ := serveFake(t, f)
	all, err := c.Events(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	one, err := c.Events(ctxT(t), fakeDevice.UDID)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	// The subscriptions exist once the streams' first bytes arrived, which
	// Events waits for (the headers).
	f.bus.publish(api.Event{Type: api.EventState, UDID: "other", State: api.StateChecking})
	f.bus.publish(api.Event{Type: api.EventProgress, UDID: fakeDevice.UDID, State: api.StateBackingUp,
		Progress: &api.Progress{Percent: 50, Bytes: 1234, Files: 5, ETASeconds: 12}})
	f.bus.publish(api.Event{Type: api.EventRun, UDID: fakeDevice.UDID, Run: &api.Run{ID: 3, Outcome: api.OutcomeSuccess}})

	want := []api.EventType{api.EventState, api.EventProgress, api.EventRun}
	for i, w := range want {
		ev, err := nextEvent(all, 5*time.Second)
		if err != nil || ev.Type != w || ev.Seq != uint64(i+1) {
			t.Fatalf("event %d: %+v, %v; want %s", i, ev, err, w)
		}
	}
	ev, err := nextEvent(one, 5*time.Second)
	if err != nil || ev.Type != api.EventProgress || ev.Progress.Bytes != 1234 || ev.Progress.ETASeconds != 12 {
		t.Fatalf("filtered stream: %+v, %v", ev, err)
	}
	if ev, err := nextEvent(one, 5*time.Second); err != nil || ev.Type != api.EventRun {
		t.Fatalf("filtered stream: %+v, %v", ev, err)
	}
	// The daemon stopping ends the streams.
	f.bus.closeAll()
	if ev, err := one.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the bus closed: %+v, %v; want io.EOF", ev, err)
	}
}

func TestBusDropsSlowSubscriber(t *testing.T) {
	b := newBus(time.Now)
	slow, cancelSlow := b.subscribe()
	defer cancelSlow()
	fast, cancelFast := b.subscribe()
	defer cancelFast()
	for i := 0; i < subscriberBuffer+10; i++ {
		b.publish(api.Event{Type: api.EventProgress})
		// The fast reader keeps up: it never has more than one waiting.
		if ev, ok := <-fast; !ok || ev.Seq != uint64(i+1) {
			t.Fatalf("the fast subscriber's event %d: %+v, open %v", i+1, ev, ok)
		}
	}
	n := 0
	for range slow {
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("the slow subscriber got %d events before it was dropped, want %d", n, subscriberBuffer)
	}
}

func TestClientNoDaemon(t *testing.T) {
	dir := shortTempDir(t)
	c := client.New(filepath.Join(dir, api.SocketName))
	defer c.Close()
	if _, err := c.Health(ctxT(t)); !errors.Is(err, client.ErrNoDaemon) {
		t.Errorf("no socket: %v", err)
	}
	// A stale socket, as a daemon killed with -9 leaves.
	ln, err := net.Listen("unix", filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := c.Health(ctxT(t)); !errors.Is(err, client.ErrNoDaemon) {
		t.Errorf("stale socket: %v", err)
	}
	// listenSocket takes a stale socket over...
	ln, err = listenSocket(filepath.Join(dir, api.SocketName))
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()
	// ...but never a live one.
	if _, err := listenSocket(filepath.Join(dir, api.SocketName)); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("listen over a live socket: %v", err)
	}
	// Nor a file that is not a socket.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	if _, err := listenSocket(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a plain file: %v", err)
	}
}

func TestTokenRequiredOnTCP(t *testing.T) {
	h := requireToken("0123456789abcdef0123", newAPIHandler(newFakeBackend(), testLogger(t)))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tt := range []struct {
		auth   string
		status int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer 0123456789abcdef0123", 200}} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/health", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, resp.StatusCode, tt.status)
		}
	}
}

// TestRunsQuery: the daemon's run queries filter by device, outcome,
// cause and time over the real history, a page at a time, and the cursor
// continues exactly after the last run returned.
func TestRunsQuery(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir, cfg.BackupDir = shortTempDir(t), shortTempDir(t)
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, "history.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d.store = st
	const a, b = "00008110-000A11112222801E", "00008110-000B11112222801E"
	t0 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	// 30 runs, one a minute, alternating devices; every third a battery
	// skip, the others successes.
	for i := range 30 {
		udid := a
		if i%2 == 1 {
			udid = b
		}
		start := t0.Add(time.Duration(i) * time.Minute)
		if i%3 == 0 {
			if _, err := st.RecordSkip(store.Run{UDID: udid, Trigger: store.TriggerPlugIn, Start: start, Cause: cause.BatteryLow}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		r, err := st.BeginRun(store.Run{UDID: udid, Trigger: store.TriggerPlugIn, Start: start})
		if err != nil {
			t.Fatal(err)
		}
		r.Outcome, r.End = store.OutcomeSuccess, start.Add(30*time.Second)
		if _, err := st.FinishRun(r); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(q api.RunsQuery) []api.Run {
		t.Helper()
		var all []api.Run
		for pages := 0; ; pages++ {
			page, err := d.runs(q)
			if err != nil {
				t.Fatal(err)
			}
			if q.Limit > 0 && len(page.Runs) > q.Limit {
				t.Fatalf("a page of %d runs, limit %d", len(page.Runs), q.Limit)
			}
			all = append(all, page.Runs...)
			if page.Next == "" || pages > 100 {
				return all
			}
			q.Cursor = page.Next
		}
	}
	check := func(name string, q api.RunsQuery, want int, ok func(api.Run) bool) {
		t.Helper()
		got := collect(q)
		if len(got) != want {
			t.Errorf("%s: %d runs, want %d", name, len(got), want)
		}
		for i, r := range got {
			if !ok(r) {
				t.Errorf("%s: run %+v does not match", name, r)
			}
			if i > 0 && !r.Start.Before(got[i-1].Start) {
				t.Errorf("%s: not newest first at %d", name, i)
			}
		}
	}
	every := func(api.Run) bool { return true }
	check("all, pages of 7", api.RunsQuery{Limit: 7}, 30, every)
	check("one device", api.RunsQuery{UDID: a, Limit: 4}, 15, func(r api.Run) bool { return r.UDID == a })
	check("skips", api.RunsQuery{Outcomes: []string{api.OutcomeSkipped}, Limit: 3}, 10, func(r api.Run) bool {
		return r.Outcome == api.OutcomeSkipped && r.Cause == cause.BatteryLow && r.Summary != "" && r.Fix != ""
	})
	check("by cause, small pages", api.RunsQuery{Causes: []cause.Code{cause.BatteryLow}, Limit: 4}, 10, func(r api.Run) bool { return r.Cause == cause.BatteryLow })
	since, until := t0.Add(10*time.Minute), t0.Add(20*time.Minute)
	check("time window", api.RunsQuery{Since: since, Until: until, Limit: 3}, 10, func(r api.Run) bool {
		return !r.Start.Before(since) && r.Start.Before(until)
	})
	check("device, cause and window", api.RunsQuery{UDID: b, Causes: []cause.Code{cause.BatteryLow}, Since: since, Until: until}, 1, func(r api.Run) bool {
		return r.UDID == b && r.Cause == cause.BatteryLow
	})
	if _, err := d.runs(api.RunsQuery{Cursor: "not-a-cursor"}); !errors.As(err, new(*api.Error)) {
		t.Errorf("a bad cursor: %v", err)
	}
	if r, err := d.run(3); err != nil || r.ID != 3 {
		t.Errorf("run 3: %+v %v", r, err)
	}
	var ae *api.Error
	if _, err := d.run(999); !errors.As(err, &ae) || ae.Code != api.ErrNotFound {
		t.Errorf("run 999: %v", err)
	}
}

// TestAPIRestoreAndVersions: the restore request reaches the backend
// whole (the safety backup is on unless turned off), versions passes
// from on, and an unknown phone is not_found.
func TestAPIRestoreAndVersions(t *testing.T) {
	f := newFakeBackend()
	c, _ := serveFake(t, f)
	ctx := ctxT(t)
	no := false
	reqs := []api.RestoreRequest{
		{Source: "other", From: "2025-03-01", Password: "pw", SkipApps: true, NoReboot: true},
		{SafetyBackup: &no},
	}
	for _, req := range reqs {
		resp, err := c.Restore(ctx, fakeDevice.UDID, req)
		if err != nil || resp.Version != "v1" || resp.SafetyBackup != req.WantsSafetyBackup() {
			t.Errorf("Restore(%+v) = %+v, %v", req, resp, err)
		}
	}
	if _, err := c.Restore(ctx, "nope", api.RestoreRequest{}); !isAPIError(err, api.ErrNotFound, http.StatusNotFound) {
		t.Errorf("Restore(unknown) = %v", err)
	}
	f.mu.Lock()
	got := slices.Clone(f.restores)
	f.mu.Unlock()
	if len(got) != 3 || got[0].Source != "other" || got[0].From != "2025-03-01" || got[0].Password != "pw" || !got[0].SkipApps || !got[0].NoReboot ||
		!got[0].WantsSafetyBackup() || got[1].WantsSafetyBackup() {
		t.Errorf("the backend got %+v", got)
	}
	for _, from := range []string{"", "latest"} {
		vs, err := c.Versions(ctx, fakeDevice.UDID, from)
		if err != nil || len(vs.Versions) != 1 || vs.Versions[0].ID != "v1" {
			t.Errorf("Versions(from %q) = %+v, %v", from, vs, err)
		}
	}
	f.mu.Lock()
	if strings.Join(f.versionsFrom, ",") != ",latest" {
		t.Errorf("versions was asked from %q", f.versionsFrom)
	}
	f.mu.Unlock()
}

// slowBackend answers versions and verify after a while, failing when
// the request's context ends first.
type slowBackend struct {
	*fakeBackend
	wait time.Duration
}

func (s slowBackend) pause(ctx context.Context) error {
	select {
	case <-time.After(s.wait):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cancelled while answering: %w", context.Cause(ctx))
	}
}

func (s slowBackend) versions(ctx context.Context, udid, from string) (api.VersionsResponse, error) {
	if err := s.pause(ctx); err != nil {
		return api.VersionsResponse{}, err
	}
	return s.fakeBackend.versions(ctx, udid, from)
}

func (s slowBackend) verify(ctx context.Context, udid string, req api.VerifyRequest) ([]api.VerifyResult, error) {
	if err := s.pause(ctx); err != nil {
		return nil, err
	}
	return s.fakeBackend.verify(ctx, udid, req)
}

// TestAPIAnswerOutlastsReadTimeout: the servers' read timeout (issue #16)
// bounds how long a client takes to ask, not how long the answer takes
// (a verify of large backups, versions): a guard against a timeout that
// would cut answers short, as a write timeout would.
func TestAPIAnswerOutlastsReadTimeout(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), api.SocketName)
	ln, err := listenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newAPIHandler(slowBackend{newFakeBackend(), 600 * time.Millisecond}, testLogger(t)))
	srv.Config.ReadTimeout = 150 * time.Millisecond
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	c := client.New(sock)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Versions(ctxT(t), fakeDevice.UDID, ""); err != nil {
		t.Errorf("GET versions: %v", err)
	}
	if _, err := c.Verify(ctxT(t), fakeDevice.UDID, api.VerifyRequest{}); err != nil {
		t.Errorf("POST verify: %v", err)
	}
}
