package usbmux

import (
	"context"
	"errors"
	"fmt"

	"github.com/backupd/backupd/proto/devicestring"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
)

// Facts is what backupd needs to know about a device before a backup.
type Facts struct {
	UDID           string
	DeviceID       uint32
	Name           string // DeviceName, as the user named the phone
	ProductType    string // e.g. iPhone16,1
	ProductVersion string // iOS version, e.g. 17.5.1
	BuildVersion   string
	SerialNumber   string

	// WillEncrypt: the device encrypts its backups (a backup password is
	// set on it).
	WillEncrypt bool
	// BatteryLevel is the charge in percent, -1 when the device did not
	// say.
	BatteryLevel int
	Charging     bool
	// DiskCapacity and DiskUsed are the data partition's size and use in
	// bytes (com.apple.disk_usage TotalDataCapacity and its difference
	// from TotalDataAvailable); DiskUsed is the backup size estimate.
	DiskCapacity uint64
	DiskUsed     uint64

	// ConnType and Speed are the link as usbmuxd reported it.
	ConnType string
	Speed    uint64

	// Missing lists the values the device did not give (MissingValue or
	// GetProhibited), as "domain/key"; their fields keep zero values.
	Missing []string
}

// Facts reads a device's facts in one lockdown session. When no session
// can start (locked, not trusted) it still fills what lockdown gives
// without one (name, model, iOS version) and returns the error with its
// cause, so a status line can name the phone it is waiting for.
func (c *Client) Facts(ctx context.Context, dev Device) (Facts, error) {
	f := Facts{UDID: dev.UDID, DeviceID: dev.DeviceID, ConnType: dev.ConnType, Speed: dev.Speed, BatteryLevel: -1}
	rec, err := c.ReadPairRecord(ctx, dev.UDID)
	if err != nil {
		return f, fmt.Errorf("facts of %s: %w", dev.UDID, err)
	}
	l, err := c.DialLockdown(ctx, dev)
	if err != nil {
		return f, fmt.Errorf("facts of %s: %w", dev.UDID, err)
	}
	defer l.Close()
	if _, err := l.StartSession(ctx, rec); err != nil {
		if errors.As(err, new(*LockdownError)) {
			// The device refused in plain words, so the connection is
			// still good for the public values.
			if root, gerr := l.GetValue(ctx, "", ""); gerr == nil {
				_ = f.setRoot(root)
			}
		}
		return f, fmt.Errorf("facts of %s: %w", dev.UDID, err)
	}
	if err := c.readFacts(ctx, l, &f); err != nil {
		return f, fmt.Errorf("facts of %s: %w", dev.UDID, err)
	}
	if err := l.StopSession(ctx); err != nil {
		c.log.Debug("stop session after facts", "udid", dev.UDID, "err", err)
	}
	return f, nil
}

func (c *Client) readFacts(ctx context.Context, l *Lockdown, f *Facts) error {
	steps := []struct {
		domain, key string
		set         func(any) error
	}{
		{"", "", f.setRoot},
		{lockdown.DomainBackup, "WillEncrypt", f.setWillEncrypt},
		{lockdown.DomainBattery, "", f.setBattery},
		{lockdown.DomainDiskUsage, "", f.setDisk},
	}
	for _, s := range steps {
		v, err := l.GetValue(ctx, s.domain, s.key)
		if errors.Is(err, ErrMissingValue) || errors.Is(err, ErrGetProhibited) {
			f.Missing = append(f.Missing, domainName(s.domain)+"/"+s.key)
			continue
		}
		if err != nil {
			return err
		}
		if err := s.set(v); err != nil {
			return err
		}
	}
	return nil
}

// The setters below read a GetValue answer. A value of the wrong type is
// a protocol error; a key that is absent goes to Missing.

func (f *Facts) setRoot(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return protocolError("lockdown root domain is a %T, want a dictionary", v)
	}
	for _, s := range []struct {
		key string
		dst *string
	}{
		{"DeviceName", &f.Name},
		{"ProductType", &f.ProductType},
		{"ProductVersion", &f.ProductVersion},
		{"BuildVersion", &f.BuildVersion},
		{"SerialNumber", &f.SerialNumber},
	} {
		raw, ok := m[s.key]
		if !ok {
			f.Missing = append(f.Missing, "(root)/"+s.key)
			continue
		}
		str, ok := raw.(string)
		if !ok {
			return protocolError("lockdown %s is a %T, want a string", s.key, raw)
		}
		// Every one of these reaches terminals, logs, hooks and metrics:
		// clean it here, where it leaves the phone.
		*s.dst = devicestring.Clean(str)
	}
	return nil
}

func (f *Facts) setWillEncrypt(v any) error {
	b, ok := v.(bool)
	if !ok {
		return protocolError("lockdown %s WillEncrypt is a %T, want a boolean", lockdown.DomainBackup, v)
	}
	f.WillEncrypt = b
	return nil
}

func (f *Facts) setBattery(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return protocolError("lockdown %s is a %T, want a dictionary", lockdown.DomainBattery, v)
	}
	if raw, ok := m["BatteryCurrentCapacity"]; ok {
		n, ok := wire.Uint(raw)
		if !ok || n > 100 {
			return protocolError("lockdown BatteryCurrentCapacity %.32v is not a percentage", raw)
		}
		f.BatteryLevel = int(n)
	} else {
		f.Missing = append(f.Missing, lockdown.DomainBattery+"/BatteryCurrentCapacity")
	}
	if raw, ok := m["BatteryIsCharging"]; ok {
		b, ok := raw.(bool)
		if !ok {
			return protocolError("lockdown BatteryIsCharging is a %T, want a boolean", raw)
		}
		f.Charging = b
	} else {
		f.Missing = append(f.Missing, lockdown.DomainBattery+"/BatteryIsCharging")
	}
	return nil
}

func (f *Facts) setDisk(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return protocolError("lockdown %s is a %T, want a dictionary", lockdown.DomainDiskUsage, v)
	}
	rawCap, okCap := m["TotalDataCapacity"]
	rawAvail, okAvail := m["TotalDataAvailable"]
	if !okCap || !okAvail {
		f.Missing = append(f.Missing, lockdown.DomainDiskUsage+"/TotalDataCapacity,TotalDataAvailable")
		return nil
	}
	capacity, ok1 := wire.Uint(rawCap)
	avail, ok2 := wire.Uint(rawAvail)
	if !ok1 || !ok2 {
		return protocolError("lockdown disk usage %.32v of %.32v is not a byte count", rawAvail, rawCap)
	}
	if avail > capacity {
		return protocolError("lockdown disk usage: %d bytes available of %d", avail, capacity)
	}
	f.DiskCapacity = capacity
	f.DiskUsed = capacity - avail
	return nil
}
