package daemon

import (
	"testing"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/daemon/api"
)

// TestProgressHeldBackIsPublished: a report inside the throttle window is
// not lost but published when the window ends (a round of small files
// can end inside it, before minutes of silence), and nothing is
// published after stop.
func TestProgressHeldBackIsPublished(t *testing.T) {
	d := &Daemon{now: time.Now, bus: newBus(time.Now)}
	a := newActor(d, "U")
	events, cancel := d.bus.subscribe()
	defer cancel()
	r := &progressReporter{a: a, started: time.Now()}
	files := func() int64 {
		if p := a.snapshot().progress; p != nil {
			return p.Files
		}
		return -1
	}
	nextFiles := func(within time.Duration) int64 {
		select {
		case ev := <-events:
			if ev.Type != api.EventProgress || ev.Progress == nil {
				t.Fatalf("event %+v", ev)
			}
			return ev.Progress.Files
		case <-time.After(within):
			return -1
		}
	}

	r.report(backup.Progress{Files: 1})
	if got := nextFiles(time.Second); got != 1 || files() != 1 {
		t.Fatalf("first report: event %d, view %d", got, files())
	}
	r.report(backup.Progress{Files: 2})
	if files() != 1 {
		t.Fatalf("a report inside the window shown at once: view %d", files())
	}
	if got := nextFiles(2 * progressEvery); got != 2 || files() != 2 {
		t.Fatalf("the held-back report: event %d, view %d; want 2", got, files())
	}

	r.report(backup.Progress{Files: 3})
	r.stop()
	r.report(backup.Progress{Files: 4})
	if got := nextFiles(2 * progressEvery); got != -1 || files() != 2 {
		t.Fatalf("after stop: event %d, view %d; want none and 2", got, files())
	}
}
