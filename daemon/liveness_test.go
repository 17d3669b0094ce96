package daemon

import (
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestThinkingPhoneIsNotStalled (issue #13, item 1): a phone that stays
// silent 2.5 times stall_timeout at each point where real iPhones think,
// while it stays attached, is backed up: the daemon's watchdog holds
// while the engine says the phone thinks.
func TestThinkingPhoneIsNotStalled(t *testing.T) {
	t.Parallel()
	stall := 300 * time.Millisecond
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30},
		Faults: sim.Faults{ThinkPause: stall * 5 / 2, EndRedownload: true}})
	cfg := testConfig(t, s)
	cfg.Backup.StallTimeout = Duration(stall)
	cfg.Backup.FirstMessageTimeout = Duration(stall)
	r := start(t, cfg, Options{})
	runs := waitRuns(t, r.c, devs[0].UDID(), 1, 30*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess {
		t.Fatalf("run: %+v", runs[0])
	}
	if took := runs[0].End.Sub(runs[0].Start); took < 4*stall*5/2 {
		t.Errorf("the backup took %v: the phone did not pause", took)
	}
}

// TestThinkTimeoutHonoured: backup.think_timeout bounds how long an
// attached phone may think: one silent longer fails as stalled, soon
// after it.
func TestThinkTimeoutHonoured(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30},
		Faults: sim.Faults{ThinkPause: time.Minute}})
	cfg := testConfig(t, s)
	cfg.Backup.StallTimeout = Duration(300 * time.Millisecond)
	cfg.Backup.FirstMessageTimeout = Duration(300 * time.Millisecond)
	cfg.Backup.ThinkTimeout = Duration(time.Second)
	r := start(t, cfg, Options{})
	runs := waitRuns(t, r.c, devs[0].UDID(), 1, 30*time.Second)
	if runs[0].Outcome != api.OutcomeFailed || runs[0].Cause != cause.Stalled {
		t.Fatalf("run: %+v", runs[0])
	}
	if took := runs[0].End.Sub(runs[0].Start); took > 10*time.Second {
		t.Errorf("a phone silent past think_timeout (1s) failed after %v", took)
	}
}

// TestThinkingShownInView (issue #13): while the phone thinks, the
// device's view says since when (progress.thinking_since), so that
// status and the web page can tell a person not to unplug it; once it
// sends again the field is gone. The progress events carry what the view
// shows; they are read rather than the view polled, because on a fast
// machine the phone sends its last files between two polls.
func TestThinkingShownInView(t *testing.T) {
	t.Parallel()
	stall, pause := 300*time.Millisecond, 1500*time.Millisecond
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30},
		Faults: sim.Faults{ThinkPause: pause}})
	cfg := testConfig(t, s)
	cfg.Backup.StallTimeout = Duration(stall)
	cfg.Backup.FirstMessageTimeout = Duration(stall)
	r := start(t, cfg, Options{})
	udid := devs[0].UDID()
	events, err := r.c.Events(ctxT(t), udid)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	var thinking, sending bool
	for !(thinking && sending) {
		ev, err := nextEvent(events, 30*time.Second)
		if err != nil {
			t.Fatalf("the events showed the phone thinking: %v, then sending without it: %v (%v)", thinking, sending, err)
		}
		p := ev.Progress
		switch {
		case ev.Type != api.EventProgress || p == nil:
		case !p.ThinkingSince.IsZero():
			if quiet := time.Since(p.ThinkingSince); quiet < 0 || quiet > pause+5*time.Second {
				t.Fatalf("thinking since %v, %v ago: not this silence", p.ThinkingSince, quiet)
			}
			if !thinking {
				// The phone is quiet for the whole pause: the view
				// says so meanwhile.
				d, err := r.c.Device(ctxT(t), udid)
				if err != nil || d.Progress == nil || d.Progress.ThinkingSince.IsZero() {
					t.Fatalf("the view of a thinking phone: %+v, %v", d.Progress, err)
				}
			}
			thinking = true
		case thinking && p.Files > 0:
			sending = true
		}
	}
	waitRuns(t, r.c, udid, 1, 30*time.Second)
}
