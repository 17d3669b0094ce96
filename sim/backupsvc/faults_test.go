package backupsvc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/fileset"
)

func TestUnplugAtStep(t *testing.T) {
	for _, step := range Steps() {
		t.Run(string(step), func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 6, Files: 20, MaxSize: 8 << 10})
			if step == StepDownloadManifest {
				r.mustBackup(true) // the step only happens in incremental backups
			}
			hostErr, serveErr := r.exchange(backupReq(false), Faults{UnplugAtStep: step})
			if !errors.Is(serveErr, ErrUnplugged) {
				t.Fatalf("Serve = %v, want ErrUnplugged", serveErr)
			}
			if r.unplugs.Load() != 1 {
				t.Fatalf("Unplug called %d times", r.unplugs.Load())
			}
			if hostErr == nil {
				t.Fatal("the host finished a backup the cable was pulled from")
			}
			if got := r.stats.Step(); got != step {
				t.Fatalf("last step %s", got)
			}
			if step == StepFinal || step == StepStatus {
				return
			}
			if _, ok := r.host.files[udid+"/Status.plist"]; ok && step != StepDownloadManifest {
				t.Fatal("an interrupted first backup left a Status.plist")
			}
		})
	}
}

func TestUnplugAfterFiles(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 7, Files: 50, MinSize: 1, MaxSize: 8 << 10})
	hostErr, serveErr := r.exchange(backupReq(true), Faults{UnplugAfterFiles: 5})
	if !errors.Is(serveErr, ErrUnplugged) || hostErr == nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if got := len(r.host.uploaded); got != 5 {
		t.Fatalf("host received %d files, want 5", got)
	}
	if cur := r.stats.Current(); cur.Files != 5 || r.stats.BackupsCompleted.Load() != 0 {
		t.Fatalf("stats %+v", cur)
	}
	// The next backup starts over and completes.
	r.host = newTestHost()
	r.mustBackup(false)
	r.checkTree()
	if !r.stats.Last().Full {
		t.Fatal("backup after an interrupted first one was not full")
	}
}

func TestUnplugAfterBytes(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 8, Files: 20, MinSize: 10 << 10, MaxSize: 10 << 10})
	const limit = 35<<10 + 123 // inside the fourth file
	hostErr, serveErr := r.exchange(backupReq(true), Faults{UnplugAfterBytes: limit})
	if !errors.Is(serveErr, ErrUnplugged) || hostErr == nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if !errors.Is(hostErr, io.ErrUnexpectedEOF) {
		t.Fatalf("host error %v, want a truncated stream", hostErr)
	}
	if r.host.gotBytes > limit || r.host.gotBytes < 30<<10 {
		t.Fatalf("host received %d content bytes, limit %d", r.host.gotBytes, limit)
	}
	if r.stats.Current().Bytes != limit {
		t.Fatalf("device counted %d bytes", r.stats.Current().Bytes)
	}
}

func TestStallAfterBytes(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 9, Files: 5, MinSize: 100 << 10, MaxSize: 100 << 10})
	dev, hc := connPair(t)
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), dev, r.config(Faults{StallAfterBytes: 150 << 10})) }()
	// A host with stall detection: no byte for 300 ms means stalled.
	stalled := make(chan error, 1)
	go func() {
		stalled <- r.host.run(deadlineConn{hc, 300 * time.Millisecond}, backupReq(true))
	}()
	var hostErr error
	select {
	case hostErr = <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the host never noticed the stall")
	}
	if !errors.Is(hostErr, errTimeout) {
		t.Fatalf("host %v, want a timeout", hostErr)
	}
	if r.host.gotBytes != 150<<10 {
		t.Fatalf("host received %d bytes before the stall", r.host.gotBytes)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrStalled) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still stalled after the host hung up")
	}
}

var errTimeout = errors.New("read timed out")

// deadlineConn fails reads that wait longer than idle.
type deadlineConn struct {
	net.Conn
	idle time.Duration
}

