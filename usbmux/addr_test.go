package usbmux

import (
	"runtime"
	"testing"
)

func TestParseAddr(t *testing.T) {
	def := DefaultAddr()
	if runtime.GOOS != "windows" && def != (Addr{"unix", "/var/run/usbmuxd"}) {
		t.Fatalf("default address %v", def)
	}
	tests := []struct {
		in   string
		want Addr
	}{
		{"", def},
		{"   ", def},
		{"UNIX:/var/run/usbmuxd", Addr{"unix", "/var/run/usbmuxd"}},
		{"unix:/tmp/x.sock", Addr{"unix", "/tmp/x.sock"}},
		{"unix:///tmp/x.sock", Addr{"unix", "/tmp/x.sock"}},
		{"UNIX:///tmp/x.sock", Addr{"unix", "/tmp/x.sock"}},
		{"/tmp/x.sock", Addr{"unix", "/tmp/x.sock"}},
		{"relative.sock", Addr{"unix", "relative.sock"}},
		{"127.0.0.1:27015", Addr{"tcp", "127.0.0.1:27015"}},
		{"tcp://127.0.0.1:27015", Addr{"tcp", "127.0.0.1:27015"}},
		{"TCP://localhost:1", Addr{"tcp", "localhost:1"}},
		{"[::1]:27015", Addr{"tcp", "[::1]:27015"}},
	}
	for _, tt := range tests {
		got, err := ParseAddr(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		"UNIX:", "unix://", "tcp://", "tcp://host", "tcp://:27015", "host:0", "host:65536",
		"host:port", "http://x:1", "::1", "a\x00b",
	} {
		if got, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) = %v, want an error", bad, got)
		}
	}
}

func TestAddrStringRoundTrips(t *testing.T) {
	for _, a := range []Addr{{"unix", "/var/run/usbmuxd"}, {"tcp", "127.0.0.1:27015"}, {"tcp", "[::1]:5"}} {
		got, err := ParseAddr(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAddr(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
}
