package usbmux

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

func TestFactsMatchTheSimulator(t *testing.T) {
	cfgs := []sim.DeviceConfig{
		{
			Name: "Grace's iPhone", ProductType: "iPhone16,1", ProductVersion: "18.1",
			ConnType: sim.USB, Speed: 5_000_000_000, BatteryLevel: 17, Charging: true,
			DiskUsed: 61 << 30, BackupPassword: "secret",
		},
		{
			Name: "Work phone", ProductType: "iPhone14,5", ProductVersion: "16.7.2",
			ConnType: sim.Network, BatteryLevel: 100, DiskUsed: 5 << 30,
		},
	}
	s, devs := simtest.StartT(t, cfgs...)
	c := simClient(t, s)
	for i, d := range devs {
		cfg := d.Config()
		dev := simDevice(t, c, d)
		got, err := c.Facts(testCtx(t), dev)
		if err != nil {
			t.Fatalf("%s: %v", cfg.Name, err)
		}
		want := Facts{
			UDID: cfg.UDID, DeviceID: dev.DeviceID, Name: cfgs[i].Name,
			ProductType: cfgs[i].ProductType, ProductVersion: cfgs[i].ProductVersion,
			BuildVersion: cfg.BuildVersion, SerialNumber: cfg.SerialNumber,
			WillEncrypt: cfgs[i].BackupPassword != "", BatteryLevel: cfgs[i].BatteryLevel,
			Charging: cfgs[i].Charging, DiskCapacity: 128 << 30, DiskUsed: cfgs[i].DiskUsed,
			ConnType: cfgs[i].ConnType, Speed: cfg.Speed,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("facts\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestFactsOfAnUntrustedPhone(t *testing.T) {
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Pairing: sim.Locked, Name: "Locked one"},
		sim.DeviceConfig{Pairing: sim.Unpaired},
		sim.DeviceConfig{Pairing: sim.Forgotten, Name: "Forgetful"},
	)
	c := simClient(t, s)
	tests := []struct {
		dev      *sim.Device
		want     cause.Code
		wantName string // public values still read
	}{
		{devs[0], cause.DeviceLocked, "Locked one"},
		{devs[1], cause.NotPaired, ""},
		{devs[2], cause.PairingInvalid, "Forgetful"},
	}
	for _, tt := range tests {
		f, err := c.Facts(testCtx(t), simDevice(t, c, tt.dev))
		wantCause(t, err, tt.want)
		if f.Name != tt.wantName || f.UDID != tt.dev.UDID() || f.BatteryLevel != -1 {
			t.Errorf("%s: partial facts %+v", tt.dev.Config().Pairing, f)
		}
	}
}

func TestFactsSetters(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*Facts, any) error
		value   any
		ok      bool
		missing int
	}{
		{"root", (*Facts).setRoot, map[string]any{"DeviceName": "x", "ProductType": "y", "ProductVersion": "1", "BuildVersion": "b", "SerialNumber": "s"}, true, 0},
		{"root without keys", (*Facts).setRoot, map[string]any{}, true, 5},
		{"root wrong type", (*Facts).setRoot, map[string]any{"DeviceName": uint64(3)}, false, 0},
		{"root not a dict", (*Facts).setRoot, "x", false, 0},
		{"encrypt", (*Facts).setWillEncrypt, true, true, 0},
		{"encrypt wrong type", (*Facts).setWillEncrypt, "yes", false, 0},
		{"battery", (*Facts).setBattery, map[string]any{"BatteryCurrentCapacity": uint64(50), "BatteryIsCharging": false}, true, 0},
		{"battery over 100", (*Facts).setBattery, map[string]any{"BatteryCurrentCapacity": uint64(101)}, false, 0},
		{"battery negative", (*Facts).setBattery, map[string]any{"BatteryCurrentCapacity": int64(-1)}, false, 0},
		{"battery empty", (*Facts).setBattery, map[string]any{}, true, 2},
		{"disk", (*Facts).setDisk, map[string]any{"TotalDataCapacity": uint64(10), "TotalDataAvailable": uint64(4)}, true, 0},
		{"disk more free than size", (*Facts).setDisk, map[string]any{"TotalDataCapacity": uint64(10), "TotalDataAvailable": uint64(11)}, false, 0},
		{"disk strings", (*Facts).setDisk, map[string]any{"TotalDataCapacity": "10", "TotalDataAvailable": uint64(1)}, false, 0},
		{"disk missing", (*Facts).setDisk, map[string]any{"TotalDataCapacity": uint64(10)}, true, 1},
	}
	for _, tt := range tests {
		var f Facts
		err := tt.set(&f, tt.value)
		if (err == nil) != tt.ok || len(f.Missing) != tt.missing {
			t.Errorf("%s: err %v, missing %v", tt.name, err, f.Missing)
		}
		if err != nil && cause.Of(err) != cause.ProtocolError {
			t.Errorf("%s: cause %s", tt.name, cause.Of(err))
		}
	}
	var f Facts
	_ = f.setDisk(map[string]any{"TotalDataCapacity": uint64(10), "TotalDataAvailable": uint64(4)})
	if f.DiskUsed != 6 || f.DiskCapacity != 10 {
		t.Errorf("disk: %+v", f)
	}
}

// TestFactsHostileName: a phone that calls itself something with CR/LF,
// ESC, invalid UTF-8 or a megabyte (the simulator's hostile-name modes,
// in binary plists) gets a name that is valid UTF-8, has no control
// characters and is at most 255 bytes, before anything else sees it
// (issue #16); the session's other facts read as usual.
func TestFactsHostileName(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{Name: "plain"})
	c := simClient(t, s)
	for _, mode := range sim.HostileNames() {
		t.Run(mode, func(t *testing.T) {
			devs[0].SetFaults(sim.Faults{HostileName: mode})
			raw := sim.HostileName(mode)
			f, err := c.Facts(testCtx(t), simDevice(t, c, devs[0]))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Name) > 255 || !utf8.ValidString(f.Name) || strings.ContainsFunc(f.Name, unicode.IsControl) {
				t.Errorf("name %d bytes, valid UTF-8 %t: %.80q", len(f.Name), utf8.ValidString(f.Name), f.Name)
			}
			if !strings.HasPrefix(f.Name, "Anna's iPhone") || f.Name == raw {
				t.Errorf("name %.80q, want the phone's name cleaned", f.Name)
			}
			if f.ProductVersion != devs[0].Config().ProductVersion || f.BatteryLevel < 0 {
				t.Errorf("other facts: %+v", f)
			}
		})
	}
}