func (c deadlineConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Read(p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return n, errTimeout
	}
	return n, err
}

func TestDeviceErrorCodes(t *testing.T) {
	tests := []struct {
		name      string
		faults    Faults
		free      uint64
		wantCode  int64
		wantMsgs  []string // DL messages before the final Response
		minLength time.Duration
	}{
		{"passcode never entered", Faults{PasscodeNeverEntered: true, PasscodeDelay: 150 * time.Millisecond}, 0, CodePasscodeNotEntered, nil, 150 * time.Millisecond},
		{"error code 208", Faults{ErrorCode: 208}, 0, CodePasscodeNotEntered, nil, 0},
		{"not enough space (fault)", Faults{ErrorCode: 105}, 0, CodeNotEnoughSpace,
			[]string{devicelink.MsgDownloadFiles, devicelink.MsgContentsOfDir, devicelink.MsgContentsOfDir, devicelink.MsgGetFreeDiskSpace}, 0},
		{"not enough space (real)", Faults{}, 1000, CodeNotEnoughSpace,
			[]string{devicelink.MsgDownloadFiles, devicelink.MsgContentsOfDir, devicelink.MsgContentsOfDir, devicelink.MsgGetFreeDiskSpace}, 0},
		{"snapshot failed", Faults{ErrorCode: 3}, 0, CodeSnapshotFailed, []string{devicelink.MsgDownloadFiles}, 0},
		{"other code", Faults{ErrorCode: 212}, 0, 212, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 10, Files: 10, MinSize: 1000, MaxSize: 1000})
			if tt.free > 0 {
				r.host.free = tt.free
			}
			start := time.Now()
			hostErr, serveErr := r.exchange(backupReq(true), tt.faults)
			if hostErr != nil || serveErr != nil {
				t.Fatalf("host %v, device %v", hostErr, serveErr)
			}
			if c := r.host.finalCode(); c != tt.wantCode {
				t.Fatalf("ErrorCode %d, want %d (%v)", c, tt.wantCode, r.host.final)
			}
			if desc, _ := r.host.final["ErrorDescription"].(string); desc == "" {
				t.Fatal("no ErrorDescription")
			}
			got := r.host.msgs[:len(r.host.msgs)-1]
			if !slices.Equal(got, tt.wantMsgs) {
				t.Fatalf("messages %v, want %v", got, tt.wantMsgs)
			}
			if time.Since(start) < tt.minLength {
				t.Fatalf("ended after %v, before the delay", time.Since(start))
			}
			if r.stats.BackupsCompleted.Load() != 0 || r.stats.LastSnapshot() != "" {
				t.Fatal("a failed backup counted as completed")
			}
		})
	}
}

func TestFirstMessageDelay(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 11, Files: 3, MaxSize: 100})
	hostErr, serveErr := r.exchange(backupReq(true), Faults{FirstMessageDelay: 300 * time.Millisecond})
	if hostErr != nil || serveErr != nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if d := r.host.firstMsg.Sub(r.host.requested); d < 300*time.Millisecond {
		t.Fatalf("first message after %v", d)
	}
	if r.host.finalCode() != 0 {
		t.Fatalf("final %v", r.host.final)
	}
}

