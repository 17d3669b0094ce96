package devicelink

import (
	"fmt"

	"github.com/backupd/backupd/proto/wire"
)

// Version is a DeviceLink protocol version.
type Version struct {
	Major, Minor uint64
}

// Version400 is what iOS 14 and later announce for mobilebackup2. Debian's
// libimobiledevice accepts it; upstream 1.3.0 still expects 300.
func Version400() Version { return Version{400, 0} }

// hostAccepts reports whether our host speaks a DeviceLink major.
func hostAccepts(major uint64) bool { return major == 300 || major == 400 }

// DeviceVersionExchange runs the device's half of the handshake: announce
// v, wait for DLVersionsOk, then declare DLMessageDeviceReady.
func (c *Conn) DeviceVersionExchange(v Version) error {
	if err := c.WriteMessage(MsgVersionExchange, v.Major, v.Minor); err != nil {
		return fmt.Errorf("devicelink: send version: %w", err)
	}
	msg, err := c.ExpectMessage(MsgVersionExchange)
	if err != nil {
		return fmt.Errorf("devicelink: version reply: %w", err)
	}
	verdict, err := Arg[string](msg, 1)
	if err != nil {
		return err
	}
	if verdict != MsgVersionsOk {
		return fmt.Errorf("%w: host answered %q", ErrUnsupportedVersion, verdict)
	}
	if len(msg) >= 3 {
		if major, ok := wire.Uint(msg[2]); !ok || major != v.Major {
			return fmt.Errorf("%w: host accepted version %v, we announced %d", ErrUnsupportedVersion, msg[2], v.Major)
		}
	}
	if err := c.WriteMessage(MsgDeviceReady); err != nil {
		return fmt.Errorf("devicelink: send device ready: %w", err)
	}
	return nil
}

// HostVersionExchange runs the host's half of the handshake. It accepts
// majors 300 and 400 with any minor, because a device announcing a newer
// minor of a major we know still speaks the same messages. Any other
// major fails with ErrUnsupportedVersion, and nothing is sent back: the
// caller decides whether to disconnect.
func (c *Conn) HostVersionExchange() (Version, error) {
	msg, err := c.ExpectMessage(MsgVersionExchange)
	if err != nil {
		return Version{}, fmt.Errorf("devicelink: version announcement: %w", err)
	}
	if len(msg) < 3 {
		return Version{}, fmt.Errorf("%w: %s with %d elements", ErrProtocol, MsgVersionExchange, len(msg))
	}
	major, ok1 := wire.Uint(msg[1])
	minor, ok2 := wire.Uint(msg[2])
	if !ok1 || !ok2 {
		return Version{}, fmt.Errorf("%w: version %v.%v is not a pair of integers", ErrProtocol, msg[1], msg[2])
	}
	v := Version{major, minor}
	if !hostAccepts(major) {
		return v, fmt.Errorf("%w: device speaks DeviceLink %d.%d", ErrUnsupportedVersion, major, minor)
	}
	if err := c.WriteMessage(MsgVersionExchange, MsgVersionsOk, major); err != nil {
		return v, fmt.Errorf("devicelink: send versions ok: %w", err)
	}
	if _, err := c.ExpectMessage(MsgDeviceReady); err != nil {
		return v, fmt.Errorf("devicelink: device ready: %w", err)
	}
	return v, nil
}
