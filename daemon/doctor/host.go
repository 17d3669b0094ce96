package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// The checks of this computer.

func (r *run) usbmuxd(ctx context.Context) ([]usbmux.Device, Check) {
	var devs []usbmux.Device
	var err error
	r.bounded(ctx, func(ctx context.Context) { devs, err = r.deps.Mux.ListDevices(ctx) })
	if err != nil {
		return nil, newCheck(IDUsbmuxd, Failed, err.Error()).withCause(cause.Of(err))
	}
	return devs, newCheck(IDUsbmuxd, OK, "answers at "+r.deps.Mux.Addr().String())
}

// daemonFix is what to do when the service does not run.
const daemonFix = `Start it with "sudo backupd start" (install it first with "sudo backupd install"), or run "backupd run" in a terminal.`

func (r *run) daemon(ctx context.Context) (Known, Check) {
	var k Known
	var err error
	r.bounded(ctx, func(ctx context.Context) { k, err = r.deps.Known(ctx) })
	switch {
	case err != nil:
		c := newCheck(IDDaemon, Warning, "cannot tell whether it runs, nor read the history: "+err.Error())
		c.Fix = daemonFix
		return Known{}, c
	case !k.DaemonRunning:
		c := newCheck(IDDaemon, Warning, "not running: nothing is backed up until it runs")
		c.Fix = daemonFix
		return k, c
	}
	found := "running"
	if h := k.Health; h != nil {
		found = fmt.Sprintf("running (pid %d, up %s)", h.PID, roughly(time.Duration(h.UptimeSeconds*float64(time.Second))))
		if !h.Usbmuxd.Connected {
			// doctor reached usbmuxd, the service does not: a stale
			// address in its configuration, or usbmuxd just restarted.
			c := newCheck(IDDaemon, Warning, fmt.Sprintf("%s, but it cannot reach usbmuxd at %s: %s", found, h.Usbmuxd.Address, h.Usbmuxd.Error))
			return k, c.withCause(cause.UsbmuxdUnavailable)
		}
	}
	return k, newCheck(IDDaemon, OK, found)
}

func (r *run) backupDir() Check {
	dir := r.cfg.BackupDir
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return newCheck(IDBackupDir, Failed, dir+" does not exist (is its disk mounted?)").withCause(cause.HostNotWritable)
	case err != nil:
		return newCheck(IDBackupDir, Failed, err.Error()).withCause(fsCause(err))
	case !st.IsDir():
		return newCheck(IDBackupDir, Failed, dir+" is not a directory").withCause(cause.HostNotWritable)
	}
	f, err := os.CreateTemp(dir, ".backupd-doctor-*")
	if err != nil {
		return newCheck(IDBackupDir, Failed, "cannot write in it: "+err.Error()).withCause(fsCause(err))
	}
	f.Close()
	os.Remove(f.Name())
	found := dir + ": writable"
	if free, err := r.deps.FreeSpace(dir); err == nil {
		found += ", " + api.FormatBytes(free) + " free"
	}
	return newCheck(IDBackupDir, OK, found)
}

// fsCause is the cause of a file-system error in backup_dir; one that
// names none is still a folder backupd cannot use.
func fsCause(err error) cause.Code {
	if c := cause.Of(err); c != cause.Unknown {
		return c
	}
	return cause.HostNotWritable
}

func (r *run) hardLinks(dir Check) Check {
	if dir.Status == Failed {
		return skipped(IDHardLinks, "the backup folder is not usable")
	}
	if r.cfg.Clone == "none" {
		return newCheck(IDHardLinks, OK, `not needed: clone = "none" keeps no older versions`)
	}
	ok, err := r.deps.HardLinks(r.cfg.BackupDir)
	switch {
	case err != nil:
		return newCheck(IDHardLinks, Warning, "could not test: "+err.Error())
	case ok:
		return newCheck(IDHardLinks, OK, "supported: older versions share the files that did not change")
	}
	c := newCheck(IDHardLinks, Warning, "not supported by this file system: each backup starts from a full copy of the previous one, which needs as much free space again")
	c.Fix = `Keep the backups on a file system with hard links (ext4, btrfs, XFS, APFS, NTFS), or set clone = "none" under [backup] to keep no older versions.`
	return c
}

// plugInFix is what to do when the iPhone is not connected.
const plugInFix = "Plug the iPhone into this computer with a USB cable and unlock it."

// target is an iPhone to check.
type target struct {
	dev       usbmux.Device
	connected bool
}

func (r *run) devices(mux Check, devs []usbmux.Device, known Known) ([]target, Check) {
	if mux.Status != OK {
		return nil, skipped(IDDevices, "usbmuxd cannot be reached")
	}
	devs = preferUSB(devs)
	if u := r.cfg.UDID; u != "" {
		for _, d := range devs {
			if strings.EqualFold(d.UDID, u) {
				return []target{{dev: d, connected: true}}, newCheck(IDDevices, OK, describe(d, known))
			}
		}
		c := newCheck(IDDevices, Failed, fmt.Sprintf("%s is not connected (%s)", u, countPhones(len(devs))))
		c.Fix = plugInFix
		if knownDevice(known, u) != nil {
			// Its record is still worth showing.
			return []target{{dev: usbmux.Device{UDID: u}}}, c
		}
		return nil, c
	}
	if len(devs) == 0 {
		c := newCheck(IDDevices, Failed, "no iPhone is connected")
		c.Fix = plugInFix
		return nil, c
	}
	var ts []target
	var names []string
	for _, d := range devs {
		ts = append(ts, target{dev: d, connected: true})
		names = append(names, describe(d, known))
	}
	return ts, newCheck(IDDevices, OK, countPhones(len(devs))+": "+strings.Join(names, "; "))
}

// preferUSB keeps one entry per UDID, the USB one when a phone is
// connected both ways, in usbmuxd's order.
func preferUSB(devs []usbmux.Device) []usbmux.Device {
	at := map[string]int{}
	var out []usbmux.Device
	for _, d := range devs {
		i, seen := at[d.UDID]
		switch {
		case !seen:
			at[d.UDID] = len(out)
			out = append(out, d)
		case d.ConnType == usbmux.ConnUSB && out[i].ConnType != usbmux.ConnUSB:
			out[i] = d
		}
	}
	return out
}

func countPhones(n int) string {
	switch n {
	case 0:
		return "no iPhone is"
	case 1:
		return "1 iPhone"
	}
	return fmt.Sprintf("%d iPhones", n)
}

// describe names a device: its name when backupd knows it, the UDID and
// the link.
func describe(d usbmux.Device, known Known) string {
	s := d.UDID
	if k := knownDevice(known, d.UDID); k != nil && k.Name != "" {
		s = fmt.Sprintf("%s (%s)", k.Name, d.UDID)
	}
	if d.ConnType == usbmux.ConnNetwork {
		return s + " over Wi-Fi"
	}
	return s + " over USB"
}

func knownDevice(k Known, udid string) *api.Device {
	for i := range k.Devices {
		if strings.EqualFold(k.Devices[i].UDID, udid) {
			return &k.Devices[i]
		}
	}
	return nil
}

// roughly writes a duration the way a person says it.
func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < 2*time.Minute:
		return "1 minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	case d < 2*time.Hour:
		return "1 hour"
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// span writes a configured duration in the largest whole unit: "7 days",
// "36 hours", else as Go writes it.
func span(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		if d == day {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/day)
	case d >= time.Hour && d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}
