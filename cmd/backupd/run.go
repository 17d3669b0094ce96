package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/daemon"
)

func runCommand() command {
	return command{
		name: "run", args: "[--config PATH] [--log-format console|json]", does: "run the service in the foreground",
		flags: func(fs *flag.FlagSet) runner {
			var format string
			fs.StringVar(&format, "log-format", "", "console or json; overrides log_format in the file (default: console on a terminal, else json)")
			return func(ctx context.Context, a *app, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				switch format {
				case "": // log_format in the file decides, below
				case string(daemon.LogConsole), string(daemon.LogJSON):
				default:
					return fail(exitUsage, "--log-format %q: want console or json", format)
				}
				return runDaemon(ctx, a, format)
			}
		},
	}
}

// runDaemon runs the daemon in the foreground until ctx ends (SIGINT or
// SIGTERM).
func runDaemon(ctx context.Context, a *app, format string) error {
	cfg, found, err := loadConfig(a.configPath)
	if err == nil {
		var data []byte
		if found {
			data, _ = os.ReadFile(a.configPath)
		}
		err = cfg.checkBackupDir(a.configPath, data)
	}
	if err != nil {
		return err
	}
	stderr := a.stderr
	if underServiceManager() {
		f, err := openServiceLog(cfg.StateDir)
		if err != nil {
			return fail(exitError, "%w", err)
		}
		defer f.Close()
		stderr = f
	}
	log, err := daemonLogger(stderr, format, cfg)
	if err != nil {
		return fail(exitError, "%w", err)
	}
	daemon.RouteGoIOSLogs(log)
	log.Debug().Fields(memoryDefaults(os.Getenv)).Msg("memory settings")
	if !found {
		log.Info().Str("config", a.configPath).Msg("no configuration file; using the defaults")
	} else {
		log.Info().Str("config", a.configPath).Msg("configuration read")
		if why := exposedSecrets(a.configPath, cfg); why != "" { // secrets.go
			log.Warn().Str("config", a.configPath).Msg("secrets readable by others: " + why)
		}
	}
	// 0750 as the daemon makes it: the group of the 0660 API socket must
	// be able to reach it.
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		log.Error().Err(err).Msg("cannot create state_dir")
		return exitWith(exitError)
	}
	if tightened, err := privateStateDir(cfg.StateDir); err != nil { // statedir.go
		return fail(exitBadConfig, "%w", err)
	} else if tightened {
		log.Warn().Str("state_dir", cfg.StateDir).Msg("state_dir was open to others; it is now 0750 at most")
	}
	opts := daemon.Options{Logger: log, Version: version}
	if err := injectFaults(&opts, log); err != nil {
		return fail(exitUsage, "%w", err)
	}
	d, err := daemon.New(cfg.Config, opts)
	if err != nil {
		return badConfig{err}
	}
	stopWeb, err := startWeb(cfg, log)
	if err != nil {
		return fail(exitError, "%w", err)
	}
	defer stopWeb()
	err = runManaged(ctx, d.Run)
	if err != nil {
		if errors.Is(err, daemon.ErrAlreadyRunning) {
			return fail(exitError, "%w", err)
		}
		log.Error().Err(err).Msg("backupd stopped")
		return exitWith(exitError)
	}
	log.Info().Msg("backupd stopped")
	return nil
}

// daemonLogger is the daemon's logger: --log-format, else log_format in
// the file, else console on a terminal and JSON elsewhere.
func daemonLogger(w io.Writer, format string, cfg fileConfig) (zerolog.Logger, error) {
	if format == "" {
		format = cfg.LogFormat
	}
	if format == "" {
		format = string(daemon.LogJSON)
		if isTerminal(w) {
			format = string(daemon.LogConsole)
		}
	}
	// Under systemd each JSON line carries its journald priority.
	w = daemon.JournalPriorities(w, os.Getenv("JOURNAL_STREAM"))
	return daemon.NewLogger(w, daemon.LogFormat(format), cfg.LogLevel)
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