// TestHangupWhileWaiting checks that a device waiting (for a passcode, or
// before its first message) notices at once when the host hangs up or
// disconnects.
func TestHangupWhileWaiting(t *testing.T) {
	for _, disconnect := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "disconnect"}[disconnect], func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 12, Files: 3, MaxSize: 100})
			dev, hc := connPair(t)
			done := make(chan error, 1)
			go func() {
				done <- Serve(context.Background(), dev, r.config(Faults{PasscodeNeverEntered: true, PasscodeDelay: time.Hour}))
			}()
			go func() {
				// Handshake and request, then give up waiting.
				dl := devicelink.NewConn(hc)
				dl.HostVersionExchange()
				dl.SendProcessMessage(map[string]any{"MessageName": "Hello", "SupportedProtocolVersions": []any{2.1}})
				dl.ReadProcessMessage()
				dl.SendProcessMessage(backupReq(true))
				time.Sleep(100 * time.Millisecond)
				if disconnect {
					dl.Disconnect("")
					// Like idevicebackup2, read whatever comes until the
					// device is gone.
					for {
						if _, _, err := dl.ReadMessage(); err != nil {
							break
						}
					}
				}
				hc.Close()
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Serve kept waiting for a host that left")
			}
			if r.stats.BackupsCompleted.Load() != 0 {
				t.Fatal("backup completed")
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 12, Files: 3, MaxSize: 100})
	dev, hc := connPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, dev, r.config(Faults{FirstMessageDelay: time.Hour}))
	}()
	go r.host.run(hc, backupReq(true))
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve ignored the cancelled context")
	}
}

func TestSlowLink(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 13, Files: 4, MinSize: 50 << 10, MaxSize: 50 << 10})
	start := time.Now()
	hostErr, serveErr := r.exchange(backupReq(true), Faults{SlowLinkBytesPerSec: 400 << 10})
	if hostErr != nil || serveErr != nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	// 200 KiB of content at 400 KiB/s takes at least half a second.
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("backup took %v on a 400 KiB/s link", d)
	}
	r.checkTree()
}

func TestRateWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &rateWriter{ctx: context.Background(), w: &buf, rate: 100 << 10, start: time.Now()}
	start := time.Now()
	if _, err := w.Write(make([]byte, 30<<10)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("30 KiB at 100 KiB/s took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = &rateWriter{ctx: ctx, w: &buf, rate: 1, start: time.Now()}
	if _, err := w.Write(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write = %v", err)
	}
}

func TestHostile(t *testing.T) {
	tests := []struct {
		mode Hostile
		// check inspects the host's view; hostErr is what run returned.
		check func(t *testing.T, h *testHost, hostErr error)
	}{
		{HostileDotDot, rejectedPath(udid + "/../../backupd-hostile-dotdot")},
		{HostileAbsolute, rejectedPath("/../tmp/backupd-hostile-absolute")},
		{HostileMkdirEscape, rejectedPath(udid + "/../../backupd-hostile-mkdir")},
		{HostileMoveEscape, rejectedPath(udid + "/../../backupd-hostile-move")},
		{HostileRemoveEscape, rejectedPath(udid + "/../../backupd-hostile-remove")},
		{HostileSymlink, func(t *testing.T, h *testHost, hostErr error) {
			// The path is inside the tree; only the file system can tell
			// it goes through a symlink. This strict host refuses it
			// because Snapshot/link was never created.
			if !slices.Contains(h.uploaded, udid+"/Snapshot/link/escape") {
				t.Fatalf("uploads %v", h.uploaded)
			}
			if h.finalCode() != CodeHostFailure {
				t.Fatalf("final %v", h.final)
			}
		}},
		{HostileLongName, protocolError},
		{HostileHugeFrame, protocolError},
		{HostileMalformedPlist, protocolError},
		{HostileEndlessFile, func(t *testing.T, h *testHost, hostErr error) {
			// The test host has no size limit of its own: the device is
			// stopped by a host that reads a bounded amount, as below.
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 14, Files: 5, MinSize: 10, MaxSize: 1000})
			var hostErr, serveErr error
			if tt.mode == HostileEndlessFile {
				hostErr, serveErr = r.endlessExchange()
			} else {
				hostErr, serveErr = r.exchange(backupReq(true), Faults{Hostile: tt.mode})
			}
			// Serve may end either way here (the host hung up on it);
			// what matters is that it ended and what the host saw.
			t.Logf("Serve = %v", serveErr)
			tt.check(t, r.host, hostErr)
			if r.stats.BackupsCompleted.Load() != 0 {
				t.Fatal("a hostile backup completed")
			}
		})
	}
}

