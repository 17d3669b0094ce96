package sim_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

func TestControl(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Pairing: Unpaired})
	d := devs[0]
	u := d.UDID()
	cases := []struct {
		cmd   string
		want  string // prefix of the answer
		check func() bool
	}{
		{"", "error", nil},
		{"frob " + u, "error: unknown command", nil},
		{"plug", "error: plug needs a UDID", nil},
		{"unplug nosuchudid", "error: no device", nil},
		{"unplug " + u, "ok", func() bool { return !d.Plugged() }},
		{"plug " + u, "ok", d.Plugged},
		{"lock " + u, "ok", func() bool { return d.Locked() }},
		{"unlock " + u, "ok", func() bool { return !d.Locked() }},
		{"battery " + u + " 15", "ok", func() bool { c := d.Config(); return c.BatteryLevel == 15 && !c.Charging }},
		{"battery " + u + " 101", "error", nil},
		{"battery " + u + " 30 charging", "ok", func() bool { return d.Config().Charging }},
		{"fault " + u + " error-code=105 lock-never-granted=true", "ok", func() bool {
			f := d.Config().Faults
			return f.ErrorCode == 105 && f.LockNeverGranted
		}},
		{"fault " + u + " no-common-version=true", "ok", func() bool { return d.Config().Faults.NoCommonVersion }},
		{"fault " + u + " unreadable-files=2", "ok", func() bool { return d.Config().Faults.UnreadableFiles == 2 }},
		{"fault " + u + " absolute-paths=true", "ok", func() bool { return d.Config().Faults.AbsolutePaths }},
		{"fault " + u + " passcode-delay=notaduration", "error: fault passcode-delay", nil},
		{"fault " + u + " bogus=1", "error: unknown fault", nil},
		{"fault " + u + " clear", "ok", func() bool { return d.Config().Faults == (Faults{}) }},
		{"mutate " + u + " 2", "error", nil},
		{"mutate " + u + " 0.5", "ok 100 files changed", nil},
		{"flap " + u + " 0 1s", "error", nil},
		{"list", "ok\n" + u, nil},
	}
	for _, tc := range cases {
		got := s.Control(tc.cmd)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("Control(%q) = %q, want prefix %q", tc.cmd, got, tc.want)
		}
		if tc.check != nil && !tc.check() {
			t.Errorf("Control(%q): state did not change", tc.cmd)
		}
	}
}

func TestFlapPushesDetachAttachCycles(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{})
	c, err := net.Dial("unix", s.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(MuxPacket(1, 8, 1, []byte(`<plist><dict><key>MessageType</key><string>Listen</string></dict></plist>`))); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	read := func() {
		_, p, err := wire.ReadMuxPacket(c, wire.MaxMuxPayload)
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ MessageType string }
		if err := wire.Decode(p, &m); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, m.MessageType)
	}
	read() // Result
	read() // Attached
	devs[0].Flap(3, 20*time.Millisecond)
	for i := 0; i < 6; i++ {
		read()
	}
	want := "Result Attached Detached Attached Detached Attached Detached Attached"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if !devs[0].Plugged() {
		t.Fatal("a flapping cable should end plugged in")
	}
}
