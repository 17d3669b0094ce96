package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsbmuxdFromEnv(t *testing.T) {
	tests := []struct {
		name, key, env, want, err string
	}{
		{"key wins", `usbmuxd = "UNIX:/run/key"`, "UNIX:/run/env", "UNIX:/run/key", ""},
		{"empty key: the variable", `usbmuxd = ""`, "UNIX:/run/env", "UNIX:/run/env", ""},
		{"no key: the variable", ``, "127.0.0.1:27015", "127.0.0.1:27015", ""},
		{"neither: the default", ``, "", "", ""},
		{"a bad variable", ``, "ftp://x", "", "USBMUXD_SOCKET_ADDRESS=\"ftp://x\""},
		{"a bad variable under a key", `usbmuxd = "UNIX:/run/key"`, "ftp://x", "UNIX:/run/key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(usbmuxdEnv, tt.env)
			path := filepath.Join(t.TempDir(), "c.toml")
			writeFile(t, path, tt.key+"\n")
			cfg, _, err := loadConfig(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("loadConfig = %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil || cfg.Usbmuxd != tt.want {
				t.Fatalf("usbmuxd = %q, %v; want %q", cfg.Usbmuxd, err, tt.want)
			}
		})
	}
}

// TestE2EUsbmuxdSocketAddress: the daemon finds usbmuxd through
// USBMUXD_SOCKET_ADDRESS when the configuration has no usbmuxd key, and
// the key wins over the variable.
func TestE2EUsbmuxdSocketAddress(t *testing.T) {
	e := newEnv(t, 1)
	body, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	withKey := string(body)
	noKey := strings.Replace(withKey, "usbmuxd = \"UNIX:"+e.mux+"\"\n", "", 1)
	if noKey == withKey {
		t.Fatal("the test's configuration has no usbmuxd line to take out")
	}
	tests := []struct{ name, config, env string }{
		{"no key, the variable", noKey, "UNIX:" + e.mux},
		{"the key over the variable", withKey, "UNIX:" + filepath.Join(e.dir, "nobody-here.sock")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, e.config, tt.config)
			t.Setenv(usbmuxdEnv, tt.env)
			d := start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
			waitFor(t, "the daemon to see the phone through usbmuxd at "+e.mux, func() bool {
				rep, _ := e.status(t)
				return rep.Health != nil && rep.Health.Usbmuxd.Connected &&
					rep.Health.Usbmuxd.Address == "UNIX:"+e.mux && rep.Health.Connected == 1
			})
			if code := d.stop(t); code != exitOK {
				t.Fatalf("backupd run exited %d", code)
			}
		})
	}
}
