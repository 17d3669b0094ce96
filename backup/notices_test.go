package backup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/sim"
)

// TestMessagesWithoutAnswer (issue #13, item 8): a phone that says
// DLMessageDeviceReady again and sends a message no host knows in the
// middle of a backup expects no answer to either; the backup finishes
// and commits, as it does with libimobiledevice.
func TestMessagesWithoutAnswer(t *testing.T) {
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30},
		Faults: sim.Faults{RepeatDeviceReady: true, UnknownMessage: true}}, testOptions(t))
	r.mustBackup(Target{})
	checkMatchesDevice(t, r.latest(), r.dev)
}

// TestUnknownMessageNotAnswered: the host answers nothing to a message it
// does not know, so the status the phone reads next is the answer to its
// next request.
func TestUnknownMessageNotAnswered(t *testing.T) {
	for _, name := range []string{devicelink.MsgDeviceReady, "DLMessageSomethingNew"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Options{})
			go func() {
				h.dev.WriteMessage(name, map[string]any{})
				h.dev.WriteMessage(devicelink.MsgCreateDirectory, "U/made")
			}()
			hostErr := make(chan error, 1)
			go func() {
				for range 2 {
					n, m, err := h.s.dl.ReadMessage()
					if err == nil {
						_, err = h.s.dispatch(n, m)
					}
					if err != nil {
						hostErr <- err
						return
					}
				}
				hostErr <- nil
			}()
			h.devC.SetReadDeadline(time.Now().Add(5 * time.Second))
			st, err := h.dev.ReadStatusResponse()
			if err != nil || st.Code != 0 {
				t.Fatalf("the first status the phone reads: %+v, %v; want CreateDirectory's, 0", st, err)
			}
			if err := <-hostErr; err != nil {
				t.Fatalf("host: %v", err)
			}
			if fi, err := os.Stat(filepath.Join(h.stage, "U", "made")); err != nil || !fi.IsDir() {
				t.Fatalf("U/made: %v, want a directory", err)
			}
		})
	}
}
