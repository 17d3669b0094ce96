package main

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/backupd/backupd/daemon"
)

// TestConfigExample keeps config.example.toml in step with the code: it
// decodes strictly and, but for the platform's directories, holds exactly
// the defaults.
func TestConfigExample(t *testing.T) {
	path := filepath.Join("..", "..", "config.example.toml")
	got, found, err := loadConfig(path)
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if !found {
		t.Fatal("config.example.toml not found")
	}
	want := defaultFileConfig()
	// The directories depend on the platform; the example shows Linux's.
	got.StateDir, got.BackupDir = want.StateDir, want.BackupDir
	// An empty list in the file is an empty slice, the default nil.
	if len(got.Policy.Allow) == 0 {
		got.Policy.Allow = nil
	}
	if len(got.Policy.Deny) == 0 {
		got.Policy.Deny = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config.example.toml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
	// Every key of the configuration is in the file, so none goes
	// undocumented.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range tomlKeys(reflect.TypeFor[fileConfig](), "") {
		if keyLine(data, key) == 0 {
			t.Errorf("config.example.toml does not document %s", key)
		}
	}
	// An array of tables ([[notify.hook]]) has no default entry; it is
	// documented by a commented example that shows each of its keys.
	for key, sub := range arrayTables(reflect.TypeFor[fileConfig](), "") {
		if !strings.Contains(string(data), "# [["+key+"]]") {
			t.Errorf("config.example.toml has no example of [[%s]]", key)
		}
		for _, k := range sub {
			if !regexp.MustCompile(`(?m)^#\s*` + k + `\s*=`).Match(data) {
				t.Errorf("config.example.toml's example of [[%s]] does not show %s", key, k)
			}
		}
	}
}

// arrayTables returns the keys of t's slices of tables, each with the
// keys of its entries.
func arrayTables(t reflect.Type, prefix string) map[string][]string {
	out := map[string][]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case f.Anonymous:
			maps.Copy(out, arrayTables(f.Type, prefix))
		case f.Type.Kind() == reflect.Struct:
			maps.Copy(out, arrayTables(f.Type, prefix+name+"."))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out[prefix+name] = tomlKeys(f.Type.Elem(), "")
		}
	}
	return out
}

// TestConfigExampleHooks: the example hooks, uncommented, are valid.
func TestConfigExampleHooks(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, notifyPart, ok := strings.Cut(string(data), "\n[notify]\n")
	if !ok {
		t.Fatal("config.example.toml has no [notify] table")
	}
	head, _, _ := strings.Cut(string(data), "\n[notify]\n")
	example := regexp.MustCompile(`(?m)^# (\[\[notify\.hook\]\]|[a-z]+ = .*)$`)
	body := example.ReplaceAllString(notifyPart, "$1")
	// The script of the example is the reader's own; sh stands in.
	body = strings.ReplaceAll(body, "/usr/local/bin/backupd-hook", "sh")
	path := filepath.Join(t.TempDir(), "c.toml")
	writeFile(t, path, head+"\n[notify]\n"+body)
	cfg, _, err := loadConfig(path)
	if err != nil {
		t.Fatalf("the example hooks: %v", err)
	}
	var names []string
	for _, h := range cfg.Notify.Hooks {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "script,ntfy,home assistant,slack" {
		t.Errorf("hooks %q, want script, ntfy, home assistant and slack", got)
	}
}

// tomlKeys lists the dotted keys of every field of t.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			keys = append(keys, tomlKeys(f.Type, prefix)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, tomlKeys(f.Type, prefix+name+".")...)
			continue
		}
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			continue // arrayTables
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

func TestConfigMissingFile(t *testing.T) {
	cfg, found, err := loadConfig(filepath.Join(t.TempDir(), "none.toml"))
	if err != nil || found {
		t.Fatalf("missing file: found %v, err %v; want the defaults", found, err)
	}
	if !reflect.DeepEqual(cfg, defaultFileConfig()) {
		t.Errorf("missing file: got %+v, want the defaults", cfg)
	}
}