func rejectedPath(p string) func(*testing.T, *testHost, error) {
	return func(t *testing.T, h *testHost, hostErr error) {
		t.Helper()
		if !errors.Is(hostErr, errAbort) || h.rejected != p {
			t.Fatalf("host error %v, rejected %q; want %q refused", hostErr, h.rejected, p)
		}
	}
}

func protocolError(t *testing.T, h *testHost, hostErr error) {
	t.Helper()
	if !errors.Is(hostErr, devicelink.ErrProtocol) {
		t.Fatalf("host error %v, want a protocol error", hostErr)
	}
}

// endlessExchange runs a host that gives up on a file after 64 MiB.
func (r *rig) endlessExchange() (hostErr, serveErr error) {
	dev, hc := connPair(r.t)
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), dev, r.config(Faults{Hostile: HostileEndlessFile})) }()
	hostErr = func() error {
		defer hc.Close()
		dl := devicelink.NewConn(hc)
		if _, err := dl.HostVersionExchange(); err != nil {
			return err
		}
		dl.SendProcessMessage(map[string]any{"MessageName": "Hello", "SupportedProtocolVersions": []any{2.1}})
		dl.ReadProcessMessage()
		dl.SendProcessMessage(backupReq(true))
		for {
			name, msg, err := dl.ReadMessage()
			if err != nil {
				return err
			}
			switch name {
			case devicelink.MsgUploadFiles:
				fr := dl.NewFileReader(devicelink.Upload)
				if _, err := fr.Next(); err != nil {
					return err
				}
				n, err := io.Copy(io.Discard, io.LimitReader(fr, 64<<20))
				if err == nil && n == 64<<20 {
					return errAbort // the device would not stop
				}
				return err
			case devicelink.MsgDownloadFiles:
				paths, _ := devicelink.Strings(msg[1])
				fw := dl.NewFileWriter(devicelink.Download, 0)
				fw.Begin("", paths[0])
				fw.Fail("No such file or directory")
				fw.Finish()
				dl.SendStatusResponse(devicelink.CodeMultiStatus, "Multi status", map[string]any{})
			case devicelink.MsgGetFreeDiskSpace:
				dl.SendStatusResponse(0, "", uint64(1<<40))
			case devicelink.MsgContentsOfDir:
				dl.SendStatusResponse(0, "", map[string]any{}) // nothing there yet
			default:
				dl.SendStatusResponse(0, "", nil)
			}
		}
	}()
	if !errors.Is(hostErr, errAbort) {
		r.t.Fatalf("host %v, want it to give up on the endless file", hostErr)
	}
	select {
	case serveErr = <-done:
	case <-time.After(10 * time.Second):
		r.t.Fatal("Serve kept sending after the host hung up")
	}
	return nil, serveErr
}

func TestHostileTruncatedPlist(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 15, Files: 2})
	dev, hc := connPair(t)
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), dev, r.config(Faults{Hostile: HostileTruncatedPlist})) }()
	hostErr := r.host.run(deadlineConn{hc, 300 * time.Millisecond}, backupReq(true))
	if !errors.Is(hostErr, errTimeout) {
		t.Fatalf("host %v, want a timeout inside the truncated message", hostErr)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not end after the host hung up")
	}
}

// TestSymlinkHostilePathShape pins the path a symlink test plants its
// link under, so tests of the host engine can rely on it.
func TestSymlinkHostilePathShape(t *testing.T) {
	r := newRig(t, fileset.Spec{Seed: 16, Files: 2, MaxSize: 10})
	r.host.dirs[udid+"/Snapshot/link"] = true // as if the link existed
	hostErr, serveErr := r.exchange(backupReq(true), Faults{Hostile: HostileSymlink})
	if hostErr != nil || serveErr != nil {
		t.Fatalf("host %v, device %v", hostErr, serveErr)
	}
	if r.host.uploaded[0] != udid+"/Snapshot/link/escape" {
		t.Fatalf("first upload %s", r.host.uploaded[0])
	}
}

