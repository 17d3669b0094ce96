// Package sim is a simulated iPhone behind a simulated usbmuxd. It speaks
// the real wire protocols (usbmux, lockdownd with TLS, notification_proxy,
// AFC, installation_proxy, springboardservices, mobilebackup2) well enough
// that Debian's libimobiledevice tools back it up, so backupd's tests,
// benchmarks and demo run without a phone. Faults are injected per device.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/backupd/backupd/proto/wire"
)

// Options configures a simulator.
type Options struct {
	// Socket is the unix socket path usbmuxd listens on.
	Socket string
	// Logger receives protocol traces; nil discards them.
	Logger *slog.Logger
	// Preflight makes usbmuxd pair by itself, as Linux's usbmuxd does: a
	// device plugged in without a pair record it trusts shows the Trust
	// dialog at once, and when the user taps Trust usbmuxd saves a pair
	// record of its own and pushes Paired. Without it (as on macOS) the
	// dialog appears only when a host sends Pair.
	Preflight bool
}

// Sim is a simulated usbmuxd with the devices behind it.
type Sim struct {
	opts Options
	log  *slog.Logger
	ln   net.Listener
	buid string
	done chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	devices   []*Device
	nextID    int
	records   map[string][]byte // UDID → pair record (binary plist), as usbmuxd keeps them
	listeners map[*muxClient]struct{}
	clients   map[net.Conn]struct{}
	odd       []oddEntry // listed beside the phones (AddOddEntry)
	closed    bool
}

// New makes a simulator; Start makes it listen.
func New(opts Options) *Sim {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sim{
		opts:      opts,
		log:       log,
		buid:      newUUID(),
		done:      make(chan struct{}),
		records:   map[string][]byte{},
		listeners: map[*muxClient]struct{}{},
		clients:   map[net.Conn]struct{}{},
	}
}

// Start listens on the socket and serves usbmux clients until Close.
func (s *Sim) Start() error {
	if s.opts.Socket == "" {
		return errors.New("sim: no socket path")
	}
	_ = os.Remove(s.opts.Socket)
	ln, err := net.Listen("unix", s.opts.Socket)
	if err != nil {
		return fmt.Errorf("sim: listen: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return nil
}

// Socket returns the usbmuxd socket path.
func (s *Sim) Socket() string { return s.opts.Socket }

// Address is the socket in USBMUXD_SOCKET_ADDRESS form.
func (s *Sim) Address() string { return "UNIX:" + s.opts.Socket }

// BUID is the host's system BUID as usbmuxd reports it.
func (s *Sim) BUID() string { return s.buid }

// Close stops serving and drops every connection.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for c := range s.clients {
		c.Close()
	}
	devs := append([]*Device(nil), s.devices...)
	s.mu.Unlock()
	for _, d := range devs {
		d.dropConns()
	}
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	s.wg.Wait()
	_ = os.Remove(s.opts.Socket)
	return err
}

func (s *Sim) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.clients[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveMux(c)
			s.mu.Lock()
			delete(s.clients, c)
			s.mu.Unlock()
		}()
	}
}

// AddDevice creates a device, unplugged. Its keys and, for a device that
// starts paired, its pair record are made here.
func (s *Sim) AddDevice(cfg DeviceConfig) (*Device, error) {
	s.mu.Lock()
	n := len(s.devices) + 1
	s.mu.Unlock()
	cfg.defaults(n)
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	d := &Device{
		sim:      s,
		key:      key,
		cfg:      cfg,
		trusted:  map[string][]byte{},
		escrow:   []byte("escrow-" + cfg.UDID),
		conns:    map[net.Conn]struct{}{},
		services: map[uint16]pendingService{},
	}
	if err := d.initServices(); err != nil {
		return nil, err
	}
	switch cfg.Pairing {
	case Paired, Locked, Forgotten:
		rec, err := newPairRecord(&key.PublicKey, newUUID(), s.buid, d.escrow)
		if err != nil {
			return nil, err
		}
		raw, err := rec.Marshal()
		if err != nil {
			return nil, err
		}
		if cfg.Pairing != Forgotten {
			d.trusted[rec.HostID] = rec.DeviceCertificate
		}
		d.locked = cfg.Pairing == Locked
		s.mu.Lock()
		s.records[cfg.UDID] = raw
		s.mu.Unlock()
	}
	s.mu.Lock()
	for _, o := range s.devices {
		if o.cfg.UDID == cfg.UDID {
			s.mu.Unlock()
			return nil, fmt.Errorf("sim: duplicate UDID %s", cfg.UDID)
		}
	}
	s.devices = append(s.devices, d)
	s.mu.Unlock()
	return d, nil
}

