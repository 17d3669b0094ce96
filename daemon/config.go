package daemon

import (
	"github.com/backupd/backupd/daemon/api"

	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/hook"
	"github.com/backupd/backupd/proto/devicestring"
	"github.com/backupd/backupd/usbmux"
)

// Config is everything the daemon reads from the configuration file. The
// file is decoded over DefaultConfig(), so a key the file leaves out keeps
// its default and a zero in the file means zero (min_battery = 0 turns
// the battery check off). Validate says what is wrong with the result.
//
// Durations are strings with a unit ("24h", "90s"); byte sizes are a
// number of bytes or a number with a unit ("1GiB", "500MB").
type Config struct {
	// StateDir holds history.db and the API socket backupd.sock.
	StateDir string `toml:"state_dir"`
	// BackupDir holds the backups; it must exist (a missing one is more
	// likely an unmounted disk than a wish to back up onto the disk under
	// the mount point).
	BackupDir string `toml:"backup_dir"`
	// Usbmuxd is usbmuxd's address, "UNIX:/path" or "host:port"; empty
	// means USBMUXD_SOCKET_ADDRESS or the platform's default.
	Usbmuxd string `toml:"usbmuxd"`
	// LogLevel is trace, debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat is console or json; empty means console on a terminal
	// and json otherwise. backupd run --log-format overrides it.
	LogFormat string `toml:"log_format"`
	// OverdueAfter: a device with no successful backup for this long is
	// overdue; status says so and the overdue hook event fires.
	OverdueAfter Duration `toml:"overdue_after"`
	// ShutdownTimeout bounds the wait for running backups to stop when the
	// daemon is told to. It must stay under 10 s, the time service
	// managers give before they kill.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`

	Policy    Policy          `toml:"policy"`
	Stability StabilityConfig `toml:"stability"`
	Backup    BackupConfig    `toml:"backup"`
	History   HistoryConfig   `toml:"history"`
	API       APIConfig       `toml:"api"`
	// Notify is the hooks' table; the field keeps the file's name for
	// it, [notify], which configuration files already use.
	Notify  HooksConfig   `toml:"notify"`
	Metrics MetricsConfig `toml:"metrics"`
	Web     WebConfig     `toml:"web"`
}

// Values of Policy.Encryption.
const (
	EncryptionAny      = "any"
	EncryptionRequired = "required"
)

// Policy decides whether and when a connected iPhone is backed up.
type Policy struct {
	// MinInterval is the least time between two successful backups of a
	// device. A plug-in inside it backs nothing up, and a device that
	// stays connected is backed up again when it has passed. 0 backs up
	// at every plug-in and never on a schedule.
	MinInterval Duration `toml:"min_interval"`
	// RecordRecent records a plug-in inside MinInterval as a skipped run
	// (cause recent); by default such a plug-in records nothing.
	RecordRecent bool `toml:"record_recent"`
	// MinBattery is the battery level, in percent, below which a device
	// that is not charging is not backed up (battery_low). 0 turns the
	// check off.
	MinBattery int `toml:"min_battery"`
	// FreeSpaceMargin is the free space to leave on the backup disk. A
	// device's first backup (and a full one) also needs its estimated
	// size: what it uses of its own storage. Less free space than that is
	// host_disk_full before the backup starts.
	FreeSpaceMargin ByteSize `toml:"free_space_margin"`
	// QuietHours, when set, is a daily window in local time in which no
	// backup starts by itself (a manual one still does).
	QuietHours QuietHours `toml:"quiet_hours"`
	// Allow, when not empty, lists the only UDIDs backed up; Deny lists
	// UDIDs never backed up. A device on both is denied.
	Allow []string `toml:"allow"`
	Deny  []string `toml:"deny"`
	// Encryption is "any" (back up whatever the iPhone sends) or
	// "required": an iPhone that does not encrypt its backups is not
	// backed up (not_encrypted). An encrypted backup also holds the
	// passwords, Health and Wi-Fi data an unencrypted one leaves out.
	Encryption string `toml:"encryption"`
	// WiFi lets devices that usbmuxd reaches over the network be backed
	// up. A device connected both ways is backed up over USB.
	WiFi bool `toml:"wifi"`
	// MaxConcurrent is how many backups run at once.
	MaxConcurrent int `toml:"max_concurrent"`
	// After a transient failure (stalled, device_busy, ...) a device that
	// stays connected is tried again after RetryInitial, doubling up to
	// RetryMax, at most RetryLimit times per connection. 0 turns retries
	// off.
	RetryInitial Duration `toml:"retry_initial"`
	RetryMax     Duration `toml:"retry_max"`
	RetryLimit   int      `toml:"retry_limit"`
	// TrustRecheck is how often a device waiting for someone to tap Trust
	// or unlock it is asked again (a pairing usbmuxd finishes by itself
	// wakes it at once).
	TrustRecheck Duration `toml:"trust_recheck"`
	// ConditionRecheck is how often a device skipped for a low battery or
	// a full disk is checked again while it stays connected.
	ConditionRecheck Duration `toml:"condition_recheck"`
}