// TestMalformedHostInput feeds the device broken host messages at each
// point it reads: Serve must fail with an error, never panic or hang.
func TestMalformedHostInput(t *testing.T) {
	garbage := append(binary.BigEndian.AppendUint32(nil, 12), "not a plist!"...)
	enc := func(v any) []byte {
		b, err := wire.Encode(v, wire.Binary)
		if err != nil {
			t.Fatal(err)
		}
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	}
	hello := enc([]any{devicelink.MsgProcessMessage, map[string]any{"MessageName": "Hello", "SupportedProtocolVersions": []any{2.1}}})
	versionsOk := enc([]any{devicelink.MsgVersionExchange, devicelink.MsgVersionsOk, 400})
	backup := enc([]any{devicelink.MsgProcessMessage, backupReq(true)})
	tests := []struct {
		name string
		in   [][]byte // each sent after reading one device message
		want error    // nil: any error
	}{
		{"garbage version reply", [][]byte{garbage}, devicelink.ErrProtocol},
		{"huge frame", [][]byte{{0xFF, 0xFF, 0xFF, 0xFF}}, devicelink.ErrProtocol},
		{"versions not ok", [][]byte{enc([]any{devicelink.MsgVersionExchange, "DLVersionsBad", 400})}, devicelink.ErrUnsupportedVersion},
		{"garbage hello", [][]byte{versionsOk, garbage}, devicelink.ErrProtocol},
		{"hello not a dict", [][]byte{versionsOk, enc([]any{devicelink.MsgProcessMessage, "Hello"})}, devicelink.ErrProtocol},
		{"wrong first request", [][]byte{versionsOk, enc([]any{devicelink.MsgProcessMessage, map[string]any{"MessageName": "Backup"}})}, devicelink.ErrProtocol},
		{"no common version", [][]byte{versionsOk, enc([]any{devicelink.MsgProcessMessage, map[string]any{"MessageName": "Hello", "SupportedProtocolVersions": []any{1.0}}})}, nil},
		{"request not a dict", [][]byte{versionsOk, hello, enc([]any{devicelink.MsgProcessMessage, []any{}})}, devicelink.ErrProtocol},
		{"unexpected message", [][]byte{versionsOk, hello, enc([]any{devicelink.MsgPing, "x"})}, devicelink.ErrProtocol},
		{"oversized file name", [][]byte{versionsOk, hello, backup, {0, 0, 0xFF, 0xFF}}, devicelink.ErrProtocol},
		{"truncated file name", [][]byte{versionsOk, hello, backup, {0, 0, 0, 5, 'a', 'b'}}, io.ErrUnexpectedEOF},
		{"unrequested file", [][]byte{versionsOk, hello, backup,
			append(append(binary.BigEndian.AppendUint32(nil, 5), "other"...), 0, 0, 0, 1, 0)}, devicelink.ErrProtocol},
		{"status response of wrong type", [][]byte{versionsOk, hello, backup,
			append([]byte{0, 0, 0, 0}, enc([]any{devicelink.MsgStatusResponse, "zero"})...)}, devicelink.ErrProtocol},
		{"missing status response", [][]byte{versionsOk, hello, backup,
			append([]byte{0, 0, 0, 0}, enc([]any{devicelink.MsgPing, "x"})...)}, devicelink.ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, fileset.Spec{Seed: 17, Files: 2})
			dev, hc := connPair(t)
			done := make(chan error, 1)
			go func() { done <- Serve(context.Background(), dev, r.config(Faults{})) }()
			go func() {
				dl := devicelink.NewConn(hc)
				for _, b := range tt.in {
					if _, _, err := dl.ReadMessage(); err != nil {
						return
					}
					if _, err := hc.Write(b); err != nil {
						return
					}
				}
				// Hang up late, so that only truncated input ends this way.
				time.Sleep(300 * time.Millisecond)
				hc.Close()
			}()
			select {
			case err := <-done:
				if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
					t.Fatalf("Serve = %v, want %v", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve hung on broken host input")
			}
		})
	}
}