func TestConfigValues(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	writeFile(t, path, "state_dir = \"/s\"\nbackup_dir = \"/b\"\noverdue_after = \"72h\"\n[policy]\nmin_interval = \"0\"\nfree_space_margin = \"2GiB\"\nallow = [\"00008030-001A2D3E0C38802E\"]\n[stability]\nsettle = \"50ms\"\n")
	cfg, _, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultFileConfig()
	want.StateDir, want.BackupDir = "/s", "/b"
	want.OverdueAfter = daemon.Duration(72 * 60 * 60 * 1e9)
	want.Policy.MinInterval = 0
	want.Policy.FreeSpaceMargin = 2 << 30
	want.Policy.Allow = []string{"00008030-001A2D3E0C38802E"}
	want.Stability.Settle = daemon.Duration(50e6)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

// TestConfigNotify: hooks, their defaults and metrics read as written.
func TestConfigNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	writeFile(t, path, `state_dir = "/s"
backup_dir = "/b"
log_format = "json"
[notify]
events = ["failure"]
timeout = "5s"
[[notify.hook]]
name = "ntfy"
webhook = "https://ntfy.sh/topic"
body = "text"
headers = { Title = "iPhone backup" }
events = ["failure", "passcode"]
[[notify.hook]]
command = ["sh", "-c", "cat > /dev/null"]
[metrics]
listen = "127.0.0.1:9737"
`)
	cfg, _, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultFileConfig()
	want.StateDir, want.BackupDir, want.LogFormat = "/s", "/b", "json"
	want.Notify.Events = []string{"failure"}
	want.Notify.Timeout = daemon.Duration(5e9)
	want.Notify.Hooks = []daemon.HookConfig{
		{Name: "ntfy", Webhook: "https://ntfy.sh/topic", Body: "text", Headers: map[string]string{"Title": "iPhone backup"}, Events: []string{"failure", "passcode"}},
		{Command: []string{"sh", "-c", "cat > /dev/null"}},
	}
	want.Metrics.Listen = "127.0.0.1:9737"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

// TestConfigErrors: each bad file is refused with file, line and key.
func TestConfigErrors(t *testing.T) {
	head := "state_dir = \"/s\"\nbackup_dir = \"/b\"\n"
	tests := []struct {
		name, body string
		want       []string // substrings of the error, after "FILE:"
	}{
		{"unknown key", head + "bogus = 1\n", []string{":3: bogus: unknown key"}},
		{"unknown key in a table", head + "[policy]\nmin_intervall = \"1h\"\n", []string{":4: policy.min_intervall: unknown key"}},
		{"unknown table", head + "[polcy]\nmin_interval = \"1h\"\n", []string{"polcy"}},
		{"wrong type int", head + "[policy]\nmin_battery = \"high\"\n", []string{":4: policy.min_battery: wrong type"}},
		{"wrong type bool", head + "[backup]\nskip_icons = \"yes\"\n", []string{":4: backup.skip_icons: wrong type"}},
		{"wrong type string", head + "log_level = 3\n", []string{":3: log_level: wrong type"}},
		{"bare number duration", head + "[backup]\nstall_timeout = 5\n", []string{":4: backup.stall_timeout: a duration needs a unit"}},
		{"bad duration", head + "[policy]\nmin_interval = \"2x\"\n", []string{":4: policy.min_interval: duration \"2x\""}},
		{"negative interval", head + "[policy]\nmin_interval = \"-1h\"\n", []string{":4: policy.min_interval: must not be negative"}},
		{"negative keep_runs", head + "[history]\nkeep_runs = -1\n", []string{":4: history.keep_runs: must not be negative"}},
		{"battery over 100", head + "\n[policy]\n\nmin_battery = 101\n", []string{":6: policy.min_battery: must be a percentage"}},
		{"two problems", head + "log_level = \"loud\"\n[stability]\nflap_count = 0\n", []string{":3: log_level:", ":5: stability.flap_count:"}},
		{"zero overdue", head + "overdue_after = \"0\"\n", []string{":3: overdue_after: must be more than 0"}},
		{"bad encryption policy", head + "[policy]\nencryption = \"always\"\n", []string{":4: policy.encryption: must be \"any\" or \"required\""}},
		{"bad log_format", head + "log_format = \"xml\"\n", []string{":3: log_format: \"xml\": want console or json"}},
		{"bad event", head + "[notify]\nevents = [\"sucess\"]\n", []string{":4: notify.events: \"sucess\" is not an event"}},
		{"zero notify timeout", head + "[notify]\ntimeout = \"0\"\n", []string{":4: notify.timeout: must be more than 0"}},
		{"too many retries", head + "[notify]\nretries = 99\n", []string{":4: notify.retries: must be from 0 to 10"}},
		{"zero queue", head + "[notify]\nqueue = 0\n", []string{":4: notify.queue: must be at least 1"}},
		{"hook without anything", head + "[[notify.hook]]\nname = \"x\"\n", []string{":3: notify.hook[1].command: set command or webhook"}},
		{"second hook's bad URL", head + "[[notify.hook]]\nwebhook = \"https://ok/x\"\n[[notify.hook]]\nname = \"y\"\nwebhook = \"ntfy.sh/x\"\n",
			[]string{":7: notify.hook[2].webhook: \"ntfy.sh/x\" is not an http or https URL"}},
		{"hook with both", head + "[[notify.hook]]\ncommand = [\"sh\"]\nwebhook = \"https://h/x\"\n", []string{":5: notify.hook[1].webhook: a hook has a command or a webhook"}},
		{"hook's missing program", head + "[[notify.hook]]\ncommand = [\"/nonexistent/hook\"]\n", []string{":4: notify.hook[1].command: \"/nonexistent/hook\" cannot be run"}},
		{"hook's bad event", head + "[[notify.hook]]\nwebhook = \"https://h/x\"\nevents = [\"all\"]\n", []string{":5: notify.hook[1].events: \"all\" is not an event"}},
		{"hook's unknown key", head + "[[notify.hook]]\nurl = \"https://h/x\"\n", []string{":4: notify.hook.url: unknown key"}},
		{"metrics not loopback", head + "[metrics]\nlisten = \"0.0.0.0:9737\"\n", []string{":4: metrics.listen: \"0.0.0.0:9737\" is not a loopback address"}},
		{"metrics bad address", head + "[metrics]\nlisten = \"9737\"\n", []string{":4: metrics.listen:"}},
		// Non-finite numbers (issue #16): NaN became 0 on arm64 and
		// -9223372036854775808 on amd64.
		{"NaN margin", head + "[policy]\nfree_space_margin = \"NaN\"\n", []string{":4: policy.free_space_margin: size \"NaN\""}},
		{"NaN margin with a unit", head + "[policy]\nfree_space_margin = \"nan GB\"\n", []string{":4: policy.free_space_margin: size \"nan GB\""}},
		{"Inf margin", head + "[policy]\nfree_space_margin = \"+Inf\"\n", []string{":4: policy.free_space_margin: size \"+Inf\""}},
		{"bare nan margin", head + "[policy]\nfree_space_margin = nan\n", []string{"size \"nan\""}},
		{"bare inf margin", head + "[policy]\nfree_space_margin = inf\n", []string{"size \"inf\""}},
		{"negative margin", head + "[policy]\nfree_space_margin = \"-1MB\"\n", []string{":4: policy.free_space_margin:"}},
		{"bare nan count", head + "[backup]\nkeep_versions = nan\n", []string{":4: backup.keep_versions:"}},
		{"not set", "backup_dir = \"/b\"\nstate_dir = \"\"\n", []string{":2: state_dir: not set"}},
		{"syntax", head + "[policy\n", []string{":3:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			writeFile(t, path, tt.body)
			_, _, err := loadConfig(path)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a configError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), path+w) && !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), path) {
				t.Errorf("error %q does not start with the file's name", err)
			}
		})
	}
}

func TestCheckBackupDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	data := []byte("state_dir = \"/s\"\nbackup_dir = \"/nonexistent/backups\"\n")
	cfg := defaultFileConfig()
	cfg.BackupDir = "/nonexistent/backups"
	err := cfg.checkBackupDir(path, data)
	if err == nil || !strings.Contains(err.Error(), path+":2: backup_dir:") {
		t.Errorf("missing backup_dir: err = %v", err)
	}
	cfg.BackupDir = dir
	if err := cfg.checkBackupDir(path, data); err != nil {
		t.Errorf("writable backup_dir: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cfg.BackupDir = ro
		if err := cfg.checkBackupDir(path, data); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only backup_dir: err = %v", err)
		}
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
