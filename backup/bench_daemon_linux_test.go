package backup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// benchDaemonEnv names a built backupd binary (scripts/bench-compare.sh
// builds one); with it each benchmark also times the whole product:
// `backupd run` from its start, through the phone's plug-in backup and
// commit, to its clean stop after SIGTERM.
const benchDaemonEnv = "BACKUPD_BENCH_DAEMON"

// daemonHost is the daemon's own simulator: one phone with the same
// files as the others, alone behind its usbmuxd so that the daemon backs
// up nothing else.
type daemonHost struct {
	bin string
	sim *sim.Sim
	dev *sim.Device
}

func newDaemonHost(b *testing.B, spec sim.FileSpec) *daemonHost {
	b.Helper()
	bin := os.Getenv(benchDaemonEnv)
	if bin == "" {
		return nil
	}
	s, devs := simtest.StartT(b, sim.DeviceConfig{Files: spec})
	return &daemonHost{bin: bin, sim: s, dev: devs[0]}
}

// daemonDirs is one daemon's state and backup directories. The state
// directory holds the API socket, so its path is short.
type daemonDirs struct{ state, backups, config string }

func (h *daemonHost) dirs(b *testing.B) daemonDirs {
	b.Helper()
	dir, err := os.MkdirTemp("", "bdb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	d := daemonDirs{state: filepath.Join(dir, "s"), backups: filepath.Join(dir, "b"), config: filepath.Join(dir, "c.toml")}
	if err := os.Mkdir(d.backups, 0o700); err != nil {
		b.Fatal(err)
	}
	// The defaults, but for a settle time that is not part of a backup's
	// cost, a backup at every plug-in and no free-space margin.
	conf := fmt.Sprintf(`state_dir = %q
backup_dir = %q
usbmuxd = %q
log_level = "debug"
[policy]
free_space_margin = 0
min_interval = "0"
retry_limit = 0
[stability]
settle = "10ms"
`, d.state, d.backups, h.sim.Address())
	if err := os.WriteFile(d.config, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	return d
}

// run starts `backupd run` with the phone plugged in, waits for its
// backup to end, stops it with SIGTERM and measures the whole process.
func (h *daemonHost) run(b *testing.B, d daemonDirs) measured {
	b.Helper()
	cmd := exec.Command(h.bin, "run", "--config", d.config, "--log-format", "json")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var log strings.Builder
	ended := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if strings.Contains(line, `"message":"backup ended"`) {
				select {
				case ended <- line:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	stop := make(chan struct{})
	go func() {
		select {
		case line := <-ended:
			if !strings.Contains(line, `"outcome":"success"`) {
				b.Errorf("backupd run: %s", line)
			}
		case <-time.After(10 * time.Minute):
			b.Errorf("backupd run: no backup within 10 minutes")
		case <-stop:
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
	}()
	m := runMeasured(b, cmd)
	close(stop)
	pw.Close()
	<-scanned
	if b.Failed() {
		b.Fatalf("backupd run's log:\n%s", log.String())
	}
	return m
}
