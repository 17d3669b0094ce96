package sim

import (
	"bytes"
	"sort"
	"strings"

	"github.com/backupd/backupd/proto/wire"
)

// hostileNames are the device names of the hostile-name fault: what a
// phone (or anything that says it is one) may call itself. Each once
// reached terminals, logs, hooks and metrics as it came (issue #16).
var hostileNames = map[string]string{
	// CR/LF: fakes a line of its own in status, history and devices.
	"crlf": "Anna's iPhone\r\nFAKE LINE SUCCESS 00008030-001A2B3C4D5E802E",
	// ESC: clears the screen and sets the terminal's title.
	"esc": "Anna's iPhone\x1b[2J\x1b]0;pwned\x07\x1b[31m",
	// Invalid UTF-8 breaks the Prometheus text format and JSON.
	"utf8": "Anna's iPhone \xff\xfe\xc3",
	// A million bytes: every hook's environment too long to exec, and
	// megabytes per history record.
	"huge": "Anna's iPhone " + strings.Repeat("x", 1_000_000),
}

// HostileNames lists the modes of the hostile-name fault.
func HostileNames() []string {
	var out []string
	for k := range hostileNames {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// HostileName is the device name of a hostile-name mode ("" for none).
func HostileName(mode string) string { return hostileNames[mode] }

// asciiStandIn is name with each byte above 0x7f replaced by '~': the
// plist library encodes it as an ASCII string, byte for byte, where the
// real bytes then go.
func asciiStandIn(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c > 0x7f {
			b[i] = '~'
		}
	}
	return string(b)
}

// encodeHostileReply encodes a lockdown reply whose DeviceName is the
// hostile name as a binary plist carrying the name's bytes as they are.
// The plist library would turn invalid UTF-8 into U+FFFD, but nothing
// stops a device from putting any byte in an ASCII string object: the
// stand-in is encoded and its bytes are then swapped for the name's.
func encodeHostileReply(reply map[string]any, name string) ([]byte, error) {
	standIn := asciiStandIn(name)
	swap := func(v any) any {
		if s, ok := v.(string); ok && s == name {
			return standIn
		}
		return v
	}
	out := make(map[string]any, len(reply))
	for k, v := range reply {
		if m, ok := v.(map[string]any); ok {
			c := make(map[string]any, len(m))
			for mk, mv := range m {
				c[mk] = swap(mv)
			}
			v = c
		}
		out[k] = swap(v)
	}
	data, err := wire.Encode(out, wire.Binary)
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(data, []byte(standIn), []byte(name)), nil
}
