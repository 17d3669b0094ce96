package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/backupd/backupd/sim/simtest"
)

// complete sources the bash script and returns what _backupd offers for
// the words typed (the last one is being completed).
func complete(t *testing.T, bash, script string, words ...string) []string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "backupd.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	prog := `source "$1" || exit 9
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_backupd
printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command(bash, "-c", prog, "bash", path).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func TestCompletionBash(t *testing.T) {
	bash := simtest.RequireTool(t, "bash")
	var out, errb bytes.Buffer
	if code := run([]string{"completion", "bash"}, &out, &errb); code != exitOK {
		t.Fatalf("completion bash: exit %d, %s", code, errb.String())
	}
	script := out.String()
	if b, err := exec.Command(bash, "-n", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, b)
	}
	tests := []struct {
		words     []string
		want, not []string
	}{
		{[]string{"backupd", "st"}, []string{"status", "start", "stop"}, []string{"backup", "run"}},
		{[]string{"backupd", "ver"}, []string{"verify", "version"}, []string{"status"}},
		{[]string{"backupd", "backup", "--f"}, []string{"--full"}, []string{"--wait"}},
		{[]string{"backupd", "verify", "--"}, []string{"--all", "--versions", "--json", "--config"}, []string{"--full"}},
		{[]string{"backupd", "run", "--log-format", ""}, []string{"console", "json"}, nil},
		{[]string{"backupd", "encryption", ""}, []string{"on", "off"}, nil},
		{[]string{"backupd", "encryption", "--"}, []string{"--password-file"}, nil},
		{[]string{"backupd", "completion", ""}, []string{"bash", "zsh", "fish"}, nil},
	}
	for _, tt := range tests {
		got := complete(t, bash, script, tt.words...)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q offers %q, want %q among them", strings.Join(tt.words, " "), got, w)
			}
		}
		for _, w := range tt.not {
			if slices.Contains(got, w) {
				t.Errorf("%q offers %q, which should not be among %q", strings.Join(tt.words, " "), w, got)
			}
		}
	}
}

func TestCompletionZshAndFish(t *testing.T) {
	for _, tt := range []struct {
		shell string
		want  []string
	}{
		{"zsh", []string{"#compdef backupd", "bashcompinit", "complete -F _backupd backupd", `"console json"`}},
		{"fish", []string{
			"complete -c backupd -n __fish_use_subcommand -a verify -d 'check that the latest backups",
			"complete -c backupd -n '__fish_seen_subcommand_from encryption' -a 'on off'",
			"complete -c backupd -n '__fish_seen_subcommand_from encryption' -l password-file -r -F",
			"complete -c backupd -n '__fish_seen_subcommand_from run' -l log-format -x -a 'console json'",
			"complete -c backupd -n '__fish_seen_subcommand_from verify' -a '(backupd completion --udids 2>/dev/null)'",
			`-d 'show each iPhone\'s last backup`,
		}},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"completion", tt.shell}, &out, &errb); code != exitOK {
			t.Fatalf("completion %s: exit %d, %s", tt.shell, code, errb.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("completion %s lacks %q", tt.shell, w)
			}
		}
		// Syntax-check where the shell is installed (not a project
		// dependency, so its absence is not a failure).
		if sh, err := exec.LookPath(tt.shell); err == nil {
			if b, err := exec.Command(sh, "-n", "-c", out.String()).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", tt.shell, err, b)
			}
		}
	}
}

// TestCompletionMatchesFlagSets checks that the usage lines the scripts
// are generated from name exactly the flags each command defines, so the
// scripts cannot drift from the commands.
func TestCompletionMatchesFlagSets(t *testing.T) {
	// The service commands are left out: running them is never safe in a
	// test, and they define --config only (cmdService).
	service := map[string]bool{"install": true, "uninstall": true, "start": true, "stop": true, "restart": true}
	hidden := map[string][]string{"completion": {"udids"}}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	checked := 0
	for _, c := range completionSpec() {
		if service[c.name] || c.name == "version" || c.name == "help" {
			continue
		}
		var out, errb bytes.Buffer
		if code := run([]string{c.name, "-h"}, &out, &errb); code != exitOK || !strings.Contains(errb.String(), "Usage: backupd "+c.name) {
			t.Logf("%s -h prints no usage (not implemented yet?): exit %d", c.name, code)
			continue
		}
		var defined []string
		for _, m := range flagLine.FindAllStringSubmatch(errb.String(), -1) {
			if !slices.Contains(hidden[c.name], m[1]) {
				defined = append(defined, m[1])
			}
		}
		var listed []string
		for _, f := range c.flags {
			if f.name != "h" {
				listed = append(listed, f.name)
			}
		}
		slices.Sort(defined)
		slices.Sort(listed)
		if !slices.Equal(defined, listed) {
			t.Errorf("%s: the flag set defines %q, its usage line (%s) names %q", c.name, defined, c.name, listed)
		}
		checked++
	}
	if checked < 7 {
		t.Errorf("only %d commands checked", checked)
	}
}
