package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/usbmux"
)

// The policy is a pure function of the time and the facts: these tables
// drive it with a fixed clock.

var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.FixedZone("CET", 3600)
	}
	return loc
}()

func at(hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", "2025-03-10 "+hhmm, berlin)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDecide(t *testing.T) {
	base := DefaultConfig().Policy
	now := at("12:00")
	healthy := usbmux.Facts{BatteryLevel: 80, DiskUsed: 10 << 30}
	const gib = 1 << 30
	tests := []struct {
		name   string
		policy func(*Policy)
		in     checkInput
		want   verdict
		cause  cause.Code
		until  time.Time
		note   string
	}{
		{name: "never backed up", in: checkInput{facts: healthy, free: 100 * gib}, want: verdictRun},
		{name: "backed up 2h ago", in: checkInput{lastSuccess: now.Add(-2 * time.Hour), facts: healthy, free: 100 * gib, hasLatest: true},
			want: verdictRecent, cause: cause.Recent, until: now.Add(22 * time.Hour), note: "skipped: recent"},
		{name: "interval just passed", in: checkInput{lastSuccess: now.Add(-24 * time.Hour), facts: healthy, free: 100 * gib, hasLatest: true}, want: verdictRun},
		{name: "manual ignores the interval", in: checkInput{manual: true, lastSuccess: now.Add(-time.Minute), facts: healthy, free: 100 * gib, hasLatest: true}, want: verdictRun},
		{name: "no interval", policy: func(p *Policy) { p.MinInterval = 0 },
			in: checkInput{lastSuccess: now.Add(-time.Minute), facts: healthy, free: 100 * gib}, want: verdictRun},

		{name: "quiet hours across midnight, late", policy: quiet("22:00", "07:00"),
			in: checkInput{now: at("23:30"), facts: healthy, free: 100 * gib}, want: verdictSkip, cause: cause.QuietHours, until: at("07:00").AddDate(0, 0, 1)},
		{name: "quiet hours across midnight, early", policy: quiet("22:00", "07:00"),
			in: checkInput{now: at("03:00"), facts: healthy, free: 100 * gib}, want: verdictSkip, cause: cause.QuietHours, until: at("07:00")},
		{name: "quiet hours across midnight, end is outside", policy: quiet("22:00", "07:00"),
			in: checkInput{now: at("07:00"), facts: healthy, free: 100 * gib}, want: verdictRun},
		{name: "quiet hours in the day", policy: quiet("09:00", "17:30"),
			in: checkInput{facts: healthy, free: 100 * gib}, want: verdictSkip, cause: cause.QuietHours, until: at("17:30")},
		{name: "outside daytime quiet hours", policy: quiet("09:00", "11:00"),
			in: checkInput{facts: healthy, free: 100 * gib}, want: verdictRun},
		{name: "manual ignores quiet hours", policy: quiet("09:00", "17:30"),
			in: checkInput{manual: true, facts: healthy, free: 100 * gib}, want: verdictRun},
		{name: "recent wins over quiet hours", policy: quiet("09:00", "17:30"),
			in: checkInput{lastSuccess: now.Add(-time.Hour), facts: healthy, free: 100 * gib}, want: verdictRecent, cause: cause.Recent},

		{name: "battery low", in: checkInput{facts: usbmux.Facts{BatteryLevel: 12}, free: 100 * gib},
			want: verdictSkip, cause: cause.BatteryLow, until: now.Add(5 * time.Minute), note: "battery at 12%"},
		{name: "battery low but charging", in: checkInput{facts: usbmux.Facts{BatteryLevel: 5, Charging: true}, free: 100 * gib}, want: verdictRun},
		{name: "battery at the minimum", in: checkInput{facts: usbmux.Facts{BatteryLevel: 20}, free: 100 * gib}, want: verdictRun},

		{name: "encryption required, not encrypted", policy: func(p *Policy) { p.Encryption = EncryptionRequired },
			in:   checkInput{facts: healthy, free: 100 * gib},
			want: verdictSkip, cause: cause.NotEncrypted, until: now.Add(5 * time.Minute), note: `policy.encryption is "required"`},
		{name: "encryption required, manual too", policy: func(p *Policy) { p.Encryption = EncryptionRequired },
			in:   checkInput{manual: true, facts: healthy, free: 100 * gib},
			want: verdictSkip, cause: cause.NotEncrypted},
		{name: "encryption required, encrypted", policy: func(p *Policy) { p.Encryption = EncryptionRequired },
			in: checkInput{facts: usbmux.Facts{BatteryLevel: 80, WillEncrypt: true}, free: 100 * gib}, want: verdictRun},
		{name: "battery before encryption", policy: func(p *Policy) { p.Encryption = EncryptionRequired },
			in:   checkInput{facts: usbmux.Facts{BatteryLevel: 12}, free: 100 * gib},
			want: verdictSkip, cause: cause.BatteryLow},
		{name: "battery unknown", in: checkInput{facts: usbmux.Facts{BatteryLevel: -1}, free: 100 * gib}, want: verdictRun},
		{name: "battery check off", policy: func(p *Policy) { p.MinBattery = 0 },
			in: checkInput{facts: usbmux.Facts{BatteryLevel: 1}, free: 100 * gib}, want: verdictRun},
		{name: "manual still checks the battery", in: checkInput{manual: true, facts: usbmux.Facts{BatteryLevel: 3}, free: 100 * gib},
			want: verdictSkip, cause: cause.BatteryLow},

		{name: "first backup needs the device's size", in: checkInput{facts: healthy, free: 10 * gib},
			want: verdictSkip, cause: cause.HostDiskFull, note: "needs about 11.0 GiB"},
		{name: "first backup fits", in: checkInput{facts: healthy, free: 12 * gib}, want: verdictRun},
		{name: "incremental needs the margin only", in: checkInput{facts: healthy, free: 2 * gib, hasLatest: true}, want: verdictRun},
		{name: "incremental below the margin", in: checkInput{facts: healthy, free: gib / 2, hasLatest: true},
			want: verdictSkip, cause: cause.HostDiskFull},
		{name: "forced full needs the device's size", in: checkInput{forceFull: true, manual: true, facts: healthy, free: 5 * gib, hasLatest: true},
			want: verdictSkip, cause: cause.HostDiskFull},
		{name: "free space unknown", in: checkInput{facts: healthy, freeErr: errors.New("statfs: unsupported")}, want: verdictRun},
		{name: "battery before disk", in: checkInput{facts: usbmux.Facts{BatteryLevel: 1, DiskUsed: 100 * gib}},
			want: verdictSkip, cause: cause.BatteryLow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			if tt.policy != nil {
				tt.policy(&p)
			}
			in := tt.in
			if in.now.IsZero() {
				in.now = now
			}
			got := p.decide(in)
			if got.verdict != tt.want || got.cause != tt.cause {
				t.Fatalf("decide = %+v, want verdict %d cause %q", got, tt.want, tt.cause)
			}
			if !tt.until.IsZero() && !got.until.Equal(tt.until) {
				t.Errorf("until = %v, want %v", got.until, tt.until)
			}
			if !strings.Contains(got.note, tt.note) {
				t.Errorf("note %q lacks %q", got.note, tt.note)
			}
		})
	}
}

