package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localToken is the API token of TestTortureLocalUser's daemon.
const localToken = "local-user-test-token-0123456789"

// TestTortureLocalUser is what a local user or a web page tried against
// the daemon's loopback ports (issue #16), against the real binary: a
// page using DNS rebinding reads /metrics and the TCP API under its own
// host name; a form or text/plain POST (no CORS preflight) starts a
// backup; 300 keep-alive connections that got a 401 stay open; hundreds
// of connections and event streams each take a descriptor. Each is
// refused or bounded, counted in the daemon's open descriptors.
func TestTortureLocalUser(t *testing.T) {
	e := newEnv(t, 1)
	apiAddr, metricsAddr := freePort(t), freePort(t)
	e.setConfig(t, "api", fmt.Sprintf("tcp = %q\ntoken = %q", apiAddr, localToken))
	e.setConfig(t, "metrics", fmt.Sprintf("listen = %q", metricsAddr))
	// Every user can read the file with the token: the daemon says so.
	if err := os.Chmod(e.config, 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	udid := e.firstUDID(t)
	waitFor(t, "the daemon to know the phone", func() bool {
		code, body, err := tryRequest(metricsAddr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		return err == nil && code == 200 && strings.Contains(body, udid)
	})
	if !strings.Contains(d.out.String(), "secrets readable by others") {
		t.Errorf("no warning that the configuration's token is readable by every user:\n%s", d.out.String())
	}
	tally := tortureTally{Suite: "local user and web page"}
	trial := func(name string, f func(t *testing.T)) {
		tally.Trials++
		if !t.Run(name, f) {
			tally.Failures++
		}
	}
	trial("rebinding", func(t *testing.T) {
		for _, tt := range []struct{ addr, req string }{
			{metricsAddr, "GET /metrics HTTP/1.1\r\nHost: rebound.example:%s\r\nConnection: close\r\n\r\n"},
			{apiAddr, "GET /v1/devices HTTP/1.1\r\nHost: rebound.example:%s\r\nAuthorization: Bearer " + localToken + "\r\nConnection: close\r\n\r\n"},
		} {
			_, port, _ := net.SplitHostPort(tt.addr)
			code, body := rawRequest(t, tt.addr, fmt.Sprintf(tt.req, port))
			if code != http.StatusMisdirectedRequest || strings.Contains(body, udid) {
				t.Errorf("%s for a rebound name: %d, UDID in the answer %t", tt.addr, code, strings.Contains(body, udid))
			}
		}
	})
	trial("simple POST", func(t *testing.T) {
		for _, ctype := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
			req := fmt.Sprintf("POST /v1/devices/%s/backup HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n", udid, localToken)
			if ctype != "" {
				req += "Content-Type: " + ctype + "\r\n"
			}
			code, body := rawRequest(t, apiAddr, req+"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
			if code != http.StatusUnsupportedMediaType {
				t.Errorf("POST backup as %q: %d %s, want 415", ctype, code, body)
			}
		}
	})
	pid := d.cmd.Process.Pid
	trial("401 keep-alive", func(t *testing.T) {
		base := openFDs(t, pid)
		var conns []net.Conn
		for range 300 {
			c, err := net.Dial("tcp", apiAddr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /v1/devices HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("no 401: %v", err)
			}
			resp.Body.Close()
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		time.Sleep(200 * time.Millisecond)
		if n := openFDs(t, pid); n > base+20 {
			t.Errorf("the daemon holds %d descriptors after 300 connections got a 401 (%d before)", n, base)
		}
	})
	trial("connections", func(t *testing.T) {
		base := openFDs(t, pid)
		var conns []net.Conn
		for range 300 {
			c, err := net.DialTimeout("tcp", metricsAddr, time.Second)
			if err != nil {
				break // the backlog is full: refused, as it should be
			}
			conns = append(conns, c)
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		time.Sleep(300 * time.Millisecond)
		if n := openFDs(t, pid); n > base+100 {
			t.Errorf("the daemon holds %d descriptors with 300 idle connections open (%d before)", n, base)
		}
	})
	trial("event streams", func(t *testing.T) {
		base := openFDs(t, pid)
		var conns []net.Conn
		busy := 0
		for range 200 {
			c, err := net.Dial("unix", filepath.Join(e.stateDir(), "backupd.sock"))
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: backupd\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				busy++
			}
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		time.Sleep(200 * time.Millisecond)
		n := openFDs(t, pid)
		if n > base+60 {
			t.Errorf("the daemon holds %d descriptors with 200 event streams asked for (%d before)", n, base)
		}
		t.Logf("200 event streams asked for: %d refused, %d descriptors (%d before)", busy, n, base)
		if busy < 150 {
			t.Errorf("%d of 200 event streams refused; want all above the cap", busy)
		}
	})
	recordTorture(t, tally)
}

// rawRequest sends req as it is to addr and returns the status and body.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	code, body, err := tryRequest(addr, req)
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	return code, body
}

func tryRequest(addr, req string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// openFDs counts a process's open descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
