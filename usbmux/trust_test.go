package usbmux

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

func TestTrustVerdictPerPairingState(t *testing.T) {
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Pairing: sim.Paired},
		sim.DeviceConfig{Pairing: sim.Unpaired},
		sim.DeviceConfig{Pairing: sim.Locked},
		sim.DeviceConfig{Pairing: sim.Forgotten},
	)
	c := simClient(t, s)
	want := []Trust{Trusted, NotPaired, DeviceLocked, PairingInvalid}
	for i, d := range devs {
		got, err := c.CheckTrust(testCtx(t), simDevice(t, c, d), TrustOptions{})
		if err != nil || got != want[i] {
			t.Errorf("%s device: %q, %v; want %q", d.Config().Pairing, got, err, want[i])
		}
		if d.TrustPending() {
			t.Errorf("%s device: a check without StartPairing raised the Trust prompt", d.Config().Pairing)
		}
	}
	if _, ok := s.PairRecord(devs[1].UDID()); ok {
		t.Error("a check without StartPairing saved a pair record")
	}
	for _, v := range want[1:] {
		if !v.Cause().Known() {
			t.Errorf("verdict %s is not a cause code", v)
		}
	}
	if Trusted.Cause() != cause.None {
		t.Error("Trusted has a cause")
	}
}

func TestPairingFlow(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{Pairing: sim.Unpaired})
	d := devs[0]
	c := simClient(t, s)
	dev := simDevice(t, c, d)
	pairing := TrustOptions{StartPairing: true}

	got, err := c.CheckTrust(testCtx(t), dev, pairing)
	if err != nil || got != TrustPending {
		t.Fatalf("first check: %q, %v; want trust_pending", got, err)
	}
	if !d.TrustPending() {
		t.Fatal("the Trust prompt is not showing")
	}
	if _, ok := s.PairRecord(d.UDID()); ok {
		t.Fatal("a pair record was saved before the user answered")
	}
	c.mu.Lock()
	firstHostID := c.pending[d.UDID()].rec.HostID
	c.mu.Unlock()

	// Asking again while nobody answered keeps waiting, with the same
	// certificates.
	if got, err := c.CheckTrust(testCtx(t), dev, pairing); err != nil || got != TrustPending {
		t.Fatalf("second check: %q, %v", got, err)
	}

	d.TapTrust()
	got, err = c.CheckTrust(testCtx(t), dev, pairing)
	if err != nil || got != Trusted {
		t.Fatalf("check after Trust: %q, %v; want trusted", got, err)
	}
	rec, ok := s.PairRecord(d.UDID())
	if !ok {
		t.Fatal("no pair record in usbmuxd after pairing")
	}
	if rec.HostID != firstHostID {
		t.Errorf("saved HostID %s, the prompt was raised with %s", rec.HostID, firstHostID)
	}
	if !bytes.Equal(rec.EscrowBag, []byte("escrow-"+d.UDID())) {
		t.Errorf("escrow bag %q not saved from the Pair reply", rec.EscrowBag)
	}
	if rec.SystemBUID != s.BUID() || len(rec.HostPrivateKey) == 0 || len(rec.RootPrivateKey) == 0 || rec.WiFiMACAddress == "" {
		t.Errorf("saved record incomplete: %+v", rec)
	}
	c.mu.Lock()
	left := len(c.pending)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d pairings still pending", left)
	}
	// The record we saved starts a pinned session, and backups can start.
	if got, err := c.CheckTrust(testCtx(t), dev, TrustOptions{}); err != nil || got != Trusted {
		t.Fatalf("check with the saved record: %q, %v", got, err)
	}
	conn, err := c.ConnectService(testCtx(t), dev, lockdown.ServiceMobileBackup2, true)
	if err != nil {
		t.Fatalf("mobilebackup2 with the saved escrow bag: %v", err)
	}
	conn.Close()
}

