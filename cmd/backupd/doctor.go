package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/doctor"
	"github.com/backupd/backupd/usbmux"
)

// doctorMuxTimeout bounds each exchange with usbmuxd or a phone: a check
// that hangs helps nobody.
const doctorMuxTimeout = 5 * time.Second

func cmdDoctor(args []string, stdout, stderr io.Writer) int {
	var config string
	var asJSON bool
	fs := newFlagSet("doctor", "[UDID] [--json]", &config)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: backupd doctor [UDID] [--json]

Checks, live, what backups need: usbmuxd, the backupd service, the backup
folder (writable, hard links for versions), and for each connected iPhone
(or only UDID) its connection (USB speed, hubs), cable drops in the last
hour, pair record, trust and lock state, battery, encryption, free space
for its backup, the sync lock (no other phone tool holding it), the last
attempt and whether its backups are overdue. It works with or without the
service running.

Each row is marked
  ✓  ok
  !  warning: worth fixing, but backups still happen
  ✗  failed: the fix is printed below it
  -  skipped: it could not run because of an earlier row (which says why)

Exit codes: 0 no check failed (warnings allowed), 1 a check failed or
doctor could not run, 2 usage, 5 bad configuration.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	var udid string
	switch len(pos) {
	case 0:
	case 1:
		udid = pos[0]
		if err := repo.ValidUDID(udid); err != nil {
			fmt.Fprintf(stderr, "backupd doctor: %q is not a UDID\n", udid)
			return exitUsage
		}
	default:
		fmt.Fprintf(stderr, "backupd doctor: unexpected argument %q\n", pos[1])
		return exitUsage
	}
	cfg, code, ok := configFor(config, stderr)
	if !ok {
		return code
	}
	addr := usbmux.DefaultAddr()
	if cfg.Usbmuxd != "" {
		var err error
		if addr, err = usbmux.ParseAddr(cfg.Usbmuxd); err != nil {
			// validate already refused it; this is belt and braces.
			fmt.Fprintf(stderr, "backupd doctor: usbmuxd: %v\n", err)
			return exitBadConfig
		}
	}
	mux := usbmux.NewClient(usbmux.Config{Addr: addr, Timeout: doctorMuxTimeout})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := doctor.Run(ctx, doctor.Config{
		BackupDir:         cfg.BackupDir,
		FreeSpaceMargin:   uint64(max(cfg.Policy.FreeSpaceMargin, 0)),
		MinBattery:        cfg.Policy.MinBattery,
		WiFi:              cfg.Policy.WiFi,
		RequireEncryption: cfg.Policy.Encryption == "required",
		Clone:             cfg.Backup.Clone,
		OverdueAfter:      cfg.OverdueAfter.D(),
		UDID:              udid,
	}, doctor.Live(mux, cfg.StateDir, cfg.BackupDir))
	if err != nil {
		fmt.Fprintf(stderr, "backupd doctor: %v\n", err)
		return exitError
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "backupd doctor: %v\n", err)
			return exitError
		}
	} else if err := doctor.Print(stdout, rep); err != nil {
		return exitError
	}
	if !rep.OK {
		return exitError
	}
	return exitOK
}
