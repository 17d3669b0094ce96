// Command iphonesim runs simulated iPhones behind a simulated usbmuxd, so
// backupd and libimobiledevice's tools can be tried without a phone:
//
//	iphonesim --socket /tmp/sim/usbmuxd.sock --devices 2
//	USBMUXD_SOCKET_ADDRESS=UNIX:/tmp/sim/usbmuxd.sock idevice_id -l
//	iphonesim ctl --control /tmp/sim/usbmuxd.sock.ctl unplug UDID
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/sim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(ctl(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iphonesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "/tmp/iphonesim/usbmuxd.sock", "unix socket the simulated usbmuxd listens on")
	control := fs.String("control", "", "control socket (default: SOCKET.ctl)")
	devices := fs.Int("devices", 1, "number of simulated iPhones")
	files := fs.Int("files", 200, "files per device")
	minSize := fs.Int64("min-size", 1<<10, "smallest file, bytes")
	maxSize := fs.Int64("max-size", 64<<10, "largest file, bytes")
	seed := fs.Int64("seed", 1, "seed of the file sets")
	pairing := fs.String("pairing", "paired", "paired, unpaired, locked or forgotten")
	link := fs.String("link", sim.USB, "USB or Network")
	speed := fs.Uint64("speed", 480000000, "link speed in bit/s")
	product := fs.String("product-type", "iPhone14,5", "ProductType, e.g. iPhone16,1 for an iPhone 15 Pro")
	unplugged := fs.Bool("unplugged", false, "start with the devices unplugged (plug them with ctl)")
	preflight := fs.Bool("preflight", false, "pair from usbmuxd itself when the user taps Trust, as Linux's usbmuxd does")
	serviceTLS := fs.String("service-tls", "", "services that run over TLS on USB (EnableServiceSSL), comma-separated, or \"backup\" for mobilebackup2, AFC and notification_proxy; on Wi-Fi every service does")
	tlsMax := fs.String("tls-max", "1.2", "highest TLS version of lockdown sessions and services: 1.2 or 1.3")
	odd := fs.String("odd-entries", "", "odd usbmuxd entries to list beside the phones, comma-separated: mac-serial, unknown-conntype")
	verbose := fs.Bool("v", false, "log every protocol request")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: iphonesim [flags]\n       iphonesim ctl [--control PATH] COMMAND...\n\nRuns simulated iPhones behind a simulated usbmuxd until interrupted.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nControl commands:\n%s\n", sim.ControlHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ps, err := sim.ParsePairState(*pairing)
	if err != nil {
		fmt.Fprintln(stderr, "iphonesim:", err)
		return 2
	}
	if *devices < 1 || *files < 1 || *minSize < 0 || *maxSize < *minSize {
		fmt.Fprintln(stderr, "iphonesim: --devices and --files must be at least 1, and 0 <= --min-size <= --max-size")
		return 2
	}
	if *link != sim.USB && *link != sim.Network {
		fmt.Fprintln(stderr, "iphonesim: --link is USB or Network")
		return 2
	}
	tlsVersion, ok := map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}[*tlsMax]
	if !ok {
		fmt.Fprintln(stderr, "iphonesim: --tls-max is 1.2 or 1.3")
		return 2
	}
	oddEntries, err := sim.ParseOddEntries(*odd)
	if err != nil {
		fmt.Fprintln(stderr, "iphonesim:", err)
		return 2
	}
	if *control == "" {
		*control = *socket + ".ctl"
	}
	// Catch signals before the sockets exist, so whoever sees them can
	// already stop us cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(dirOf(*socket), 0o755); err != nil {
		fmt.Fprintln(stderr, "iphonesim:", err)
		return 1
	}
	s := sim.New(sim.Options{Socket: *socket, Logger: log, Preflight: *preflight})
	for i := 0; i < *devices; i++ {
		d, err := s.AddDevice(sim.DeviceConfig{
			Pairing:     ps,
			ConnType:    *link,
			Speed:       *speed,
			ProductType: *product,
			Files:       sim.FileSpec{Seed: *seed + int64(i), Count: *files, MinSize: *minSize, MaxSize: *maxSize},

			ServiceTLS:    serviceList(*serviceTLS),
			TLSMaxVersion: tlsVersion,
		})
		if err != nil {
			fmt.Fprintln(stderr, "iphonesim:", err)
			return 1
		}
		if !*unplugged {
			d.Plug()
		}
	}
	for _, k := range oddEntries {
		if _, err := s.AddOddEntry(k); err != nil {
			fmt.Fprintln(stderr, "iphonesim:", err)
			return 1
		}
	}
	if err := s.Start(); err != nil {
		fmt.Fprintln(stderr, "iphonesim:", err)
		return 1
	}
	defer s.Close()
	if err := s.ServeControl(*control); err != nil {
		fmt.Fprintln(stderr, "iphonesim:", err)
		return 1
	}
	fmt.Fprintf(stdout, "iphonesim: usbmuxd on %s, control on %s\n", *socket, *control)
	fmt.Fprintf(stdout, "  export USBMUXD_SOCKET_ADDRESS=%s\n", s.Address())
	for _, d := range s.Devices() {
		c := d.Config()
		fmt.Fprintf(stdout, "  %s  %s  (%s, iOS %s, %s)\n", c.UDID, c.Name, c.ProductType, c.ProductVersion, c.Pairing)
	}
	<-ctx.Done()
	return 0
}

// serviceList reads --service-tls: service names, or "backup" for the
// three a backup uses.
func serviceList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "backup":
			out = append(out, lockdown.ServiceMobileBackup2, lockdown.ServiceAFC, lockdown.ServiceNotificationProxy)
		default:
			out = append(out, f)
		}
	}
	return out
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

// ctl sends one command to a running simulator and prints the answer.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iphonesim ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	control := fs.String("control", "/tmp/iphonesim/usbmuxd.sock.ctl", "control socket of the running simulator")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: iphonesim ctl [--control PATH] COMMAND...\n\nCommands:\n%s\n", sim.ControlHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c, err := net.DialTimeout("unix", *control, 5*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "iphonesim ctl: cannot reach the simulator at %s: %v (is iphonesim running?)\n", *control, err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(fs.Args(), " ")); err != nil {
		fmt.Fprintln(stderr, "iphonesim ctl:", err)
		return 1
	}
	sc := bufio.NewScanner(c)
	var lines []string
	for sc.Scan() && sc.Text() != "" {
		lines = append(lines, sc.Text())
	}
	answer := strings.Join(lines, "\n")
	if strings.HasPrefix(answer, "error") {
		fmt.Fprintln(stderr, answer)
		return 1
	}
	answer = strings.TrimPrefix(answer, "ok")
	answer = strings.TrimPrefix(strings.TrimPrefix(answer, "\n"), " ")
	if answer != "" {
		fmt.Fprintln(stdout, answer)
	}
	return 0
}
