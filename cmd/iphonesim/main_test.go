//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBadInput(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--devices", "0"}, 2, "--devices and --files must be at least 1"},
		{[]string{"--pairing", "maybe"}, 2, "unknown pairing state"},
		{[]string{"--link", "Bluetooth"}, 2, "--link is USB or Network"},
		{[]string{"--min-size", "10", "--max-size", "5"}, 2, "--min-size <= --max-size"},
		{[]string{"--nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"--help"}, 0, "Control commands:"},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("run(%v) = %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
	var out, errOut bytes.Buffer
	if code := ctl([]string{"--control", "/nonexistent/ctl", "list"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "is iphonesim running?") {
		t.Errorf("ctl without a simulator = %d, %q", code, errOut.String())
	}
}

func TestRunAndControl(t *testing.T) {
	dir, err := os.MkdirTemp("", "ips")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "mux.sock")
	var out, errOut bytes.Buffer
	done := make(chan int)
	go func() { done <- run([]string{"--socket", sock, "--devices", "2", "--files", "10"}, &out, &errOut) }()
	// Up to 10 s: a loaded CI machine starts the simulator slowly.
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(sock + ".ctl"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var list, lerr bytes.Buffer
	if code := ctl([]string{"--control", sock + ".ctl", "list"}, &list, &lerr); code != 0 {
		t.Fatalf("ctl list = %d: %s", code, lerr.String())
	}
	if n := strings.Count(list.String(), "plugged=true"); n != 2 {
		t.Fatalf("ctl list shows %d plugged devices, want 2:\n%s", n, list.String())
	}
	udid := strings.Fields(list.String())[0]
	var mout, merr bytes.Buffer
	if code := ctl([]string{"--control", sock + ".ctl", "unplug", "nosuch"}, &mout, &merr); code != 1 || !strings.Contains(merr.String(), "no device nosuch") {
		t.Errorf("ctl unplug of an unknown UDID = %d, %q", code, merr.String())
	}
	if code := ctl([]string{"--control", sock + ".ctl", "unplug", udid}, &mout, &merr); code != 0 {
		t.Fatalf("ctl unplug = %d: %s", code, merr.String())
	}
	list.Reset()
	ctl([]string{"--control", sock + ".ctl", "list"}, &list, &lerr)
	if n := strings.Count(list.String(), "plugged=true"); n != 1 {
		t.Fatalf("after unplug %d devices plugged, want 1:\n%s", n, list.String())
	}
	// SIGTERM ends the simulator cleanly.
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run ended with %d: %s", code, errOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop on SIGTERM")
	}
	if !strings.Contains(out.String(), "USBMUXD_SOCKET_ADDRESS=UNIX:"+sock) {
		t.Errorf("startup banner lacks the socket address:\n%s", out.String())
	}
}
