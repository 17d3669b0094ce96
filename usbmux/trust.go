package usbmux

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
)

// Trust is how a device stands with this computer.
type Trust string

// The verdicts of CheckTrust. Each but Trusted is also a cause code.
const (
	// Trusted: a session starts with the pair record usbmuxd holds.
	Trusted Trust = "trusted"
	// TrustPending: the Trust prompt is showing and nobody answered yet.
	TrustPending Trust = "trust_pending"
	// TrustDenied: someone tapped Don't Trust.
	TrustDenied Trust = "trust_denied"
	// DeviceLocked: the device will not pair or start a session until
	// its passcode is entered.
	DeviceLocked Trust = "device_locked"
	// PairingInvalid: usbmuxd holds a record the device no longer
	// accepts, or one that is damaged.
	PairingInvalid Trust = "pairing_invalid"
	// NotPaired: usbmuxd holds no record and pairing was not asked for.
	NotPaired Trust = "not_paired"
)

func (t Trust) String() string { return string(t) }

// Cause returns the cause code of a verdict that stops a backup, and
// cause.None for Trusted.
func (t Trust) Cause() cause.Code {
	if t == Trusted {
		return cause.None
	}
	return cause.Code(t)
}

// TrustOptions tunes CheckTrust.
type TrustOptions struct {
	// StartPairing pairs when there is no usable pair record (none, or
	// one the device no longer accepts): the first call raises the Trust
	// prompt on the phone and answers TrustPending; a later call, once the
	// user tapped Trust, finishes the pairing, saves the record in usbmuxd
	// and answers Trusted. Without it, CheckTrust never raises a prompt.
	StartPairing bool
}

// CheckTrust tells how dev stands with this computer: one of the Trust
// verdicts, with a nil error. An error means no verdict could be reached
// (usbmuxd down, the device gone, an answer we do not understand) and
// carries its cause.
func (c *Client) CheckTrust(ctx context.Context, dev Device, opts TrustOptions) (Trust, error) {
	rec, err := c.ReadPairRecord(ctx, dev.UDID)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoPairRecord):
		if !opts.StartPairing {
			return NotPaired, nil
		}
		return c.pair(ctx, dev)
	case cause.Of(err) == cause.PairingInvalid:
		c.log.Debug("pair record unusable", "udid", dev.UDID, "err", err)
		if !opts.StartPairing {
			return PairingInvalid, nil
		}
		return c.pair(ctx, dev)
	default:
		return "", err
	}
	v, err := c.trySession(ctx, dev, rec)
	if err != nil {
		return "", err
	}
	if v == PairingInvalid && opts.StartPairing {
		return c.pair(ctx, dev)
	}
	if v == Trusted {
		c.dropPending(dev.UDID)
	}
	return v, nil
}

// trySession starts and stops a session: the one test of trust that
// works on every iOS (ValidatePair is refused by some newer ones).
func (c *Client) trySession(ctx context.Context, dev Device, rec *PairRecord) (Trust, error) {
	l, err := c.dialLockdownChecked(ctx, dev)
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, err = l.StartSession(ctx, rec)
	if err == nil {
		if err := l.StopSession(ctx); err != nil {
			c.log.Debug("stop session after trust check", "udid", dev.UDID, "err", err)
		}
		return Trusted, nil
	}
	if v, ok := verdictOf(err); ok {
		c.log.Debug("trust check", "udid", dev.UDID, "verdict", v, "err", err)
		return v, nil
	}
	return "", fmt.Errorf("trust check on %s: %w", dev.UDID, err)
}

// dialLockdownChecked connects to lockdownd and makes sure it is lockdownd
// that answers, as libimobiledevice does first.
func (c *Client) dialLockdownChecked(ctx context.Context, dev Device) (*Lockdown, error) {
	l, err := c.DialLockdown(ctx, dev)
	if err != nil {
		return nil, err
	}
	typ, err := l.QueryType(ctx)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("lockdown on %s: %w", dev.UDID, err)
	}
	if typ != lockdown.Type {
		l.Close()
		return nil, protocolError("lockdown on %s: port %d answers as %.64q", dev.UDID, lockdown.Port, typ)
	}
	return l, nil
}

