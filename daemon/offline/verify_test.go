package offline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
)

func TestVerifyBackupsFindsEveryBackup(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{
		"AAAA-1111",   // a latest (empty: it does not verify)
		"not a udid!", // ignored
		".backupd/staging/CCCC-3333/root/CCCC-3333",            // staging is no backup
		".backupd/versions/BBBB-2222/2025-01-02T03-04-05.000Z", // a version only
		".backupd/versions/BBBB-2222/junk",                     // not a version name
	} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "DDDD-4444"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	udids, err := BackupUDIDs(dir)
	if err != nil || !slices.Equal(udids, []string{"AAAA-1111", "BBBB-2222"}) {
		t.Fatalf("BackupUDIDs = %q, %v", udids, err)
	}
	r, err := repo.Open(dir, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var seen []string
	progress := func(done, total int, udid, path string) {
		seen = append(seen, strings.Join([]string{string(rune('0' + done)), string(rune('0' + total)), udid}, "/"))
	}
	names := func(u string) string { return "name of " + u }
	res, err := VerifyBackups(context.Background(), r, nil, true, nil, names, progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("VerifyBackups with versions: %+v", res)
	}
	a, b := res[0], res[1]
	if a.UDID != "AAAA-1111" || !a.Latest || a.OK || a.Name != "name of AAAA-1111" || a.Cause != cause.VerifyFailed ||
		len(a.Problems) != 4 || a.MoreProblems != 0 || !strings.Contains(a.Problems[0], "Status.plist is missing") {
		t.Errorf("the latest: %+v", a)
	}
	if b.UDID != "BBBB-2222" || b.Latest || b.Version != "2025-01-02T03-04-05.000Z" || b.OK || b.Time.IsZero() {
		t.Errorf("the version: %+v", b)
	}
	if want := []string{"0/2/AAAA-1111", "1/2/BBBB-2222", "2/2/"}; !slices.Equal(seen, want) {
		t.Errorf("progress said %q, want %q", seen, want)
	}

	res, err = VerifyBackups(context.Background(), r, []string{"BBBB-2222"}, false, nil, nil, nil)
	if err != nil || len(res) != 0 {
		t.Errorf("VerifyBackups(BBBB-2222) without versions = %+v, %v; want nothing (it has no latest)", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := VerifyBackups(ctx, r, nil, true, nil, nil, nil); err == nil {
		t.Error("VerifyBackups with a cancelled context succeeded")
	}
}