// Device returns the device with that UDID.
func (s *Sim) Device(udid string) (*Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.cfg.UDID == udid {
			return d, true
		}
	}
	return nil, false
}

// Devices returns every device, plugged or not.
func (s *Sim) Devices() []*Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Device(nil), s.devices...)
}

// PairRecord returns the pair record usbmuxd holds for udid.
func (s *Sim) PairRecord(udid string) (PairRecord, bool) {
	s.mu.Lock()
	raw, ok := s.records[udid]
	s.mu.Unlock()
	if !ok {
		return PairRecord{}, false
	}
	var rec PairRecord
	if err := wire.Decode(raw, &rec); err != nil {
		return PairRecord{}, false
	}
	return rec, true
}

func (s *Sim) plug(d *Device) {
	s.mu.Lock()
	d.mu.Lock()
	if d.plugged || s.closed {
		d.mu.Unlock()
		s.mu.Unlock()
		return
	}
	s.nextID++
	d.id = s.nextID
	d.plugged = true
	if d.dialog == dialogDenied {
		d.dialog = dialogNone
	}
	if s.opts.Preflight && !d.trustsRecordLocked(s.records[d.cfg.UDID]) && d.dialog == dialogNone {
		d.dialog = dialogPending
		d.preflightPending = true
	}
	d.mu.Unlock()
	ls := s.listenerList()
	s.mu.Unlock()
	for _, l := range ls {
		l.pushAttached(d)
	}
}

// trustsRecordLocked reports whether the device trusts the HostID of a
// stored pair record. d.mu must be held.
func (d *Device) trustsRecordLocked(raw []byte) bool {
	if raw == nil {
		return false
	}
	var rec PairRecord
	if err := wire.Decode(raw, &rec); err != nil {
		return false
	}
	_, ok := d.trusted[rec.HostID]
	return ok
}

// preflightPair is usbmuxd finishing the pairing it started at plug-in,
// once the user tapped Trust.
func (s *Sim) preflightPair(d *Device) {
	rec, err := newPairRecord(&d.key.PublicKey, newUUID(), s.buid, d.escrow)
	if err != nil {
		s.log.Debug("preflight: pair record", "err", err)
		return
	}
	raw, err := rec.Marshal()
	if err != nil {
		return
	}
	s.mu.Lock()
	d.mu.Lock()
	d.trusted[rec.HostID] = rec.DeviceCertificate
	d.dialog = dialogNone
	id, plugged := d.id, d.plugged
	s.records[d.cfg.UDID] = raw
	ls := s.listenerList()
	d.mu.Unlock()
	s.mu.Unlock()
	if plugged {
		for _, l := range ls {
			l.pushPaired(id)
		}
	}
}

func (s *Sim) unplug(d *Device) {
	s.mu.Lock()
	d.mu.Lock()
	if !d.plugged {
		d.mu.Unlock()
		s.mu.Unlock()
		return
	}
	id := d.id
	d.plugged = false
	d.id = 0
	// A fresh plug shows the Trust dialog again.
	if d.dialog == dialogPending || d.dialog == dialogDenied {
		d.dialog = dialogNone
	}
	d.mu.Unlock()
	ls := s.listenerList()
	s.mu.Unlock()
	d.dropConns()
	for _, l := range ls {
		l.pushDetached(id)
	}
}

func (d *Device) dropConns() {
	d.mu.Lock()
	cs := make([]net.Conn, 0, len(d.conns))
	for c := range d.conns {
		cs = append(cs, c)
	}
	d.conns = map[net.Conn]struct{}{}
	d.services = map[uint16]pendingService{}
	d.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// listenerList must be called with s.mu held.
func (s *Sim) listenerList() []*muxClient {
	ls := make([]*muxClient, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	return ls
}

func (s *Sim) pluggedDevices() []*Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Device
	for _, d := range s.devices {
		if d.Plugged() {
			out = append(out, d)
		}
	}
	return out
}

func (s *Sim) deviceByID(id int) (*Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		d.mu.Lock()
		ok := d.plugged && d.id == id
		d.mu.Unlock()
		if ok {
			return d, true
		}
	}
	return nil, false
}

// ctx returns a context cancelled when the simulator closes.
func (s *Sim) ctx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
