package sim

import (
	"crypto/rsa"
	"crypto/sha1"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/backupd/backupd/proto/backupcrypt"
)

// PairState is how a simulated device stands with the computer when it
// is created.
type PairState int

const (
	// Paired: usbmuxd holds a pair record the device trusts.
	Paired PairState = iota
	// Unpaired: no record; Pair answers PairingDialogResponsePending until
	// the simulated user taps Trust or Don't Trust.
	Unpaired
	// Locked: paired, but locked with a passcode: StartSession and Pair
	// answer PasswordProtected until Unlock.
	Locked
	// Forgotten: usbmuxd holds a record the device no longer trusts
	// (InvalidHostID), as after "Reset Location & Privacy".
	Forgotten
)

var pairStateNames = map[PairState]string{Paired: "paired", Unpaired: "unpaired", Locked: "locked", Forgotten: "forgotten"}

func (p PairState) String() string { return pairStateNames[p] }

// ParsePairState reads the names String gives.
func ParsePairState(s string) (PairState, error) {
	for k, v := range pairStateNames {
		if v == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown pairing state %q (want paired, unpaired, locked or forgotten)", s)
}

// Connection types usbmuxd reports.
const (
	USB     = "USB"
	Network = "Network"
)

// DeviceConfig describes one simulated iPhone. Zero fields get defaults.
type DeviceConfig struct {
	UDID           string
	Name           string
	ProductType    string // e.g. iPhone16,1 (iPhone 15 Pro)
	ProductVersion string // iOS version
	BuildVersion   string
	SerialNumber   string
	ConnType       string // USB or Network
	Speed          uint64 // link speed in bit/s, as usbmuxd's ConnectionSpeed
	LocationID     uint32
	Pairing        PairState

	BatteryLevel int // percent
	Charging     bool
	DiskUsed     uint64 // bytes; the backup size estimate

	Files FileSpec
	// BackupPassword, when set, makes the device encrypt its backups.
	BackupPassword string
	// BackupKeyRounds are the keybag's key derivation round counts; zero
	// means backupsvc.TestParams, which keep tests fast.
	// backupcrypt.DeviceParams are a real iPhone's.
	BackupKeyRounds backupcrypt.Params
	// ServiceTLS names the services (proto/lockdown's names) whose
	// StartService answer carries EnableServiceSSL: the host must then
	// speak TLS on the service's connection from its first byte to its
	// last, with the pair record's certificates, as on the lockdown
	// session. On a Network link every service does, whatever this says.
	ServiceTLS []string
	// TLSMaxVersion caps the TLS version of lockdown sessions and
	// services: tls.VersionTLS12 (the default) or tls.VersionTLS13.
	TLSMaxVersion uint16
	Faults        Faults
}

func (c *DeviceConfig) defaults(n int) {
	if c.UDID == "" {
		sum := sha1.Sum([]byte(fmt.Sprintf("backupd-sim-device-%d", n)))
		c.UDID = fmt.Sprintf("%x", sum)
	}
	if c.Name == "" {
		c.Name = fmt.Sprintf("Simulated iPhone %d", n)
	}
	if c.ProductType == "" {
		c.ProductType = "iPhone14,5"
	}
	if c.ProductVersion == "" {
		c.ProductVersion = "17.5.1"
	}
	if c.BuildVersion == "" {
		c.BuildVersion = "21F90"
	}
	if c.SerialNumber == "" {
		c.SerialNumber = fmt.Sprintf("SIMF%08d", n)
	}
	if c.ConnType == "" {
		c.ConnType = USB
	}
	if c.Speed == 0 {
		c.Speed = 480000000
	}
	if c.LocationID == 0 {
		c.LocationID = uint32(0x01100000 + n)
	}
	if c.BatteryLevel == 0 {
		c.BatteryLevel = 80
	}
	c.Files.defaults(n)
}

// Device is one simulated iPhone. Its methods are safe for concurrent use.
type Device struct {
	sim *Sim
	key *rsa.PrivateKey
	id  int // usbmuxd DeviceID while plugged, else 0

	mu      sync.Mutex
	cfg     DeviceConfig
	trusted map[string][]byte // HostID → the DeviceCertificate it gave us
	escrow  []byte
	locked  bool
	// passcode is closed, and replaced, each time the passcode is
	// entered (Unlock), for a backup's passcode prompt to notice.
	passcode  chan struct{}
	dialog    dialogState
	plugged   bool
	conns     map[net.Conn]struct{}
	services  map[uint16]pendingService
	nextPort  uint16
	flapStop  chan struct{}
	sessionOK int // successful StartSessions, for tests
	mutations int64
	state     deviceState
	// preflightPending: usbmuxd raised the Trust dialog itself.
	preflightPending bool
	// rebootTime is how long a reboot keeps the device away; 0 means
	// defaultRebootTime.
	rebootTime time.Duration
	// serviceTLSSeen is what each service's last TLS connection
	// showed, for tests.
	serviceTLSSeen map[string]TLSConn
}

type dialogState int

const (
	dialogNone dialogState = iota
	dialogPending
	dialogAccepted
	dialogDenied
)

type pendingService struct {
	name    string
	handler func(net.Conn)
	expires time.Time
}

// UDID returns the device's UDID.
func (d *Device) UDID() string { return d.cfg.UDID }

// Config returns a copy of the device's current configuration.
func (d *Device) Config() DeviceConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// SetFaults replaces the device's faults; they apply from the next
// connection on.
func (d *Device) SetFaults(f Faults) {
	d.mu.Lock()
	d.cfg.Faults = f
	d.mu.Unlock()
}

// SetBattery changes the battery level and charging state.
func (d *Device) SetBattery(level int, charging bool) {
	d.mu.Lock()
	d.cfg.BatteryLevel, d.cfg.Charging = level, charging
	d.mu.Unlock()
}

// Plug attaches the device: usbmuxd lists it and pushes Attached.
func (d *Device) Plug() { d.sim.plug(d) }

// Unplug detaches the device: usbmuxd pushes Detached and every
// connection to the device drops, as when the cable is pulled.
func (d *Device) Unplug() { d.sim.unplug(d) }

// Plugged reports whether the device is attached.
func (d *Device) Plugged() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plugged
}

