//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExposedSecrets: a configuration file every user can read is
// reported when it holds a token or hook headers (issue #16), and not
// otherwise.
func TestExposedSecrets(t *testing.T) {
	head := "state_dir = \"/s\"\nbackup_dir = \"/b\"\n"
	tests := []struct {
		name, body string
		mode       os.FileMode
		want       string // "" for no warning
	}{
		{"api token, 0644", head + "[api]\ntcp = \"127.0.0.1:7373\"\ntoken = \"0123456789abcdef0\"\n", 0o644, "api.token"},
		{"web token, 0604", head + "[web]\ntoken = \"0123456789abcdef0\"\n", 0o604, "web.token"},
		{"hook headers, 0644", head + "[[notify.hook]]\nwebhook = \"https://h/x\"\nheaders = { X-Api-Key = \"k\" }\n", 0o644, "notify.hook[1].headers"},
		{"api token, 0640", head + "[api]\ntcp = \"127.0.0.1:7373\"\ntoken = \"0123456789abcdef0\"\n", 0o640, ""},
		{"no secrets, 0644", head, 0o644, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			writeFile(t, path, tt.body)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := loadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			got := exposedSecrets(path, cfg)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) || (got != "" && !strings.Contains(got, "chmod o-r "+path)) {
				t.Errorf("exposedSecrets = %q, want one naming %q", got, tt.want)
			}
		})
	}
}