// QuietHours is a daily window, "HH:MM" to "HH:MM" in local time; a
// window whose end is before its start spans midnight. Both empty: no
// quiet hours.
type QuietHours struct {
	Start string `toml:"start"`
	End   string `toml:"end"`
}

// StabilityConfig tunes how a USB device settles (see
// usbmux.StabilityConfig).
type StabilityConfig struct {
	Settle      Duration `toml:"settle"`
	FlapCount   int      `toml:"flap_count"`
	FlapWindow  Duration `toml:"flap_window"`
	QuietPeriod Duration `toml:"quiet_period"`
}

// BackupConfig tunes the backup engine and the backup directory.
type BackupConfig struct {
	// StallTimeout: no progress for this long cancels a backup as stalled.
	StallTimeout Duration `toml:"stall_timeout"`
	// FirstMessageTimeout is how long a device may prepare (take its
	// snapshot, wait for its passcode) before its first message; one
	// that usbmuxd still lists may go on up to ThinkTimeout.
	FirstMessageTimeout Duration `toml:"first_message_timeout"`
	// ThinkTimeout is how long a phone that usbmuxd still lists may stay
	// silent where real iPhones think for minutes (passcode, snapshot,
	// scanning, a large Manifest.db) before the backup counts as stalled.
	ThinkTimeout Duration `toml:"think_timeout"`
	// LockTimeout is how long the iPhone's sync lock is tried before the
	// backup fails as device_busy.
	LockTimeout Duration `toml:"lock_timeout"`
	// KeepVersions is how many older backups of each device are kept
	// besides the latest; 0 keeps none.
	KeepVersions int `toml:"keep_versions"`
	// Clone is how a backup starts from the latest one: "auto" (reflink,
	// else hard links, else a copy), "copy" (never hard links) or "none"
	// (start empty; no versions kept).
	Clone string `toml:"clone"`
	// SkipIcons leaves app icons out of Info.plist.
	SkipIcons bool `toml:"skip_icons"`
	// MaxFileSize is the largest file a phone may send; more is a file
	// that never ends, and the backup fails as protocol_error. The total
	// a phone announces for a round bounds nothing: real iPhones send
	// more than they announce.
	MaxFileSize ByteSize `toml:"max_file_size"`
	// MaxFiles bounds the files and directories one backup may create:
	// past it, or with the backup disk short of inodes, the backup ends
	// as host_disk_full, so that a phone cannot flood the disk with
	// empty files.
	MaxFiles int64 `toml:"max_files"`
}

// HistoryConfig says how much history to keep per device. Each device's
// latest run and latest success are always kept.
type HistoryConfig struct {
	// KeepRuns keeps each device's newest runs; 0 keeps all.
	KeepRuns int `toml:"keep_runs"`
	// KeepFor keeps runs younger than this; 0 keeps all.
	KeepFor Duration `toml:"keep_for"`
}

