package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/backupd/backupd/backup/contents"
	"github.com/backupd/backupd/daemon/api"
)

func extractCommand() command {
	return command{
		name: "extract", args: "[UDID] [--from WHICH] [--password-file F|-] [--domain D] [--photos] [--overwrite] [--json] --to DIR [GLOB...]",
		does: "copy files out of a backup into a directory",
		help: `Copies files out of a kept backup into DIR, each to
DIR/<Domain>/<path> with its modification time from the backup. Without
GLOB, --domain or --photos it copies every file; --photos takes the
camera roll's photos and videos; GLOB matches the path inside the domain
("Media/DCIM/**"). --from picks the backup as for files: latest, a
version's name (backupd versions) or an RFC 3339 date or time. An
encrypted backup asks for its password (without echo), or takes it from
--password-file; a wrong one stops it before anything is written.

The backup is only read, with or without the service running, and is
kept in place meanwhile. Names from the backup stay inside DIR: a name
with "..", an absolute path, a NUL or an impossible length is skipped and
listed. A file already in DIR is skipped unless --overwrite. A file that
cannot be read (missing, truncated, damaged) is listed by name and the
others are still extracted.

Exit status: 0 every chosen file extracted (or skipped, as listed), 1 a
file failed or an error (wrong password: wrong_backup_password), 2 bad
arguments, 130 interrupted.`,
		flags: func(fs *flag.FlagSet) runner {
			var sf sourceFlags
			sf.define(fs)
			var to string
			var overwrite bool
			fs.StringVar(&to, "to", "", "the directory to extract into (made if missing)")
			fs.BoolVar(&overwrite, "overwrite", false, "replace files already in DIR")
			return func(ctx context.Context, a *app, pos []string) error {
				if to == "" {
					return fail(exitUsage, "--to DIR is needed: the directory to extract into")
				}
				return failJSON(a.stdout, sf.asJSON, extract(ctx, a, sf, pos, to, overwrite))
			}
		},
	}
}

// extractReport is what extract --json prints.
type extractReport struct {
	UDID           string          `json:"udid"`
	Version        string          `json:"version"`
	Latest         bool            `json:"latest"`
	Time           time.Time       `json:"time"`
	Encrypted      bool            `json:"encrypted"`
	To             string          `json:"to"`
	Files          int             `json:"files"`
	Bytes          int64           `json:"bytes"`
	Seconds        float64         `json:"seconds"`
	BytesPerSecond float64         `json:"bytes_per_second"`
	Skipped        []contents.Skip `json:"skipped"`
	Failed         []failedFile    `json:"failed"`
	Interrupted    bool            `json:"interrupted,omitempty"`
}

type failedFile struct {
	Name   string `json:"name"`
	FileID string `json:"file_id"`
	Error  string `json:"error"`
}

func extract(ctx context.Context, a *app, sf sourceFlags, pos []string, to string, overwrite bool) error {
	src, globs, err := openSource(ctx, a, sf, pos)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := sf.filter(globs)
	if err != nil {
		return err
	}
	dest, err := filepath.Abs(to)
	if err != nil {
		return fail(exitError, "%w", err)
	}
	bar := newExtractBar(a.stderr, isTerminal(a.stderr))
	start := time.Now()
	sum, err := contents.Extract(ctx, src.b, dest, contents.ExtractOptions{Filter: f, Overwrite: overwrite, Progress: bar.update})
	bar.clear()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fail(exitError, "%w", err)
	}
	rep := extractReport{UDID: src.udid, Version: src.id, Latest: src.version.Latest, Time: src.version.Time,
		Encrypted: src.b.Encrypted(), To: dest, Files: sum.Files, Bytes: sum.Bytes,
		Skipped: sum.Skipped, Failed: []failedFile{}, Interrupted: err != nil}
	if rep.Skipped == nil {
		rep.Skipped = []contents.Skip{}
	}
	for _, fe := range sum.Failed {
		rep.Failed = append(rep.Failed, failedFile{Name: fe.Name, FileID: fe.FileID, Error: fe.Err.Error()})
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.BytesPerSecond = float64(rep.Bytes) / rep.Seconds
	}
	if sf.asJSON {
		if err := writeJSON(a.stdout, rep); err != nil {
			return err
		}
	} else {
		printExtract(a.stdout, rep, src)
	}
	switch {
	case rep.Interrupted:
		return exitWith(exitInterrupted)
	case len(rep.Failed) > 0:
		return exitWith(exitError)
	}
	return nil
}

func printExtract(w io.Writer, rep extractReport, src *source) {
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Name, s.Reason)
	}
	for _, f := range rep.Failed {
		fmt.Fprintf(w, "FAILED  %s (%s): %s\n", f.Name, f.FileID, f.Error)
	}
	verb := "extracted"
	if rep.Interrupted {
		verb = "interrupted after extracting"
	}
	fmt.Fprintf(w, "%s %s, %s from %s into %s", verb, plural(rep.Files, "file"), api.FormatBytes(rep.Bytes), src.describe(), rep.To)
	if rep.BytesPerSecond > 0 && rep.Bytes > 0 {
		fmt.Fprintf(w, " (%s/s)", api.FormatBytes(int64(rep.BytesPerSecond)))
	}
	fmt.Fprintf(w, "; %d skipped, %d failed\n", len(rep.Skipped), len(rep.Failed))
	if len(rep.Failed) > 0 {
		fmt.Fprintf(w, "%s could not be read from the backup: backupd verify --versions says which backups are damaged; an older version (backupd versions) may hold a good copy\n", plural(len(rep.Failed), "file"))
	}
}

// extractBar draws the progress bar on a terminal, at most every
// redrawExtract.
type extractBar struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	drawn bool
}

const redrawExtract = 100 * time.Millisecond

func newExtractBar(w io.Writer, tty bool) *extractBar {
	return &extractBar{w: w, tty: tty, start: time.Now()}
}

func (b *extractBar) update(p contents.Progress) {
	now := time.Now()
	if !b.tty || now.Sub(b.last) < redrawExtract {
		return
	}
	b.last, b.drawn = now, true
	fmt.Fprintf(b.w, "\r\033[Kextracting %s", progressBar(extractProgress(p, now.Sub(b.start))))
}

// extractProgress is an extraction's progress in the form backup's bar
// takes: the percentage of bytes, the rate and the time left at that
// rate.
func extractProgress(p contents.Progress, elapsed time.Duration) *api.Progress {
	ap := &api.Progress{Bytes: p.Bytes, Files: int64(p.Files)}
	if p.TotalBytes > 0 {
		ap.Percent = float64(p.Bytes) / float64(p.TotalBytes) * 100
	} else if p.TotalFiles > 0 {
		ap.Percent = float64(p.Files) / float64(p.TotalFiles) * 100
	}
	if s := elapsed.Seconds(); s > 0.5 && p.Bytes > 0 {
		ap.BytesPerSecond = float64(p.Bytes) / s
		ap.ETASeconds = float64(p.TotalBytes-p.Bytes) / ap.BytesPerSecond
	}
	return ap
}

func (b *extractBar) clear() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
