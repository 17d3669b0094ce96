package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/simtest"
)

// The end-to-end fault matrix (issue #7): one row per cause that can be
// injected, each driving the real backupd against the simulated iPhone
// until `backupd status --json` names the cause and its fix, within the
// row's bound.

// matrixRow is one cause and how to bring it about.
type matrixRow struct {
	want cause.Code
	// sim are iphonesim's flags beyond the socket and the file set.
	sim []string
	// config is added to the daemon's configuration (TOML, after the
	// base; keys of [policy], [stability] and [backup] go in the
	// matching maps).
	policy, stability, backup map[string]string
	usbmuxd                   string // overrides the simulator's socket
	// faults are `iphonesim ctl fault` settings applied before the
	// phone is plugged in.
	faults []string
	// before runs ctl commands before the phone is plugged in.
	before [][]string
	// mount, when set, is a shell script run as root in a private mount
	// namespace before the daemon starts in it, and remount one run there
	// once it is up (before the phone is plugged in); $B is backup_dir.
	mount, remount string
	// after runs once the daemon is up and the phone plugged in.
	after func(t *testing.T, m *matrixEnv)
	// check, if set, looks further at the status that named the cause.
	check func(t *testing.T, d deviceEntry)
	// within bounds the wait for the verdict: the configured timeouts
	// the row depends on, plus the settle and recheck times.
	within time.Duration
}

// matrixEnv is one row's simulator and daemon.
type matrixEnv struct {
	env
	udid   string
	daemon *proc
	row    matrixRow
}

// slack is added to every row's bound: building and starting processes
// and polling status on a loaded two-core machine.
const slack = 20 * time.Second

