package backup

import (
	"bytes"
	"context"
	"database/sql"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// runIdevicebackup2 runs Debian's idevicebackup2 against the simulator.
func runIdevicebackup2(t testing.TB, s *sim.Sim, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	path := simtest.RequireTool(t, "idevicebackup2")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(cmd.Environ(), "USBMUXD_SOCKET_ADDRESS="+s.Address())
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("idevicebackup2 %v timed out:\n%s", args, out)
	}
	return string(out), err
}

// TestSameAsIdevicebackup2: backupd and Debian's idevicebackup2, each
// taking a full backup of the same device with the same files, write the
// same tree with the same content. Only what depends on the time, a
// random id or the tool may differ: Info.plist's GUID and Last Backup
// Date, Status.plist's Date and UUID, Manifest.plist's Date.
func TestSameAsIdevicebackup2(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 250, MinSize: 1, MaxSize: 200 << 10}}, testOptions(t))
	r.mustBackup(Target{ForceFull: true})
	ours := r.latest()

	theirsDir := t.TempDir()
	out, err := runIdevicebackup2(t, r.sim, 3*time.Minute, "-u", r.dev.UDID(), "backup", "--full", theirsDir)
	if err != nil || !strings.Contains(out, "Backup Successful.") {
		t.Fatalf("idevicebackup2: %v\n%s", err, out)
	}
	theirs := filepath.Join(theirsDir, r.dev.UDID())
	checkMatchesDevice(t, theirs, r.dev)
	checkMatchesDevice(t, ours, r.dev)

	a, err := listTree(ours)
	if err != nil {
		t.Fatal(err)
	}
	b, err := listTree(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatalf("the trees differ:\nbackupd        %v\nidevicebackup2 %v", a, b)
	}
	special := map[string]bool{"Info.plist": true, "Status.plist": true, "Manifest.plist": true, "Manifest.db": true}
	files := 0
	for _, rel := range a {
		fi, err := os.Stat(filepath.Join(ours, rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.IsDir() || special[rel] {
			continue
		}
		files++
		x, _ := os.ReadFile(filepath.Join(ours, rel))
		y, _ := os.ReadFile(filepath.Join(theirs, rel))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs", rel)
		}
	}
	if files < 250 {
		t.Errorf("compared %d data files", files)
	}

	comparePlists(t, ours, theirs, "Info.plist", "GUID", "Last Backup Date")
	comparePlists(t, ours, theirs, "Status.plist", "Date", "UUID")
	comparePlists(t, ours, theirs, "Manifest.plist", "Date")
	if x, y := manifestRows(t, ours), manifestRows(t, theirs); !slices.Equal(x, y) {
		t.Errorf("Manifest.db rows differ: %d and %d rows", len(x), len(y))
	}
}

// comparePlists checks that two plists have the same keys and the same
// values except for the keys named.
func comparePlists(t *testing.T, dirA, dirB, name string, varying ...string) {
	t.Helper()
	read := func(dir string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := wire.Decode(b, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	a, b := read(dirA), read(dirB)
	ka, kb := slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))
	if !slices.Equal(ka, kb) {
		t.Errorf("%s keys differ:\nbackupd        %v\nidevicebackup2 %v", name, ka, kb)
	}
	for k, va := range a {
		if slices.Contains(varying, k) {
			continue
		}
		if !reflect.DeepEqual(va, b[k]) {
			t.Errorf("%s %q: backupd %v, idevicebackup2 %v", name, k, abbreviate(va), abbreviate(b[k]))
		}
	}
}

func abbreviate(v any) string {
	s := strings.ReplaceAll(reflect.ValueOf(v).String(), "\n", " ")
	if b, ok := v.([]byte); ok {
		s = string(b)
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// manifestRows reads every row of Manifest.db's Files table.
func manifestRows(t *testing.T, dir string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "Manifest.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT fileID, domain, relativePath, flags, hex(file) FROM Files ORDER BY fileID`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, domain, rel, blob string
		var flags int
		if err := rows.Scan(&id, &domain, &rel, &flags, &blob); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{id, domain, rel, string(rune('0' + flags)), blob}, "|"))
	}
	return out
}
