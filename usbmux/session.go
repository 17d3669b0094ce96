package usbmux

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/backupd/backupd/cause"
)

// Session is a lockdown session on a device, started with the pair record
// usbmuxd holds for it.
type Session struct {
	c      *Client
	dev    Device
	rec    *PairRecord
	lock   *Lockdown
	closed bool
}

// OpenSession reads dev's pair record, connects to lockdownd and starts a
// TLS session pinned to the record's device certificate. Failures carry
// their cause: not_paired without a record, pairing_invalid, device_locked.
func (c *Client) OpenSession(ctx context.Context, dev Device) (*Session, error) {
	rec, err := c.ReadPairRecord(ctx, dev.UDID)
	if err != nil {
		return nil, err
	}
	l, err := c.DialLockdown(ctx, dev)
	if err != nil {
		return nil, err
	}
	if _, err := l.StartSession(ctx, rec); err != nil {
		l.Close()
		return nil, fmt.Errorf("lockdown session on %s: %w", dev.UDID, err)
	}
	return &Session{c: c, dev: dev, rec: rec, lock: l}, nil
}

// Lockdown returns the session's lockdown client, for GetValue and the
// like.
func (s *Session) Lockdown() *Lockdown { return s.lock }

// PairRecord returns the record the session was started with.
func (s *Session) PairRecord() *PairRecord { return s.rec }

// StartService starts a service, sending the pair record's escrow bag
// when escrow is set (mobilebackup2 needs it).
func (s *Session) StartService(ctx context.Context, name string, escrow bool) (Service, error) {
	var bag []byte
	if escrow {
		bag = s.rec.EscrowBag
		if len(bag) == 0 {
			// Sending no bag gets EscrowLocked from the device, which
			// reads as a locked phone; say what is really missing.
			return Service{}, cause.Errorf(cause.PairingInvalid,
				"start %s on %s: the pair record has no escrow bag (it was made while the phone was locked): pair again", name, s.dev.UDID)
		}
	}
	return s.lock.StartService(ctx, name, bag)
}

// DialService connects to a started service, in TLS pinned to the device
// certificate when the service asked for it.
func (s *Session) DialService(ctx context.Context, svc Service) (net.Conn, error) {
	conn, err := s.c.Connect(ctx, s.dev.DeviceID, svc.Port)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", svc.Name, err)
	}
	if !svc.SSL {
		return conn, nil
	}
	cfg, err := s.rec.pinnedTLSConfig()
	if err != nil {
		conn.Close()
		return nil, err
	}
	t := tls.Client(conn, cfg)
	release := bindDeadline(ctx, conn, s.c.cfg.Timeout)
	err = t.HandshakeContext(ctx)
	release()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("service %s: %w", svc.Name, tlsFailure(ctx, err))
	}
	return t, nil
}

// Close stops the session and closes the lockdown connection.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lock.Close()
}

// ConnectService is the whole dance to reach a service: session, start
// the service (with the escrow bag when escrow is set), stop the session,
// connect. The connection is the caller's to close.
func (c *Client) ConnectService(ctx context.Context, dev Device, name string, escrow bool) (net.Conn, error) {
	s, err := c.OpenSession(ctx, dev)
	if err != nil {
		return nil, err
	}
	svc, err := s.StartService(ctx, name, escrow)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("start %s on %s: %w", name, dev.UDID, err)
	}
	// The port stays reserved after lockdown's connection ends, as
	// libimobiledevice relies on too.
	if err := s.Close(); err != nil {
		c.log.Debug("lockdown close after StartService", "udid", dev.UDID, "err", err)
	}
	return s.DialService(ctx, svc)
}
