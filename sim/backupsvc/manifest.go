package backupsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/backupd/backupd/proto/mbfile"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/fileset"
)

// Manifest.db flags column.
const (
	flagFile = 1
	flagDir  = 2
)

// The schema of a real Manifest.db (iOS 10 and later).
const manifestSchema = `
CREATE TABLE Files (fileID TEXT PRIMARY KEY, domain TEXT, relativePath TEXT, flags INTEGER, file BLOB);
CREATE INDEX FilesDomainIdx ON Files(domain);
CREATE INDEX FilesRelativePathIdx ON Files(relativePath);
CREATE INDEX FilesFlagsIdx ON Files(flags);
CREATE TABLE Properties (key TEXT PRIMARY KEY, value BLOB);
`

// mbFile encodes a file's metadata the way iOS stores it in the `file`
// column: an MBFile archive, with the file's own wrapped key when the
// backup is encrypted (keys not nil). Generation is the simulator's own
// key; real readers ignore unknown keys, and it makes change detection
// exact.
func mbFile(f fileset.File, keys *deviceKeys) ([]byte, error) {
	mtime := f.ModTime.Unix()
	rec := mbfile.File{
		RelativePath:     f.RelativePath,
		LastModified:     mtime,
		LastStatusChange: mtime,
		Birth:            mtime,
		Size:             f.Size,
		Mode:             f.Mode,
		InodeNumber:      uint64(f.Index + 1000),
		UserID:           501,
		GroupID:          501,
		ProtectionClass:  fileClass,
		Generation:       f.Generation,
	}
	if f.IsDir() {
		rec.Size, rec.InodeNumber = 0, 0
	} else if keys != nil {
		k, err := keys.storedFileKey(f.FileID, f.Generation)
		if err != nil {
			return nil, err
		}
		rec.EncryptionKey = k
	}
	return mbfile.Encode(rec)
}

// hostEntry is what the host's Manifest.db says about one file.
type hostEntry struct {
	flags      int64
	size       int64
	mtime      int64
	generation uint64
	hasGen     bool
	// key is the file's EncryptionKey (class and wrapped key) in an
	// encrypted backup, nil in a plain one.
	key []byte
}

// parseMBFile reads the fields we compare from a `file` blob.
func parseMBFile(blob []byte) (hostEntry, error) {
	rec, err := mbfile.Decode(blob)
	if err != nil {
		return hostEntry{}, err
	}
	return hostEntry{size: rec.Size, mtime: rec.LastModified, generation: rec.Generation, hasGen: rec.Generation != 0, key: rec.EncryptionKey}, nil
}

// changed reports whether the device's file differs from what the host
// holds.
func (e hostEntry) changed(f fileset.File) bool {
	if e.flags != flagFile || e.size != f.Size || e.mtime != f.ModTime.Unix() {
		return true
	}
	return e.hasGen && e.generation != f.Generation
}

