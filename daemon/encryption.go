package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/usbmux"
)

// passwordSetter is the part of *backup.Engine that changes a device's
// backup password; a test's stand-in Backuper may lack it.
type passwordSetter interface {
	SetPassword(ctx context.Context, dev usbmux.Device, oldPassword, newPassword string) error
}

// setEncryption turns the device's backup encryption on (password is the
// new one) or off (password is the current one). It refuses while the
// device's actor is checking or backing up, since the phone serves one
// mobilebackup2 request at a time and a backup would fail or block. The
// password is never logged.
//
// The phone's own refusal (a wrong password, ErrorCode 207) is a result
// with a cause, not an error: the request was carried out.
func (d *Daemon) setEncryption(ctx context.Context, udid string, enable bool, password string) (api.EncryptionResponse, error) {
	resp := api.EncryptionResponse{UDID: udid}
	if password == "" {
		return resp, &api.Error{Code: api.ErrBadRequest, Message: "the password is empty"}
	}
	a, err := d.requestActor(udid)
	if err != nil {
		return resp, err
	}
	v := a.snapshot()
	resp.Name = v.name
	switch {
	case !v.connected:
		return resp, &api.Error{Code: api.ErrNotConnected, Message: errNotConnected.Error()}
	case v.phase != phaseIdle:
		return resp, &api.Error{Code: api.ErrBusy, Message: encryptionBusy}
	}
	// Hold the phone's mobilebackup2 for the whole change, so that a
	// backup due meanwhile waits instead of colliding with it.
	select {
	case a.mb2 <- struct{}{}:
	default:
		return resp, &api.Error{Code: api.ErrBusy, Message: encryptionBusy}
	}
	defer func() { <-a.mb2 }()
	ps, ok := d.eng.(passwordSetter)
	if !ok {
		return resp, errors.New("this daemon's backup engine cannot change the backup password")
	}
	dev, ok := d.findDevice(ctx, udid, usbmux.ConnUSB)
	if !ok {
		if dev, ok = d.findDevice(ctx, udid, usbmux.ConnNetwork); !ok {
			return resp, &api.Error{Code: api.ErrNotConnected, Message: errNotConnected.Error()}
		}
	}
	// The phone's current setting decides what the request means: it
	// answers "on" while already on as a wrong password, which would
	// mislead.
	facts, err := d.mux.Facts(ctx, dev)
	if err != nil {
		return d.deviceRefused(resp, err), nil
	}
	if facts.Name != "" {
		resp.Name = facts.Name
	}
	if already, ok := alreadySet(resp, enable, facts.WillEncrypt); ok {
		return already, nil
	}
	oldPw, newPw := "", password
	if !enable {
		oldPw, newPw = password, ""
	}
	d.log.Info().Str("udid", udid).Bool("enable", enable).Msg("changing backup encryption on request; the iPhone may ask for its passcode")
	if err := ps.SetPassword(ctx, dev, oldPw, newPw); err != nil {
		if ctx.Err() != nil {
			return resp, fmt.Errorf("change backup encryption: %w", ctx.Err())
		}
		d.log.Warn().Str("udid", udid).Bool("enable", enable).Str("cause", string(cause.Of(err))).Err(err).Msg("the iPhone refused to change backup encryption")
		resp.Encrypted = facts.WillEncrypt
		return d.deviceRefused(resp, err), nil
	}
	resp.OK, resp.Encrypted = true, enable
	a.mu.Lock()
	a.v.willEncrypt = enable
	a.mu.Unlock()
	d.log.Info().Str("udid", udid).Bool("encrypted", enable).Msg("backup encryption changed")
	return resp, nil
}

// encryptionBusy is the answer to a change asked for while the phone's
// mobilebackup2 is taken.
const encryptionBusy = "a backup of this iPhone is under way or about to start; try again when it has ended"

// alreadySet answers a request the phone's current setting (encrypted)
// already meets; ok is false when there is something to change.
func alreadySet(resp api.EncryptionResponse, enable, encrypted bool) (api.EncryptionResponse, bool) {
	switch {
	case enable && encrypted:
		resp.Encrypted = true
		resp.Message = "backup encryption is already on; to change its password, turn it off with the current password first"
		return resp, true
	case !enable && !encrypted:
		resp.OK = true
		resp.Message = "backup encryption was already off"
		return resp, true
	}
	return resp, false
}

// deviceRefused fills resp with the cause of err.
func (d *Daemon) deviceRefused(resp api.EncryptionResponse, err error) api.EncryptionResponse {
	code := cause.Of(err)
	in := cause.Lookup(code)
	resp.OK, resp.Cause, resp.Summary, resp.Fix, resp.Message = false, code, in.Summary, in.Fix, err.Error()
	return resp
}
