package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/usbmux"
)

// plugged is a device usbmuxd lists, for `devices` without a daemon.
type plugged struct {
	UDID     string `json:"udid"`
	Name     string `json:"name,omitempty"`
	ConnType string `json:"conn_type"`
	Speed    uint64 `json:"link_speed,omitempty"`
	// Trust is usbmux's verdict (trusted, trust_pending, device_locked,
	// ...); TrustError says why there is none.
	Trust      usbmux.Trust `json:"trust,omitempty"`
	TrustError string       `json:"trust_error,omitempty"`
}

// devicesReport is what `devices --json` prints.
type devicesReport struct {
	DaemonRunning bool         `json:"daemon_running"`
	Devices       []api.Device `json:"devices,omitempty"`
	// Plugged is what usbmuxd lists, when no daemon runs.
	Plugged []plugged `json:"plugged,omitempty"`
}

func devicesCommand() command {
	return command{
		name: "devices", args: "[--json]", does: "list the iPhones backupd knows and the ones plugged in",
		flags: func(fs *flag.FlagSet) runner {
			var asJSON bool
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			return func(ctx context.Context, a *app, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				c, err := a.client()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, requestTimeout)
				defer cancel()
				devs, err := c.Devices(ctx)
				if err == nil {
					return printDevices(a, devs, asJSON)
				}
				if !errors.Is(err, client.ErrNoDaemon) {
					return err
				}
				fmt.Fprintln(a.stderr, "daemon not running; asking usbmuxd directly")
				cfg, _ := a.config() // loaded by a.client
				return devicesFromUsbmuxd(ctx, a, cfg, asJSON)
			}
		},
	}
}

// printDevices prints the daemon's devices.
func printDevices(a *app, devs []api.Device, asJSON bool) error {
	if asJSON {
		if devs == nil {
			devs = []api.Device{}
		}
		return writeJSON(a.stdout, devicesReport{DaemonRunning: true, Devices: devs})
	}
	if len(devs) == 0 {
		fmt.Fprintln(a.stdout, "no iPhone seen yet")
	}
	for _, d := range devs {
		conn := "not connected"
		if d.Connected {
			conn = "connected over " + d.Link
			if d.LinkSpeed > 0 {
				conn += fmt.Sprintf(" %d Mbit/s", d.LinkSpeed/1e6)
			}
		}
		state := strings.ReplaceAll(string(d.State), "_", " ")
		if d.Cause != "" {
			// Trust, lock and the other reasons a phone waits.
			state += fmt.Sprintf(" (%s)", d.Cause)
		}
		fmt.Fprintf(a.stdout, "%s  %s  %s iOS %s  %s, %s\n", d.UDID, orDash(d.Name), orDash(d.ProductType), orDash(d.IOSVersion), conn, state)
	}
	return nil
}

// devicesFromUsbmuxd lists what usbmuxd sees, for when no daemon runs;
// it exits 3 either way.
func devicesFromUsbmuxd(ctx context.Context, a *app, cfg fileConfig, asJSON bool) error {
	addr := usbmux.DefaultAddr()
	if cfg.Usbmuxd != "" {
		var err error
		if addr, err = usbmux.ParseAddr(cfg.Usbmuxd); err != nil {
			return fail(exitBadConfig, "%w", err)
		}
	}
	mux := usbmux.NewClient(usbmux.Config{Addr: addr})
	list, err := mux.ListDevices(ctx)
	if err != nil {
		return fail(exitNoDaemon, "usbmuxd at %s: %w", addr, err)
	}
	rep := devicesReport{Plugged: []plugged{}}
	for _, d := range list {
		p := plugged{UDID: d.UDID, ConnType: d.ConnType, Speed: d.Speed}
		// Asking never raises a Trust prompt: that is the daemon's to do.
		if p.Trust, err = mux.CheckTrust(ctx, d, usbmux.TrustOptions{}); err != nil {
			p.TrustError = err.Error()
		} else if p.Trust == usbmux.Trusted {
			if f, err := mux.Facts(ctx, d); err == nil {
				p.Name = f.Name
			}
		}
		rep.Plugged = append(rep.Plugged, p)
	}
	if asJSON {
		writeJSON(a.stdout, rep)
		return exitWith(exitNoDaemon)
	}
	if len(list) == 0 {
		fmt.Fprintln(a.stdout, "no iPhone plugged in")
	}
	for _, d := range rep.Plugged {
		printPlugged(a.stdout, d)
	}
	return exitWith(exitNoDaemon)
}

func printPlugged(w io.Writer, d plugged) {
	fmt.Fprintf(w, "%s  %s  %s", d.UDID, orDash(d.Name), d.ConnType)
	if d.Speed > 0 {
		fmt.Fprintf(w, " %d Mbit/s", d.Speed/1e6)
	}
	switch {
	case d.TrustError != "":
		fmt.Fprintf(w, "  trust unknown: %s", d.TrustError)
	case d.Trust == usbmux.Trusted:
		fmt.Fprint(w, "  trusted")
	default:
		in := cause.Lookup(d.Trust.Cause())
		fmt.Fprintf(w, "  %s: %s", d.Trust, in.Fix)
	}
	fmt.Fprintln(w)
}
