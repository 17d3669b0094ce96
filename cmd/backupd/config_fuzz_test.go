package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// FuzzConfig feeds arbitrary bytes to loadConfig as the configuration
// file. It must never panic; it either refuses the file with a
// *configError whose every line names the file, or returns a
// configuration that validates again and survives being written back out
// and read in again unchanged.
func FuzzConfig(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "config.example.toml")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"state_dir = \"/tmp/s\"\nbackup_dir = \"/tmp/b\"\nusbmuxd = \"UNIX:/tmp/m\"\nlog_level = \"debug\"\n[policy]\nfree_space_margin = 0\nretry_limit = 0\n[stability]\nsettle = \"50ms\"\n[backup]\nstall_timeout = \"10s\"\nskip_icons = true\n",
		"[policy]\nmin_interval = \"-24h\"\n",
		"[policy]\nmin_interval = 5\n",
		"[policy]\nmin_battery = \"low\"\n",
		"[policy]\nfree_space_margin = \"1GiB\"\nquiet_hours = { start = \"23:00\", end = \"06:00\" }\nallow = [\"a\", \"b\"]\n",
		"[backup]\nkeep_versions = 3\nclone = \"copy\"\n",
		"[api]\ntcp = \"127.0.0.1:7373\"\ntoken = \"x\"\n",
		"[history]\nkeep_for = \"720h\"\nkeep_runs = 0\n",
		"overdue_after = \"1h\"\n",
		"[policy\n",
		"a.b.c = 1\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFuzzConfig(t, dir, data)
		defer os.Remove(path)
		cfg, found, err := loadConfig(path)
		if !found && err == nil {
			t.Fatal("loadConfig did not find a file that exists")
		}
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) || len(ce.msgs) == 0 {
				t.Fatalf("error %T %v is not a *configError with a message", err, err)
			}
			for _, m := range ce.msgs {
				if !strings.HasPrefix(m, path) {
					t.Fatalf("error line %q does not name the file %s", m, path)
				}
			}
			return
		}
		if err := cfg.validate(path, data); err != nil {
			t.Fatalf("accepted configuration does not validate again: %v\n%+v", err, cfg)
		}
		// What the daemon accepted, written back out as TOML, reads in
		// as the same configuration: no value is lost or bent on the way.
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal an accepted configuration: %v\n%+v", err, cfg)
		}
		path2 := writeFuzzConfig(t, dir, out)
		defer os.Remove(path2)
		again, _, err := loadConfig(path2)
		if err != nil {
			t.Fatalf("accepted configuration, written out, is refused: %v\n%s", err, out)
		}
		// Compared as TOML: an empty list and no list read alike.
		out2, err := toml.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("configuration changed through a write and read:\n was %+v\n now %+v\nfile:\n%s", cfg, again, out)
		}
	})
}

func writeFuzzConfig(t *testing.T, dir string, data []byte) string {
	t.Helper()
	fh, err := os.CreateTemp(dir, "c*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	return fh.Name()
}
