package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backupd/backupd/sim/simtest"
)

// failpointNames are what a build with failpoints carries and a release
// build must not: the mechanism's name (its types, functions, files and
// log lines), the test pause's variable and its words, and the repo's
// injected errors.
var failpointNames = []string{"failpoint", "BACKUPD_TEST_PAUSE", "test pause", "injected failure", "stopped after step"}

// buildCommands builds the commands as `make build` does (go build
// -ldflags '-X main.version=...' ./cmd/...), with extra flags before the
// package list, and returns the binaries' paths.
func buildCommands(t *testing.T, extra ...string) []string {
	t.Helper()
	goTool := simtest.RequireTool(t, "go")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := append([]string{"build", "-ldflags", "-X main.version=release-test"}, extra...)
	args = append(args, "-o", out+string(filepath.Separator), "./cmd/backupd", "./cmd/iphonesim")
	cmd := exec.Command(goTool, args...)
	// As make build: only the flags given here, whatever GOFLAGS says.
	cmd.Dir, cmd.Env = root, append(os.Environ(), "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return []string{filepath.Join(out, "backupd"), filepath.Join(out, "iphonesim")}
}

// namesIn returns which of names the file's bytes hold (as `strings`
// would find them; case is ignored, since symbols and messages spell
// them differently).
func namesIn(t *testing.T, path string, names []string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ToLower(b)
	var found []string
	for _, n := range names {
		if bytes.Contains(b, []byte(strings.ToLower(n))) {
			found = append(found, n)
		}
	}
	return found
}

// TestReleaseHasNoFailpoints builds the binaries as `make build` does,
// without the failpoint tag, and finds none of the failpoints' names in
// them; built with the tag, backupd has every one of them, which shows
// the search finds what it looks for.
func TestReleaseHasNoFailpoints(t *testing.T) {
	for _, bin := range buildCommands(t) {
		if found := namesIn(t, bin, failpointNames); len(found) > 0 {
			t.Errorf("the release build of %s holds %q", filepath.Base(bin), found)
		}
	}
	tagged := buildCommands(t, "-tags", "failpoint")[0]
	if found := namesIn(t, tagged, failpointNames); len(found) != len(failpointNames) {
		t.Errorf("backupd built with failpoints holds only %q of %q: the search would miss them", found, failpointNames)
	}
}
