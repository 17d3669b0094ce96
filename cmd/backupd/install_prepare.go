package main

import (
	"io"
	"path/filepath"

	"github.com/kardianos/service"
)

// serviceUser is the user (and group) the installed service runs as on
// Linux: pair records come through usbmuxd's socket, so it needs no root.
const serviceUser = "backupd"

// prepareInstall is what `backupd install` does before the service
// manager writes the service: it refuses a binary or configuration that
// someone other than root can change, and on Linux with systemd it makes
// the service's user and folders and gives the service manager backupd's
// hardened unit (packaging/systemd).
func prepareInstall(sc *service.Config, cfg fileConfig, config string, stdout io.Writer) error {
	abs, err := filepath.Abs(config)
	if err != nil {
		return err
	}
	if installChecksOwners {
		if err := checkInstallPaths(sc.Executable, abs, statOwner); err != nil {
			return err
		}
	}
	if service.ChosenSystem().String() != "linux-systemd" {
		return nil
	}
	return prepareSystemd(sc, cfg, abs, stdout)
}
