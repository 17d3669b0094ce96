package sim

import (
	"fmt"
	"net"
	"sync"

	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
)

// usbmux Result numbers.
const (
	resultOK         = 0
	resultBadCommand = 1
	resultBadDevice  = 2
	resultRefused    = 3
	resultInvalid    = 22 // EINVAL, for a SavePairRecord without data
)

// muxClient is one connection to the simulated usbmuxd.
type muxClient struct {
	s    *Sim
	conn net.Conn
	wmu  sync.Mutex
}

func (c *muxClient) send(tag uint32, msg any) error {
	b, err := wire.Encode(msg, wire.XML)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wire.WriteMuxPacket(c.conn, wire.MuxVersionPlist, wire.MuxMessagePlist, tag, b)
}

func (c *muxClient) result(tag uint32, n int) error {
	return c.send(tag, map[string]any{"MessageType": "Result", "Number": n})
}

func deviceProps(d *Device) map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	props := map[string]any{
		"ConnectionSpeed": d.cfg.Speed,
		"ConnectionType":  d.cfg.ConnType,
		"DeviceID":        d.id,
		"LocationID":      d.cfg.LocationID,
		"ProductID":       0x12a8,
		"SerialNumber":    d.cfg.UDID,
	}
	if d.cfg.ConnType == Network {
		// struct sockaddr_in for 127.0.0.1: libusbmuxd copies it as is.
		props["NetworkAddress"] = []byte{0x10, 0x02, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
		props["EscapedFullServiceName"] = d.cfg.UDID + "._apple-mobdev2._tcp.local."
		props["InterfaceIndex"] = 1
		delete(props, "LocationID")
		delete(props, "ProductID")
	}
	return map[string]any{"MessageType": "Attached", "DeviceID": d.id, "Properties": props}
}

func (c *muxClient) pushAttached(d *Device) {
	if err := c.send(0, deviceProps(d)); err != nil {
		c.conn.Close()
	}
}

func (c *muxClient) pushDetached(id int) {
	if err := c.send(0, map[string]any{"MessageType": "Detached", "DeviceID": id}); err != nil {
		c.conn.Close()
	}
}

func (c *muxClient) pushPaired(id int) {
	if err := c.send(0, map[string]any{"MessageType": "Paired", "DeviceID": id}); err != nil {
		c.conn.Close()
	}
}

// muxRequest holds the fields any usbmux request may carry.
type muxRequest struct {
	MessageType    string `plist:"MessageType"`
	DeviceID       int    `plist:"DeviceID"`
	PortNumber     int    `plist:"PortNumber"`
	PairRecordID   string `plist:"PairRecordID"`
	PairRecordData []byte `plist:"PairRecordData"`
}

func (s *Sim) serveMux(conn net.Conn) {
	c := &muxClient{s: s, conn: conn}
	defer func() {
		s.mu.Lock()
		delete(s.listeners, c)
		s.mu.Unlock()
	}()
	for {
		h, payload, err := wire.ReadMuxPacket(conn, wire.MaxMuxPayload)
		if err != nil {
			conn.Close()
			return
		}
		if h.Version != wire.MuxVersionPlist || h.Message != wire.MuxMessagePlist {
			// Only the plist protocol is spoken; anything else gets a
			// refusal rather than a guess. Never Result 6: libusbmuxd
			// would fall back to the binary protocol.
			s.log.Debug("usbmux: unsupported packet", "version", h.Version, "message", h.Message)
			_ = c.result(h.Tag, resultBadCommand)
			conn.Close()
			return
		}
		var req muxRequest
		if err := wire.Decode(payload, &req); err != nil {
			s.log.Debug("usbmux: malformed request", "err", err)
			_ = c.result(h.Tag, resultBadCommand)
			conn.Close()
			return
		}
		s.log.Debug("usbmux request", "type", req.MessageType)
		done, err := s.handleMux(c, h.Tag, req)
		if err != nil || done {
			return
		}
	}
}

