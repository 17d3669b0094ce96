package doctor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/backupd/backupd/usbmux"
)

// usbPort is where an iPhone sits on the USB tree.
type usbPort struct {
	// Path is the kernel's name for the device: bus, then the port at
	// each level ("1-4", or "1-4.2" for port 2 of a hub on port 4).
	Path      string
	BehindHub bool
}

// findUSBPort finds dev in the Linux sysfs directory of USB devices
// (/sys/bus/usb/devices) by its serial number, which for an iPhone is its
// UDID without the dash, or else by usbmuxd's LocationID, which Linux's
// usbmuxd makes from the bus and device numbers (bus<<16 | address). It
// is best effort: false when the directory is missing or nothing
// matches.
func findUSBPort(sysfs string, dev usbmux.Device) (usbPort, bool) {
	if sysfs == "" || dev.ConnType != usbmux.ConnUSB {
		return usbPort{}, false
	}
	entries, err := os.ReadDir(sysfs)
	if err != nil {
		return usbPort{}, false
	}
	serial := strings.ReplaceAll(dev.UDID, "-", "")
	bus, addr := dev.LocationID>>16, dev.LocationID&0xffff
	read := func(dir, name string) string {
		b, _ := os.ReadFile(filepath.Join(sysfs, dir, name))
		return strings.TrimSpace(string(b))
	}
	number := func(dir, name string) (uint64, bool) {
		n, err := strconv.ParseUint(read(dir, name), 10, 64)
		return n, err == nil
	}
	for _, e := range entries {
		name := e.Name()
		// Interfaces ("1-4:1.0") and root hubs ("usb1") are not devices
		// on a port.
		if strings.Contains(name, ":") || !strings.Contains(name, "-") {
			continue
		}
		match := serial != "" && strings.EqualFold(read(name, "serial"), serial)
		if !match && dev.LocationID != 0 {
			b, ok1 := number(name, "busnum")
			a, ok2 := number(name, "devnum")
			match = ok1 && ok2 && b == bus && a == addr
		}
		if match {
			_, ports, _ := strings.Cut(name, "-")
			return usbPort{Path: name, BehindHub: strings.Contains(ports, ".")}, true
		}
	}
	return usbPort{}, false
}
