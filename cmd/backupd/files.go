package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/backupd/backupd/backup/contents"
	"github.com/backupd/backupd/daemon/api"
)

func filesCommand() command {
	return command{
		name: "files", args: "[UDID] [--from WHICH] [--password-file F|-] [--domain D] [--photos] [--json] [GLOB...]",
		does: "list the files in a backup",
		help: `Lists the files of a kept backup: domain, path, size and modification
time. GLOB matches the path inside the domain ("Media/DCIM/**"; * and ?
stay within a path element, ** spans any number). --from picks the
backup: latest (the default), a version's name as backupd versions lists
it, or an RFC 3339 date or time, meaning the newest backup at or before
it. An encrypted backup asks for its password (without echo), or takes
it from --password-file.

The backup is only read, with or without the service running, and is
kept in place while it is read: the service neither replaces nor removes
it meanwhile.

Exit status: 0 listed, 1 error (no such backup, wrong password:
wrong_backup_password), 2 bad arguments.`,
		flags: func(fs *flag.FlagSet) runner {
			var sf sourceFlags
			sf.define(fs)
			return func(ctx context.Context, a *app, pos []string) error {
				return failJSON(a.stdout, sf.asJSON, listFiles(ctx, a, sf, pos))
			}
		},
	}
}

// fileJSON is one file in files --json.
type fileJSON struct {
	Domain       string    `json:"domain"`
	RelativePath string    `json:"relative_path"`
	FileID       string    `json:"file_id"`
	Kind         string    `json:"kind"`
	Size         int64     `json:"size"`
	ModTime      time.Time `json:"mtime,omitzero"`
	Mode         string    `json:"mode,omitempty"`
	Target       string    `json:"target,omitempty"`
	Problem      string    `json:"problem,omitempty"`
}

// filesHeader is files --json's object around the list.
type filesHeader struct {
	UDID      string    `json:"udid"`
	Version   string    `json:"version"`
	Latest    bool      `json:"latest"`
	Time      time.Time `json:"time"`
	Path      string    `json:"path"`
	Encrypted bool      `json:"encrypted"`
}

func listFiles(ctx context.Context, a *app, sf sourceFlags, pos []string) error {
	src, globs, err := openSource(ctx, a, sf, pos)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := sf.filter(globs)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	if sf.asJSON {
		return listJSON(ctx, w, src, f)
	}
	n, total := 0, int64(0)
	for e, err := range src.b.Files(ctx, f) {
		if err != nil {
			return fail(exitError, "%w", err)
		}
		if e.Kind == contents.KindDir {
			continue
		}
		n++
		total += e.Size
		fmt.Fprintln(w, fileLine(e))
	}
	w.Flush()
	fmt.Fprintf(a.stderr, "%s, %s in %s\n", plural(n, "file"), api.FormatBytes(total), src.describe())
	return nil
}

// fileLine is one file: size, time, Domain/path; a link shows its
// target, an unreadable record its problem.
func fileLine(e contents.Entry) string {
	when := "-"
	if !e.ModTime.IsZero() {
		when = e.ModTime.Local().Format("2006-01-02 15:04")
	}
	line := fmt.Sprintf("%10s  %-16s  %s", api.FormatBytes(e.Size), when, e.Name())
	switch {
	case e.Problem != "":
		line += "  (unreadable record: " + e.Problem + ")"
	case e.Kind == contents.KindSymlink:
		line += " -> " + e.Target
	}
	return line
}

// listJSON streams the list, one entry at a time: a backup may list a
// million files.
func listJSON(ctx context.Context, w io.Writer, src *source, f contents.Filter) error {
	head, _ := json.Marshal(filesHeader{UDID: src.udid, Version: src.id, Latest: src.version.Latest, Time: src.version.Time,
		Path: src.pin.Path(), Encrypted: src.b.Encrypted()})
	fmt.Fprintf(w, "%s,\"files\":[", head[:len(head)-1])
	first := true
	for e, err := range src.b.Files(ctx, f) {
		if err != nil {
			return fail(exitError, "%w", err)
		}
		if e.Kind == contents.KindDir {
			continue
		}
		fj := fileJSON{Domain: e.Domain, RelativePath: e.RelativePath, FileID: e.FileID, Kind: e.Kind.String(),
			Size: e.Size, ModTime: e.ModTime, Target: e.Target, Problem: e.Problem}
		if e.Mode != 0 {
			fj.Mode = fmt.Sprintf("%o", e.Mode)
		}
		b, _ := json.Marshal(fj)
		if !first {
			w.Write([]byte(","))
		}
		first = false
		fmt.Fprintf(w, "\n  %s", b)
	}
	fmt.Fprint(w, "\n]}\n")
	return nil
}
