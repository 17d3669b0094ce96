//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

// interrupted runs backupd with args, waits until its output holds
// (ready says so), sends it SIGINT as Ctrl-C does, and returns how it ended.
func interrupted(t *testing.T, bin string, ready func(out string) bool, args ...string) (out string, state *exec.ExitError, exited bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "backupd"), args...)
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, "backupd "+strings.Join(args, " ")+" to wait", func() bool { return ready(buf.String()) })
	cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("backupd %s did not stop within 15s of SIGINT:\n%s", strings.Join(args, " "), buf.String())
	}
	if err == nil {
		return buf.String(), nil, true
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatal(err)
	}
	// Exited: it ended by itself rather than being killed by the signal.
	return buf.String(), ee, ee.Exited()
}

// TestE2EInterrupt: Ctrl-C stops `backup --wait` and `encryption`
// cleanly: exit 130 with a word on what happens now, not death by the
// signal; the backup asked for goes on in the service.
func TestE2EInterrupt(t *testing.T) {
	e := newEnv(t, 1)
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	var udid string
	waitFor(t, "the plug-in backup", func() bool {
		rep, _ := e.status(t)
		if len(rep.Devices) == 1 && !rep.Devices[0].LastSuccess.IsZero() && rep.Devices[0].State != api.StateBackingUp {
			udid = rep.Devices[0].UDID
			return true
		}
		return false
	})

	// The password comes through a FIFO nobody writes to: the command
	// waits for it, and a writer that can open the FIFO without blocking
	// shows that the command has it open.
	fifo := filepath.Join(e.dir, "pw.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var writer *os.File
	t.Cleanup(func() {
		if writer != nil {
			writer.Close()
		}
	})
	readingFIFO := func(string) bool {
		if writer == nil {
			writer, _ = os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		}
		return writer != nil
	}

	tests := []struct {
		name  string
		args  []string
		ready func(out string) bool
		want  string
	}{
		{"backup --wait", []string{"backup", udid, "--full", "--wait"},
			func(out string) bool { return strings.Contains(out, "backup requested") },
			"backupd backup: interrupted; the backup goes on in the service"},
		{"encryption, waiting for the password", []string{"encryption", "on", "--password-file", fifo}, readingFIFO,
			"backupd encryption: interrupted; nothing was changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "backup --wait" {
				// Slow enough that the backup is still running at Ctrl-C.
				e.ctl(t, "fault", udid, "slow-link=500000")
				defer e.ctl(t, "fault", udid, "clear")
			}
			args := append(tt.args, "--config", e.config)
			out, ee, exited := interrupted(t, e.bin, tt.ready, args...)
			if !exited || ee == nil || ee.ExitCode() != exitInterrupted || !strings.Contains(out, tt.want) {
				t.Fatalf("after SIGINT: exited by itself %t, %v; want exit %d with %q:\n%s", exited, ee, exitInterrupted, tt.want, out)
			}
			if strings.Contains(out, "lost the daemon's event stream") {
				t.Errorf("an interrupt is not a lost stream:\n%s", out)
			}
			if tt.name == "backup --wait" {
				// Under load the request may still be queued at Ctrl-C:
				// the backup must go on to run, not end with the command.
				deadline := time.Now().Add(20 * time.Second)
				for {
					rep, _ := e.status(t)
					if len(rep.Devices) == 1 && rep.Devices[0].State == api.StateBackingUp {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the backup stopped with the command: %+v", rep.Devices)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}
