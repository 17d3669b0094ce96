package backup

import (
	"context"
	"errors"
	"fmt"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/usbmux"
)

// SetPassword turns backup encryption on, off, or changes its password,
// with mobilebackup2's ChangePassword request:
//
//	SetPassword(ctx, dev, "", "new")     encryption on
//	SetPassword(ctx, dev, "old", "")     encryption off
//	SetPassword(ctx, dev, "old", "new")  change the password
//
// The device answers in its final Response; a wrong old password is cause
// wrong_backup_password (ErrorCode 207). The phone may first ask for its
// passcode, so the answer can take up to Options.FirstMessageTimeout.
func (e *Engine) SetPassword(ctx context.Context, dev usbmux.Device, oldPassword, newPassword string) (err error) {
	defer func() {
		if err != nil {
			err = classify(err)
		}
	}()
	if oldPassword == "" && newPassword == "" {
		return errors.New("backup: SetPassword needs the old password, the new one, or both")
	}
	conn, err := e.mux.ConnectService(ctx, dev, lockdown.ServiceMobileBackup2, true)
	if err != nil {
		return fmt.Errorf("mobilebackup2: %w", err)
	}
	defer conn.Close()
	s := newSession(conn, e.opts, nil, "", nil)
	defer s.watch(ctx)()
	if err := s.handshake(); err != nil {
		return err
	}
	req := map[string]any{"MessageName": "ChangePassword", "TargetIdentifier": dev.UDID}
	if oldPassword != "" {
		req["OldPassword"] = oldPassword
	}
	if newPassword != "" {
		req["NewPassword"] = newPassword
	}
	final, err := s.request(req)
	s.disconnect()
	if err != nil {
		return err
	}
	if final.Code != 0 {
		return cause.FromDevice(final.Code, final.Text)
	}
	return nil
}
