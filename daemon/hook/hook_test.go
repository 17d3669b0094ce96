package hook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a webhook endpoint that answers from a script of status
// codes (the last repeats) and keeps what it received.
type recorder struct {
	mu      sync.Mutex
	codes   []int
	delay   time.Duration
	bodies  [][]byte
	headers []http.Header
	got     chan struct{}
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, body)
	r.headers = append(r.headers, req.Header.Clone())
	n := len(r.bodies)
	code := r.codes[min(n-1, len(r.codes)-1)]
	r.mu.Unlock()
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
		}
	}
	w.WriteHeader(code)
	if r.got != nil {
		r.got <- struct{}{}
	}
}

func (r *recorder) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// closeAll closes n, draining its queues for up to a minute, long
// enough for any delivery a test expects to finish.
func closeAll(t *testing.T, n *Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.Close(ctx)
}

var testEvent = Event{
	Event: KindFailure, UDID: "00008110-000A11112222801E", Device: "Anna's iPhone", Outcome: "failed",
	Cause: "host_disk_full", Summary: "This computer does not have enough free space for the backup.",
	Fix: "Free up space.", DeviceErrorCode: 105, DeviceErrorText: "No space", Bytes: 2048, Files: 3,
	DurationSeconds: 12.5, RunID: 7, Trigger: "plug_in",
}

func TestWebhook(t *testing.T) {
	tests := []struct {
		name      string
		codes     []int
		delay     time.Duration
		retries   int
		timeout   time.Duration
		wantReqs  int
		delivered bool
	}{
		{"ok at once", []int{200}, 0, 3, time.Second, 1, true},
		{"204 is success", []int{204}, 0, 3, time.Second, 1, true},
		{"500 then ok", []int{500, 502, 200}, 0, 3, time.Second, 3, true},
		{"429 then ok", []int{429, 200}, 0, 3, time.Second, 2, true},
		{"always 500, bounded", []int{500}, 0, 2, time.Second, 3, false},
		{"no retries", []int{503}, 0, 0, time.Second, 1, false},
		{"404 is not retried", []int{404}, 0, 3, time.Second, 1, false},
		{"3xx is a failure", []int{304}, 0, 3, time.Second, 1, false},
		{"no answer in time", []int{200}, 5 * time.Second, 1, 100 * time.Millisecond, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{codes: tt.codes, delay: tt.delay}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			n, err := New(Options{
				Hooks:   []Hook{{Webhook: srv.URL + "/hook", Headers: map[string]string{"Authorization": "Bearer abc", "Title": "backupd"}}},
				Retries: tt.retries, Timeout: tt.timeout, Backoff: time.Millisecond, Hostname: "host1",
			})
			if err != nil {
				t.Fatal(err)
			}
			n.Fire(testEvent)
			closeAll(t, n)
			if got := rec.requests(); got != tt.wantReqs {
				t.Errorf("requests = %d, want %d", got, tt.wantReqs)
			}
			st := n.Stats()
			if (st.Delivered == 1) != tt.delivered || st.Delivered+st.Failed != 1 {
				t.Errorf("stats = %+v, want delivered %v", st, tt.delivered)
			}
			var ev Event
			if err := json.Unmarshal(rec.bodies[0], &ev); err != nil {
				t.Fatalf("body %q: %v", rec.bodies[0], err)
			}
			if ev.UDID != testEvent.UDID || ev.Event != KindFailure || ev.Cause != "host_disk_full" || ev.Fix != testEvent.Fix ||
				ev.Version != SchemaVersion || ev.Hostname != "host1" || ev.Time.IsZero() || ev.DeviceErrorCode != 105 {
				t.Errorf("event = %+v", ev)
			}
			if !strings.Contains(ev.Text, "Anna's iPhone: backup failed") || !strings.Contains(ev.Text, "Free up space") {
				t.Errorf("text = %q", ev.Text)
			}
			h := rec.headers[0]
			if h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "Bearer abc" || h.Get("Title") != "backupd" {
				t.Errorf("headers = %v", h)
			}
		})
	}
}

