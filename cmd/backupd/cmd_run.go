package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/backupd/backupd/daemon"
)

// cmdRun runs the daemon in the foreground until SIGINT or SIGTERM.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	var config, format string
	fs := newFlagSet("run", "[--config PATH] [--log-format console|json]", &config)
	fs.StringVar(&format, "log-format", "", "console or json; overrides log_format in the file (default: console on a terminal, else json)")
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "backupd run: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	switch format {
	case "": // log_format in the file decides, below
	case string(daemon.LogConsole), string(daemon.LogJSON):
	default:
		fmt.Fprintf(stderr, "backupd run: --log-format %q: want console or json\n", format)
		return exitUsage
	}

	cfg, found, err := loadConfig(config)
	if err == nil {
		var data []byte
		if found {
			data, _ = os.ReadFile(config)
		}
		err = cfg.checkBackupDir(config, data)
	}
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	if underServiceManager() {
		f, err := openServiceLog(cfg.StateDir)
		if err != nil {
			fmt.Fprintf(stderr, "backupd run: %v\n", err)
			return exitError
		}
		defer f.Close()
		stderr = f
	}
	if format == "" {
		format = cfg.LogFormat
	}
	if format == "" {
		format = string(daemon.LogJSON)
		if isTerminal(stderr) {
			format = string(daemon.LogConsole)
		}
	}
	// Under systemd each JSON line carries its journald priority.
	logOut := daemon.JournalPriorities(stderr, os.Getenv("JOURNAL_STREAM"))
	log, err := daemon.NewLogger(logOut, daemon.LogFormat(format), cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "backupd run: %v\n", err)
		return exitError
	}
	daemon.RouteGoIOSLogs(log)
	if !found {
		log.Info().Str("config", config).Msg("no configuration file; using the defaults")
	} else {
		log.Info().Str("config", config).Msg("configuration read")
	}
	// 0750 as the daemon makes it: the group of the 0660 API socket must
	// be able to reach it.
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		log.Error().Err(err).Msg("cannot create state_dir")
		return exitError
	}
	if tightened, err := privateStateDir(cfg.StateDir); err != nil { // statedir.go
		fmt.Fprintf(stderr, "backupd run: %v\n", err)
		return exitBadConfig
	} else if tightened {
		log.Warn().Str("state_dir", cfg.StateDir).Msg("state_dir was writable by others; it no longer is")
	}

	hook, err := testPause(os.Getenv(testPauseEnv), log)
	if err != nil {
		fmt.Fprintf(stderr, "backupd run: %v\n", err)
		return exitUsage
	}
	d, err := daemon.New(cfg.Config, daemon.Options{Logger: log, Version: version, CommitStepHook: hook})
	if err != nil {
		printConfigError(stderr, err)
		return exitBadConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = runManaged(ctx, d.Run)
	if err != nil {
		if errors.Is(err, daemon.ErrAlreadyRunning) {
			fmt.Fprintf(stderr, "backupd run: %v\n", err)
		} else {
			log.Error().Err(err).Msg("backupd stopped")
		}
		return exitError
	}
	log.Info().Msg("backupd stopped")
	return exitOK
}

// openServiceLog opens (appending) the log file a daemon run by the
// Windows service manager writes instead of stderr.
func openServiceLog(stateDir string) (*os.File, error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("create state_dir for the log: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, serviceLogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log: %w", err)
	}
	return f, nil
}