func faultMatrix() map[string]matrixRow {
	short := map[string]string{"stall_timeout": `"3s"`, "first_message_timeout": `"20s"`, "lock_timeout": `"1s"`}
	return map[string]matrixRow{
		"usbmuxd_unavailable": {want: cause.UsbmuxdUnavailable, usbmuxd: "UNIX:/nonexistent/backupd-test/usbmuxd.sock", within: 5 * time.Second},
		"trust_pending":       {want: cause.TrustPending, sim: []string{"--pairing", "unpaired"}, within: 5 * time.Second},
		"trust_denied": {want: cause.TrustDenied, sim: []string{"--pairing", "unpaired"}, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) {
				m.waitVerdict(t, cause.TrustPending, 10*time.Second)
				m.ctl(t, "deny", m.udid)
			}},
		"device_locked":   {want: cause.DeviceLocked, sim: []string{"--pairing", "locked"}, within: 5 * time.Second},
		"pairing_invalid": {want: cause.PairingInvalid, sim: []string{"--pairing", "forgotten"}, within: 5 * time.Second},
		"passcode_not_entered": {want: cause.PasscodeNotEntered, faults: []string{"passcode-never-entered=true", "passcode-delay=3s"}, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) {
				// While the phone asks, status says so at once.
				d := m.waitState(t, api.StateAwaitingPasscode, 10*time.Second)
				want := "enter your passcode on " + d.Name + " to start the backup"
				if d.Note != want {
					t.Errorf("awaiting the passcode, the note is %q, want %q", d.Note, want)
				}
				if out, _, _ := cli(t, m.bin, "status", "--config", m.config); !strings.Contains(out, want) {
					t.Errorf("status while the passcode is asked for:\n%s", out)
				}
			}},
		"wrong_backup_password":      {want: cause.WrongBackupPassword, faults: []string{"error-code=207"}, within: 10 * time.Second},
		"device_snapshot_failed":     {want: cause.DeviceSnapshotFailed, faults: []string{"error-code=3"}, within: 10 * time.Second},
		"host_disk_full (preflight)": {want: cause.HostDiskFull, policy: map[string]string{"free_space_margin": "1152921504606846976"}, within: 5 * time.Second},
		"host_disk_full (ENOSPC mid-backup)": {want: cause.HostDiskFull, within: 15 * time.Second,
			// Plenty of bytes, so neither the preflight nor the device's
			// own free-space check objects, but few inodes: room for the
			// directories and some of the files (the simulated phone's
			// files are the same at every run), so a file in the middle
			// of the upload fails with ENOSPC.
			mount: `mount -t tmpfs -o size=256m,nr_inodes=230 tmpfs "$B"`,
			check: func(t *testing.T, d deviceEntry) {
				// The host's own errno, kept beside the cause, after
				// some files had arrived.
				if r := d.LastAttempt; r == nil || r.Errno != syscall.ENOSPC.Error() || r.Files == 0 {
					t.Errorf("last attempt %+v, want errno ENOSPC in the middle of the upload", r)
				}
			}},
		// Read-only under a running daemon, as when the kernel remounts
		// a failing disk read-only (one read-only at start is refused
		// as bad configuration). A read-only bind mount over backup_dir,
		// as a remount is refused while the daemon holds its lock file
		// open. Root ignores permission bits, so EROFS it is.
		"host_not_writable": {want: cause.HostNotWritable, within: 10 * time.Second,
			remount: `mount --bind -o ro "$B" "$B"`},
		"cable_unstable": {want: cause.CableUnstable, within: 15 * time.Second,
			stability: map[string]string{"settle": `"1s"`, "flap_count": "3", "flap_window": `"1m"`, "quiet_period": `"1m"`},
			after: func(t *testing.T, m *matrixEnv) {
				m.ctl(t, "flap", m.udid, "4", "300ms")
			}},
		"disconnected": {want: cause.Disconnected, faults: []string{"unplug-after-bytes=100000"}, within: 10 * time.Second},
		// A Pro model (USB 3) on a USB 2 link.
		"slow_link":       {want: cause.SlowLink, sim: []string{"--product-type", "iPhone16,1", "--speed", "480000000"}, within: 15 * time.Second},
		"device_busy":     {want: cause.DeviceBusy, faults: []string{"lock-never-granted=true"}, backup: short, within: 10 * time.Second},
		"battery_low":     {want: cause.BatteryLow, before: [][]string{{"battery", "", "5"}}, within: 5 * time.Second},
		"not_encrypted":   {want: cause.NotEncrypted, policy: map[string]string{"encryption": `"required"`}, within: 5 * time.Second},
		"stalled":         {want: cause.Stalled, faults: []string{"stall-after-bytes=1"}, backup: short, within: 10 * time.Second},
		"ios_unsupported": {want: cause.IOSUnsupported, faults: []string{"no-common-version=true"}, within: 10 * time.Second},
		"interrupted": {want: cause.Interrupted, faults: []string{"slow-link=50000"}, within: 15 * time.Second,
			after: func(t *testing.T, m *matrixEnv) {
				m.waitState(t, api.StateBackingUp, 15*time.Second)
				// kill -9 mid-backup: no chance to record anything.
				if err := m.daemon.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-m.daemon.exited
				// Unplugged, so the restarted daemon does not start a
				// new backup over the verdict.
				m.ctl(t, "unplug", m.udid)
				m.startDaemon(t)
			}},
		"protocol_error": {want: cause.ProtocolError, faults: []string{"hostile=malformed-plist"}, within: 10 * time.Second},
		// The phone could not read some of its files: with ErrorCode 104
		// the backup failed; with 0 it is kept without them. Either way
		// the run and status name the files.
		"device_upload_errors": {want: cause.DeviceUploadErrors, faults: []string{"unreadable-files=2", "error-code=104"}, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) { m.statusNamesUnreadable(t, "the backup was not kept") },
			check: func(t *testing.T, d deviceEntry) { checkUnreadable(t, d, api.OutcomeFailed) }},
		"device_upload_errors (kept)": {want: cause.DeviceUploadErrors, faults: []string{"unreadable-files=2"}, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) { m.statusNamesUnreadable(t, "the backup was kept without them") },
			check: func(t *testing.T, d deviceEntry) { checkUnreadable(t, d, api.OutcomeSuccess) }},
		// The restore's own causes: the plug-in backup first, then a
		// restore the phone or backupd refuses.
		"find_my_enabled": {want: cause.FindMyEnabled, before: [][]string{{"findmy", "", "on"}}, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) { m.restoreFails(t, cause.FindMyEnabled, nil) }},
		"restore_needs_reboot": {want: cause.RestoreNeedsReboot, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) {
				m.restoreFails(t, cause.RestoreNeedsReboot, func() { m.ctl(t, "fault", m.udid, "error-code=102") })
			}},
		"ios_too_old": {want: cause.IOSTooOld, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) {
				m.restoreFails(t, cause.IOSTooOld, func() {
					rewriteManifest(t, filepath.Join(m.dir, "backups", m.udid), func(mp map[string]any) {
						mp["Lockdown"].(map[string]any)["ProductVersion"] = "99.0"
					})
				})
			}},
		"backup_incomplete": {want: cause.BackupIncomplete, within: 10 * time.Second,
			after: func(t *testing.T, m *matrixEnv) {
				m.restoreFails(t, cause.BackupIncomplete, func() {
					files, _ := filepath.Glob(filepath.Join(m.dir, "backups", m.udid, "??", "*"))
					if len(files) == 0 || os.Truncate(files[0], 0) != nil {
						t.Fatal("cannot damage the backup")
					}
				})
			}},
	}
}

