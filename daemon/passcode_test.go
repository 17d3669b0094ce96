package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestAwaitingPasscode: while the iPhone asks for its passcode, status
// says so at once and the event stream carries the state; when it is
// entered the backup goes on and succeeds.
func TestAwaitingPasscode(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Name: "Ada's iPhone", Files: sim.FileSpec{Count: 20},
		Faults: sim.Faults{PasscodeNeverEntered: true, PasscodeDelay: time.Minute}})
	dev := devs[0]
	cfg := testConfig(t, s)
	r := start(t, cfg, Options{})
	events, err := r.c.Events(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	d := waitState(t, r.c, dev.UDID(), 20*time.Second, api.StateAwaitingPasscode)
	if want := "enter your passcode on Ada's iPhone to start the backup"; d.Note != want {
		t.Errorf("note %q, want %q", d.Note, want)
	}
	// The stream told it too.
	for {
		ev, err := nextEvent(events, 10*time.Second)
		if err != nil {
			t.Fatalf("no awaiting_passcode event: %v", err)
		}
		if ev.Type == api.EventState && ev.State == api.StateAwaitingPasscode {
			if ev.UDID != dev.UDID() || !strings.Contains(ev.Note, "enter your passcode") {
				t.Errorf("event %+v", ev)
			}
			break
		}
	}
	dev.Unlock() // the person enters the passcode
	runs := waitRuns(t, r.c, dev.UDID(), 1, 30*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess {
		t.Fatalf("run after the passcode: %+v", runs[0])
	}
	d = waitState(t, r.c, dev.UDID(), 5*time.Second, api.StateSucceeded)
	var walked []api.State
	for _, tr := range d.Transitions {
		walked = append(walked, tr.State)
	}
	want := []api.State{api.StateChecking, api.StateQueued, api.StateBackingUp, api.StateAwaitingPasscode, api.StateBackingUp, api.StateSucceeded}
	if !slices.Equal(walked, want) {
		t.Errorf("transitions %v, want %v", walked, want)
	}
}

// TestPasscodeNeverEntered: the device gives up; the run fails with
// passcode_not_entered, and the state leaves awaiting_passcode.
func TestPasscodeNeverEntered(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 20},
		Faults: sim.Faults{PasscodeNeverEntered: true, PasscodeDelay: 2 * time.Second}})
	dev := devs[0]
	r := start(t, testConfig(t, s), Options{})
	waitState(t, r.c, dev.UDID(), 20*time.Second, api.StateAwaitingPasscode)
	d := waitState(t, r.c, dev.UDID(), 20*time.Second, api.StateFailed)
	if d.Cause != cause.PasscodeNotEntered || d.Fix != cause.Lookup(cause.PasscodeNotEntered).Fix {
		t.Errorf("device after the passcode timed out: %+v", d)
	}
}
