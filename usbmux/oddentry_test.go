package usbmux

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// logBuffer collects log lines at Info and above.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines hold every one of parts.
func (b *logBuffer) count(parts ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestListDevicesSkipsOddEntries: one entry that is not a phone (issue
// #13: macOS lists network entries named by a MAC address) is skipped and
// logged once, and the phones beside it are listed.
func TestListDevicesSkipsOddEntries(t *testing.T) {
	udid := "00008030-001A2C3E0E62802E"
	cases := []struct {
		name  string
		entry map[string]any
		level string
	}{
		{"MAC address as SerialNumber", attachedMsg(7, "a4:c3:f0:12:34:56", "Network", 0), "INFO"},
		{"SerialNumber with a path", attachedMsg(7, "../../etc", "USB", 480000000), "INFO"},
		{"no SerialNumber", attachedMsg(7, "", "USB", 480000000), "INFO"},
		{"unknown ConnectionType", attachedMsg(7, "00008101-000A11223344556E", "Carrier pigeon", 0), "WARN"},
		{"no ConnectionType", attachedMsg(7, "00008101-000A11223344556E", "", 0), "WARN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeMux(t, func(_ int, c net.Conn) {
				tag, _, err := readReq(c)
				if err != nil {
					return
				}
				list := []any{attachedMsg(1, udid, "USB", 480000000), tc.entry, attachedMsg(9, "WIFI-PHONE", "Network", 0)}
				_ = sendMux(c, tag, map[string]any{"DeviceList": list})
			})
			var logs logBuffer
			c := NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second, Logger: logs.logger()})
			for range 3 {
				list, err := c.ListDevices(testCtx(t))
				if err != nil {
					t.Fatalf("ListDevices: %v", err)
				}
				var got []string
				for _, d := range list {
					got = append(got, fmt.Sprintf("%s/%d/%s", d.UDID, d.DeviceID, d.ConnType))
				}
				if want := []string{udid + "/1/USB", "WIFI-PHONE/9/Network"}; !slices.Equal(got, want) {
					t.Fatalf("listed %v, want %v", got, want)
				}
			}
			if n := logs.count("level="+tc.level, "device_id=7 "); n != 1 {
				t.Fatalf("the odd entry logged %d times at %s over three lists, want once:\n%s", n, tc.level, logs.String())
			}
		})
	}
}

// TestSerialSpelledAsUDID: an older usbmuxd reports a newer phone's USB
// serial without the '-' of its UDID; backupd names the phone as
// libusbmuxd, pair records and Finder do.
func TestSerialSpelledAsUDID(t *testing.T) {
	tests := []struct{ serial, want string }{
		{"00008030001A2C3E0E62802E", "00008030-001A2C3E0E62802E"},
		{"00008030-001A2C3E0E62802E", "00008030-001A2C3E0E62802E"},
		{"2ecc121ce06789c7f486cdf88835214617311041", "2ecc121ce06789c7f486cdf88835214617311041"},
		{"WIFI-PHONE-NOT-HEX-12345", "WIFI-PHONE-NOT-HEX-12345"}, // 24 characters, not hex
	}
	for _, tc := range tests {
		t.Run(tc.serial, func(t *testing.T) {
			f := startFakeMux(t, func(_ int, c net.Conn) {
				tag, _, err := readReq(c)
				if err != nil {
					return
				}
				_ = sendMux(c, tag, map[string]any{"DeviceList": []any{attachedMsg(1, tc.serial, "USB", 480000000)}})
			})
			c := NewClient(Config{Addr: f.addr, Timeout: 2 * time.Second})
			list, err := c.ListDevices(testCtx(t))
			if err != nil || len(list) != 1 {
				t.Fatalf("ListDevices: %v, %v", list, err)
			}
			if list[0].UDID != tc.want {
				t.Fatalf("UDID %q, want %q", list[0].UDID, tc.want)
			}
		})
	}
}

// TestWatcherSkipsOddEntries: the watcher sees the phones beside odd
// entries, whether usbmuxd lists them or pushes them as Attached, stays
// connected (no MuxDown, no reconnect) and logs each odd entry once.
func TestWatcherSkipsOddEntries(t *testing.T) {
	s, devs := simtest.StartT(t, sim.DeviceConfig{}, sim.DeviceConfig{ConnType: sim.Network})
	var odd []int
	for _, k := range sim.OddEntries() {
		id, err := s.AddOddEntry(k)
		if err != nil {
			t.Fatal(err)
		}
		odd = append(odd, id)
	}
	var logs logBuffer
	c := simClient(t, s)
	c.log = logs.logger()
	w := NewWatcher(WatcherConfig{Client: c, Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}})
	runWatcher(t, w)
	if ev := next(t, w); ev.Kind != MuxUp {
		t.Fatalf("first event %+v, want MuxUp", ev)
	}
	expect(t, w, Attached, devs[0].UDID(), true)
	expect(t, w, Attached, devs[1].UDID(), true)

	// Pushed while the watcher listens: nothing to report, no reconnect.
	for _, k := range sim.OddEntries() {
		id, err := s.AddOddEntry(k)
		if err != nil {
			t.Fatal(err)
		}
		odd = append(odd, id)
	}
	expectNone(t, w, 300*time.Millisecond)
	third, err := s.AddDevice(sim.DeviceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	third.Plug()
	expect(t, w, Attached, third.UDID(), false)
	if got := w.Devices(); len(got) != 3 {
		t.Fatalf("devices %+v, want the three phones", got)
	}
	if w.Err() != nil {
		t.Fatalf("watcher down: %v", w.Err())
	}
	// The first two came both in the list and in Listen's Attached.
	for _, id := range odd {
		if n := logs.count("not a phone", fmt.Sprintf("device_id=%d ", id)); n != 1 {
			t.Errorf("odd entry %d logged %d times, want once:\n%s", id, n, logs.String())
		}
	}
}
