// Package packaging holds the tests of backupd's release packaging: the
// reproducible archives of scripts/dist.sh, the Debian package of
// scripts/deb.sh (its files, control fields, lintian, the unit), and the
// package installed into a throwaway Debian root (make package-test).
// The unit itself is packaging/systemd; the archiver packaging/distpack.
package packaging