// verdictOf reads a trust verdict out of a lockdown refusal.
func verdictOf(err error) (Trust, bool) {
	switch {
	case errors.Is(err, ErrPasswordProtected):
		return DeviceLocked, true
	case errors.Is(err, ErrUserDeniedPairing):
		return TrustDenied, true
	case errors.Is(err, ErrPairingDialogResponsePending):
		return TrustPending, true
	case errors.Is(err, ErrInvalidHostID), errors.Is(err, ErrInvalidPairRecord):
		return PairingInvalid, true
	case cause.Of(err) == cause.PairingInvalid:
		// The device showed another certificate, or refused ours in TLS.
		return PairingInvalid, true
	}
	return "", false
}

// pendingPair is a pairing the device has not answered yet.
type pendingPair struct {
	devicePublicKey []byte
	rec             *PairRecord
}

func (c *Client) dropPending(udid string) {
	c.mu.Lock()
	delete(c.pending, udid)
	c.mu.Unlock()
}

// pendingFor returns the certificates to pair with: those of the pairing
// already waiting for this device, if it is the same device key and
// usbmuxd BUID, else new ones.
func (c *Client) pendingFor(udid string, pubPEM []byte, buid, wifiMAC string) (*PairRecord, error) {
	c.mu.Lock()
	p := c.pending[udid]
	c.mu.Unlock()
	if p != nil && bytes.Equal(p.devicePublicKey, pubPEM) && p.rec.SystemBUID == buid {
		return p.rec, nil
	}
	pub, err := parseDevicePublicKey(pubPEM)
	if err != nil {
		return nil, err
	}
	rec, err := newPairRecord(pub, buid, wifiMAC)
	if err != nil {
		return nil, fmt.Errorf("make pairing certificates: %w", err)
	}
	c.mu.Lock()
	c.pending[udid] = &pendingPair{devicePublicKey: bytes.Clone(pubPEM), rec: rec}
	c.mu.Unlock()
	return rec, nil
}

// pair runs the host side of pairing: make certificates for the device's
// key, send Pair, and on success save the record with the device's escrow
// bag in usbmuxd.
//
// go-ios's ios.Pair does not fit: it dials usbmuxd at the address in the
// environment, turns the device's answers into plain strings (so
// PairingDialogResponsePending and UserDeniedPairing cannot be told
// apart from a failure), makes new certificates on every attempt, and its
// certificate code is unexported. What it does is short enough to write
// here against our own usbmuxd and lockdown clients.
func (c *Client) pair(ctx context.Context, dev Device) (Trust, error) {
	l, err := c.dialLockdownChecked(ctx, dev)
	if err != nil {
		return "", err
	}
	defer l.Close()
	v, err := l.GetValue(ctx, "", "DevicePublicKey")
	if err != nil {
		return "", fmt.Errorf("pair with %s: %w", dev.UDID, err)
	}
	pubPEM, ok := v.([]byte)
	if !ok {
		return "", protocolError("pair with %s: DevicePublicKey is a %T, want data", dev.UDID, v)
	}
	// The Wi-Fi address goes in the record as libimobiledevice keeps it;
	// a device that does not give it still pairs.
	var wifiMAC string
	if v, err := l.GetValue(ctx, "", "WiFiAddress"); err == nil {
		wifiMAC, _ = v.(string)
	} else if !errors.As(err, new(*LockdownError)) {
		return "", fmt.Errorf("pair with %s: %w", dev.UDID, err)
	}
	buid, err := c.ReadBUID(ctx)
	if err != nil {
		return "", fmt.Errorf("pair with %s: %w", dev.UDID, err)
	}
	rec, err := c.pendingFor(dev.UDID, pubPEM, buid, wifiMAC)
	if err != nil {
		return "", fmt.Errorf("pair with %s: %w", dev.UDID, err)
	}
	escrow, err := l.Pair(ctx, rec)
	if err != nil {
		verdict, ok := verdictOf(err)
		if !ok {
			return "", fmt.Errorf("pair with %s: %w", dev.UDID, err)
		}
		if verdict == TrustDenied {
			// The next prompt is a new question; start it afresh.
			c.dropPending(dev.UDID)
		}
		c.log.Debug("pairing", "udid", dev.UDID, "verdict", verdict)
		return verdict, nil
	}
	if len(escrow) == 0 {
		// libimobiledevice saves such a record too; sessions work with it
		// but mobilebackup2 will not start until the phone is paired again
		// while unlocked.
		c.log.Warn("device paired without an escrow bag", "udid", dev.UDID)
	}
	saved := *rec
	saved.EscrowBag = escrow
	if err := c.SavePairRecord(ctx, dev.UDID, dev.DeviceID, &saved); err != nil {
		return "", fmt.Errorf("pair with %s: %w", dev.UDID, err)
	}
	c.dropPending(dev.UDID)
	return Trusted, nil
}
