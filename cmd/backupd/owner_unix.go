//go:build unix

package main

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the uid and gid of fi.
func fileOwner(fi fs.FileInfo) (uid, gid uint32) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}

// installChecksOwners: on Unix, who may change a file is its owner and
// mode.
const installChecksOwners = true
