package daemon

import (
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestForgottenPairing: a phone that forgot this computer is shown as
// pairing_invalid, not as a phone that was never paired, while the Trust
// prompt that pairs it again waits; a tap on Trust ends it.
func TestForgottenPairing(t *testing.T) {
	t.Parallel()
	s, devs := simtest.StartT(t, sim.DeviceConfig{Pairing: sim.Forgotten, Files: sim.FileSpec{Count: 20}})
	dev := devs[0]
	r := start(t, testConfig(t, s), Options{})
	d := waitState(t, r.c, dev.UDID(), 10*time.Second, api.StateWaiting)
	if d.Cause != cause.PairingInvalid || d.Fix != cause.Lookup(cause.PairingInvalid).Fix {
		t.Fatalf("device with a forgotten pairing: %+v", d)
	}
	// The prompt is up: rechecks keep the cause.
	time.Sleep(500 * time.Millisecond)
	if d, err := r.c.Device(ctxT(t), dev.UDID()); err != nil || d.Cause != cause.PairingInvalid {
		t.Fatalf("after rechecks: %+v, %v", d, err)
	}
	dev.TapTrust()
	runs := waitRuns(t, r.c, dev.UDID(), 2, 20*time.Second)
	if runs[0].Outcome != api.OutcomeSuccess || runs[1].Cause != cause.PairingInvalid {
		t.Fatalf("runs: %+v", runs)
	}
}