// TapTrust is the simulated user tapping Trust: a pending Pair succeeds on
// the host's next try.
func (d *Device) TapTrust() {
	d.mu.Lock()
	d.dialog = dialogAccepted
	preflight := d.preflightPending && d.plugged
	d.preflightPending = false
	d.mu.Unlock()
	if preflight {
		d.sim.preflightPair(d)
	}
}

// TapDontTrust is the simulated user tapping Don't Trust.
func (d *Device) TapDontTrust() {
	d.mu.Lock()
	d.dialog = dialogDenied
	d.mu.Unlock()
}

// Lock locks the device with its passcode.
func (d *Device) Lock() {
	d.mu.Lock()
	d.locked = true
	d.mu.Unlock()
}

// Unlock enters the passcode. It also answers a backup's passcode
// prompt.
func (d *Device) Unlock() {
	d.mu.Lock()
	d.locked = false
	if d.passcode != nil {
		close(d.passcode)
		d.passcode = nil
	}
	d.mu.Unlock()
}

// passcodeEntered returns a channel closed by the next Unlock.
func (d *Device) passcodeEntered() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.passcode == nil {
		d.passcode = make(chan struct{})
	}
	return d.passcode
}

// Forget makes the device forget every computer it trusted, so the pair
// record usbmuxd holds gets InvalidHostID.
func (d *Device) Forget() {
	d.mu.Lock()
	d.trusted = map[string][]byte{}
	d.mu.Unlock()
}

// Sessions returns how many lockdown sessions the device has started.
func (d *Device) Sessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessionOK
}

// Flap pulls and reinserts the cable cycles times, period apart, as a bad
// cable or hub does, and leaves the device plugged. It returns at once.
func (d *Device) Flap(cycles int, period time.Duration) {
	d.mu.Lock()
	if d.flapStop != nil {
		close(d.flapStop)
	}
	stop := make(chan struct{})
	d.flapStop = stop
	d.mu.Unlock()
	go func() {
		t := time.NewTicker(period / 2)
		defer t.Stop()
		for i := 0; i < cycles*2; i++ {
			select {
			case <-stop:
				return
			case <-d.sim.done:
				return
			case <-t.C:
			}
			if i%2 == 0 {
				d.Unplug()
			} else {
				d.Plug()
			}
		}
	}()
}

func (d *Device) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.plugged {
		return false
	}
	d.conns[c] = struct{}{}
	return true
}

func (d *Device) untrack(c net.Conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
}

// registerService reserves a port for one connection to a started service.
func (d *Device) registerService(name string, h func(net.Conn)) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for p, s := range d.services {
		if now.After(s.expires) {
			delete(d.services, p)
		}
	}
	d.nextPort++
	if d.nextPort < 49152 {
		d.nextPort = 49152
	}
	p := d.nextPort
	d.services[p] = pendingService{name: name, handler: h, expires: now.Add(time.Minute)}
	return p
}

func (d *Device) takeService(port uint16) (pendingService, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.services[port]
	delete(d.services, port)
	return s, ok
}

// Mutate changes share of the device's files, as a day of use does, and
// returns how many changed.
func (d *Device) Mutate(share float64) int { return d.mutate(share) }
