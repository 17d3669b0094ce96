package repo_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
)

// TestVerifyUnreadableFiles: a file the iPhone listed but could not read
// arrives empty while Manifest.db records its size. With the backup's
// list of unreadable files it is left out of the checks, and said so;
// without the list, or for a file not on it, the backup does not verify.
func TestVerifyUnreadableFiles(t *testing.T) {
	r := openRepo(t, t.TempDir(), repo.Options{})
	ctx := context.Background()
	content := files(6, 1)
	var rels []string
	for rel := range content {
		rels = append(rels, rel)
	}
	unread, gone, other := fileID(rels[0]), fileID(rels[1]), fileID(rels[2])
	list := func(ids ...string) []byte {
		l := repo.UnreadableList{Count: len(ids)}
		for _, id := range ids {
			l.Files = append(l.Files, repo.UnreadableFile{Name: "HomeDomain/x", Path: testUDID + "/Snapshot/" + id[:2] + "/" + id, Message: "Input/output error"})
		}
		b, err := repo.EncodeUnreadable(l)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		list []byte // nil: no list
		ok   bool
		says string
	}{
		{"no list", nil, false, "differ in size"},
		{"listed", list(unread, gone), true, ""},
		{"another file listed", list(other), false, "differ in size"},
		{"a list that does not parse", []byte("{"), false, "differ in size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBackup(t, dir, fakeBackup{Files: content})
			// What the iPhone could not read arrives empty, or not at all.
			writeNew(t, filepath.Join(dir, unread[:2], unread), nil)
			if err := os.Remove(filepath.Join(dir, gone[:2], gone)); err != nil {
				t.Fatal(err)
			}
			if tc.list != nil {
				writeNew(t, filepath.Join(dir, repo.UnreadableName), tc.list)
			}
			rep, err := r.Verify(ctx, dir)
			if !tc.ok {
				if cause.Of(err) != cause.VerifyFailed || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("Verify = %v; want verify_failed saying %q", err, tc.says)
				}
				return
			}
			if err != nil {
				t.Fatalf("does not verify: %v", err)
			}
			if rep.Unreadable != 2 || rep.FilesListed != 6 || rep.FilesPresent != 5 {
				t.Errorf("report %+v; want 2 unreadable, 6 listed, 5 present", rep)
			}
			if s := rep.String(); !strings.Contains(s, "2 files the iPhone could not read") {
				t.Errorf("the report does not say what it left out: %s", s)
			}
		})
	}
}

// FuzzVerifyUnreadableList: whatever backupd-unreadable.json holds, Verify
// does not panic, and it excuses only files the list names: the one file
// damaged here verifies only when the list names its fileID.
func FuzzVerifyUnreadableList(f *testing.F) {
	content := files(3, 1)
	var rels []string
	for rel := range content {
		rels = append(rels, rel)
	}
	damaged := fileID(rels[0])
	good, err := repo.EncodeUnreadable(repo.UnreadableList{Count: 1, Files: []repo.UnreadableFile{{Path: "U/Snapshot/" + damaged[:2] + "/" + damaged}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"count":-5,"files":[{"path":"../../` + damaged + `"}]}`))
	f.Add([]byte(`{"files":[{"path":"/"},{"path":""},{"path":"` + strings.ToUpper(damaged) + `/"}]}`))
	f.Add([]byte(`null`))
	dir := f.TempDir()
	writeBackup(f, dir, fakeBackup{Files: content})
	writeNew(f, filepath.Join(dir, damaged[:2], damaged), nil)
	r := openRepo(f, f.TempDir(), repo.Options{})
	f.Fuzz(func(t *testing.T, list []byte) {
		writeNew(t, filepath.Join(dir, repo.UnreadableName), list)
		rep, err := r.Verify(context.Background(), dir)
		if err != nil && cause.Of(err) != cause.VerifyFailed {
			t.Fatalf("Verify: %v", err)
		}
		var l repo.UnreadableList
		names := json.Unmarshal(list, &l) == nil && slices.ContainsFunc(l.Files, func(u repo.UnreadableFile) bool { return u.FileID() == damaged })
		if (err == nil) != names {
			t.Fatalf("list %q names the damaged file: %t; Verify: %v (%+v)", list, names, err, rep)
		}
		if rep.Unreadable < 0 {
			t.Fatalf("unreadable %d", rep.Unreadable)
		}
	})
}