// checkUnreadable: the run names the two files the phone could not read
// and ended as outcome says, and status prints them.
func checkUnreadable(t *testing.T, d deviceEntry, outcome string) {
	t.Helper()
	r := d.LastAttempt
	if r == nil || r.Outcome != outcome || r.UnreadableCount != 2 || len(r.Unreadable) != 2 {
		t.Fatalf("last attempt %+v; want %s naming 2 unreadable files", r, outcome)
	}
	for _, u := range r.Unreadable {
		if u.Name == "" || u.Message != "Input/output error" {
			t.Errorf("unreadable file %+v", u)
		}
	}
	if outcome == api.OutcomeSuccess && d.LastSuccess.IsZero() {
		t.Error("the kept backup is not the last success")
	}
	line := statusLine(d, time.Now())
	if !strings.Contains(line, "the iPhone could not read 2 files ("+r.Unreadable[0].Name) {
		t.Errorf("status does not name the files: %s", line)
	}
}

// statusNamesUnreadable waits for the verdict, then checks that
// `backupd status` says the iPhone could not read 2 files and what became
// of the backup.
func (m *matrixEnv) statusNamesUnreadable(t *testing.T, kept string) {
	t.Helper()
	m.waitVerdict(t, cause.DeviceUploadErrors, 10*time.Second+slack)
	out, errOut, _ := cli(t, m.bin, "status", "--config", m.config)
	if !strings.Contains(out, "the iPhone could not read 2 files (") || !strings.Contains(out, kept) {
		t.Errorf("status does not name the unreadable files or say %q:\n%s%s", kept, out, errOut)
	}
}

// restoreFails waits for the plug-in backup, runs prepare, and restores
// the latest backup without a safety backup: restore --wait exits 4
// naming want and its fix.
func (m *matrixEnv) restoreFails(t *testing.T, want cause.Code, prepare func()) {
	t.Helper()
	m.waitState(t, api.StateSucceeded, 30*time.Second)
	if prepare != nil {
		prepare()
	}
	out, errOut, code := cli(t, m.bin, "restore", "--yes", "--wait", "--no-safety-backup", "--config", m.config)
	if code != exitFailed || !strings.Contains(out, "("+string(want)+")") || !strings.Contains(out, "Fix: "+cause.Lookup(want).Fix) {
		t.Errorf("restore: exit %d, want %d naming %s and its fix\n%s\n%s", code, exitFailed, want, out, errOut)
	}
}

// rewriteManifest changes a backup's Manifest.plist.
func rewriteManifest(t *testing.T, dir string, change func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "Manifest.plist")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var mp map[string]any
	if err := wire.Decode(b, &mp); err != nil {
		t.Fatal(err)
	}
	change(mp)
	if b, err = wire.Encode(mp, wire.Binary); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFaultMatrix: for each injectable cause, `backupd status --json`
// names exactly that cause and its fix from package cause, never
// unknown, within the row's bound.
func TestFaultMatrix(t *testing.T) {
	rows := faultMatrix()
	// Every code of design.md's table that can be injected has a row.
	covered := map[cause.Code]bool{}
	for _, r := range rows {
		covered[r.want] = true
	}
	for _, c := range []cause.Code{cause.UsbmuxdUnavailable, cause.TrustPending, cause.TrustDenied, cause.DeviceLocked,
		cause.PairingInvalid, cause.PasscodeNotEntered, cause.WrongBackupPassword, cause.DeviceSnapshotFailed,
		cause.HostDiskFull, cause.HostNotWritable, cause.CableUnstable, cause.Disconnected, cause.SlowLink,
		cause.DeviceBusy, cause.BatteryLow, cause.Stalled, cause.IOSUnsupported, cause.Interrupted, cause.ProtocolError,
		cause.FindMyEnabled, cause.RestoreNeedsReboot, cause.IOSTooOld, cause.BackupIncomplete, cause.DeviceUploadErrors} {
		if !covered[c] {
			t.Errorf("no row for %s", c)
		}
	}
	for name, row := range rows {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newMatrixEnv(t, row)
			begin := time.Now()
			if row.after != nil {
				row.after(t, m)
			}
			got := m.waitVerdict(t, row.want, row.within+slack)
			t.Logf("%s named after %v (bound %v)", row.want, time.Since(begin).Round(10*time.Millisecond), row.within)
			if row.check != nil {
				rep, _ := m.status(t)
				if len(rep.Devices) != 1 {
					t.Fatalf("status lists %d devices", len(rep.Devices))
				}
				row.check(t, rep.Devices[0])
			}
			want := cause.Lookup(row.want)
			if got.fix != want.Fix || got.summary != want.Summary {
				t.Errorf("%s: summary %q, fix %q; want %q, %q", row.want, got.summary, got.fix, want.Summary, want.Fix)
			}
		})
	}
}