func quiet(start, end string) func(*Policy) {
	return func(p *Policy) { p.QuietHours = QuietHours{Start: start, End: end} }
}

func TestRetryDelay(t *testing.T) {
	p := Policy{RetryInitial: Duration(time.Minute), RetryMax: Duration(10 * time.Minute), RetryLimit: 5}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		got, ok := p.retryDelay(i + 1)
		if !ok || got != w {
			t.Errorf("retry %d: %v %v, want %v", i+1, got, ok, w)
		}
	}
	if _, ok := p.retryDelay(6); ok {
		t.Error("a sixth retry of five")
	}
	if _, ok := (Policy{}).retryDelay(1); ok {
		t.Error("a retry with retries off")
	}
}

func TestAdmit(t *testing.T) {
	const a, b = "00008110-000A11112222801E", "00008110-000B11112222801E"
	tests := []struct {
		name   string
		p      Policy
		udid   string
		conn   string
		ok     bool
		reason string
	}{
		{"anything by default over USB", Policy{}, a, usbmux.ConnUSB, true, ""},
		{"Wi-Fi off by default", Policy{}, a, usbmux.ConnNetwork, false, "Wi-Fi"},
		{"Wi-Fi on", Policy{WiFi: true}, a, usbmux.ConnNetwork, true, ""},
		{"denied", Policy{Deny: []string{a}}, a, usbmux.ConnUSB, false, "deny list"},
		{"someone else denied", Policy{Deny: []string{b}}, a, usbmux.ConnUSB, true, ""},
		{"allowed", Policy{Allow: []string{a}}, a, usbmux.ConnUSB, true, ""},
		{"not allowed", Policy{Allow: []string{b}}, a, usbmux.ConnUSB, false, "allow list"},
		{"deny beats allow", Policy{Allow: []string{a}, Deny: []string{a}}, a, usbmux.ConnUSB, false, "deny list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.admit(tt.udid, tt.conn)
			if got.ok != tt.ok || !strings.Contains(got.why, tt.reason) {
				t.Errorf("admit = %+v, want ok %v reason %q", got, tt.ok, tt.reason)
			}
		})
	}
}