// APIConfig configures the local API. The unix socket
// <state_dir>/backupd.sock always serves it; nothing listens on TCP
// unless TCP is set.
type APIConfig struct {
	// TCP is a loopback address ("127.0.0.1:7373") to serve the API on as
	// well, for platforms without unix sockets. Requests on it must carry
	// "Authorization: Bearer <Token>".
	TCP   string `toml:"tcp"`
	Token string `toml:"token"`
}

// HooksConfig configures the hooks: commands run and webhooks called
// when a backup succeeds, fails or is skipped, when a device is overdue
// or when a backup waits for the passcode (package hook). A hook never
// holds up a backup: events wait in a bounded queue per hook.
type HooksConfig struct {
	// Events are the events a hook receives when it does not list its
	// own: success, failure, skip, overdue, passcode, interrupted.
	Events []string `toml:"events"`
	// Timeout bounds a command's run (it is killed after it) and each
	// attempt of a webhook.
	Timeout Duration `toml:"timeout"`
	// Retries is how many times a webhook is tried again after a failed
	// attempt (network error, 5xx, 408 or 429), waiting 1s, 2s, 4s, ...
	Retries int `toml:"retries"`
	// Queue is how many events wait per hook; when it is full the oldest
	// is dropped.
	Queue int `toml:"queue"`
	// Hooks are the [[notify.hook]] tables.
	Hooks []HookConfig `toml:"hook"`
}

// HookConfig is one hook: a command or a webhook.
type HookConfig struct {
	// Name names the hook in the log; empty means its command or URL.
	Name string `toml:"name"`
	// Command is run, not through a shell, with the event as JSON on
	// stdin and as BACKUPD_* environment variables.
	Command []string `toml:"command"`
	// Webhook is an http or https URL the event is POSTed to.
	Webhook string `toml:"webhook"`
	// Headers are added to the webhook's request (Authorization, ntfy's
	// Title, ...).
	Headers map[string]string `toml:"headers"`
	// Body is what a webhook sends: "json" (the event) or "text" (its
	// one-line message, as ntfy wants it).
	Body string `toml:"body"`
	// Events overrides notify.events for this hook.
	Events []string `toml:"events"`
}

// MetricsConfig configures the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is a loopback address ("127.0.0.1:9737") to serve /metrics
	// on; empty serves none.
	Listen string `toml:"listen"`
}

// WebConfig configures the local web page (package daemon/web).
type WebConfig struct {
	// Listen is a loopback address ("127.0.0.1:7374") to serve the page
	// on; empty serves none.
	Listen string `toml:"listen"`
	// Token, when set, must be given once in the page (or as
	// "Authorization: Bearer <Token>" by a proxy) before anything shows.
	Token string `toml:"token"`
}

// DefaultConfig returns the defaults: every key but state_dir and
// backup_dir, which depend on the platform and are main's to fill.
func DefaultConfig() Config {
	st := usbmux.DefaultStabilityConfig()
	return Config{
		LogLevel:        "info",
		OverdueAfter:    Duration(7 * 24 * time.Hour),
		ShutdownTimeout: Duration(8 * time.Second),
		Policy: Policy{
			MinInterval:      Duration(24 * time.Hour),
			MinBattery:       20,
			Encryption:       EncryptionAny,
			FreeSpaceMargin:  1 << 30,
			MaxConcurrent:    1,
			RetryInitial:     Duration(time.Minute),
			RetryMax:         Duration(30 * time.Minute),
			RetryLimit:       5,
			TrustRecheck:     Duration(5 * time.Second),
			ConditionRecheck: Duration(5 * time.Minute),
		},
		Stability: StabilityConfig{
			Settle:      Duration(st.Settle),
			FlapCount:   st.FlapCount,
			FlapWindow:  Duration(st.FlapWindow),
			QuietPeriod: Duration(st.QuietPeriod),
		},
		Backup: BackupConfig{
			StallTimeout:        Duration(2 * time.Minute),
			FirstMessageTimeout: Duration(3 * time.Minute),
			ThinkTimeout:        Duration(30 * time.Minute),
			LockTimeout:         Duration(10 * time.Second),
			KeepVersions:        repo.DefaultKeepLast,
			Clone:               "auto",
			MaxFileSize:         ByteSize(backup.DefaultMaxFileSize),
			MaxFiles:            backup.DefaultMaxFiles,
		},
		History: HistoryConfig{KeepRuns: 1000},
		Notify: HooksConfig{
			Events:  hook.KindNames(hook.DefaultKinds),
			Timeout: Duration(hook.DefaultTimeout),
			Retries: hook.DefaultRetries,
			Queue:   hook.DefaultQueue,
		},
	}
}

