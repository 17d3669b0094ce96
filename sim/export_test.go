package sim

// Locked reports whether the device is locked with its passcode, for the
// tests outside the package.
func (d *Device) Locked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.locked
}

// MuxPacket is a usbmuxd packet, for the tests outside the package.
var MuxPacket = muxPacket

// Validate is lockdownd's check of a host's pair record ("" when it
// holds), for the tests outside the package.
func (d *Device) Validate(hostID string) string { return d.validate(hostID) }
