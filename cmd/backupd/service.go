package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/kardianos/service"
)

// serviceName is the unit, launchd job and Windows service name.
const serviceName = "backupd"

// controlOnly satisfies service.Interface for the commands that install or
// control the service; they never run it.
type controlOnly struct{}

func (controlOnly) Start(service.Service) error { return nil }
func (controlOnly) Stop(service.Service) error  { return nil }

// serviceConfig describes the installed service: `backupd run` with the
// configuration file's absolute path, restarted when it fails, and on
// Linux ordered after usbmuxd.
func serviceConfig(configPath string) (*service.Config, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the backupd binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return nil, err
	}
	c := &service.Config{
		Name:        serviceName,
		DisplayName: "backupd",
		Description: "Backs up the iPhones plugged into this computer",
		Executable:  exe,
		Arguments:   []string{"run", "--config", abs, "--log-format", "json"},
		Option: service.KeyValue{
			"Restart":   "on-failure", // systemd
			"KeepAlive": true,         // launchd: restart when it exits
			"RunAtLoad": true,         // launchd: start at boot
			"OnFailure": "restart",    // Windows
		},
	}
	switch runtime.GOOS {
	case "linux":
		// usbmuxd is started by udev when a phone appears; ordering
		// after it still helps where it runs all the time.
		c.Dependencies = []string{"After=network.target usbmuxd.service", "Wants=usbmuxd.service"}
	case "windows":
		c.Dependencies = []string{"Apple Mobile Device Service"}
	}
	return c, nil
}

// where says where the platform's service manager keeps the definition
// and how to read the logs.
func where(stateDir string) (file, logs string) {
	switch service.ChosenSystem().String() {
	case "linux-systemd":
		return "/etc/systemd/system/" + serviceName + ".service", "journalctl -u " + serviceName
	case "darwin-launchd":
		return "/Library/LaunchDaemons/" + serviceName + ".plist", "/var/log/" + serviceName + ".err.log"
	case "windows-service":
		return "the Windows service " + serviceName, filepath.Join(stateDir, serviceLogName)
	case "unix-systemv", "linux-upstart", "linux-openrc":
		return "/etc/init.d/" + serviceName, "/var/log/" + serviceName + ".err"
	}
	return service.ChosenSystem().String(), "the system's service logs"
}

// serviceCommand is install, uninstall, start, stop or restart.
func serviceCommand(action, args, does string) command {
	return command{
		name: action, args: args, does: does,
		flags: func(fs *flag.FlagSet) runner {
			return func(_ context.Context, a *app, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				return controlService(a, action)
			}
		},
	}
}

// controlService runs one action on the system service.
func controlService(a *app, action string) error {
	cfg, _, err := loadConfig(a.configPath)
	if err != nil && action == "install" {
		// Refuse to install a service that would not start.
		return err
	}
	sc, err := serviceConfig(a.configPath)
	if err != nil {
		return fail(exitError, "%w", err)
	}
	if action == "install" {
		// Refuses paths others can change; on systemd, the user,
		// folders and hardened unit (install_prepare.go).
		if err := prepareInstall(sc, cfg, a.configPath, a.stdout); err != nil {
			return fail(exitError, "%w", err)
		}
	}
	s, err := service.New(controlOnly{}, sc)
	if err != nil {
		return fail(exitError, "%w", err)
	}
	file, logs := where(cfg.StateDir)
	switch action {
	case "install":
		if err := s.Install(); err != nil {
			return fail(exitError, "%w (run it as root or with sudo)", err)
		}
		fmt.Fprintf(a.stdout, "installed %s\n  runs: %s %v\n", file, sc.Executable, sc.Arguments)
		if err := s.Start(); err != nil {
			return fail(exitError, "installed, but it did not start: %w", err)
		}
		fmt.Fprintf(a.stdout, "started; logs: %s; status: backupd status\n", logs)
	case "uninstall":
		_ = s.Stop() // it may not be running
		if err := s.Uninstall(); err != nil {
			return fail(exitError, "%w", err)
		}
		fmt.Fprintf(a.stdout, "removed %s; the backups and the history stay where they are\n", file)
	default:
		var err error
		switch action {
		case "start":
			err = s.Start()
		case "stop":
			err = s.Stop()
		case "restart":
			err = s.Restart()
		}
		if err != nil {
			return fail(exitError, "%w", err)
		}
		fmt.Fprintf(a.stdout, "%s: done; logs: %s\n", action, logs)
	}
	return nil
}

// serviceLogName is the log file in state_dir of a daemon the Windows
// service manager runs: a Windows service has no stderr to log to.
const serviceLogName = "backupd.log"

// underServiceManager reports whether the Windows service manager runs
// this process.
func underServiceManager() bool { return runtime.GOOS == "windows" && !service.Interactive() }

// runManaged runs the daemon. Under the Windows service manager it must
// report that it started and be asked to stop through the manager;
// elsewhere a service manager sends SIGTERM, which ctx already carries.
func runManaged(ctx context.Context, run func(context.Context) error) error {
	if !underServiceManager() {
		return run(ctx)
	}
	m := &managed{ctx: ctx, run: run}
	s, err := service.New(m, &service.Config{Name: serviceName})
	if err != nil {
		return err
	}
	if err := s.Run(); err != nil {
		return err
	}
	return m.err
}

// managed adapts the daemon to the service manager's start and stop.
type managed struct {
	ctx    context.Context
	run    func(context.Context) error
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (m *managed) Start(service.Service) error {
	ctx, cancel := context.WithCancel(m.ctx)
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		m.err = m.run(ctx)
	}()
	return nil
}

func (m *managed) Stop(service.Service) error {
	m.cancel()
	<-m.done
	return nil
}
