package usbmux

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim/simtest"
)

// realUsbmuxd runs Debian's usbmuxd in the foreground. It binds
// /var/run/usbmuxd (it has no option for another path), so it needs root
// and no other usbmuxd running.
type realUsbmuxd struct {
	t    *testing.T
	path string
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

func requireRealUsbmuxd(t *testing.T) *realUsbmuxd {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("CI must run the real-usbmuxd test as root: usbmuxd binds /var/run/usbmuxd")
		}
		t.Skip("not root: usbmuxd binds /var/run/usbmuxd")
	}
	path := simtest.RequireTool(t, "usbmuxd")
	addr := DefaultAddr()
	if c, err := net.DialTimeout(addr.Network, addr.Address, time.Second); err == nil {
		c.Close()
		if ci {
			t.Fatal("a usbmuxd already runs on /var/run/usbmuxd; the test needs to start and kill its own")
		}
		t.Skip("a usbmuxd already runs on /var/run/usbmuxd; not killing it")
	}
	// usbmuxd leaves its socket and pid file behind; remove them after
	// the test unless they were there before.
	for _, f := range []string{addr.Address, "/var/run/usbmuxd.pid"} {
		if _, err := os.Lstat(f); errors.Is(err, os.ErrNotExist) {
			t.Cleanup(func() { os.Remove(f) })
		}
	}
	r := &realUsbmuxd{t: t, path: path}
	t.Cleanup(func() { r.stop(syscall.SIGTERM) })
	return r
}

func (r *realUsbmuxd) start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = &bytes.Buffer{}
	r.cmd = exec.Command(r.path, "-f", "-U", "root")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start usbmuxd: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
}

func (r *realUsbmuxd) stop(sig syscall.Signal) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (r *realUsbmuxd) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		return ""
	}
	return r.out.String()
}

// TestRealUsbmuxdRestarts runs the watcher against Debian's usbmuxd (with
// no USB devices in a sandbox), kills usbmuxd and starts it again ten
// times, and checks that the watcher reports the outage as
// usbmuxd_unavailable and is back within 2 s of each start.
func TestRealUsbmuxdRestarts(t *testing.T) {
	r := requireRealUsbmuxd(t)
	r.start()
	c := NewClient(Config{Addr: DefaultAddr(), Timeout: 2 * time.Second})
	w := NewWatcher(WatcherConfig{Client: c})
	runWatcher(t, w)

	up := next(t, w)
	if up.Kind == MuxDown {
		// usbmuxd had not bound its socket yet when we first tried.
		up = next(t, w)
	}
	if up.Kind != MuxUp {
		t.Fatalf("first event %+v; usbmuxd said:\n%s", up, r.output())
	}
	expectNone(t, w, 200*time.Millisecond)
	if devs := w.Devices(); len(devs) != 0 {
		t.Fatalf("watcher reports %d devices, want 0: %+v", len(devs), devs)
	}
	if list, err := c.ListDevices(testCtx(t)); err != nil || len(list) != 0 {
		t.Fatalf("ListDevices = %+v, %v", list, err)
	}
	if buid, err := c.ReadBUID(testCtx(t)); err != nil || buid == "" {
		t.Fatalf("ReadBUID = %q, %v", buid, err)
	}

	var downs, ups []time.Duration
	for i := range 10 {
		// Alternate a crash (the socket file stays, connect is refused)
		// and a clean stop.
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGTERM
		}
		killed := time.Now()
		r.stop(sig)
		down := next(t, w)
		if down.Kind != MuxDown {
			t.Fatalf("restart %d: after %v, event %+v, want MuxDown", i, sig, down)
		}
		downs = append(downs, time.Since(killed))
		wantCause(t, down.Err, cause.UsbmuxdUnavailable)
		wantCause(t, w.Err(), cause.UsbmuxdUnavailable)
		_, err := c.ListDevices(testCtx(t))
		wantCause(t, err, cause.UsbmuxdUnavailable)

		started := time.Now()
		r.start()
		ev := next(t, w)
		took := time.Since(started)
		if ev.Kind != MuxUp {
			t.Fatalf("restart %d: event %+v, want MuxUp; usbmuxd said:\n%s", i, ev, r.output())
		}
		ups = append(ups, took)
		if took > 2*time.Second {
			t.Errorf("restart %d: reconnected %v after usbmuxd started, want within 2 s", i, took)
		}
		if w.Err() != nil {
			t.Fatalf("restart %d: Err after reconnect: %v", i, w.Err())
		}
	}
	expectNone(t, w, 100*time.Millisecond)
	t.Logf("outage noticed after kill: %v", durations(downs))
	t.Logf("reconnected after start:   %v", durations(ups))
	t.Logf("reconnect min %v, median %v, max %v", slices.Min(ups), median(ups), slices.Max(ups))
}

type durations []time.Duration

func (d durations) String() string {
	var b bytes.Buffer
	for i, x := range d {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(x.Round(time.Millisecond / 10).String())
	}
	return b.String()
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
