package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"

	"github.com/backupd/backupd/daemon"
	toml "github.com/pelletier/go-toml/v2"
)

// fileConfig is what the configuration file holds: the daemon's
// configuration (overdue_after and log_format included, which the
// commands read too).
type fileConfig struct {
	daemon.Config
}

// defaultFileConfig is daemon.DefaultConfig() with this platform's
// directories filled in.
func defaultFileConfig() fileConfig {
	c := daemon.DefaultConfig()
	c.StateDir, c.BackupDir = defaultDirs()
	return fileConfig{Config: c}
}

// defaultDirs returns the platform's state_dir and backup_dir.
func defaultDirs() (state, backups string) {
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "windows":
		base := os.Getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return filepath.Join(base, "backupd"), filepath.Join(base, "backupd", "Backups")
	case "darwin":
		if os.Geteuid() == 0 {
			return "/Library/Application Support/backupd", "/Library/Application Support/backupd/Backups"
		}
		base := filepath.Join(home, "Library", "Application Support", "backupd")
		return base, filepath.Join(base, "Backups")
	}
	if os.Geteuid() == 0 {
		return "/var/lib/backupd", "/var/lib/backupd/backups"
	}
	stateHome := os.Getenv("XDG_STATE_HOME")
	if stateHome == "" {
		stateHome = filepath.Join(home, ".local", "state")
	}
	dataHome := os.Getenv("XDG_DATA_HOME")
	if dataHome == "" {
		dataHome = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(stateHome, "backupd"), filepath.Join(dataHome, "backupd", "backups")
}

// defaultConfigPath is where the configuration file is looked for when
// --config does not say.
func defaultConfigPath() string {
	if p := os.Getenv("BACKUPD_CONFIG"); p != "" {
		return p
	}
	switch {
	case runtime.GOOS == "windows":
		base := os.Getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return filepath.Join(base, "backupd", "config.toml")
	case os.Geteuid() == 0 && runtime.GOOS == "darwin":
		return "/Library/Application Support/backupd/config.toml"
	case os.Geteuid() == 0:
		return "/etc/backupd/config.toml"
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "config.toml"
	}
	return filepath.Join(dir, "backupd", "config.toml")
}

// configError is a configuration file that cannot be used; the command
// exits with exitBadConfig.
type configError struct{ msgs []string }

func (e *configError) Error() string { return strings.Join(e.msgs, "\n") }

// loadConfig reads the TOML file at path over the defaults. A missing
// file means the defaults (found reports whether it existed). An unknown
// key, a value of the wrong type or an impossible value is a
// *configError whose lines say "file:line: key: problem".
func loadConfig(path string) (cfg fileConfig, found bool, err error) {
	cfg = defaultFileConfig()
	defer func() { // an empty usbmuxd key: USBMUXD_SOCKET_ADDRESS (usbmuxd_env.go)
		if err == nil {
			err = cfg.usbmuxdFromEnv(os.Getenv)
		}
	}()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, false, cfg.validate(path, nil)
	}
	if err != nil {
		return cfg, false, &configError{[]string{fmt.Sprintf("%s: %v", path, err)}}
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, true, decodeError(path, err)
	}
	// go-toml puts a bare integer into a Duration as nanoseconds; a
	// duration must have its unit.
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err == nil {
		var msgs []string
		for _, key := range bareDurations(reflect.TypeFor[fileConfig](), raw, "") {
			msgs = append(msgs, locate(path, data, key+": a duration needs a unit and quotes, such as \"90s\", \"30m\" or \"24h\""))
		}
		if msgs != nil {
			return cfg, true, &configError{msgs}
		}
	}
	return cfg, true, cfg.validate(path, data)
}

// bareDurations returns the keys of the Duration fields of t that m sets
// to a number other than 0.
func bareDurations(t reflect.Type, m map[string]any, prefix string) []string {
	durType := reflect.TypeFor[daemon.Duration]()
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			keys = append(keys, bareDurations(f.Type, m, prefix)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		v, ok := m[name]
		if !ok {
			continue
		}
		switch {
		case f.Type == durType:
			switch n := v.(type) {
			case int64:
				if n != 0 {
					keys = append(keys, prefix+name)
				}
			case float64:
				keys = append(keys, prefix+name)
			}
		case f.Type.Kind() == reflect.Struct:
			if sub, ok := v.(map[string]any); ok {
				keys = append(keys, bareDurations(f.Type, sub, prefix+name+".")...)
			}
		}
	}
	return keys
}

