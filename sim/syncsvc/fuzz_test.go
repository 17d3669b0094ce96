package syncsvc

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
)

func frame(t testing.TB, v any, f wire.Format) []byte {
	b, err := wire.Encode(v, f)
	if err != nil {
		t.Fatal(err)
	}
	out := []byte{byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}
	return append(out, b...)
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// FuzzServe sends arbitrary bytes to each service, as a host would, and
// checks that the service returns (with or without an error) and never
// panics or hangs.
func FuzzServe(f *testing.F) {
	f.Add(uint8(0), concat(
		frame(f, map[string]any{"Command": "ObserveNotification", "Name": notification.SyncCancelRequest}, wire.XML),
		frame(f, map[string]any{"Command": "PostNotification", "Name": notification.SyncDidStart}, wire.XML),
		frame(f, map[string]any{"Command": "Shutdown"}, wire.XML)))
	f.Add(uint8(1), concat(
		afc.Packet{Num: 1, Op: afc.OpFileOpen, HeaderPayload: afc.EncodeOpen(afc.ModeReadWrite, afc.SyncLockPath)}.Encode(),
		afc.Packet{Num: 2, Op: afc.OpFileLock, HeaderPayload: afc.EncodeHandleArg(1, uint64(afc.LockExclusive))}.Encode(),
		afc.Packet{Num: 3, Op: afc.OpFileWrite, HeaderPayload: afc.U64(1), Payload: []byte("abc")}.Encode(),
		afc.Packet{Num: 4, Op: afc.OpFileSeek, HeaderPayload: concat(afc.EncodeHandleArg(1, 0), afc.U64(0))}.Encode(),
		afc.Packet{Num: 5, Op: afc.OpFileRead, HeaderPayload: afc.EncodeHandleArg(1, 10)}.Encode(),
		afc.Packet{Num: 6, Op: afc.OpRenamePath, HeaderPayload: afc.EncodeStrings(afc.SyncLockPath, "/x/y")}.Encode(),
		afc.Packet{Num: 7, Op: afc.OpMakeDir, HeaderPayload: afc.CString("/a/b/../c")}.Encode(),
		afc.Packet{Num: 8, Op: afc.OpRemovePathAndContents, HeaderPayload: afc.CString("/a")}.Encode(),
		afc.Packet{Num: 9, Op: afc.OpFileClose, HeaderPayload: afc.U64(1)}.Encode()))
	f.Add(uint8(2), concat(
		frame(f, map[string]any{"Command": "Browse", "ClientOptions": browseOpts}, wire.XML),
		frame(f, map[string]any{"Command": "Lookup", "ClientOptions": map[string]any{"BundleIDs": []any{"com.example.notes"}}}, wire.Binary)))
	f.Add(uint8(3), concat(
		frame(f, map[string]any{"command": "getIconPNGData", "bundleId": "com.example.notes"}, wire.Binary),
		frame(f, map[string]any{"command": "getIconState"}, wire.Binary)))
	f.Add(uint8(0), []byte{0, 0, 0, 8, 'b', 'p', 'l', 'i', 's', 't', '0', '0'})
	f.Fuzz(func(t *testing.T, which uint8, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		apps := DefaultApps()
		services := []func(context.Context, net.Conn) error{
			serveNP(NotificationConfig{}),
			serveAFC(AFCConfig{MaxPacket: 1 << 16}),
			serveIP(InstProxyConfig{Apps: apps, PageSize: 2}),
			serveSB(SpringboardConfig{}),
		}
		host, dev := net.Pipe()
		errc := make(chan error, 1)
		go func() { errc <- services[int(which)%len(services)](ctx, dev) }()
		go func() { _, _ = io.Copy(io.Discard, host) }()
		_, _ = host.Write(in)
		host.Close()
		select {
		case <-errc:
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after the host hung up")
		}
	})
}