// newMatrixEnv starts the simulator with the row's flags, applies its
// faults, starts the daemon (in a private mount namespace when the row
// mounts something) and plugs the phone in.
func newMatrixEnv(t *testing.T, row matrixRow) *matrixEnv {
	t.Helper()
	bin := binaries(t)
	dir := shortDir(t)
	m := &matrixEnv{env: env{bin: bin, dir: dir, config: filepath.Join(dir, "c.toml"), mux: filepath.Join(dir, "mux.sock")}, row: row}
	if err := os.Mkdir(filepath.Join(dir, "backups"), 0o755); err != nil {
		t.Fatal(err)
	}
	mux := "UNIX:" + m.mux
	if row.usbmuxd != "" {
		mux = row.usbmuxd
	}
	section := func(name string, base, extra map[string]string) string {
		merged := map[string]string{}
		for k, v := range base {
			merged[k] = v
		}
		for k, v := range extra {
			merged[k] = v
		}
		var b strings.Builder
		fmt.Fprintf(&b, "[%s]\n", name)
		for k, v := range merged {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
		return b.String()
	}
	writeFile(t, m.config, fmt.Sprintf("state_dir = %q\nbackup_dir = %q\nusbmuxd = %q\nlog_level = \"debug\"\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "backups"), mux)+
		section("policy", map[string]string{"free_space_margin": "0", "retry_limit": "0", "trust_recheck": `"200ms"`}, row.policy)+
		section("stability", map[string]string{"settle": `"50ms"`}, row.stability)+
		section("backup", map[string]string{"stall_timeout": `"10s"`, "skip_icons": "true"}, row.backup))

	if row.usbmuxd == "" {
		args := append([]string{"--socket", m.mux, "--devices", "1", "--files", "100", "--max-size", "131072", "--unplugged"}, row.sim...)
		start(t, filepath.Join(bin, "iphonesim"), args...)
		waitFor(t, "iphonesim's control socket", func() bool {
			_, err := os.Stat(m.mux + ".ctl")
			return err == nil
		})
		list := m.ctl(t, "list")
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(list), "ok"))
		if len(f) == 0 {
			t.Fatalf("iphonesim ctl list: %q", list)
		}
		m.udid = f[0]
		if len(row.faults) > 0 {
			if out := m.ctl(t, append([]string{"fault", m.udid}, row.faults...)...); strings.Contains(out, "error") {
				t.Fatalf("fault: %s", out)
			}
		}
		for _, c := range row.before {
			c = append([]string(nil), c...)
			c[1] = m.udid
			if out := m.ctl(t, c...); strings.Contains(out, "error") {
				t.Fatalf("%v: %s", c, out)
			}
		}
	}
	m.startDaemon(t)
	if m.udid != "" && row.stability["flap_count"] == "" {
		m.ctl(t, "plug", m.udid)
	}
	return m
}

// startDaemon runs backupd run, in the row's mount namespace if it has
// one, and waits for its API.
func (m *matrixEnv) startDaemon(t *testing.T) {
	t.Helper()
	bin := filepath.Join(m.bin, "backupd")
	if m.row.mount == "" && m.row.remount == "" {
		m.daemon = start(t, bin, "run", "--config", m.config)
	} else {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				t.Fatal("CI must run the fault matrix as root: its storage rows mount a tmpfs or a read-only bind mount")
			}
			t.Skip("not root: this row mounts a file system in a private mount namespace")
		}
		unshare := simtest.RequireTool(t, "unshare")
		// The daemon runs in a private mount namespace, so the mounts
		// are its alone and go when it ends; --kill-child passes the
		// end of unshare on to the shell, which stops the daemon.
		orTrue := func(s string) string {
			if s == "" {
				return "true"
			}
			return s
		}
		script := `mount --make-rprivate / || exit 1
` + orTrue(m.row.mount) + ` || exit 1
"$BIN" run --config "$CFG" &
pid=$!
trap 'kill -TERM $pid; wait $pid; exit 0' TERM INT
trap 'kill -KILL $pid 2>/dev/null' EXIT
while [ ! -S "$SOCK" ]; do kill -0 $pid || exit 1; sleep 0.05; done
` + orTrue(m.row.remount) + ` || { echo "the remount failed"; exit 1; }
touch "$SOCK.ready"
wait $pid
`
		sock := filepath.Join(m.dir, "state", api.SocketName)
		m.daemon = start(t, simtest.RequireTool(t, "env"), "B="+filepath.Join(m.dir, "backups"), "BIN="+bin, "CFG="+m.config, "SOCK="+sock,
			unshare, "--mount", "--fork", "--kill-child=SIGTERM", "sh", "-c", script)
		waitFor(t, "the mounts", func() bool {
			_, err := os.Stat(sock + ".ready")
			if err != nil {
				select {
				case <-m.daemon.exited:
					t.Fatalf("backupd in its mount namespace exited: %v\n%s", m.daemon.err, m.daemon.out.String())
				default:
				}
			}
			return err == nil
		})
	}
	waitFor(t, "backupd's API", func() bool {
		_, err := os.Stat(filepath.Join(m.dir, "state", api.SocketName))
		if err != nil {
			select {
			case <-m.daemon.exited:
				t.Fatalf("backupd exited: %v\n%s", m.daemon.err, m.daemon.out.String())
			default:
			}
		}
		return err == nil
	})
}

