package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim/simtest"
)

// realMuxdSocket is where Debian's usbmuxd listens; it has no option for
// another path.
const realMuxdSocket = "/var/run/usbmuxd"

// requireRealMuxd returns the path of Debian's usbmuxd when this test may
// run it: as root, with no usbmuxd already listening (one that runs is
// someone's, and is not ours to kill). Under CI=true a missing usbmuxd or
// root fails the test instead of skipping it.
func requireRealMuxd(t *testing.T) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("CI must run the usbmuxd torture test as root: usbmuxd binds " + realMuxdSocket)
		}
		t.Skip("not root: usbmuxd binds " + realMuxdSocket)
	}
	path := simtest.RequireTool(t, "usbmuxd")
	if c, err := net.DialTimeout("unix", realMuxdSocket, time.Second); err == nil {
		c.Close()
		if ci {
			t.Fatal("a usbmuxd already runs on " + realMuxdSocket + "; the test needs to start and kill its own")
		}
		t.Skip("a usbmuxd already runs on " + realMuxdSocket + "; not killing it")
	}
	// usbmuxd leaves its socket and pid file behind; remove them after
	// the test unless they were there before.
	for _, f := range []string{realMuxdSocket, "/var/run/usbmuxd.pid"} {
		if _, err := os.Lstat(f); errors.Is(err, os.ErrNotExist) {
			t.Cleanup(func() { os.Remove(f) })
		}
	}
	return path
}

// TestTortureUsbmuxdRestart restarts Debian's usbmuxd under a running
// daemon (10 times in the full suite, 2 in the quick one), by SIGKILL and
// SIGTERM in turn, and checks that the daemon is connected again within
// 2 s of each start. Then a phone plugged in afterwards is backed up.
//
// The real usbmuxd cannot host a simulated phone (there is no USB here),
// so for that last step the simulator's usbmuxd takes its place on the
// same socket, /var/run/usbmuxd: to the daemon it is one more usbmuxd
// restart, followed by a plug-in.
func TestTortureUsbmuxdRestart(t *testing.T) {
	muxd := requireRealMuxd(t)
	restarts := 2
	if tortureFull() {
		restarts = 10
	}
	e := configEnv(t, realMuxdSocket)
	bin, dir := e.bin, e.dir

	var real *proc
	startReal := func() time.Time {
		began := time.Now()
		real = start(t, muxd, "-f", "-U", "root")
		return began
	}
	stopReal := func(sig syscall.Signal) {
		real.cmd.Process.Signal(sig)
		select {
		case <-real.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("usbmuxd did not end within 10 s of %v", sig)
		}
	}
	startReal()
	start(t, filepath.Join(bin, "backupd"), "run", "--config", e.config)
	c := e.api(t)
	connected := func() bool {
		h, err := c.Health(ctxFor(t, 2*time.Second))
		return err == nil && h.Usbmuxd.Connected
	}
	waitFor(t, "the daemon connected to usbmuxd", connected)

	var ups []time.Duration
	failures := 0
	for i := range restarts {
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGTERM
		}
		stopReal(sig)
		waitFor(t, fmt.Sprintf("restart %d: the daemon noticing usbmuxd gone (%v)", i+1, sig), func() bool {
			h, err := c.Health(ctxFor(t, 2*time.Second))
			return err == nil && !h.Usbmuxd.Connected && h.Usbmuxd.Cause == cause.UsbmuxdUnavailable && h.Status == "degraded"
		})
		began := startReal()
		for !connected() {
			if time.Since(began) > 30*time.Second {
				t.Fatalf("restart %d: not connected 30 s after usbmuxd started; usbmuxd said:\n%s", i+1, real.out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(began)
		ups = append(ups, took)
		if took >= 2*time.Second {
			failures++
			t.Errorf("restart %d (%v): connected %v after usbmuxd started, want under 2 s", i+1, sig, took)
		}
	}
	t.Logf("reconnected after each usbmuxd start: %v", ups)

	// The simulator's usbmuxd in the real one's place, with a phone that
	// is plugged in only once the daemon is connected to it.
	stopReal(syscall.SIGTERM)
	ctlSock := filepath.Join(dir, "sim.ctl")
	start(t, filepath.Join(bin, "iphonesim"), "--socket", realMuxdSocket, "--control", ctlSock, "--unplugged", "--files", "50", "--max-size", "65536")
	t.Cleanup(func() { os.Remove(realMuxdSocket) })
	waitFor(t, "the daemon connected to the simulator's usbmuxd", func() bool {
		_, err := os.Stat(ctlSock)
		return err == nil && connected()
	})
	out, err := exec.Command(filepath.Join(bin, "iphonesim"), "ctl", "--control", ctlSock, "list").CombinedOutput()
	fields := strings.Fields(string(out))
	if err != nil || len(fields) == 0 || !strings.Contains(string(out), "plugged=false") {
		t.Fatalf("iphonesim ctl list: %v\n%s", err, out)
	}
	udid := fields[0]
	if out, err := exec.Command(filepath.Join(bin, "iphonesim"), "ctl", "--control", ctlSock, "plug", udid).CombinedOutput(); err != nil {
		t.Fatalf("iphonesim ctl plug: %v\n%s", err, out)
	}
	var dev api.Device
	waitFor(t, "the phone plugged in after the restarts backed up", func() bool {
		var err error
		dev, err = c.Device(ctxFor(t, 5*time.Second), udid)
		return err == nil && dev.LastAttempt != nil && dev.LastAttempt.Outcome != api.OutcomeRunning
	})
	if dev.LastAttempt.Outcome != api.OutcomeSuccess {
		failures++
		t.Errorf("backup after the restarts: %+v", *dev.LastAttempt)
	}
	verifyBackups(t, e.backupDir(), udid)

	note := fmt.Sprintf("reconnect after usbmuxd start: min %v, median %v, max %v; then a simulated phone on the same socket backed up",
		slices.Min(ups).Round(time.Millisecond), medianDuration(ups).Round(time.Millisecond), slices.Max(ups).Round(time.Millisecond))
	recordTorture(t, tortureTally{Suite: "usbmuxd-restart", Trials: restarts + 1, Failures: failures, Note: note})
}

func medianDuration(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
