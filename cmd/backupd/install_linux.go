package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/backupd/backupd/packaging/systemd"
	"github.com/kardianos/service"
)

// prepareSystemd makes the backupd user and its folders, and sets sc to
// write backupd's own unit, rendered for this binary, configuration and
// folders.
func prepareSystemd(sc *service.Config, cfg fileConfig, config string, stdout io.Writer) error {
	state, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return err
	}
	backups, err := filepath.Abs(cfg.BackupDir)
	if err != nil {
		return err
	}
	unit, err := systemd.Unit{Exec: sc.Executable, Config: config, User: serviceUser, StateDir: state, BackupDir: backups}.Render()
	if err != nil {
		return err
	}
	// kardianos/service reads a custom unit as its own template.
	if strings.Contains(unit, "{{") {
		return fmt.Errorf("a path holds \"{{\", which the service manager's template would read")
	}
	uid, gid, err := ensureUser(serviceUser, state, stdout)
	if err != nil {
		return err
	}
	if err := ownState(state, uid, gid); err != nil {
		return err
	}
	if within(backups, state) {
		if err := mkdirOwned(backups, uid, gid); err != nil {
			return err
		}
	} else {
		adviseBackupDir(backups, uid, stdout)
	}
	if sc.Option == nil {
		sc.Option = service.KeyValue{}
	}
	sc.Option["SystemdScript"] = unit
	return nil
}

// ensureUser returns the service user's uid and gid, creating it as a
// system user, with its own group and no login, when it is missing.
func ensureUser(name, home string, stdout io.Writer) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if errors.As(err, new(user.UnknownUserError)) {
		out, cerr := exec.Command("useradd", "--system", "--user-group", "--home-dir", home,
			"--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", "backupd service", name).CombinedOutput()
		if cerr != nil {
			return 0, 0, fmt.Errorf("create the system user %s: %v: %s", name, cerr, strings.TrimSpace(string(out)))
		}
		fmt.Fprintf(stdout, "created the system user %s, which the service runs as\n", name)
		u, err = user.Lookup(name)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("the service user %s: %w", name, err)
	}
	if uid, err = strconv.Atoi(u.Uid); err == nil {
		gid, err = strconv.Atoi(u.Gid)
	}
	return uid, gid, err
}

// ownState makes state_dir 0700 and gives it, and what is in it, to the
// service user: a history written by an earlier root service must stay
// readable.
func ownState(dir string, uid, gid int) error {
	if err := mkdirOwned(dir, uid, gid); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// mkdirOwned makes dir (and its parents, as root's) and gives it to
// uid:gid with mode 0700.
func mkdirOwned(dir string, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// adviseBackupDir says what to do about a backup_dir outside state_dir
// (often another disk) that the service user cannot write: it is the
// person's data, so its owner is theirs to change.
func adviseBackupDir(dir string, uid int, stdout io.Writer) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "note: backup_dir %s: %v; the service waits for it (is the disk mounted?)\n", dir, err)
	case int(fileOwnerUID(fi)) != uid:
		fmt.Fprintf(stdout, "note: backup_dir %s is not owned by %s, which the service runs as; give it the folder:\n"+
			"  sudo chown -R %s:%s %s && sudo chmod 0700 %s\n"+
			"(on a FAT, exFAT or NTFS disk, mount it with uid=%s,gid=%s,umask=077 instead; see the README)\n",
			dir, serviceUser, serviceUser, serviceUser, dir, dir, serviceUser, serviceUser)
	}
}

func fileOwnerUID(fi fs.FileInfo) uint32 {
	uid, _ := fileOwner(fi)
	return uid
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