// TestWebhookText: body = "text" posts the one line alone, as ntfy shows
// a message.
func TestWebhookText(t *testing.T) {
	rec := &recorder{codes: []int{200}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n, err := New(Options{Hooks: []Hook{{Webhook: srv.URL, Body: "text"}}})
	if err != nil {
		t.Fatal(err)
	}
	n.Fire(Event{Event: KindSuccess, UDID: "u1", Device: "Phone", Bytes: 3 << 20, Files: 12})
	closeAll(t, n)
	if rec.requests() != 1 {
		t.Fatalf("requests = %d", rec.requests())
	}
	if got, want := string(rec.bodies[0]), "Phone: backup done (3.0 MiB, 12 files)."; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if ct := rec.headers[0].Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
}

// TestFilter: each hook receives the events it asked for, the defaults
// when it did not ask.
func TestFilter(t *testing.T) {
	all := AllKinds
	tests := []struct {
		name   string
		events []Kind
		want   []Kind
	}{
		{"defaults", nil, DefaultKinds},
		{"failures only", []Kind{KindFailure}, []Kind{KindFailure}},
		{"passcode and interrupted", []Kind{KindPasscode, KindInterrupted}, []Kind{KindPasscode, KindInterrupted}},
		{"none", []Kind{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{codes: []int{200}}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			n, err := New(Options{Hooks: []Hook{{Webhook: srv.URL, Events: tt.events}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range all {
				n.Fire(Event{Event: k, UDID: "u"})
			}
			closeAll(t, n)
			var got []Kind
			for _, b := range rec.bodies {
				var ev Event
				if err := json.Unmarshal(b, &ev); err != nil {
					t.Fatal(err)
				}
				got = append(got, ev.Event)
			}
			if strings.Join(KindNames(got), ",") != strings.Join(KindNames(tt.want), ",") {
				t.Errorf("received %v, want %v", got, tt.want)
			}
		})
	}
}

// TestQueueOverflow: while a hook is stuck, Fire still returns at once;
// the queue keeps the newest events and drops the oldest.
func TestQueueOverflow(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var ids []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		ids = append(ids, ev.RunID)
		first := len(ids) == 1
		mu.Unlock()
		if first {
			<-release
		}
	}))
	defer srv.Close()
	n, err := New(Options{Hooks: []Hook{{Webhook: srv.URL}}, Queue: 2, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	n.Fire(Event{Event: KindSuccess, RunID: 1})
	// Wait until the first is in the hook's hands, so the count below
	// does not depend on when the worker picked it up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		started := len(ids) == 1
		mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first event never reached the hook")
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(2); i <= 1000; i++ {
			n.Fire(Event{Event: KindSuccess, RunID: i})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Fire blocked behind a stuck hook")
	}
	if st := n.Stats(); st.Dropped != 997 {
		t.Errorf("dropped %d, want 997 (999 queued, 2 kept)", st.Dropped)
	}
	close(release)
	closeAll(t, n)
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 3 || ids[0] != 1 || ids[1] != 999 || ids[2] != 1000 {
		t.Errorf("received run ids %v, want [1 999 1000]", ids)
	}
}

// TestCloseBound: Close gives up when its context ends, cancelling the
// delivery under way and dropping the queue.
func TestCloseBound(t *testing.T) {
	rec := &recorder{codes: []int{200}, delay: time.Minute}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n, err := New(Options{Hooks: []Hook{{Webhook: srv.URL}}, Timeout: time.Minute, Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		n.Fire(Event{Event: KindSuccess})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	n.Close(ctx)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Close took %v past its bound", took)
	}
	st := n.Stats()
	if st.Failed != 1 || st.Dropped != 4 || st.Delivered != 0 {
		t.Errorf("stats = %+v, want 1 cancelled and 4 dropped", st)
	}
	if rec.requests() != 1 {
		t.Errorf("requests = %d: a cancelled delivery was retried", rec.requests())
	}
	n.Fire(Event{Event: KindSuccess}) // after Close: ignored, no panic
	if got := n.Stats(); got != st {
		t.Errorf("Fire after Close changed the stats: %+v", got)
	}
}

func TestParseKinds(t *testing.T) {
	if k, err := ParseKinds(nil); k != nil || err != nil {
		t.Errorf("nil: %v, %v", k, err)
	}
	k, err := ParseKinds([]string{"success", "passcode"})
	if err != nil || len(k) != 2 || k[0] != KindSuccess || k[1] != KindPasscode {
		t.Errorf("got %v, %v", k, err)
	}
	if _, err := ParseKinds([]string{"succes"}); err == nil || !strings.Contains(err.Error(), `"succes"`) {
		t.Errorf("a misspelt event: err = %v", err)
	}
}

// TestWebhookSecretNotLogged: a webhook's URL (whose path is a Slack or
// Home Assistant secret) is not in its label or its errors.
func TestWebhookSecretNotLogged(t *testing.T) {
	h := Hook{Webhook: "http://127.0.0.1:1/api/webhook/SECRET123"}
	if strings.Contains(h.label(), "SECRET123") {
		t.Errorf("label %q shows the secret", h.label())
	}
	n, err := New(Options{Hooks: []Hook{h}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, n)
	err = n.post(context.Background(), h, []byte("{}"), "application/json")
	if err == nil || strings.Contains(err.Error(), "SECRET123") {
		t.Errorf("err = %v: want a failure that does not show the secret", err)
	}
}

// BenchmarkFire reports what Fire costs the daemon with three hooks
// whose queues are full (each call drops an event per hook): the worst
// case for the publisher.
func BenchmarkFire(b *testing.B) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	hooks := []Hook{{Webhook: srv.URL}, {Webhook: srv.URL}, {Webhook: srv.URL}}
	n, err := New(Options{Hooks: hooks, Queue: 100, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n.Fire(testEvent)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n.Close(ctx)
}

// TestRestoreEventText: restore events say in their line that a restore
// (not a backup) ended, which backup it put back, and on failure the fix;
// a command hook gets the backup in its environment.
func TestRestoreEventText(t *testing.T) {
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Event: KindRestoreSuccess, Device: "Anna", Source: "u2", BackupVersion: "2025-03-01T09-00-00.000Z", Fix: "not shown"},
			"Anna: restore done from the backup of 2025-03-01T09-00-00.000Z."},
		{Event{Event: KindRestoreFailure, UDID: "u1", Summary: "Find My is on.", Fix: "Turn it off."},
			"u1: restore failed. Find My is on. Turn it off."},
	}
	for _, tt := range tests {
		if got := tt.ev.MakeText(); got != tt.want {
			t.Errorf("%s: text %q, want %q", tt.ev.Event, got, tt.want)
		}
	}
	env := strings.Join(tests[0].ev.Env(), "\n")
	for _, want := range []string{"BACKUPD_EVENT=restore_success", "BACKUPD_SOURCE=u2", "BACKUPD_BACKUP_VERSION=2025-03-01T09-00-00.000Z"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %s:\n%s", want, env)
		}
	}
}

// TestWebhookRedirects: a webhook that answers with a redirect to another
// host (here another port) does not get the event or the hook's headers
// sent there; a redirect on the same host and port is followed (issue
// #16).
func TestWebhookRedirects(t *testing.T) {
	elsewhere := &recorder{codes: []int{200}}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	same := &recorder{codes: []int{200}}
	mux := http.NewServeMux()
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/here", http.StatusPermanentRedirect)
	})
	mux.Handle("/here", same)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tests := []struct {
		path         string
		delivered    bool
		same, stolen int
	}{
		{"/away", false, 0, 0},
		{"/moved", true, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before, stolenBefore := same.requests(), elsewhere.requests()
			n, err := New(Options{Hooks: []Hook{{Webhook: srv.URL + tt.path, Headers: map[string]string{"X-Api-Key": "secret-key"}}}, Backoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			n.Fire(testEvent)
			closeAll(t, n)
			if got := elsewhere.requests() - stolenBefore; got != tt.stolen {
				t.Errorf("the other host got %d requests (headers %v), want %d", got, elsewhere.headers, tt.stolen)
			}
			if got := same.requests() - before; got != tt.same {
				t.Errorf("the same host's target got %d requests, want %d", got, tt.same)
			}
			if st := n.Stats(); (st.Delivered == 1) != tt.delivered {
				t.Errorf("stats %+v, want delivered %t", st, tt.delivered)
			}
		})
	}
}