// buildManifestDB writes a Manifest.db listing every present file and
// directory of the snapshot into a new temporary file, and returns its
// path. The caller removes it.
func buildManifestDB(ctx context.Context, dir string, files, dirs []fileset.File, keys *deviceKeys) (path string, err error) {
	tmp, err := os.CreateTemp(dir, "backupsvc-manifest-*.db")
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	path = tmp.Name()
	tmp.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	db, err := sql.Open("sqlite", sqliteURI(path, ""))
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("manifest: close: %w", cerr)
		}
	}()
	// One connection: the temporary database is private and a second
	// connection would not see the open transaction's schema.
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, manifestSchema); err != nil {
		return "", fmt.Errorf("manifest: schema: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO Files (fileID, domain, relativePath, flags, file) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	defer stmt.Close()
	insert := func(f fileset.File, flags int) error {
		blob, err := mbFile(f, keys)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, f.FileID, f.Domain, f.RelativePath, flags, blob); err != nil {
			return fmt.Errorf("manifest: insert %s: %w", f.FileID, err)
		}
		return nil
	}
	for _, d := range dirs {
		if err := insert(d, flagDir); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		if f.Deleted {
			continue
		}
		if err := insert(f, flagFile); err != nil {
			return "", err
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("manifest: commit: %w", err)
	}
	return path, nil
}

// readManifestDB reads the host's copy of Manifest.db.
func readManifestDB(ctx context.Context, path string) (map[string]hostEntry, error) {
	db, err := sql.Open("sqlite", sqliteURI(path, "mode=ro"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT fileID, flags, file FROM Files`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]hostEntry{}
	for rows.Next() {
		var id string
		var flags int64
		var blob []byte
		if err := rows.Scan(&id, &flags, &blob); err != nil {
			return nil, err
		}
		var e hostEntry
		if flags == flagFile {
			if e, err = parseMBFile(blob); err != nil {
				return nil, fmt.Errorf("file %s: %w", id, err)
			}
		}
		e.flags = flags
		out[id] = e
	}
	return out, rows.Err()
}

// manifestPlist builds Manifest.plist. An encrypted backup (keys not nil)
// carries the device's keybag, sealed with the backup password, and the
// ManifestKey that opens its Manifest.db.
func manifestPlist(cfg *Config, udid string, keys *deviceKeys, manifestKey []byte, now time.Time) ([]byte, error) {
	encrypted := keys != nil
	d := cfg.Device
	m := map[string]any{
		"Version":              "10.0",
		"Date":                 now,
		"SystemDomainsVersion": "24.0",
		"WasPasscodeSet":       true,
		"IsEncrypted":          encrypted,
		"Applications":         map[string]any{},
		"Lockdown": map[string]any{
			"ProductVersion": d.ProductVersion,
			"ProductType":    d.ProductType,
			"BuildVersion":   d.BuildVersion,
			"UniqueDeviceID": udid,
			"SerialNumber":   d.SerialNumber,
			"DeviceName":     d.DeviceName,
		},
	}
	if encrypted {
		m["BackupKeyBag"] = keys.keybag
		m["ManifestKey"] = manifestKey
	}
	return wire.Encode(m, wire.Binary)
}

// parseManifestPlist reads the host's Manifest.plist; an error means it is
// empty or corrupt. manifestKey is nil in a plain backup.
func parseManifestPlist(b []byte) (encrypted bool, manifestKey []byte, err error) {
	var m map[string]any
	if err := wire.Decode(b, &m); err != nil {
		return false, nil, err
	}
	if _, ok := m["Lockdown"].(map[string]any); !ok {
		return false, nil, errors.New("backupsvc: Manifest.plist has no Lockdown dictionary")
	}
	encrypted, _ = m["IsEncrypted"].(bool)
	manifestKey, _ = m["ManifestKey"].([]byte)
	return encrypted, manifestKey, nil
}

// statusPlist builds Status.plist for a finished snapshot.
func statusPlist(uuid string, full bool, now time.Time) ([]byte, error) {
	return wire.Encode(map[string]any{
		"BackupState":   "new",
		"Date":          now,
		"IsFullBackup":  full,
		"SnapshotState": "finished",
		"UUID":          uuid,
		"Version":       "3.3",
	}, wire.Binary)
}

// hostStatus is what we read from the host's Status.plist.
type hostStatus struct {
	uuid, state string
}

func parseStatusPlist(b []byte) (hostStatus, error) {
	var m map[string]any
	if err := wire.Decode(b, &m); err != nil {
		return hostStatus{}, err
	}
	var s hostStatus
	s.uuid, _ = m["UUID"].(string)
	s.state, _ = m["SnapshotState"].(string)
	return s, nil
}

// newUUID returns a random upper-case UUID, the form Status.plist uses.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// sqliteURI names the database at path for SQLite, escaped: a '#' or '?'
// in a folder's name would otherwise end the path.
func sqliteURI(path, query string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/... on Windows
	}
	return (&url.URL{Scheme: "file", Path: p, RawQuery: query}).String()
}