// verdict is the cause status names for the row, in code and words.
type verdict struct {
	code         cause.Code
	summary, fix string
}

// verdictOf reads the cause from a status report: usbmuxd's when it
// cannot be reached, else the device's live cause, else its latest
// attempt's (a phone that was unplugged shows no live state).
func verdictOf(rep statusReport) verdict {
	if h := rep.Health; h != nil && h.Usbmuxd.Cause != "" {
		return verdict{h.Usbmuxd.Cause, h.Usbmuxd.Summary, h.Usbmuxd.Fix}
	}
	if len(rep.Devices) != 1 {
		return verdict{}
	}
	d := rep.Devices[0]
	if d.Cause != "" {
		return verdict{d.Cause, d.Summary, d.Fix}
	}
	if r := d.LastAttempt; r != nil && r.Outcome != api.OutcomeRunning && r.Cause != "" {
		return verdict{r.Cause, r.Summary, r.Fix}
	}
	return verdict{}
}

// waitVerdict polls status --json until it names want, failing when it
// names unknown or when within has passed.
func (m *matrixEnv) waitVerdict(t *testing.T, want cause.Code, within time.Duration) verdict {
	t.Helper()
	deadline := time.Now().Add(within)
	var last verdict
	var rep statusReport
	for {
		rep, _ = m.status(t)
		last = verdictOf(rep)
		if last.code == want {
			return last
		}
		if last.code == cause.Unknown || (last.code != "" && !last.code.Known()) {
			t.Fatalf("status names %q, want %s: %+v", last.code, want, rep)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v status names %q, want %s: %+v", within, last.code, want, rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitState polls status --json until the device is in state s.
func (m *matrixEnv) waitState(t *testing.T, s api.State, within time.Duration) api.Device {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep, _ := m.status(t)
		if len(rep.Devices) == 1 && rep.Devices[0].State == s {
			return rep.Devices[0].Device
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the device is not %s: %+v", within, s, rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatusTrend: three failures in a row with the same cause make
// status name the trend and the next rung of the fix ladder, in JSON and
// in words.
func TestStatusTrend(t *testing.T) {
	m := newMatrixEnv(t, matrixRow{faults: []string{"unplug-after-bytes=100000"}})
	for i := uint64(1); i <= 3; i++ {
		deadline := time.Now().Add(30 * time.Second)
		for {
			rep, _ := m.status(t)
			if len(rep.Devices) == 1 && !rep.Devices[0].Connected {
				if r := rep.Devices[0].LastAttempt; r != nil && r.ID == i && r.Cause == cause.Disconnected {
					if tr := rep.Devices[0].Trend; (tr != nil) != (i == 3) {
						t.Fatalf("after %d failures the trend is %+v", i, tr)
					}
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("failure %d not shown: %+v", i, rep)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if i < 3 {
			m.ctl(t, "plug", m.udid)
		}
	}
	rep, _ := m.status(t)
	tr := rep.Devices[0].Trend
	rung, step := cause.NextStep(cause.Disconnected, 3)
	if tr.Cause != cause.Disconnected || tr.Count != 3 || tr.NextStep != string(rung) || !strings.HasSuffix(tr.Text, step) {
		t.Errorf("trend %+v, want disconnected ×3, next %s", *tr, rung)
	}
	out, _, _ := cli(t, m.bin, "status", "--config", m.config)
	if !strings.Contains(out, "disconnected 3 times in a row: "+step) {
		t.Errorf("status does not name the trend:\n%s", out)
	}
}
