package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/notify"
)

// TestHooksPasscodeOncePerRun: the passcode prompt may come and go within
// a run; the hooks hear of it once per run.
func TestHooksPasscodeOncePerRun(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		got = append(got, string(ev.Event)+":"+ev.UDID)
		mu.Unlock()
	}))
	defer srv.Close()
	n, err := notify.New(notify.Options{Hooks: []notify.Hook{{Webhook: srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &hooks{notifier: n, passcode: map[string]bool{}, wake: make(chan struct{}, 1)}
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
