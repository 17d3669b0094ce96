// Package syncsvc is the simulated iPhone's side of the small lockdown
// services a backup touches besides mobilebackup2: notification_proxy (the
// sync notifications, and the cancel the device can push), AFC (the sync
// lock file, and the few files a backup tool reads), installation_proxy
// (the installed-app list for Info.plist) and springboardservices (app
// icons). Each is a Serve function the simulator core runs on the
// connection a host opened to the service's port, after lockdownd has
// started it; these services are never encrypted.
//
// What the services must do is what Debian's idevicebackup2 (libimobiledevice
// 1.3.0) and our own host expect of a real device. Per-device state that
// outlives a connection (the AFC file system and its locks, the log of
// notifications) lives in values the core creates once per device and
// passes in every config.
//
// A Serve function owns its connection: it closes it on return, and when
// its context ends. Malformed or oversized input ends the connection with
// an error, never a panic. A peer that hangs up between requests is a
// normal end and returns nil.
package syncsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/backupd/backupd/proto/wire"
)

// maxRequest bounds one plist request to the plist services. Real requests
// are a few hundred bytes; a small bound also keeps a hostile plist from
// costing much to parse.
const maxRequest = 64 << 10

// ErrMalformed is wrapped by errors about well-framed requests that make
// no sense (no command, the wrong types).
var ErrMalformed = errors.New("malformed request")

// own makes the Serve function own conn: it is closed when ctx ends, which
// unblocks any read, and when the returned func runs.
func own(ctx context.Context, conn net.Conn) func() {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	return func() {
		stop()
		_ = conn.Close()
	}
}

// ended turns the error that stopped a serving loop into what Serve
// returns: the context's error if it was cancelled, nil for a peer that
// hung up between requests, the error otherwise.
func ended(ctx context.Context, service string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if err == io.EOF {
		return nil
	}
	return fmt.Errorf("%s: %w", service, err)
}

// readDict reads one length-prefixed plist request, which must be a
// dictionary.
func readDict(r io.Reader) (map[string]any, error) {
	var m map[string]any
	if err := wire.ReadPlist(r, maxRequest, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("request is not a dictionary: %w", ErrMalformed)
	}
	return m, nil
}

// str returns m[key] when it is a string.
func str(m map[string]any, key string) (string, bool) {
	s, ok := m[key].(string)
	return s, ok
}
