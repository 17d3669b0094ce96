package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/backupd/backupd/sim/simtest"
)

// repoRoot is the repository's top folder, where the scripts run.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// script runs one of scripts/ with env added, failing the test with its
// output when it fails.
func script(t *testing.T, name string, env ...string) string {
	t.Helper()
	bash := simtest.RequireTool(t, "bash")
	cmd := exec.Command(bash, filepath.Join(repoRoot(t), "scripts", name))
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out.String())
	}
	return out.String()
}

// fixedBuild is what makes two builds comparable: one version, one date.
func fixedBuild() []string {
	return []string{"VERSION=v1.2.3-4-gabcdef0", "SOURCE_DATE_EPOCH=1767225600"}
}

func requireLinuxAmd64(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the packaging tests build and run the linux/amd64 release")
	}
}
