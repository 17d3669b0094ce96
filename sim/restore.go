package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/backupd/backupd/sim/backupsvc"
)

// RestoreReport describes a restore as the simulated device saw it: what
// it asked for and whether each file arrived with the content it had
// when it was backed up (see backupsvc.RestoreReport).
type RestoreReport = backupsvc.RestoreReport

// RestoreSteps lists the restore steps Faults.UnplugAtStep can name.
func RestoreSteps() []string {
	var out []string
	for _, s := range backupsvc.RestoreSteps() {
		out = append(out, string(s))
	}
	return out
}

// RestoreHostileModes lists the Faults.Hostile names that attack a host
// during a restore.
func RestoreHostileModes() []string {
	var out []string
	for _, h := range backupsvc.RestoreHostileModes() {
		out = append(out, string(h))
	}
	return out
}

// Reboot timing: a real iPhone takes about a minute; the simulator is
// quick so that tests are.
const (
	defaultRebootTime = 300 * time.Millisecond
	// rebootLockWait bounds how long a rebooting device waits for the
	// host to release the sync lock and say goodbye.
	rebootLockWait = 5 * time.Second
)

// LastRestore describes the last restore that reached its final
// Response.
func (d *Device) LastRestore() RestoreReport { return d.state.restore.Last() }

// CurrentRestore describes the restore in progress, or the last one,
// finished or not.
func (d *Device) CurrentRestore() RestoreReport { return d.state.restore.Current() }

// Restores counts the restores that reached their final Response.
func (d *Device) Restores() int { return d.state.restore.Restores() }

// SetFindMy turns Find My on or off: with it on, the device refuses a
// restore with ErrorCode 211.
func (d *Device) SetFindMy(on bool) { d.state.restore.SetFindMy(on) }

// SetRebootTime sets how long the device stays away when it reboots.
func (d *Device) SetRebootTime(t time.Duration) {
	d.mu.Lock()
	d.rebootTime = t
	d.mu.Unlock()
}

// Reboot restarts the device: it detaches, stays away for its reboot
// time, and attaches again, ready for another restore. It returns once
// the device is back.
func (d *Device) Reboot() {
	d.Unplug()
	d.mu.Lock()
	t := d.rebootTime
	d.mu.Unlock()
	if t == 0 {
		t = defaultRebootTime
	}
	select {
	case <-time.After(t):
	case <-d.sim.done:
		return
	}
	d.state.restore.Booted()
	d.Plug()
}

// afterMobileBackup2 runs when a mobilebackup2 connection ends: a
// restore that asked for it reboots the device, once the host has
// released the sync lock (as a phone waits for the sync to end).
func (d *Device) afterMobileBackup2() {
	if !d.state.restore.TakeReboot() {
		return
	}
	go func() {
		deadline := time.Now().Add(rebootLockWait)
		for d.SyncLocked() && time.Now().Before(deadline) {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-d.sim.done:
				return
			}
		}
		d.Reboot()
	}()
}

// restoreControl answers the control commands about restores; ok is
// false for a command it does not know.
func (s *Sim) restoreControl(d *Device, cmd string, args []string) (string, bool) {
	switch cmd {
	case "findmy":
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return "error: findmy UDID on|off", true
		}
		d.SetFindMy(args[0] == "on")
		return "ok", true
	case "reboot":
		go d.Reboot()
		return "ok", true
	case "restore-report":
		return "ok\n" + FormatRestoreReport(d.CurrentRestore()), true
	}
	return "", false
}

// FormatRestoreReport prints a report as the control command
// restore-report does: key=value lines (started= is when the Restore
// request came, before any byte), then one line per file that did not
// arrive intact ("damaged ID", "missing ID", "unknown ID").
func FormatRestoreReport(r RestoreReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "source=%s target=%s done=%t error-code=%d", r.Source, r.Target, r.Done, r.ErrorCode)
	if r.ErrorText != "" {
		fmt.Fprintf(&b, " error=%q", r.ErrorText)
	}
	fmt.Fprintf(&b, "\nasked=%d intact=%d damaged=%d missing=%d unknown=%d bytes=%d",
		r.Asked, r.Intact, len(r.Damaged), len(r.Missing), len(r.Unknown), r.Bytes)
	fmt.Fprintf(&b, "\nhostile-asked=%d hostile-bytes=%d mutations-asked=%d mutations-accepted=%d",
		len(r.HostileAsked), r.HostileBytes, r.MutationsAsked, r.MutationsAccepted)
	b.WriteString("\noptions=")
	first := true
	for _, k := range slices.Sorted(maps.Keys(r.Options)) {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%s:%v", k, r.Options[k])
	}
	fmt.Fprintf(&b, " password=%t", r.HasPassword)
	if !r.Started.IsZero() {
		fmt.Fprintf(&b, "\nstarted=%s", r.Started.UTC().Format(time.RFC3339Nano))
	}
	for _, l := range []struct {
		what string
		ids  []string
	}{{"damaged", r.Damaged}, {"missing", r.Missing}, {"unknown", r.Unknown}} {
		for _, id := range l.ids {
			fmt.Fprintf(&b, "\n%s %s", l.what, id)
		}
	}
	return b.String()
}

// AFCFile returns a file of the device's AFC media area, as a host wrote
// it (a restore's /iTunesRestore/RestoreApplications.plist, say).
func (d *Device) AFCFile(path string) ([]byte, error) { return d.state.afc.ReadFile(path) }
