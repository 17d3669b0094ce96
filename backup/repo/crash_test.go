//go:build failpoint

package repo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/backup/repo"
)

// crashScenario is a backup directory's state before the commit that
// crashes.
type crashScenario struct {
	name       string
	clone      repo.CloneMode
	keep       int
	prior      int // completed backups before the one that crashes
	noExchange bool
}

var crashScenarios = []crashScenario{
	{name: "first backup", prior: 0},
	{name: "first backup, two renames", prior: 0, noExchange: true},
	{name: "with versions to prune", keep: 2, prior: 3},
	{name: "with versions to prune, two renames", keep: 2, prior: 3, noExchange: true},
	{name: "no versions kept", clone: repo.CloneNone, prior: 2},
	{name: "no versions kept, two renames", clone: repo.CloneNone, prior: 2, noExchange: true},
}

// Steps after which the new backup has won: the commit point is the
// journal.
var newWinsAfter = []string{"journaled", "swapped", "retired", "installed", "cleaned", "purged", "pruned"}

// before is what a backup directory held before the crashing commit.
type before struct {
	latest   string   // hash of the latest, "" if none
	versions []string // hashes, newest first
}

// setUpCrash makes sc's prior backups in dir with a Repo that is closed
// afterwards, and returns what the directory holds.
func setUpCrash(t testing.TB, dir string, sc crashScenario) before {
	t.Helper()
	r, err := repo.Open(dir, repo.Options{Clone: sc.clone, KeepLast: sc.keep, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var b before
	for i := range sc.prior {
		_, b.latest = backup(t, r, testUDID, fakeBackup{Files: files(6, i), Tag: strconv.Itoa(i)})
	}
	vs, err := r.Versions(testUDID)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		b.versions = append(b.versions, treeHash(t, v.Path))
	}
	return b
}

// crashingBackup is the backup whose commit crashes: it changes,
// adds and removes files relative to the prior ones.
func crashingBackup() fakeBackup {
	f := files(8, 99)
	delete(f, "Library/f0")
	return fakeBackup{Files: f, Tag: "crash"}
}

// checkAfterRecover asserts what a crash after step leaves once Recover
// ran: the latest is exactly the old or the new tree, as the commit point
// decides; versions are what they were, or what the commit makes of them;
// nothing is left in staging or trash; and the Repo works on.
func checkAfterRecover(t *testing.T, dir string, sc crashScenario, step string, b before, newHash string, recs []repo.Recovered) {
	t.Helper()
	newWon := slices.Contains(newWinsAfter, step)
	latest := filepath.Join(dir, testUDID)
	got, err := repo.TreeHash(latest)
	switch {
	case err == nil:
	case !newWon && b.latest == "" && errors.Is(err, os.ErrNotExist):
		// The first backup never reached its commit point: still none.
	default:
		t.Fatalf("crash after %q: no latest after Recover: %v", step, err)
	}
	wantVersions := b.versions
	switch {
	case newWon:
		if got != newHash {
			t.Fatalf("crash after %q: the latest is not the new backup", step)
		}
		if sc.clone != repo.CloneNone && b.latest != "" {
			wantVersions = append([]string{b.latest}, b.versions...)
		}
		keep := sc.keep
		if keep == 0 {
			keep = repo.DefaultKeepLast
		}
		wantVersions = wantVersions[:min(len(wantVersions), keep)]
	case b.latest == "" && err == nil:
		t.Fatalf("crash after %q: a latest appeared though the commit point was not reached", step)
	case b.latest != "" && got != b.latest:
		t.Fatalf("crash after %q: the latest is neither untouched nor the new backup", step)
	}
	r, err := repo.Open(dir, repo.Options{Clone: sc.clone, KeepLast: sc.keep, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	vs, err := r.Versions(testUDID)
	if err != nil {
		t.Fatal(err)
	}
	var gotVersions []string
	for _, v := range vs {
		gotVersions = append(gotVersions, treeHash(t, v.Path))
	}
	if !slices.Equal(gotVersions, wantVersions) {
		t.Fatalf("crash after %q: %d versions, want %d (or not the right ones)", step, len(gotVersions), len(wantVersions))
	}
	checkNoStaging(t, dir)

	// What Recover says: a staging left before the journal was discarded;
	// one left with its journal was completed; after "cleaned" nothing
	// was left to report.
	cleanedOrLater := slices.Contains([]string{"cleaned", "purged", "pruned"}, step)
	switch {
	case cleanedOrLater && len(recs) != 0:
		t.Fatalf("crash after %q: Recover reported %+v", step, recs)
	case !cleanedOrLater && (len(recs) != 1 || recs[0].UDID != testUDID || recs[0].Completed != newWon):
		t.Fatalf("crash after %q: Recover reported %+v, want %s completed=%t", step, recs, testUDID, newWon)
	case !cleanedOrLater && newWon && recs[0].Latest.Path != latest:
		t.Fatalf("crash after %q: Recover's latest %+v", step, recs[0].Latest)
	}

	// Recovering again finds nothing, and the next backup runs.
	if again, err := r.Recover(context.Background()); err != nil || len(again) != 0 {
		t.Fatalf("second Recover: %+v, %v", again, err)
	}
	_, h := backup(t, r, testUDID, fakeBackup{Files: files(3, 1000), Tag: "after"})
	if got := treeHash(t, latest); got != h {
		t.Fatal("the backup after recovery is not the latest")
	}
}

// commitSteps returns the steps a commit in sc goes through.
func commitSteps(t *testing.T, sc crashScenario) []string {
	dir := t.TempDir()
	setUpCrash(t, dir, sc)
	var steps []string
	opts := repo.WithFailpoints(repo.Options{Clone: sc.clone, KeepLast: sc.keep, Now: newClock().Now}, repo.Failpoints{AfterStep: func(s string) error { steps = append(steps, s); return nil }, TwoRenames: sc.noExchange})
	r := openRepo(t, dir, opts)
	s, _ := stage(t, r, testUDID, crashingBackup())
	if _, err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return steps
}

// TestCrashAtEveryStep stops a commit after each of its steps (the hook
// returns an error, and nothing runs after it, as in a crash), then
// recovers with a fresh Repo.
func TestCrashAtEveryStep(t *testing.T) {
	for _, sc := range crashScenarios {
		t.Run(sc.name, func(t *testing.T) {
			steps := commitSteps(t, sc)
			t.Logf("steps: %v", steps)
			if !slices.Contains(steps, "journaled") || len(steps) < 5 {
				t.Fatalf("steps %v", steps)
			}
			if sc.noExchange == slices.Contains(steps, "swapped") && sc.prior > 0 {
				t.Fatalf("steps %v with noExchange=%t", steps, sc.noExchange)
			}
			for i, step := range steps {
				t.Run(fmt.Sprintf("%d %s", i, step), func(t *testing.T) {
					dir := t.TempDir()
					b := setUpCrash(t, dir, sc)
					var calls atomic.Int32
					crash := errors.New("crash")
					opts := repo.WithFailpoints(repo.Options{Clone: sc.clone, KeepLast: sc.keep, Now: newClock().Now}, repo.Failpoints{AfterStep: func(string) error {
						if int(calls.Add(1)) == i+1 {
							return crash
						}
						return nil
					}, TwoRenames: sc.noExchange})
					r, err := repo.Open(dir, opts)
					if err != nil {
						t.Fatal(err)
					}
					s, newHash := stage(t, r, testUDID, crashingBackup())
					if _, err := s.Commit(context.Background()); !errors.Is(err, crash) {
						t.Fatalf("Commit: %v, want the crash", err)
					}
					checkBetween(t, dir, sc, step, b, newHash)
					r.Close() // the process is gone: its lock goes with it

					fresh := openRepo(t, dir, repo.Options{Clone: sc.clone, KeepLast: sc.keep, Now: newClock().Now})
					recs, err := fresh.Recover(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					fresh.Close()
					checkAfterRecover(t, dir, sc, step, b, newHash, recs)
				})
			}
		})
	}
}

// checkBetween asserts what a crash leaves before anything recovers: the
// latest is the old or the new tree, never a mix; it is missing only
// between the two renames of the commit without exchange.
func checkBetween(t *testing.T, dir string, sc crashScenario, step string, b before, newHash string) {
	t.Helper()
	got, err := repo.TreeHash(filepath.Join(dir, testUDID))
	if err != nil {
		noneYet := b.latest == "" && slices.Contains([]string{"verified", "synced", "journaled"}, step)
		betweenRenames := sc.noExchange && step == "retired" // the documented window, which the journal closes
		if !noneYet && !betweenRenames {
			t.Fatalf("crash after %q: no latest: %v", step, err)
		}
		return
	}
	if got != b.latest && got != newHash {
		t.Fatalf("crash after %q: the latest is a mix", step)
	}
}

// A failed Abort (crash while deleting) leaves trash that Recover empties;
// the latest never changes.
func TestCrashDuringAbort(t *testing.T) {
	dir := t.TempDir()
	b := setUpCrash(t, dir, crashScenario{prior: 1})
	crash := errors.New("crash")
	r, err := repo.Open(dir, repo.WithFailpoints(repo.Options{}, repo.Failpoints{AfterStep: func(string) error { return crash }}))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := stage(t, r, testUDID, crashingBackup())
	if err := s.Abort(); !errors.Is(err, crash) {
		t.Fatalf("Abort: %v", err)
	}
	if names := dirEntries(t, filepath.Join(dir, ".backupd", "trash")); len(names) != 1 {
		t.Fatalf("trash: %v", names)
	}
	r.Close()
	fresh := openRepo(t, dir, repo.Options{})
	recs, err := fresh.Recover(context.Background())
	if err != nil || len(recs) != 0 {
		t.Fatalf("Recover: %+v, %v", recs, err)
	}
	checkNoStaging(t, dir)
	if got := treeHash(t, filepath.Join(dir, testUDID)); got != b.latest {
		t.Fatal("the latest changed")
	}
}

// Begin finishes a crashed commit of its own device by itself, so a
// daemon that forgot Recover still never loses the committed backup.
func TestBeginRecoversItsDevice(t *testing.T) {
	for _, step := range []string{"synced", "swapped"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			sc := crashScenario{prior: 1}
			b := setUpCrash(t, dir, sc)
			r, err := repo.Open(dir, repo.WithFailpoints(repo.Options{Now: newClock().Now}, repo.Failpoints{AfterStep: func(s string) error {
				if s == step {
					return errors.New("crash")
				}
				return nil
			}}))
			if err != nil {
				t.Fatal(err)
			}
			s, newHash := stage(t, r, testUDID, crashingBackup())
			if _, err := s.Commit(context.Background()); err == nil {
				t.Fatal("no crash")
			}
			r.Close()
			fresh := openRepo(t, dir, repo.Options{})
			s, err = fresh.Begin(context.Background(), testUDID)
			if err != nil {
				t.Fatal(err)
			}
			want := b.latest
			if step == "swapped" {
				want = newHash
			}
			latest := filepath.Join(dir, testUDID)
			if got := treeHash(t, latest); got != want {
				t.Fatalf("after Begin: the latest is not the %s backup", map[bool]string{true: "new", false: "old"}[step == "swapped"])
			}
			if got := treeHash(t, filepath.Join(s.Dir(), testUDID)); got != want {
				t.Fatal("the new staging is not a clone of the latest")
			}
			s.Abort()
		})
	}
}

// Recover touches nothing it cannot explain: a journal naming trees that
// are not there (here: identities that match neither) is reported.
func TestRecoverInconsistentJournal(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no directory identities on Windows")
	}
	dir := t.TempDir()
	b := setUpCrash(t, dir, crashScenario{prior: 1})
	r, err := repo.Open(dir, repo.WithFailpoints(repo.Options{}, repo.Failpoints{AfterStep: func(s string) error {
		if s == "journaled" {
			return errors.New("crash")
		}
		return nil
	}}))
	if err != nil {
		t.Fatal(err)
	}
	s, newHash := stage(t, r, testUDID, crashingBackup())
	if _, err := s.Commit(context.Background()); err == nil {
		t.Fatal("no crash")
	}
	r.Close()
	jp := r.JournalPath(testUDID)
	raw, err := os.ReadFile(jp)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatal(err)
	}
	j["new_id"] = map[string]any{"dev": 1, "ino": 2}
	j["old_id"] = map[string]any{"dev": 3, "ino": 4}
	raw, _ = json.Marshal(j)
	if err := os.WriteFile(jp, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	fresh := openRepo(t, dir, repo.Options{})
	_, err = fresh.Recover(context.Background())
	if !errors.Is(err, repo.ErrInconsistent) {
		t.Fatalf("Recover: %v, want ErrInconsistent", err)
	}
	if got := treeHash(t, filepath.Join(dir, testUDID)); got != b.latest {
		t.Fatal("Recover changed the latest")
	}
	if got := treeHash(t, filepath.Join(fresh.StagingRoot(), testUDID, "root", testUDID)); got != newHash {
		t.Fatal("Recover changed the staged backup")
	}
	if _, err := fresh.Begin(context.Background(), testUDID); !errors.Is(err, repo.ErrInconsistent) {
		t.Fatalf("Begin: %v, want ErrInconsistent", err)
	}

	// A journal sending the old backup outside versions/ is refused too.
	j["dest"] = "../../elsewhere"
	raw, _ = json.Marshal(j)
	os.WriteFile(jp, raw, 0o600)
	if _, err := fresh.Recover(context.Background()); !errors.Is(err, repo.ErrInconsistent) || !strings.Contains(err.Error(), "destination") {
		t.Fatalf("Recover with a bad destination: %v", err)
	}
}

// Environment of the child process TestCrashByKill starts.
const (
	envCrashDir        = "BACKUPD_REPO_CRASH_DIR"
	envCrashAt         = "BACKUPD_REPO_CRASH_AT"
	envCrashNoExchange = "BACKUPD_REPO_CRASH_NOEXCHANGE"
	envCrashClone      = "BACKUPD_REPO_CRASH_CLONE"
	envCrashKeep       = "BACKUPD_REPO_CRASH_KEEP"
)

// TestCrashChild is the child of TestCrashByKill, not a test of its own:
// it stages a backup and commits it with a hook that kills this process
// (SIGKILL on Unix, TerminateProcess on Windows) at the N-th step.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("runs as TestCrashByKill's child")
	}
	at, _ := strconv.Atoi(os.Getenv(envCrashAt))
	clone, _ := strconv.Atoi(os.Getenv(envCrashClone))
	keep, _ := strconv.Atoi(os.Getenv(envCrashKeep))
	n := 0
	opts := repo.WithFailpoints(repo.Options{Clone: repo.CloneMode(clone), KeepLast: keep, Now: newClock().Now}, repo.Failpoints{AfterStep: func(step string) error {
		if n++; n == at {
			fmt.Fprintf(os.Stderr, "CRASH AFTER %s\n", step)
			p, _ := os.FindProcess(os.Getpid())
			p.Kill()
			time.Sleep(time.Minute)
		}
		return nil
	}, TwoRenames: os.Getenv(envCrashNoExchange) == "1"})
	r, err := repo.Open(filepath.Join(dir, "backups"), opts)
	if err != nil {
		t.Fatal(err)
	}
	s, h := stage(t, r, testUDID, crashingBackup())
	if err := os.WriteFile(filepath.Join(dir, "newhash"), []byte(h), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "COMMITTED")
}

