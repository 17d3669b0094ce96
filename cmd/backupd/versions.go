package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/offline"
)

// versionsReport is what `versions --json` prints.
type versionsReport struct {
	DaemonRunning bool `json:"daemon_running"`
	api.VersionsResponse
}

func versionsCommand() command {
	return command{
		name: "versions", args: "[UDID] [--json]", does: "list the kept backups of an iPhone, newest first",
		help: `Lists each kept backup of an iPhone, newest first: the name to give
"backupd restore --from", when it was made, its size and file count,
whether it is encrypted, whether it is a safety backup (taken just before
a restore), and whether it verifies (every file Manifest.db lists is there
with its size).

Without a UDID: the one iPhone connected, or else the one iPhone with
backups in backup_dir. Any iPhone with backups can be named, connected or
not (for restore --source). With the service running it asks the service;
without, it reads backup_dir directly and writes nothing.

Exit status: 0 listed, 1 error (no backup of that iPhone), 2 bad
arguments.`,
		flags: func(fs *flag.FlagSet) runner {
			var asJSON bool
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			return func(ctx context.Context, a *app, pos []string) error {
				if len(pos) > 1 {
					return fail(exitUsage, "one UDID at most")
				}
				if len(pos) == 1 {
					if err := repo.ValidUDID(pos[0]); err != nil {
						return fail(exitUsage, "%w", err)
					}
				}
				return versions(ctx, a, pos, asJSON)
			}
		},
	}
}

func versions(ctx context.Context, a *app, pos []string, asJSON bool) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, versionsTimeout)
	defer cancel()
	var rep versionsReport
	stopSpin := spinner(a.stderr, isTerminal(a.stderr), "verifying the backups")
	rep.VersionsResponse, rep.DaemonRunning, err = listVersions(ctx, c, cfg, pos)
	stopSpin()
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return fail(exitError, "%s", ce.Message)
	case err != nil:
		return err
	}
	if !rep.DaemonRunning {
		fmt.Fprintf(a.stderr, "backupd versions: daemon not running; reading %s directly\n", cfg.BackupDir)
	}
	if asJSON {
		return writeJSON(a.stdout, rep)
	}
	printVersions(a.stdout, rep.VersionsResponse)
	return nil
}

// listVersions asks the daemon, or reads backup_dir read-only when none
// runs.
func listVersions(ctx context.Context, c *client.Client, cfg fileConfig, pos []string) (api.VersionsResponse, bool, error) {
	devs, err := c.Devices(ctx)
	if errors.Is(err, client.ErrNoDaemon) {
		resp, err := versionsDirect(ctx, cfg, pos)
		return resp, false, err
	}
	if err != nil {
		return api.VersionsResponse{}, true, err
	}
	udid := ""
	if len(pos) == 1 {
		udid = pos[0]
	} else if udid, err = onlyPhone(devs, cfg); err != nil {
		return api.VersionsResponse{}, true, err
	}
	resp, err := c.Versions(ctx, udid, "")
	return resp, true, err
}

// onlyPhone is the phone meant without a UDID: the one connected, or
// else the one with backups.
func onlyPhone(devs []api.Device, cfg fileConfig) (string, error) {
	var conn []string
	for _, d := range devs {
		if d.Connected {
			conn = append(conn, d.UDID)
		}
	}
	if len(conn) == 1 {
		return conn[0], nil
	}
	udids, err := offline.BackupUDIDs(cfg.BackupDir)
	if err != nil {
		return "", err
	}
	switch {
	case len(udids) == 1:
		return udids[0], nil
	case len(udids) == 0:
		return "", fail(exitError, "there are no backups in %s", cfg.BackupDir)
	}
	return "", fail(exitUsage, "%d iPhones have backups; name one: %s", len(udids), strings.Join(udids, ", "))
}

// versionsDirect lists without the daemon: backup_dir opened read-only,
// as verify does.
func versionsDirect(ctx context.Context, cfg fileConfig, pos []string) (api.VersionsResponse, error) {
	udid := ""
	if len(pos) == 1 {
		udid = pos[0]
	} else {
		var err error
		if udid, err = onlyPhone(nil, cfg); err != nil {
			return api.VersionsResponse{}, err
		}
	}
	resp := api.VersionsResponse{UDID: udid}
	r, err := repo.Open(cfg.BackupDir, repo.Options{})
	if err != nil {
		return resp, err
	}
	defer r.Close()
	if resp.Versions, err = offline.Versions(ctx, r, udid); err != nil {
		return resp, err
	}
	if len(resp.Versions) == 0 {
		return resp, fail(exitError, "there is no backup of %s in %s", udid, cfg.BackupDir)
	}
	if devs, err := devicesFromHistory(cfg); err == nil {
		for _, d := range devs {
			if d.UDID == udid {
				resp.Name = d.Name
			}
		}
	}
	return resp, nil
}

// printVersions prints one line per backup under a heading.
func printVersions(w io.Writer, resp api.VersionsResponse) {
	name := resp.Name
	if name == "" {
		name = "iPhone"
	}
	fmt.Fprintf(w, "%s (%s): %s, newest first\n", name, resp.UDID, plural(len(resp.Versions), "backup"))
	for _, v := range resp.Versions {
		var tags []string
		if v.Latest {
			tags = append(tags, "latest")
		}
		if v.Encrypted {
			tags = append(tags, "encrypted")
		}
		if v.Safety {
			tags = append(tags, "safety backup")
		}
		mark := "✓ verifies"
		if !v.Verified {
			mark = "✗ does not verify"
		}
		fmt.Fprintf(w, "  %s  %s  %9s  %6d files  %s", v.ID, v.Time.Local().Format("2006-01-02 15:04"), api.FormatBytes(v.Size), v.Files, mark)
		if len(tags) > 0 {
			fmt.Fprintf(w, "  (%s)", strings.Join(tags, ", "))
		}
		fmt.Fprintln(w)
		for _, p := range v.Problems {
			fmt.Fprintf(w, "      %s\n", p)
		}
	}
	fmt.Fprintf(w, "Restore one with: backupd restore --from NAME (onto another iPhone: backupd restore UDID --source %s --from NAME)\n", resp.UDID)
}
