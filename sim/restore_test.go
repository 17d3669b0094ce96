package sim_test

import (
	"strings"
	"testing"

	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

func TestControlRestoreCommands(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{})
	d := devs[0]
	tests := []struct {
		cmd, want string
	}{
		{"findmy " + d.UDID() + " on", "ok"},
		{"findmy " + d.UDID() + " maybe", "error: findmy UDID on|off"},
		{"restore-report " + d.UDID(), "ok\nsource= target= done=false error-code=0"},
		{"fault " + d.UDID() + " unplug-at-step=restore-files hostile=restore-dotdot", "ok"},
	}
	for _, tt := range tests {
		if got := s.Control(tt.cmd); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q: got %q, want prefix %q", tt.cmd, got, tt.want)
		}
	}
	if f := d.Config().Faults; f.UnplugAtStep != "restore-files" || f.Hostile != "restore-dotdot" {
		t.Errorf("faults %+v", f)
	}
	if got := s.Control("reboot " + d.UDID()); got != "ok" {
		t.Fatalf("reboot: %q", got)
	}
}
