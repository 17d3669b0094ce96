package usbmux

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unicode"
)

// Addr is where usbmuxd listens: a unix socket path or a TCP host:port.
type Addr struct {
	// Network is "unix" or "tcp", as net.Dial takes it.
	Network string
	// Address is the socket path or host:port.
	Address string
}

// String returns the address in the USBMUXD_SOCKET_ADDRESS form that
// libusbmuxd reads, so a log line can be pasted into the environment of
// the libimobiledevice tools.
func (a Addr) String() string {
	if a.Network == "unix" {
		return "UNIX:" + a.Address
	}
	return a.Address
}

// DefaultAddr is where usbmuxd listens when nothing says otherwise:
// /var/run/usbmuxd on Linux and macOS, and TCP port 27015 on the loopback
// on Windows, where Apple's service has no unix socket.
func DefaultAddr() Addr {
	if runtime.GOOS == "windows" {
		return Addr{Network: "tcp", Address: "127.0.0.1:27015"}
	}
	return Addr{Network: "unix", Address: "/var/run/usbmuxd"}
}

// ParseAddr reads a USBMUXD_SOCKET_ADDRESS-style value, for main() to pass
// in from the environment or the config file; the package itself never
// reads the environment. It accepts every form the tools we interoperate
// with accept:
//
//	""                        DefaultAddr()
//	UNIX:/var/run/usbmuxd     libusbmuxd's form (the prefix in any case)
//	unix:///var/run/usbmuxd   go-ios's form
//	tcp://127.0.0.1:27015     go-ios's form
//	/var/run/usbmuxd          a bare path
//	127.0.0.1:27015           host:port, as libusbmuxd reads it
//
// Unlike go-ios's GetSocketTypeAndAddress it returns an error, not a
// panic, for a value it cannot read.
func ParseAddr(v string) (Addr, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return DefaultAddr(), nil
	}
	if strings.ContainsRune(s, 0) {
		return Addr{}, fmt.Errorf("usbmuxd address %q: contains a NUL byte", v)
	}
	switch {
	case hasPrefixFold(s, "unix://"):
		return unixAddr(v, s[len("unix://"):])
	case hasPrefixFold(s, "tcp://"):
		return tcpAddr(v, s[len("tcp://"):])
	case hasPrefixFold(s, "unix:"):
		return unixAddr(v, s[len("unix:"):])
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return Addr{}, fmt.Errorf("usbmuxd address %q: unknown scheme %q (want unix:// or tcp://)", v, scheme)
	case strings.HasPrefix(s, "/") || !strings.Contains(s, ":"):
		// A path: absolute, or relative to the working directory, which is
		// what a bare name means to libusbmuxd's unix branch as well.
		return unixAddr(v, s)
	}
	return tcpAddr(v, s)
}

func unixAddr(orig, path string) (Addr, error) {
	if path == "" {
		return Addr{}, fmt.Errorf("usbmuxd address %q: empty socket path", orig)
	}
	// Clean, so that "//x" does not print as "UNIX://x", which reads back
	// as go-ios's scheme form.
	p := filepath.Clean(path)
	if p != strings.TrimSpace(p) || strings.ContainsFunc(p, unicode.IsControl) {
		return Addr{}, fmt.Errorf("usbmuxd address %q: socket path %q starts or ends with a space or holds a control character", orig, p)
	}
	return Addr{Network: "unix", Address: p}, nil
}

func tcpAddr(orig, hostport string) (Addr, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return Addr{}, fmt.Errorf("usbmuxd address %q: %w", orig, err)
	}
	if host == "" {
		return Addr{}, fmt.Errorf("usbmuxd address %q: %w", orig, errors.New("no host before the port"))
	}
	if strings.ContainsAny(host, "/ ") || strings.ContainsFunc(host, unicode.IsControl) {
		return Addr{}, fmt.Errorf("usbmuxd address %q: host %q is not a host name or address", orig, host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return Addr{}, fmt.Errorf("usbmuxd address %q: port %q is not a number from 1 to 65535", orig, port)
	}
	return Addr{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
