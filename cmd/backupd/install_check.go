package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// owner is what the install check needs to know of a file or folder.
type owner struct {
	uid, gid uint32
	mode     fs.FileMode
}

// notRootOnly says why path can be changed by someone other than root:
// it, or a folder above it, is owned by another user or writable by a
// group other than root's or by everyone. The service would run what
// they put there. A missing path (a configuration file not written yet)
// is judged by its folders. stat returns the owner of a path.
func notRootOnly(path string, stat func(string) (owner, error)) error {
	for p := path; ; p = filepath.Dir(p) {
		o, err := stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && p == path:
		case err != nil:
			return err
		case o.uid != 0:
			return fmt.Errorf("%s is owned by uid %d, not root", p, o.uid)
		case o.mode.Perm()&0o020 != 0 && o.gid != 0:
			return fmt.Errorf("%s is writable by group %d (mode %s)", p, o.gid, o.mode)
		case o.mode.Perm()&0o002 != 0:
			return fmt.Errorf("%s is writable by everyone (mode %s)", p, o.mode)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// checkInstallPaths refuses a binary or configuration file that someone
// other than root can change, saying why and what to do. The config file
// is checked where its path points and where a symbolic link leads.
func checkInstallPaths(exe, config string, stat func(string) (owner, error)) error {
	if err := notRootOnly(exe, stat); err != nil {
		return fmt.Errorf("refusing to install %s as a service: %w.\n"+
			"Whoever can change it could make the service run their own program, with every backup in reach.\n"+
			"Install the binary where only root can write, then install from there:\n"+
			"  sudo install -m 0755 %s /usr/local/bin/backupd\n"+
			"  sudo /usr/local/bin/backupd install --config %s\n"+
			"(or install the Debian package, which does both)", exe, err, exe, config)
	}
	paths := []string{config}
	if real, err := filepath.EvalSymlinks(config); err == nil && real != config {
		paths = append(paths, real)
	}
	for _, p := range paths {
		if err := notRootOnly(p, stat); err != nil {
			return fmt.Errorf("refusing to install with the configuration %s: %w.\n"+
				"Whoever can change it could add a hook the service runs, or point it elsewhere.\n"+
				"Keep the configuration where only root can write, then install with it:\n"+
				"  sudo install -D -m 0644 %s /etc/backupd/config.toml\n"+
				"  sudo backupd install --config /etc/backupd/config.toml", p, err, p)
		}
	}
	return nil
}

// statOwner is notRootOnly's stat on this system.
func statOwner(path string) (owner, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return owner{}, err
	}
	uid, gid := fileOwner(fi)
	return owner{uid: uid, gid: gid, mode: fi.Mode()}, nil
}
