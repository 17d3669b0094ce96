package usbmux

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/backupd/backupd/cause"
)

// OddEntry is an entry of usbmuxd's device list, or an Attached, that is
// not a phone we can use: its SerialNumber is not a UDID (macOS's usbmuxd
// lists network entries named by a Wi-Fi MAC address, with colons), or
// its ConnectionType is neither USB nor Network. It is skipped and the
// phones beside it are kept: failing the whole list, or restarting the
// watcher, for one such entry would hide every phone.
//
// Nothing from an OddEntry names a file; Serial is only logged, quoted.
type OddEntry struct {
	DeviceID uint64
	Serial   string // as usbmuxd sent it, clipped to 80 bytes (a UDID has 64 at most)
	ConnType string // as usbmuxd sent it, clipped to 40 bytes
	Reason   error
}

func (e *OddEntry) Error() string {
	return fmt.Sprintf("usbmuxd entry %d (serial %q, connection %q) is not a phone we can use: %v", e.DeviceID, e.Serial, e.ConnType, e.Reason)
}

func (e *OddEntry) Unwrap() error { return e.Reason }

// CauseCode: where an odd entry is not skipped, it is usbmuxd saying
// something we do not understand.
func (e *OddEntry) CauseCode() cause.Code { return cause.ProtocolError }

func newOddEntry(id uint64, p *muxProperties, reason error) *OddEntry {
	return &OddEntry{DeviceID: id, Serial: clip(p.SerialNumber, 80), ConnType: clip(p.ConnectionType, 40), Reason: reason}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxOddLogged bounds the serials remembered as already logged, so a
// usbmuxd inventing new ones cannot grow the set without end; past it,
// odd entries are logged at debug level only.
const maxOddLogged = 256

// noteOdd logs a skipped entry once per serial (and connection type) for
// the client's life: usbmuxd repeats it on every list and every Listen.
// A well-formed UDID on an unknown link may be a phone we are missing, so
// that is a warning; a MAC address or other non-UDID is expected on macOS.
func (c *Client) noteOdd(ctx context.Context, e *OddEntry) {
	key := e.Serial + "\x00" + e.ConnType
	c.mu.Lock()
	seen := c.oddLogged[key]
	full := len(c.oddLogged) >= maxOddLogged
	if !seen && !full {
		c.oddLogged[key] = true
	}
	c.mu.Unlock()
	level := slog.LevelInfo
	switch {
	case seen || full:
		level = slog.LevelDebug
	case checkUDID(e.Serial) == nil:
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "usbmuxd lists an entry that is not a phone backupd can use; skipping it, keeping the others",
		"device_id", e.DeviceID, "serial", e.Serial, "connection", e.ConnType, "why", e.Reason)
}