func TestPickConnPrefersUSB(t *testing.T) {
	usb := &usbmux.Device{UDID: "x", DeviceID: 1, ConnType: usbmux.ConnUSB}
	wifi := &usbmux.Device{UDID: "x", DeviceID: 2, ConnType: usbmux.ConnNetwork}
	on := Policy{WiFi: true}
	if got := on.pickConn(usb, wifi); got != usb {
		t.Errorf("both, Wi-Fi on: %+v", got)
	}
	if got := on.pickConn(nil, wifi); got != wifi {
		t.Errorf("Wi-Fi only, on: %+v", got)
	}
	if got := (Policy{}).pickConn(nil, wifi); got != nil {
		t.Errorf("Wi-Fi only, off: %+v", got)
	}
	if got := (Policy{}).pickConn(usb, wifi); got != usb {
		t.Errorf("both, Wi-Fi off: %+v", got)
	}
}

func TestQuietHoursAcrossDST(t *testing.T) {
	// 2025-03-30 02:00 Europe/Berlin does not exist; the window still
	// ends at 07:00 local time.
	q := QuietHours{Start: "23:00", End: "07:00"}
	now := time.Date(2025, 3, 29, 23, 30, 0, 0, berlin)
	in, end := q.contains(now)
	if !in || end.Hour() != 7 || end.Day() != 30 {
		t.Errorf("contains(%v) = %v %v", now, in, end)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.StateDir, ok.BackupDir = "/var/lib/backupd", "/srv/backups"
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with directories: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no state_dir", func(c *Config) { c.StateDir = "" }, "state_dir: not set"},
		{"no backup_dir", func(c *Config) { c.BackupDir = "" }, "backup_dir: not set"},
		{"same dirs", func(c *Config) { c.BackupDir = c.StateDir + "/" }, "must not be state_dir"},
		{"max_concurrent 0", func(c *Config) { c.Policy.MaxConcurrent = 0 }, "policy.max_concurrent"},
		{"battery over 100", func(c *Config) { c.Policy.MinBattery = 101 }, "policy.min_battery"},
		{"negative interval", func(c *Config) { c.Policy.MinInterval = -1 }, "policy.min_interval"},
		{"bad quiet hours", func(c *Config) { c.Policy.QuietHours = QuietHours{Start: "25:00", End: "07:00"} }, "policy.quiet_hours"},
		{"half quiet hours", func(c *Config) { c.Policy.QuietHours = QuietHours{Start: "22:00"} }, "policy.quiet_hours"},
		{"bad UDID", func(c *Config) { c.Policy.Deny = []string{"../etc"} }, "policy.deny"},
		{"retry max below initial", func(c *Config) { c.Policy.RetryMax = Duration(time.Second) }, "policy.retry_max"},
		{"shutdown too long", func(c *Config) { c.ShutdownTimeout = Duration(10 * time.Second) }, "shutdown_timeout"},
		{"bad level", func(c *Config) { c.LogLevel = "loud" }, "log_level"},
		{"bad clone", func(c *Config) { c.Backup.Clone = "rsync" }, "backup.clone"},
		{"no files per backup", func(c *Config) { c.Backup.MaxFiles = 0 }, "backup.max_files"},
		{"tcp not loopback", func(c *Config) { c.API.TCP = "0.0.0.0:7373"; c.API.Token = strings.Repeat("x", 32) }, "api.tcp"},
		{"tcp without token", func(c *Config) { c.API.TCP = "127.0.0.1:7373" }, "api.token"},
		{"bad usbmuxd", func(c *Config) { c.Usbmuxd = "UNIX:" }, "usbmuxd"},
		{"web not loopback", func(c *Config) { c.Web.Listen = "0.0.0.0:7374" }, `web.listen: "0.0.0.0:7374" is not a loopback address`},
		{"web on a LAN name", func(c *Config) { c.Web.Listen = "nas.local:7374" }, "web.listen"},
		{"web token too short", func(c *Config) { c.Web.Listen = "127.0.0.1:7374"; c.Web.Token = "short" }, "web.token: must be at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Policy.Deny = nil
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDurationAndByteSizeText(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{"24h": 24 * time.Hour, "90s": 90 * time.Second, "0": 0, " 1h30m ": 90 * time.Minute} {
		if err := d.UnmarshalText([]byte(in)); err != nil || d.D() != want {
			t.Errorf("Duration %q = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, bad := range []string{"24", "soon", ""} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Duration %q accepted", bad)
		}
	}
	if b, _ := Duration(36 * time.Hour).MarshalText(); string(b) != "36h0m0s" {
		t.Errorf("MarshalText = %s", b)
	}
	var b ByteSize
	for in, want := range map[string]ByteSize{"1GiB": 1 << 30, "500MB": 500e6, "1073741824": 1 << 30, "1.5 GB": 1.5e9, "2G": 2 << 30, "0": 0} {
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("ByteSize %q = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"-1GB", "lots", "1XB", "NaN", "nan GB", "Inf", "-Inf KiB", "1e300"} {
		if err := b.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("ByteSize %q accepted", bad)
		}
	}
}