func TestPairingDeniedAndLocked(t *testing.T) {
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Pairing: sim.Unpaired},
		sim.DeviceConfig{Pairing: sim.Unpaired},
		sim.DeviceConfig{Pairing: sim.Forgotten},
	)
	c := simClient(t, s)
	pairing := TrustOptions{StartPairing: true}

	denier := simDevice(t, c, devs[0])
	if got, _ := c.CheckTrust(testCtx(t), denier, pairing); got != TrustPending {
		t.Fatalf("first check: %q", got)
	}
	devs[0].TapDontTrust()
	if got, err := c.CheckTrust(testCtx(t), denier, pairing); err != nil || got != TrustDenied {
		t.Fatalf("after Don't Trust: %q, %v", got, err)
	}

	devs[1].Lock()
	if got, err := c.CheckTrust(testCtx(t), simDevice(t, c, devs[1]), pairing); err != nil || got != DeviceLocked {
		t.Fatalf("pairing a locked phone: %q, %v", got, err)
	}

	// A phone that forgot us is paired afresh when pairing is asked for.
	forgot := simDevice(t, c, devs[2])
	if got, err := c.CheckTrust(testCtx(t), forgot, pairing); err != nil || got != TrustPending {
		t.Fatalf("forgotten, pairing: %q, %v", got, err)
	}
	devs[2].TapTrust()
	if got, err := c.CheckTrust(testCtx(t), forgot, pairing); err != nil || got != Trusted {
		t.Fatalf("forgotten, after Trust: %q, %v", got, err)
	}
}

func TestTrustErrorsCarryCauses(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{})
	c := simClient(t, s)
	dev := simDevice(t, c, devs[0])
	devs[0].Unplug()
	_, err := c.CheckTrust(testCtx(t), dev, TrustOptions{})
	wantCause(t, err, cause.Disconnected)

	gone := NewClient(Config{Addr: Addr{Network: "unix", Address: shortSocketPath(t)}})
	_, err = gone.CheckTrust(testCtx(t), dev, TrustOptions{})
	wantCause(t, err, cause.UsbmuxdUnavailable)
}

// TestPairRecordsInteroperate checks our records against Debian's
// libimobiledevice in both directions: idevicepair validates a record we
// paired, and we start a pinned session with a record idevicepair made
// (SHA-1 signed by libimobiledevice's OpenSSL code).
func TestPairRecordsInteroperate(t *testing.T) {
	tool := simtest.RequireTool(t, "idevicepair")
	s, devs := simtest.StartT(t, sim.DeviceConfig{Pairing: sim.Unpaired}, sim.DeviceConfig{Pairing: sim.Unpaired})
	c := simClient(t, s)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, tool, args...)
		cmd.Env = append(cmd.Environ(), "USBMUXD_SOCKET_ADDRESS="+s.Address())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	ours := simDevice(t, c, devs[0])
	if got, _ := c.CheckTrust(testCtx(t), ours, TrustOptions{StartPairing: true}); got != TrustPending {
		t.Fatalf("pairing: %q", got)
	}
	devs[0].TapTrust()
	if got, err := c.CheckTrust(testCtx(t), ours, TrustOptions{StartPairing: true}); got != Trusted {
		t.Fatalf("pairing after Trust: %q, %v", got, err)
	}
	if out, err := run("-u", devs[0].UDID(), "validate"); err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("idevicepair validate of our record: %v\n%s", err, out)
	}

	_, _ = run("-u", devs[1].UDID(), "pair")
	devs[1].TapTrust()
	if out, err := run("-u", devs[1].UDID(), "pair"); err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("idevicepair pair: %v\n%s", err, out)
	}
	theirs := simDevice(t, c, devs[1])
	if got, err := c.CheckTrust(testCtx(t), theirs, TrustOptions{}); err != nil || got != Trusted {
		t.Fatalf("session with idevicepair's record: %q, %v", got, err)
	}
	f, err := c.Facts(testCtx(t), theirs)
	if err != nil || f.Name != devs[1].Config().Name {
		t.Fatalf("facts with idevicepair's record: %+v, %v", f, err)
	}
}
