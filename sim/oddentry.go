package sim

import (
	"fmt"
	"slices"
	"strings"
)

// OddEntry is an entry usbmuxd lists beside the phones that is not a
// phone a host can back up.
type OddEntry string

const (
	// OddMACSerial is a network entry whose SerialNumber is a Wi-Fi MAC
	// address with colons, not a UDID, as macOS's usbmuxd lists.
	OddMACSerial OddEntry = "mac-serial"
	// OddConnType is an entry whose ConnectionType is neither USB nor
	// Network, with a well-formed UDID. The name it gives is made up:
	// what matters is that a host does not know it.
	OddConnType OddEntry = "unknown-conntype"
)

// OddEntries lists the kinds AddOddEntry takes.
func OddEntries() []OddEntry { return []OddEntry{OddMACSerial, OddConnType} }

// ParseOddEntries reads a comma-separated list of kinds.
func ParseOddEntries(s string) ([]OddEntry, error) {
	var out []OddEntry
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(OddEntries(), OddEntry(f)) {
			return nil, fmt.Errorf("unknown odd entry %q (want %s or %s)", f, OddMACSerial, OddConnType)
		}
		out = append(out, OddEntry(f))
	}
	return out, nil
}

// oddEntry is one listed odd entry: its DeviceID and what usbmuxd says.
type oddEntry struct {
	id    int
	props map[string]any
}

// AddOddEntry makes usbmuxd list an odd entry from now on, and push it
// as Attached to every listener, with the next DeviceID. It returns that
// DeviceID. A Connect to it answers "no such device".
func (s *Sim) AddOddEntry(kind OddEntry) (int, error) {
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	var props map[string]any
	switch kind {
	case OddMACSerial:
		mac := fmt.Sprintf("a4:c3:f0:%02x:%02x:%02x", id>>16&0xff, id>>8&0xff, id&0xff)
		props = map[string]any{
			"ConnectionType": Network,
			"DeviceID":       id,
			"SerialNumber":   mac,
			// struct sockaddr_in for 127.0.0.1, as for a phone on Wi-Fi.
			"NetworkAddress":         []byte{0x10, 0x02, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
			"EscapedFullServiceName": mac + "@fe80::a6c3:f0ff:fe00:1._apple-mobdev2._tcp.local.",
			"InterfaceIndex":         1,
		}
	case OddConnType:
		props = map[string]any{
			"ConnectionType":  "Unknown",
			"ConnectionSpeed": 480000000,
			"DeviceID":        id,
			"SerialNumber":    fmt.Sprintf("00008030-%016X", 0xdd0000+id),
			"LocationID":      0x02200000 + id,
			"ProductID":       0x12a8,
		}
	default:
		s.mu.Unlock()
		return 0, fmt.Errorf("sim: unknown odd entry %q", kind)
	}
	e := oddEntry{id: id, props: props}
	s.odd = append(s.odd, e)
	ls := s.listenerList()
	s.mu.Unlock()
	for _, l := range ls {
		l.pushOdd(e)
	}
	return id, nil
}

func (e oddEntry) attached() map[string]any {
	return map[string]any{"MessageType": "Attached", "DeviceID": e.id, "Properties": e.props}
}

func (c *muxClient) pushOdd(e oddEntry) {
	if err := c.send(0, e.attached()); err != nil {
		c.conn.Close()
	}
}

func (s *Sim) oddEntries() []oddEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.odd)
}