// handleMux answers one request. done means the connection was handed
// over (Connect) or closed.
func (s *Sim) handleMux(c *muxClient, tag uint32, req muxRequest) (bool, error) {
	switch req.MessageType {
	case "ListDevices":
		list := []any{}
		for _, d := range s.pluggedDevices() {
			list = append(list, deviceProps(d))
		}
		for _, e := range s.oddEntries() {
			list = append(list, e.attached())
		}
		return false, c.send(tag, map[string]any{"DeviceList": list})
	case "Listen":
		if err := c.result(tag, resultOK); err != nil {
			return true, err
		}
		s.mu.Lock()
		s.listeners[c] = struct{}{}
		devs := s.devices
		odd := s.odd
		s.mu.Unlock()
		for _, d := range devs {
			if d.Plugged() {
				c.pushAttached(d)
			}
		}
		for _, e := range odd {
			c.pushOdd(e)
		}
		return false, nil
	case "ListListeners":
		return false, c.send(tag, map[string]any{"ListenerList": []any{}})
	case "ReadBUID":
		return false, c.send(tag, map[string]any{"BUID": s.buid})
	case "ReadPairRecord":
		s.mu.Lock()
		rec, ok := s.records[req.PairRecordID]
		s.mu.Unlock()
		if !ok {
			return false, c.result(tag, resultBadDevice)
		}
		return false, c.send(tag, map[string]any{"PairRecordData": rec})
	case "SavePairRecord":
		if req.PairRecordID == "" || len(req.PairRecordData) == 0 {
			return false, c.result(tag, resultInvalid)
		}
		var rec PairRecord
		if err := wire.Decode(req.PairRecordData, &rec); err != nil {
			return false, c.result(tag, resultInvalid)
		}
		s.mu.Lock()
		s.records[req.PairRecordID] = append([]byte(nil), req.PairRecordData...)
		ls := s.listenerList()
		s.mu.Unlock()
		if err := c.result(tag, resultOK); err != nil {
			return true, err
		}
		// usbmuxd announces Paired only when the request names the
		// device's current DeviceID.
		if d, ok := s.Device(req.PairRecordID); ok && d.Plugged() {
			d.mu.Lock()
			id := d.id
			d.mu.Unlock()
			if req.DeviceID == id {
				for _, l := range ls {
					l.pushPaired(id)
				}
			}
		}
		return false, nil
	case "DeletePairRecord":
		s.mu.Lock()
		_, ok := s.records[req.PairRecordID]
		delete(s.records, req.PairRecordID)
		s.mu.Unlock()
		if !ok {
			return false, c.result(tag, resultBadDevice)
		}
		return false, c.result(tag, resultOK)
	case "Connect":
		d, ok := s.deviceByID(req.DeviceID)
		if !ok {
			return false, c.result(tag, resultBadDevice)
		}
		port := uint16(req.PortNumber)
		port = port<<8 | port>>8 // sent in network byte order
		var handler func(net.Conn)
		if port == lockdown.Port {
			handler = d.serveLockdown
		} else if svc, ok := d.takeService(port); ok {
			handler = svc.handler
		} else {
			return false, c.result(tag, resultRefused)
		}
		if !d.track(c.conn) {
			return false, c.result(tag, resultBadDevice)
		}
		if err := c.result(tag, resultOK); err != nil {
			d.untrack(c.conn)
			return true, err
		}
		s.mu.Lock()
		delete(s.listeners, c)
		s.mu.Unlock()
		handler(c.conn)
		d.untrack(c.conn)
		c.conn.Close()
		return true, nil
	default:
		s.log.Debug("usbmux: unknown request", "type", req.MessageType)
		return false, c.result(tag, resultBadCommand)
	}
}

func (d *Device) String() string { return fmt.Sprintf("%s (%s)", d.cfg.Name, d.cfg.UDID) }
