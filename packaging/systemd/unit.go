// Package systemd holds backupd's systemd unit: one template that both the
// Debian package (through packaging/unitgen) and `backupd install` render,
// so the hardened service is the same however backupd was installed.
package systemd

import (
	_ "embed"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
	"unicode"
)

//go:embed backupd.service.tmpl
var unitTemplate string

// Unit is what varies between installs of the service.
type Unit struct {
	Exec      string // the backupd binary, absolute
	Config    string // the configuration file, absolute
	User      string // the user (and group) the service runs as
	StateDir  string // state_dir, absolute
	BackupDir string // backup_dir, absolute
}

// Package is the unit the Debian package installs.
func Package() Unit {
	return Unit{
		Exec:      "/usr/bin/backupd",
		Config:    "/etc/backupd/config.toml",
		User:      "backupd",
		StateDir:  "/var/lib/backupd",
		BackupDir: "/var/lib/backupd/backups",
	}
}

// Render returns the unit file's text, with every path quoted for systemd.
func (u Unit) Render() (string, error) {
	paths := map[string]string{"Exec": u.Exec, "Config": u.Config, "StateDir": u.StateDir, "BackupDir": u.BackupDir}
	q := map[string]string{"User": u.User}
	for name, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return "", fmt.Errorf("systemd unit: %s %q is not a clean absolute path", name, p)
		}
		if strings.ContainsFunc(p, unicode.IsControl) {
			return "", fmt.Errorf("systemd unit: %s %q holds a control character", name, p)
		}
	}
	q["Exec"], q["Config"] = quoteExec(u.Exec), quoteExec(u.Config)
	q["StateDir"] = quotePath(u.StateDir)
	// '-': a missing backup_dir does not stop the sandbox's set-up.
	q["BackupDir"] = quotePath("-" + u.BackupDir)
	if !validUser(u.User) {
		return "", fmt.Errorf("systemd unit: user %q is not a valid user name", u.User)
	}
	t, err := template.New("unit").Option("missingkey=error").Parse(unitTemplate)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, q); err != nil {
		return "", err
	}
	return b.String(), nil
}

// quoteExec returns p as one word of ExecStart: '$' doubled (ExecStart
// expands variables) besides what quotePath does.
func quoteExec(p string) string {
	return quotePath(strings.ReplaceAll(p, "$", "$$"))
}

// quotePath returns p as one word of a unit line: '%' doubled (a
// specifier), and quoted, with '\' and '"' escaped, when it holds a space
// or a quote.
func quotePath(p string) string {
	p = strings.ReplaceAll(p, "%", "%%")
	if !strings.ContainsAny(p, " \t\"'\\") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}

// validUser is systemd's rule for a portable user name.
func validUser(s string) bool {
	if s == "" || len(s) > 31 || s[0] == '-' || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
