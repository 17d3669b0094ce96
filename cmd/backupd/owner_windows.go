package main

import "io/fs"

// fileOwner: Windows has ACLs, not owners and modes; the install check
// does not run there (installChecksOwners).
func fileOwner(fs.FileInfo) (uid, gid uint32) { return 0, 0 }

// installChecksOwners is false: who may change a file on Windows is in
// its ACL, which this check does not read.
const installChecksOwners = false
