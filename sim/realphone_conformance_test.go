package sim_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestIdevicebackup2RealPhoneHabits: what the simulator does as real
// iPhones do (issue #13) is something Debian's idevicebackup2 lives with:
// silences at the slow points, the end-of-backup re-download, upload
// rounds larger than announced, a repeated DLMessageDeviceReady and a
// message no host knows, neither of which it answers.
func TestIdevicebackup2RealPhoneHabits(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Files: FileSpec{Count: 50}, Faults: Faults{
		ThinkPause: 300 * time.Millisecond, EndRedownload: true, AnnouncedShare: 0.6,
		RepeatDeviceReady: true, UnknownMessage: true,
	}})
	d := devs[0]
	dir := t.TempDir()
	out, err := runTool(t, s, 2*time.Minute, "idevicebackup2", "-u", d.UDID(), "backup", "--full", dir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	checkBackupMatches(t, dir, d)
}