// maxShutdown is what service managers give a service to stop before
// they kill it; the daemon's own deadline must leave room to close the
// history.
const maxShutdown = 10 * time.Second

// Validate reports every problem in c, each naming its key.
func (c Config) Validate() error {
	var p problems
	c.validateFiles(&p)
	c.Policy.validate(&p)
	c.validateLimits(&p)
	if c.API.TCP != "" {
		if err := loopbackOnly(c.API.TCP, "the API"); err != nil {
			p.bad("api.tcp", "%v", err)
		}
		if len(c.API.Token) < 16 {
			p.bad("api.token", "must be set, at least 16 characters, when api.tcp is")
		}
	}
	c.Notify.validate(&p)
	if c.Metrics.Listen != "" {
		if err := loopbackOnly(c.Metrics.Listen, "/metrics"); err != nil {
			p.bad("metrics.listen", "%v", err)
		}
	}
	c.Web.validate(&p)
	if err := errors.Join(p...); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// problems collects what Validate finds, each naming its key.
type problems []error

func (p *problems) bad(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (p *problems) nonNeg(key string, d Duration) {
	if d < 0 {
		p.bad(key, "must not be negative, got %v", d)
	}
}

func (p *problems) positive(key string, d Duration) {
	if d <= 0 {
		p.bad(key, "must be more than 0, got %v", d)
	}
}

// validateFiles checks the top-level keys: where things are, the log,
// and the daemon's own deadlines.
func (c Config) validateFiles(p *problems) {
	if c.StateDir == "" {
		p.bad("state_dir", "not set")
	}
	if c.BackupDir == "" {
		p.bad("backup_dir", "not set")
	}
	if c.StateDir != "" && c.BackupDir != "" && filepath.Clean(c.StateDir) == filepath.Clean(c.BackupDir) {
		p.bad("backup_dir", "must not be state_dir")
	}
	if c.Usbmuxd != "" {
		if _, err := usbmux.ParseAddr(c.Usbmuxd); err != nil {
			p.bad("usbmuxd", "%v", err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		p.bad("log_level", "%v", err)
	}
	switch LogFormat(c.LogFormat) {
	case "", LogConsole, LogJSON:
	default:
		p.bad("log_format", "%q: want console or json (or empty: console on a terminal, else json)", c.LogFormat)
	}
	if c.OverdueAfter <= 0 {
		p.bad("overdue_after", "must be more than 0, got %v", c.OverdueAfter)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout.D() >= maxShutdown {
		p.bad("shutdown_timeout", "must be more than 0 and less than %v, got %v", maxShutdown, c.ShutdownTimeout)
	}
}

// validate checks the [policy] table.
func (p Policy) validate(errs *problems) {
	errs.nonNeg("policy.min_interval", p.MinInterval)
	if p.MinBattery < 0 || p.MinBattery > 100 {
		errs.bad("policy.min_battery", "must be a percentage from 0 to 100, got %d", p.MinBattery)
	}
	if p.FreeSpaceMargin < 0 {
		errs.bad("policy.free_space_margin", "must not be negative")
	}
	if _, _, _, err := p.QuietHours.window(); err != nil {
		errs.bad("policy.quiet_hours", "%v", err)
	}
	if p.Encryption != EncryptionAny && p.Encryption != EncryptionRequired {
		errs.bad("policy.encryption", "must be %q or %q, got %q", EncryptionAny, EncryptionRequired, p.Encryption)
	}
	for _, list := range []struct {
		key  string
		udid []string
	}{{"policy.allow", p.Allow}, {"policy.deny", p.Deny}} {
		for i, u := range list.udid {
			list.udid[i] = devicestring.UDID(u) // as the phone spells it
			if err := repo.ValidUDID(u); err != nil {
				errs.bad(list.key, "%q is not a UDID", u)
			}
		}
	}
	if p.MaxConcurrent < 1 {
		errs.bad("policy.max_concurrent", "must be at least 1, got %d", p.MaxConcurrent)
	}
	if p.RetryLimit < 0 {
		errs.bad("policy.retry_limit", "must not be negative, got %d", p.RetryLimit)
	}
	if p.RetryLimit > 0 {
		errs.positive("policy.retry_initial", p.RetryInitial)
		if p.RetryMax < p.RetryInitial {
			errs.bad("policy.retry_max", "must be at least retry_initial (%v), got %v", p.RetryInitial, p.RetryMax)
		}
	}
	errs.positive("policy.trust_recheck", p.TrustRecheck)
	errs.positive("policy.condition_recheck", p.ConditionRecheck)
}

// validateLimits checks the [stability], [backup] and [history] tables.
func (c Config) validateLimits(p *problems) {
	s := c.Stability
	p.positive("stability.settle", s.Settle)
	p.positive("stability.flap_window", s.FlapWindow)
	p.positive("stability.quiet_period", s.QuietPeriod)
	if s.FlapCount < 1 {
		p.bad("stability.flap_count", "must be at least 1, got %d", s.FlapCount)
	}

	b := c.Backup
	p.positive("backup.stall_timeout", b.StallTimeout)
	p.positive("backup.first_message_timeout", b.FirstMessageTimeout)
	p.positive("backup.think_timeout", b.ThinkTimeout)
	p.positive("backup.lock_timeout", b.LockTimeout)
	if b.MaxFileSize <= 0 {
		p.bad("backup.max_file_size", "must be positive, got %d", b.MaxFileSize)
	}
	if b.KeepVersions < 0 {
		p.bad("backup.keep_versions", "must not be negative, got %d", b.KeepVersions)
	}
	if _, err := parseClone(b.Clone); err != nil {
		p.bad("backup.clone", "%v", err)
	}
	if b.MaxFiles < 1 {
		p.bad("backup.max_files", "must be at least 1, got %d", b.MaxFiles)
	}

	if c.History.KeepRuns < 0 {
		p.bad("history.keep_runs", "must not be negative, got %d", c.History.KeepRuns)
	}
	p.nonNeg("history.keep_for", c.History.KeepFor)
}

// validate checks the hooks; each problem names its key, a hook as
// notify.hook[N] counting from 1 as a person reading the file does.
func (n HooksConfig) validate(p *problems) {
	if _, err := hook.ParseKinds(n.Events); err != nil {
		p.bad("notify.events", "%v", err)
	}
	if n.Timeout <= 0 {
		p.bad("notify.timeout", "must be more than 0, got %v", n.Timeout)
	}
	if n.Retries < 0 || n.Retries > hook.MaxRetries {
		p.bad("notify.retries", "must be from 0 to %d, got %d", hook.MaxRetries, n.Retries)
	}
	if n.Queue < 1 {
		p.bad("notify.queue", "must be at least 1, got %d", n.Queue)
	}
	for i, h := range n.Hooks {
		key := fmt.Sprintf("notify.hook[%d]", i+1)
		if _, err := hook.ParseKinds(h.Events); err != nil {
			p.bad(key+".events", "%v", err)
		}
		if err := h.hook().Check(); err != nil {
			var fe *hook.FieldError
			if errors.As(err, &fe) {
				p.bad(key+"."+fe.Field, "%s", fe.Problem)
			} else {
				p.bad(key, "%v", err)
			}
		}
	}
}

// hook returns h for package hook.
func (h HookConfig) hook() hook.Hook {
	kinds, _ := hook.ParseKinds(h.Events) // validate reports a bad one
	return hook.Hook{
		Name:    h.Name,
		Command: h.Command,
		Webhook: h.Webhook,
		Headers: h.Headers,
		Body:    h.Body,
		Events:  kinds,
	}
}

// hookOptions returns the hook runner's options; Validate checked them.
func (n HooksConfig) hookOptions() hook.Options {
	def, _ := hook.ParseKinds(n.Events)
	opts := hook.Options{
		Timeout: n.Timeout.D(),
		Retries: n.Retries,
		Queue:   n.Queue,
	}
	for _, h := range n.Hooks {
		hk := h.hook()
		if h.Events == nil {
			hk.Events = def
		}
		opts.Hooks = append(opts.Hooks, hk)
	}
	return opts
}

// loopbackOnly refuses a TCP address other hosts could reach: the API
// starts backups and names the owner's phones, and /metrics names them
// too.
func loopbackOnly(addr, what string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address; %s must not be reachable from other computers", addr, what)
	}
	return nil
}

func parseClone(s string) (repo.CloneMode, error) {
	switch s {
	case "", "auto":
		return repo.CloneAuto, nil
	case "copy":
		return repo.CloneCopy, nil
	case "none":
		return repo.CloneNone, nil
	}
	return 0, fmt.Errorf("%q is not auto, copy or none", s)
}

// stability returns the tracker's configuration.
func (s StabilityConfig) stability() usbmux.StabilityConfig {
	return usbmux.StabilityConfig{
		Settle:      s.Settle.D(),
		FlapCount:   s.FlapCount,
		FlapWindow:  s.FlapWindow.D(),
		QuietPeriod: s.QuietPeriod.D(),
	}
}

// repoOptions returns the backup directory's options.
func (b BackupConfig) repoOptions() repo.Options {
	clone, _ := parseClone(b.Clone) // Validate checked it
	keep := b.KeepVersions
	if keep == 0 {
		keep = -1 // repo: 0 means its default, negative none
	}
	return repo.Options{KeepLast: keep, Clone: clone}
}

// Duration is a time.Duration that reads and writes itself as text such
// as "24h" or "1m30s", as configuration files and JSON want it.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as time.Duration's String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "24h", "90s", "1h30m". A plain number is refused
// (seconds or nanoseconds? nobody can tell), except 0.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, such as 90s, 30m or 24h", s)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a number of bytes that reads "1GiB", "500MB", "1.5GB" or a
// plain number of bytes.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// UnmarshalText reads a size as described on ByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := 1.0
	num := s
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	// Written so that NaN fails too: converted to an integer it is 0 on
	// arm64 (a Raspberry Pi) and the most negative int64 on amd64.
	if err != nil || !(v >= 0 && v*mult <= 1<<62) {
		return fmt.Errorf("size %q: want a number of bytes or a number with a unit, such as 500MB or 2GiB", s)
	}
	*b = ByteSize(v * mult)
	return nil
}

// MarshalText writes the size in bytes.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }

// String writes the size for people: "1.0 GiB".
func (b ByteSize) String() string { return api.FormatBytes(b) }

// validate checks the web page's table: a loopback address only, and a
// token long enough not to be guessed.
func (w WebConfig) validate(p *problems) {
	if w.Listen != "" {
		if err := loopbackOnly(w.Listen, "the web page"); err != nil {
			p.bad("web.listen", "%v", err)
		}
	}
	if w.Token != "" && len(w.Token) < 16 {
		p.bad("web.token", "must be at least 16 characters when set, got %d", len(w.Token))
	}
}
