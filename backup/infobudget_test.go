package backup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/backupsvc"
)

// TestInfoPlistBudget: a phone that lists 10,000 apps with records and
// answers every icon request with 16 MiB (the app-flood mode) is backed
// up, with an Info.plist under the budget: every app listed, what did
// not fit left out. Without the budget the daemon would hold 160 GB of
// icons.
func TestInfoPlistBudget(t *testing.T) {
	opts := testOptions(t)
	// Browsing 10,000 apps is one exchange, bounded as a whole: seconds,
	// more under the race detector.
	opts.ServiceTimeout = 2 * time.Minute
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 5}}, opts)
	r.dev.SetFaults(sim.Faults{Hostile: string(backupsvc.HostileAppFlood)})
	r.mustBackup(Target{})
	b, err := os.ReadFile(filepath.Join(r.latest(), "Info.plist"))
	if err != nil {
		t.Fatal(err)
	}
	// XML's base64 is 4/3 of the data, plus the plist's own text.
	if bound := maxInfoData*4/3 + 8<<20; len(b) > bound {
		t.Fatalf("Info.plist is %d MiB, over %d MiB", len(b)>>20, bound>>20)
	}
	var info struct {
		Installed    []string       `plist:"Installed Applications"`
		Applications map[string]any `plist:"Applications"`
	}
	if err := wire.Decode(b, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Installed) != backupsvc.AppFloodApps {
		t.Errorf("Info.plist lists %d installed apps, want all %d", len(info.Installed), backupsvc.AppFloodApps)
	}
	icons := 0
	for _, a := range info.Applications {
		if d, ok := a.(map[string]any); ok && d["PlaceholderIcon"] != nil {
			icons++
		}
	}
	if len(info.Applications) == 0 || len(info.Applications) >= backupsvc.AppFloodApps || icons >= len(info.Applications) {
		t.Errorf("Info.plist keeps %d apps' records and %d icons: want some records, not all, and not every icon", len(info.Applications), icons)
	}
	t.Logf("Info.plist: %d MiB, %d apps' records, %d icons", len(b)>>20, len(info.Applications), icons)
}

// TestInfoBudget: the budget keeps what fits and counts what it left out.
func TestInfoBudget(t *testing.T) {
	b := newInfoBudget(10)
	if got := b.keepFile(make([]byte, 6)); len(got) != 6 {
		t.Fatal("6 bytes of 10 were left out")
	}
	if got := b.keepFile(make([]byte, 6)); got != nil || b.misc != 1 {
		t.Fatalf("6 more bytes kept (%d), or not counted (%d)", len(got), b.misc)
	}
	if !b.take(4) || b.take(1) {
		t.Fatal("the last 4 bytes do not fit, or a fifth does")
	}
	r := newInfoBudget(100)
	if !r.takeRecord(50) || r.takeRecord(1) || !r.take(50) {
		t.Fatal("the records took more than half of the budget, or left the rest unusable")
	}
	if n := plistSize(map[string]any{"k": []any{"abc", []byte{1, 2}}}); n < 6 {
		t.Fatalf("plistSize %d, under the 6 bytes of data", n)
	}
}
