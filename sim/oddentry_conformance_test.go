package sim_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestIdeviceIDBesideOddEntries runs Debian's idevice_id against a
// usbmuxd that lists an odd entry beside a USB and a Wi-Fi phone, and
// pins down what libusbmuxd 2.0.2 does with each kind, read from its
// source (device_info_from_plist) and seen here.
func TestIdeviceIDBesideOddEntries(t *testing.T) {
	t.Run("MAC address as SerialNumber", func(t *testing.T) {
		s, devs := simtest.StartT(t, DeviceConfig{}, DeviceConfig{ConnType: Network})
		usb, wifi := devs[0], devs[1]
		if _, err := s.AddOddEntry(OddMACSerial); err != nil {
			t.Fatal(err)
		}
		l, err := runTool(t, s, 20*time.Second, "idevice_id", "-l")
		if err != nil || strings.TrimSpace(l) != usb.UDID() {
			t.Fatalf("idevice_id -l: %v\n%s", err, l)
		}
		// libusbmuxd keeps the entry and takes its MAC for a UDID: the
		// real tool lists it as a Wi-Fi phone, beside the real one.
		n, err := runTool(t, s, 20*time.Second, "idevice_id", "-n")
		lines := strings.Fields(n)
		if err != nil || len(lines) != 2 || lines[0] != wifi.UDID() || strings.Count(lines[1], ":") != 5 {
			t.Fatalf("idevice_id -n: %v\n%s", err, n)
		}
	})
	t.Run("unknown ConnectionType", func(t *testing.T) {
		s, _ := simtest.StartT(t, DeviceConfig{}, DeviceConfig{ConnType: Network})
		if _, err := s.AddOddEntry(OddConnType); err != nil {
			t.Fatal(err)
		}
		// libusbmuxd refuses the whole list for one entry it cannot type
		// (upstream's HEAD still does): the fault backupd must not share.
		for _, flag := range []string{"-l", "-n"} {
			out, err := runTool(t, s, 20*time.Second, "idevice_id", flag)
			if err == nil || !strings.Contains(out, "Unexpected ConnectionType 'Unknown'") || !strings.Contains(out, "Unable to retrieve device list") {
				t.Fatalf("idevice_id %s: %v\n%s", flag, err, out)
			}
		}
	})
}
