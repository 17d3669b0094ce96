package main

import (
	"context"
	"encoding/json"
	"flag"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/doctor"
	"github.com/backupd/backupd/usbmux"
)

// doctorMuxTimeout bounds each exchange with usbmuxd or a phone: a check
// that hangs helps nobody.
const doctorMuxTimeout = 5 * time.Second

func doctorCommand() command {
	return command{
		name: "doctor", args: "[UDID] [--json]", does: "check this computer's setup and each iPhone, and explain problems",
		help: `Checks, live, what backups need: usbmuxd, the backupd service, the backup
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
doctor could not run, 2 usage, 5 bad configuration.`,
		flags: func(fs *flag.FlagSet) runner {
			var asJSON bool
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
			return func(ctx context.Context, a *app, pos []string) error {
				var udid string
				switch len(pos) {
				case 0:
				case 1:
					udid = pos[0]
					if err := repo.ValidUDID(udid); err != nil {
						return fail(exitUsage, "%q is not a UDID", udid)
					}
				default:
					return fail(exitUsage, "unexpected argument %q", pos[1])
				}
				return runDoctor(ctx, a, udid, asJSON)
			}
		},
	}
}

// runDoctor runs the checks; Ctrl-C ends them (exit 1, as for any check
// that could not run).
func runDoctor(ctx context.Context, a *app, udid string, asJSON bool) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	addr := usbmux.DefaultAddr()
	if cfg.Usbmuxd != "" {
		if addr, err = usbmux.ParseAddr(cfg.Usbmuxd); err != nil {
			// validate already refused it; this is belt and braces.
			return fail(exitBadConfig, "usbmuxd: %w", err)
		}
	}
	mux := usbmux.NewClient(usbmux.Config{Addr: addr, Timeout: doctorMuxTimeout})
	rep, err := doctor.Run(ctx, doctorConfig(cfg, udid), doctor.Live(mux, cfg.StateDir, cfg.BackupDir))
	if err != nil {
		return fail(exitError, "%w", err)
	}
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(exitError, "%w", err)
		}
	} else if err := doctor.Print(a.stdout, rep); err != nil {
		return exitWith(exitError)
	}
	if !rep.OK {
		return exitWith(exitError)
	}
	return nil
}
