package main

import (
	"fmt"
	"os"
	"runtime"
)

// stateDirMode is the most state_dir may allow: the owner everything,
// the group (of the 0660 API socket) reaching the socket, others nothing.
const stateDirMode = 0o750

// privateStateDir makes sure no one else can write state_dir, nor read
// it: it holds the history (phone names, UDIDs) and the API socket, and
// whoever can write the folder can replace them. A folder of ours is
// tightened to stateDirMode at most (tightened reports it), as an
// existing one is not made anew; one owned by someone else that others
// can write is refused, since changing it is theirs to do.
func privateStateDir(dir string) (tightened bool, err error) {
	if runtime.GOOS == "windows" {
		return false, nil // ACLs, not modes
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	mode := fi.Mode().Perm()
	if mode&^stateDirMode == 0 {
		return false, nil
	}
	uid, _ := fileOwner(fi)
	if int(uid) != os.Geteuid() && mode&0o022 == 0 {
		return false, nil // only readable by others, and not ours to change
	}
	if int(uid) != os.Geteuid() {
		return false, fmt.Errorf("state_dir %s is writable by others (mode %s) and belongs to uid %d, not to this process: "+
			"anyone could replace the history or the API socket; make it private: sudo chmod go-w %s", dir, fi.Mode(), uid, dir)
	}
	if err := os.Chmod(dir, mode&stateDirMode); err != nil {
		return false, fmt.Errorf("state_dir %s is open to others (mode %s): %w", dir, fi.Mode(), err)
	}
	return true, nil
}
