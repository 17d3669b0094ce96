package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/hook"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestHooksPasscodeOncePerRun: the passcode prompt may come and go within
// a run; the hooks hear of it once per run.
func TestHooksPasscodeOncePerRun(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev hook.Event
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		got = append(got, string(ev.Event)+":"+ev.UDID)
		mu.Unlock()
	}))
	defer srv.Close()
	n, err := hook.New(hook.Options{Hooks: []hook.Hook{{Webhook: srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &observers{runner: n, passcode: map[string]bool{}, wake: make(chan struct{}, 1)}
	begin := func(udid string) api.Event {
		return api.Event{Type: api.EventRun, UDID: udid, Run: &api.Run{UDID: udid, Outcome: api.OutcomeRunning}}
	}
	prompt := api.Event{Type: api.EventState, UDID: "a", State: api.StateAwaitingPasscode}
	for _, ev := range []api.Event{
		begin("a"), prompt,
		{Type: api.EventState, UDID: "a", State: api.StateBackingUp}, prompt, prompt, // one run
		begin("a"), prompt, // the next
		{Type: api.EventState, UDID: "b", State: api.StateAwaitingPasscode}, // another device
		{Type: api.EventProgress, UDID: "a", State: api.StateAwaitingPasscode},
	} {
		h.handle(ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if s := strings.Join(got, " "); s != "passcode:a passcode:a passcode:b" {
		t.Errorf("hooks got %q, want one passcode event per run", s)
	}
}

// TestHooksOverdue: with the clock moved past overdue_after, the next
// ended run makes the daemon look, and the device is reported overdue
// once for that period, again in the next period, never twice in one.
func TestHooksOverdue(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20}})
	dev := devs[0]
	sink := newWebhookSink(t)
	count := func(k hook.Kind) int { return len(sink.find(k)) }
	var offset atomic.Int64 // the clock runs, and jumps when told
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	cfg := testConfig(t, s)
	cfg.Notify.Hooks = []HookConfig{{Webhook: sink.url, Events: []string{"overdue", "failure"}}}
	r := start(t, cfg, Options{Now: now})
	first := waitRuns(t, r.c, dev.UDID(), 1, 30*time.Second)[0]
	if first.Outcome != api.OutcomeSuccess {
		t.Fatalf("first run: %+v", first)
	}
	dev.SetFaults(sim.Faults{ErrorCode: 105})
	fail := func(n int) {
		t.Helper()
		if _, err := r.c.BackupNow(ctxT(t), dev.UDID(), api.BackupRequest{}); err != nil {
			t.Fatal(err)
		}
		waitRuns(t, r.c, dev.UDID(), n, 30*time.Second)
	}
	day := 24 * time.Hour
	offset.Store(int64(8 * day))
	fail(2)
	waitFor(t, 10*time.Second, "the overdue event", func() bool { return count(hook.KindOverdue) == 1 })
	fail(3) // the same period: no second report
	offset.Store(int64(15 * day))
	fail(4) // the next period
	waitFor(t, 10*time.Second, "the second overdue event", func() bool { return count(hook.KindOverdue) == 2 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := count(hook.KindOverdue); n != 2 {
		t.Errorf("%d overdue events, want 2 (one per period)", n)
	}
	if n := count(hook.KindFailure); n != 3 {
		t.Errorf("%d failure events, want 3", n)
	}
	overdue := sink.find(hook.KindOverdue)
	for i, days := range []string{"8 days", "15 days"} {
		ev := overdue[i]
		if ev.UDID != dev.UDID() || !ev.LastSuccess.Equal(first.End) || !strings.Contains(ev.Summary, "No successful backup for "+days) {
			t.Errorf("overdue event %d: %+v", i+1, ev)
		}
	}
}

// webhookSink is a webhook that keeps the hook events it is sent.
type webhookSink struct {
	url string
	mu  sync.Mutex
	got []hook.Event
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev hook.Event
		_ = json.NewDecoder(r.Body).Decode(&ev)
		s.mu.Lock()
		s.got = append(s.got, ev)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// find returns the events of kind k received so far, or every event for
// an empty k, in the order they came.
func (s *webhookSink) find(k hook.Kind) []hook.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hook.Event
	for _, ev := range s.got {
		if k == "" || ev.Event == k {
			out = append(out, ev)
		}
	}
	return out
}
