package daemon

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
)

// TestAPIVersionMismatch: the daemon says its version in every answer,
// and a client of another version hears of it once, however many
// requests it makes; a client of the same version hears nothing, nor
// does one whose daemon does not say (an older daemon).
func TestAPIVersionMismatch(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, nil)
	start(t, cfg, Options{}) // Version "test"
	sock := filepath.Join(cfg.StateDir, api.SocketName)
	_, silent := serveFake(t, newFakeBackend()) // the handlers alone: no version

	tests := []struct {
		name, socket, own string
		want              []string // the daemon versions reported
	}{
		{"same version", sock, "test", nil},
		{"older client", sock, "0.9.0", []string{"test"}},
		{"daemon that does not say", silent, "0.9.0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var heard []string
			c := client.New(tt.socket, client.WithVersion(tt.own, func(v string) { heard = append(heard, v) }))
			defer c.Close()
			for range 3 {
				if _, err := c.Health(ctxT(t)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Devices(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(heard, tt.want) {
				t.Errorf("mismatches reported: %q, want %q", heard, tt.want)
			}
		})
	}
}