// TestCrashByKill kills a real process at every step of a commit and
// recovers in this one: no deferred function, no clean-up, no lock
// release but the kernel's.
func TestCrashByKill(t *testing.T) {
	if os.Getenv(envCrashDir) != "" {
		t.Skip("in the child")
	}
	for _, sc := range []crashScenario{crashScenarios[2], crashScenarios[3], crashScenarios[4]} {
		t.Run(sc.name, func(t *testing.T) {
			for at := 1; ; at++ {
				if at > 20 {
					t.Fatal("the commit never finished")
				}
				base := t.TempDir()
				dir := filepath.Join(base, "backups")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				b := setUpCrash(t, dir, sc)
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v")
				cmd.Env = append(os.Environ(),
					envCrashDir+"="+base, envCrashAt+"="+strconv.Itoa(at),
					envCrashClone+"="+strconv.Itoa(int(sc.clone)), envCrashKeep+"="+strconv.Itoa(sc.keep),
					envCrashNoExchange+"="+map[bool]string{true: "1", false: "0"}[sc.noExchange])
				out, err := cmd.CombinedOutput()
				newHash, rerr := os.ReadFile(filepath.Join(base, "newhash"))
				if rerr != nil {
					t.Fatalf("child: %v\n%s", rerr, out)
				}
				if err == nil {
					if !strings.Contains(string(out), "COMMITTED") {
						t.Fatalf("child exited without committing or crashing:\n%s", out)
					}
					if got := treeHash(t, filepath.Join(dir, testUDID)); got != string(newHash) {
						t.Fatal("a commit that finished did not install the new backup")
					}
					if at < 6 {
						t.Fatalf("only %d steps", at-1)
					}
					return
				}
				var step string
				if _, after, ok := strings.Cut(string(out), "CRASH AFTER "); ok {
					step, _, _ = strings.Cut(after, "\n")
				}
				if step == "" {
					t.Fatalf("child failed without crashing: %v\n%s", err, out)
				}
				if ee, ok := err.(*exec.ExitError); !ok || ee.Success() {
					t.Fatalf("child: %v", err)
				}
				t.Logf("killed after %q", step)
				checkBetween(t, dir, sc, step, b, string(newHash))
				fresh := openRepo(t, dir, repo.Options{Clone: sc.clone, KeepLast: sc.keep})
				recs, err := fresh.Recover(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				fresh.Close()
				checkAfterRecover(t, dir, sc, step, b, string(newHash), recs)
			}
		})
	}
}

// If both the latest and the staged backup are gone (no crash of ours
// does that; a person might), Recover puts the retired backup back rather
// than leave the device with none.
func TestRecoverRestoresRetiredBackup(t *testing.T) {
	dir := t.TempDir()
	b := setUpCrash(t, dir, crashScenario{prior: 1})
	r, err := repo.Open(dir, repo.WithFailpoints(repo.Options{}, repo.Failpoints{AfterStep: func(s string) error {
		if s == "retired" {
			return errors.New("crash")
		}
		return nil
	}, TwoRenames: true}))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := stage(t, r, testUDID, crashingBackup())
	if _, err := s.Commit(context.Background()); err == nil {
		t.Fatal("no crash")
	}
	r.Close()
	if err := os.RemoveAll(filepath.Join(s.Dir(), testUDID)); err != nil {
		t.Fatal(err)
	}
	fresh := openRepo(t, dir, repo.Options{})
	if _, err := fresh.Recover(context.Background()); !errors.Is(err, repo.ErrInconsistent) || !strings.Contains(err.Error(), "put back") {
		t.Fatalf("Recover: %v", err)
	}
	if got := treeHash(t, filepath.Join(dir, testUDID)); got != b.latest {
		t.Fatal("the previous backup is not the latest again")
	}
	if recs, err := fresh.Recover(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("second Recover: %+v, %v", recs, err)
	}
	checkNoStaging(t, dir)
	if vs, _ := fresh.Versions(testUDID); len(vs) != 0 {
		t.Fatalf("versions %+v", vs)
	}
}

// A real error after the commit point (here: after the first of the two
// renames) does not leave the device without a latest backup: Commit puts
// the previous one back, and the next Begin finishes the commit.
func TestCommitErrorAfterCommitPoint(t *testing.T) {
	dir := t.TempDir()
	b := setUpCrash(t, dir, crashScenario{prior: 1})
	fail := true
	r := openRepo(t, dir, repo.WithFailpoints(repo.Options{Now: newClock().Now}, repo.Failpoints{AfterStep: func(s string) error {
		if s == "retired" && fail {
			fail = false
			return fmt.Errorf("rename refused: %w", repo.ErrInjected)
		}
		return nil
	}, TwoRenames: true}))
	s, newHash := stage(t, r, testUDID, crashingBackup())
	if _, err := s.Commit(context.Background()); !errors.Is(err, repo.ErrInjected) {
		t.Fatalf("Commit: %v", err)
	}
	latest := filepath.Join(dir, testUDID)
	if got := treeHash(t, latest); got != b.latest {
		t.Fatal("after the failed commit the previous backup is not the latest")
	}
	if err := s.Abort(); err != nil {
		t.Fatalf("Abort after a commit that passed its commit point: %v", err)
	}
	if _, err := os.Stat(r.JournalPath(testUDID)); err != nil {
		t.Fatalf("the journal is gone before the commit finished: %v", err)
	}
	s, err := r.Begin(context.Background(), testUDID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	if got := treeHash(t, latest); got != newHash {
		t.Fatal("Begin did not finish the commit")
	}
	vs, err := r.Versions(testUDID)
	if err != nil || len(vs) != 1 || treeHash(t, vs[0].Path) != b.latest {
		t.Fatalf("versions %+v, %v", vs, err)
	}
}

// Once the renames are done the backup is committed: a failure in the
// clean-up after them is logged, and Commit still reports success.
func TestCommitSucceedsDespiteCleanupFailure(t *testing.T) {
	for _, step := range []string{"cleaned", "pruned"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			setUpCrash(t, dir, crashScenario{prior: 2, keep: 1})
			r := openRepo(t, dir, repo.WithFailpoints(repo.Options{KeepLast: 1, Now: newClock().Now}, repo.Failpoints{AfterStep: func(s string) error {
				if s == step {
					return fmt.Errorf("clean-up refused: %w", repo.ErrInjected)
				}
				return nil
			}}))
			s, newHash := stage(t, r, testUDID, crashingBackup())
			v, err := s.Commit(context.Background())
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if !v.Latest || treeHash(t, v.Path) != newHash {
				t.Fatalf("version %+v is not the new backup", v)
			}
		})
	}
}
