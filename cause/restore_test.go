package cause

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Each cause a restore adds: how it is reached, what it says, and that
// it wins over what follows from it.
func TestRestoreCauses(t *testing.T) {
	tests := []struct {
		code       Code
		deviceCode int // the restore's final ErrorCode that means it, 0 if none
		says       string
		beats      Code // a cause that follows from it in the same error
	}{
		{FindMyEnabled, 211, "Find My", Disconnected},
		{RestoreNeedsReboot, 102, "Restart the iPhone", Disconnected},
		{IOSTooOld, 0, "Software Update", ProtocolError},
		{BackupIncomplete, 205, "backupd versions", VerifyFailed},
	}
	for _, tt := range tests {
		t.Run(string(tt.code), func(t *testing.T) {
			in := Lookup(tt.code)
			if in.Code != tt.code || in.Summary == Lookup(Unknown).Summary || !strings.Contains(in.Summary+in.Fix, tt.says) {
				t.Errorf("Lookup: %+v, want its own sentences naming %q", in, tt.says)
			}
			if tt.deviceCode != 0 {
				if got := FromRestoreDeviceError(tt.deviceCode); got != tt.code {
					t.Errorf("FromRestoreDeviceError(%d) = %s", tt.deviceCode, got)
				}
				e := FromRestoreDevice(tt.deviceCode, "device words")
				if e.Code != tt.code || e.DeviceErrorCode != tt.deviceCode || e.DeviceErrorText != "device words" {
					t.Errorf("FromRestoreDevice = %+v", e)
				}
			}
			err := errors.Join(fmt.Errorf("restore: %w", New(tt.code, nil)), New(tt.beats, errors.New("then")))
			if got := Of(err); got != tt.code {
				t.Errorf("Of(%s with %s) = %s", tt.code, tt.beats, got)
			}
		})
	}
	// In a backup, the codes keep their backup meaning.
	if got := FromDeviceError(205); got != CorruptBackup {
		t.Errorf("FromDeviceError(205) = %s", got)
	}
	if got := FromRestoreDeviceError(207); got != WrongBackupPassword {
		t.Errorf("FromRestoreDeviceError(207) = %s", got)
	}
}