// decodeError turns go-toml's errors into "file:line: key: problem"
// lines.
func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var msgs []string
		for _, e := range strict.Errors {
			row, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: unknown key", path, row, strings.Join(e.Key(), ".")))
		}
		return &configError{msgs}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeRe.FindStringSubmatch(msg); m != nil {
			article := "a"
			if strings.ContainsAny(m[1][:1], "aeiou") {
				article = "an"
			}
			msg = fmt.Sprintf("wrong type: %s %s where %s is wanted", article, m[1], typeWords(m[2]))
		}
		if key == "" {
			return &configError{[]string{fmt.Sprintf("%s:%d: %s", path, row, msg)}}
		}
		return &configError{[]string{fmt.Sprintf("%s:%d: %s: %s", path, row, key, msg)}}
	}
	return &configError{[]string{fmt.Sprintf("%s: %v", path, err)}}
}

// validate runs the daemon's checks and this file's own, naming each bad
// key's line in data when the file sets it.
func (c fileConfig) validate(path string, data []byte) error {
	var problems []error
	if err := c.Config.Validate(); err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u // drop the "configuration: " prefix
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = append(problems, j.Unwrap()...)
		} else {
			problems = append(problems, err)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, locate(path, data, p.Error()))
	}
	return &configError{msgs}
}

// checkBackupDir is what `run` checks besides validate: backup_dir must
// be a directory this process can write into.
func (c fileConfig) checkBackupDir(path string, data []byte) error {
	dir := c.BackupDir
	st, err := os.Stat(dir)
	var problem string
	switch {
	case err != nil:
		problem = fmt.Sprintf("%q: %v (is the disk mounted?)", dir, errors.Unwrap(err))
		if errors.Unwrap(err) == nil {
			problem = fmt.Sprintf("%q: %v", dir, err)
		}
	case !st.IsDir():
		problem = fmt.Sprintf("%q is not a directory", dir)
	default:
		f, err := os.CreateTemp(dir, ".backupd-write-test-*")
		if err != nil {
			problem = fmt.Sprintf("%q is not writable: %v", dir, errors.Unwrap(err))
			break
		}
		name := f.Name()
		f.Close()
		os.Remove(name)
	}
	if problem == "" {
		return nil
	}
	return &configError{[]string{locate(path, data, "backup_dir: "+problem)}}
}

// locate prefixes msg ("key: problem") with path and, when data sets the
// key, its line.
func locate(path string, data []byte, msg string) string {
	key, _, _ := strings.Cut(msg, ": ")
	if line := keyLine(data, key); line > 0 {
		return fmt.Sprintf("%s:%d: %s", path, line, msg)
	}
	// A key a [[table]] entry leaves out ("set command or webhook") is
	// placed at the entry's header.
	if i := strings.LastIndex(key, "]."); i > 0 {
		if line := keyLine(data, key[:i+1]); line > 0 {
			return fmt.Sprintf("%s:%d: %s", path, line, msg)
		}
	}
	return fmt.Sprintf("%s: %s", path, msg)
}

var typeRe = regexp.MustCompile(`cannot decode TOML (\w+) into .* of type (\S+)`)

// typeWords names a Go type for a person editing the file.
func typeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "bool":
		return "true or false"
	case t == "string", strings.HasSuffix(t, "Duration"), strings.HasSuffix(t, "ByteSize"):
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a " + t
}

var (
	arrayRe = regexp.MustCompile(`^\s*\[\[\s*([A-Za-z0-9_.\-" ]+?)\s*\]\]`)
	tableRe = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.\-" ]+?)\s*\]`)
	keyRe   = regexp.MustCompile(`^\s*([A-Za-z0-9_.\-]+)\s*=`)
)

// keyLine returns the 1-based line where data sets the dotted key
// ("policy.min_interval", or "policy.quiet_hours" for a whole table), 0
// when it does not. It reads the simple TOML a configuration file holds:
// [table] headers, [[array]] tables (the Nth is "array[N]", counting
// from 1 as validation names them) and key = value lines.
func keyLine(data []byte, key string) int {
	if key == "" {
		return 0
	}
	table := ""
	arrays := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		if m := arrayRe.FindStringSubmatch(line); m != nil {
			name := strings.ReplaceAll(strings.ReplaceAll(m[1], `"`, ""), " ", "")
			arrays[name]++
			table = fmt.Sprintf("%s[%d]", name, arrays[name])
			if table == key || (name == key && arrays[name] == 1) {
				return i + 1
			}
			continue
		}
		if m := tableRe.FindStringSubmatch(line); m != nil {
			table = strings.ReplaceAll(strings.ReplaceAll(m[1], `"`, ""), " ", "")
			if table == key {
				return i + 1
			}
			continue
		}
		if m := keyRe.FindStringSubmatch(line); m != nil {
			full := m[1]
			if table != "" {
				full = table + "." + full
			}
			if full == key || strings.HasPrefix(full, key+".") {
				return i + 1
			}
		}
	}
	return 0
}
