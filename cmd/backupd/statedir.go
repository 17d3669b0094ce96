package main

import (
	"fmt"
	"os"
	"runtime"
)

// privateStateDir makes sure no one else can write state_dir: it holds
// the history and the API socket, and whoever can write the folder can
// replace them. A folder of ours is tightened (tightened reports it); one
// owned by someone else is refused, since changing it is theirs to do.
func privateStateDir(dir string) (tightened bool, err error) {
	if runtime.GOOS == "windows" {
		return false, nil // ACLs, not modes
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	mode := fi.Mode().Perm()
	if mode&0o022 == 0 {
		return false, nil
	}
	if uid, _ := fileOwner(fi); int(uid) != os.Geteuid() {
		return false, fmt.Errorf("state_dir %s is writable by others (mode %s) and belongs to uid %d, not to this process: "+
			"anyone could replace the history or the API socket; make it private: sudo chmod go-w %s", dir, fi.Mode(), uid, dir)
	}
	if err := os.Chmod(dir, mode&^0o022); err != nil {
		return false, fmt.Errorf("state_dir %s is writable by others (mode %s): %w", dir, fi.Mode(), err)
	}
	return true, nil
}
