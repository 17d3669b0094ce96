package backupsvc

import (
	"context"
	"database/sql"
	"fmt"
)

// Hostile modes that attack what the host reads after the transfer, and
// the host's inodes.
const (
	// HostileManifestEndless sends a Manifest.db whose Files is a
	// recursive view: its rows never end, and each carries a 1 MiB
	// record. A host that reads it as it is never finishes verifying.
	HostileManifestEndless Hostile = "manifest-endless"
	// HostileManifestHugeBlobs sends a Manifest.db whose Files is a table
	// with the backup's real rows, except that its file column is
	// generated: every record reads as a 256 MiB zeroblob.
	HostileManifestHugeBlobs Hostile = "manifest-huge-blobs"
	// HostileInodeFlood sends InodeFloodFiles empty files in place of the
	// first data file, in one UploadFiles round: bytes cost nothing, but
	// every file costs the host an inode.
	HostileInodeFlood Hostile = "inode-flood"
	// HostileAppFlood lists AppFloodApps user apps through
	// installation_proxy, each with App Store records, and answers every
	// springboardservices icon request with AppFloodIconSize bytes: what
	// a host builds Info.plist from (see the sim package).
	HostileAppFlood Hostile = "app-flood"
)

// The app flood's size: installation_proxy's 10,000-app bound and the
// 16 MiB a helper service's message may have.
const (
	AppFloodApps     = 10000
	AppFloodIconSize = 16<<20 - 1024
)

// InodeFloodFiles is how many empty files HostileInodeFlood sends.
const InodeFloodFiles = 1 << 20

// hostileManifestSQL turns a Manifest.db built by buildManifestDB into
// the hostile one of each mode.
var hostileManifestSQL = map[Hostile]string{
	HostileManifestEndless: `
		ALTER TABLE Files RENAME TO FilesStored;
		CREATE VIEW Files AS
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
			SELECT printf('%040x', i) AS fileID, 'HomeDomain' AS domain,
				'Library/endless-' || i AS relativePath, 1 AS flags,
				zeroblob(1048576) AS file
			FROM n;`,
	HostileManifestHugeBlobs: `
		ALTER TABLE Files RENAME TO FilesStored;
		CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER,
			stored BLOB, file BLOB GENERATED ALWAYS AS (zeroblob(268435456)) VIRTUAL);
		INSERT INTO Files (fileID, domain, relativePath, flags, stored)
			SELECT fileID, domain, relativePath, flags, file FROM FilesStored;
		DROP TABLE FilesStored;`,
}

// MakeManifestHostile rewrites the plain Manifest.db at path into the
// hostile one of mode (HostileManifestEndless, HostileManifestHugeBlobs).
// Tests of the host's readers use it on a backup's Manifest.db.
func MakeManifestHostile(ctx context.Context, path string, mode Hostile) error {
	q, ok := hostileManifestSQL[mode]
	if !ok {
		return fmt.Errorf("manifest: %q is not a hostile Manifest.db mode", mode)
	}
	db, err := sql.Open("sqlite", sqliteURI(path, ""))
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("manifest: make it %s: %w", mode, err)
	}
	return db.Close()
}

// inodeFlood sends InodeFloodFiles empty files next to path, then ends
// the round. A host that hangs up on the flood is behaving correctly.
func (s *session) inodeFlood(devName, path string) (done bool, err error) {
	fw := s.fileWriter()
	for i := range InodeFloodFiles {
		p := fmt.Sprintf("%s-flood-%07d", path, i)
		if err := fw.Begin(devName, p); err != nil {
			return true, s.floodEnded(err)
		}
		if err := fw.End(); err != nil {
			return true, s.floodEnded(err)
		}
	}
	return s.endUploadRound("store the flood")
}

// floodEnded: the host hanging up on the flood is the point.
func (s *session) floodEnded(err error) error {
	if isHangup(err) {
		return nil
	}
	return fmt.Errorf("backupsvc: inode flood: %w", err)
}
