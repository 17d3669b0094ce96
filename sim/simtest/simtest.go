// Package simtest starts the simulator for tests and finds the external
// tools they need. It is apart from sim so that the simulator's binary
// (iphonesim) does not link the testing package.
package simtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/backupd/backupd/sim"
)

// StartT starts a simulator on a fresh socket for a test, adds and plugs
// the given devices, and closes everything when the test ends.
func StartT(t testing.TB, cfgs ...sim.DeviceConfig) (*sim.Sim, []*sim.Device) {
	t.Helper()
	// Unix socket paths are short (108 bytes); t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "sim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := sim.New(sim.Options{Socket: filepath.Join(dir, "usbmuxd.sock")})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var devs []*sim.Device
	for _, c := range cfgs {
		d, err := s.AddDevice(c)
		if err != nil {
			t.Fatal(err)
		}
		d.Plug()
		devs = append(devs, d)
	}
	return s, devs
}

// RequireTool returns the path of an external tool. Missing, the test is
// skipped, except in CI (CI=true), where a missing tool is a failure.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI needs it (make deps installs it)", name)
	}
	t.Skipf("%s is not installed (run make deps)", name)
	return ""
}
