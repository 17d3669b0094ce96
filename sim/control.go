package sim

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ControlHelp lists the control commands, one per line.
const ControlHelp = `list                          devices: UDID, name, plugged, pairing
plug UDID | unplug UDID       attach or pull the cable
trust UDID | deny UDID        the user taps Trust or Don't Trust
lock UDID | unlock UDID       lock with the passcode, or enter it
forget UDID                   the device forgets this computer
battery UDID LEVEL [charging] set the battery
flap UDID CYCLES PERIOD       pull and reinsert the cable CYCLES times (PERIOD e.g. 2s)
mutate UDID SHARE             change SHARE (0..1) of the files
findmy UDID on|off            turn Find My on (a restore then fails with 211) or off
reboot UDID                   restart the device (detach, come back), as after a restore
restore-report UDID           what the last restore received: files intact, damaged, missing
fault UDID KEY=VALUE...       set faults (clear resets them); keys: unplug-after-bytes,
                              unplug-after-files, unplug-at-step, passcode-never-entered,
                              passcode-delay, error-code, slow-link, stall-after-bytes,
                              hostile, hostile-name (crlf|esc|utf8|huge),
                              first-message-delay, lock-never-granted,
                              no-common-version, unreadable-files, absolute-paths,
                              think-pause, end-redownload, announced-share,
                              repeat-device-ready, unknown-message
                              (restore: error-code 102/207/208/211,
                              unplug-at-step restore-*, hostile restore-dotdot|
                              restore-absolute|restore-other|restore-mutate)`

// Control runs one control command and returns its answer: "ok ..." or
// "error: ...".
func (s *Sim) Control(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "error: empty command"
	}
	if f[0] == "help" {
		return "ok\n" + ControlHelp
	}
	if f[0] == "list" {
		var b strings.Builder
		b.WriteString("ok")
		for _, d := range s.Devices() {
			c := d.Config()
			fmt.Fprintf(&b, "\n%s\t%s\t%s\tplugged=%t\tlink=%s", c.UDID, c.Name, c.Pairing, d.Plugged(), c.ConnType)
		}
		return b.String()
	}
	if len(f) < 2 {
		return fmt.Sprintf("error: %s needs a UDID", f[0])
	}
	d, ok := s.Device(f[1])
	if !ok {
		return fmt.Sprintf("error: no device %s", f[1])
	}
	args := f[2:]
	switch f[0] {
	case "plug":
		d.Plug()
	case "unplug":
		d.Unplug()
	case "trust":
		d.TapTrust()
	case "deny":
		d.TapDontTrust()
	case "lock":
		d.Lock()
	case "unlock":
		d.Unlock()
	case "forget":
		d.Forget()
	case "battery":
		if len(args) < 1 {
			return "error: battery UDID LEVEL [charging]"
		}
		lvl, err := strconv.Atoi(args[0])
		if err != nil || lvl < 0 || lvl > 100 {
			return "error: LEVEL is a percentage from 0 to 100"
		}
		d.SetBattery(lvl, len(args) > 1 && args[1] == "charging")
	case "flap":
		if len(args) != 2 {
			return "error: flap UDID CYCLES PERIOD"
		}
		n, err1 := strconv.Atoi(args[0])
		p, err2 := time.ParseDuration(args[1])
		if err1 != nil || err2 != nil || n < 1 || p <= 0 {
			return "error: flap UDID CYCLES PERIOD, e.g. flap UDID 3 2s"
		}
		d.Flap(n, p)
	case "mutate":
		if len(args) != 1 {
			return "error: mutate UDID SHARE"
		}
		share, err := strconv.ParseFloat(args[0], 64)
		if err != nil || share < 0 || share > 1 {
			return "error: SHARE is a fraction from 0 to 1"
		}
		return fmt.Sprintf("ok %d files changed", d.Mutate(share))
	case "fault":
		flt := d.Config().Faults
		for _, kv := range args {
			if kv == "clear" {
				flt = Faults{}
				continue
			}
			if err := flt.set(kv); err != nil {
				return "error: " + err.Error()
			}
		}
		d.SetFaults(flt)
	default:
		if out, ok := s.restoreControl(d, f[0], args); ok {
			return out
		}
		return fmt.Sprintf("error: unknown command %q (try help)", f[0])
	}
	return "ok"
}

func (f *Faults) set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("fault %q is not KEY=VALUE", kv)
	}
	var err error
	atoi := func() int64 {
		var n int64
		n, err = strconv.ParseInt(v, 10, 64)
		return n
	}
	dur := func() time.Duration {
		var d time.Duration
		d, err = time.ParseDuration(v)
		return d
	}
	switch k {
	case "unplug-after-bytes":
		f.UnplugAfterBytes = atoi()
	case "unplug-after-files":
		f.UnplugAfterFiles = int(atoi())
	case "unplug-at-step":
		f.UnplugAtStep = v
	case "passcode-never-entered":
		f.PasscodeNeverEntered, err = strconv.ParseBool(v)
	case "passcode-delay":
		f.PasscodeDelay = dur()
	case "error-code":
		f.ErrorCode = int(atoi())
	case "slow-link":
		f.SlowLinkBytesPerSec = atoi()
	case "stall-after-bytes":
		f.StallAfterBytes = atoi()
	case "hostile":
		f.Hostile = v
	case "hostile-name":
		if v != "" && HostileName(v) == "" {
			return fmt.Errorf("fault hostile-name: no mode %q (%s)", v, strings.Join(HostileNames(), ", "))
		}
		f.HostileName = v
	case "first-message-delay":
		f.FirstMessageDelay = dur()
	case "lock-never-granted":
		f.LockNeverGranted, err = strconv.ParseBool(v)
	case "no-common-version":
		f.NoCommonVersion, err = strconv.ParseBool(v)
	case "unreadable-files":
		f.UnreadableFiles = int(atoi())
	case "absolute-paths":
		f.AbsolutePaths, err = strconv.ParseBool(v)
	case "think-pause":
		f.ThinkPause = dur()
	case "end-redownload":
		f.EndRedownload, err = strconv.ParseBool(v)
	case "announced-share":
		f.AnnouncedShare, err = strconv.ParseFloat(v, 64)
	case "repeat-device-ready":
		f.RepeatDeviceReady, err = strconv.ParseBool(v)
	case "unknown-message":
		f.UnknownMessage, err = strconv.ParseBool(v)
	default:
		return fmt.Errorf("unknown fault %q", k)
	}
	if err != nil {
		return fmt.Errorf("fault %s: %w", k, err)
	}
	return nil
}

// ServeControl answers control commands, one per line, on a unix socket
// until the simulator closes.
func (s *Sim) ServeControl(path string) error {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	go func() {
		<-s.done
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					// A blank line ends each answer so a client knows where it stops.
					if _, err := fmt.Fprintf(c, "%s\n\n", s.Control(sc.Text())); err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}
