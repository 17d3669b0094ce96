package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// The completion scripts are generated from commands(): each command's
// usage line names its flags, their values and whether it takes a UDID
// (a test checks the usage lines against the flag sets), so a new
// command or flag reaches the scripts by itself. UDIDs come from
// `backupd completion --udids` when the user presses Tab.

// complFlag is a flag as completion sees it.
type complFlag struct {
	name   string   // without dashes
	arg    string   // its argument's placeholder (PATH, N); "" for a switch
	values []string // the values it takes, when the usage lists them
}

// complCmd is one command as completion sees it.
type complCmd struct {
	name, does string
	flags      []complFlag
	words      []string // the choices of its first argument (on, off)
	udid       bool     // it takes a UDID
}

// completionSpec reads the commands' usage lines.
func completionSpec() []complCmd {
	var out []complCmd
	for _, c := range commands() {
		cc := complCmd{name: c.name, does: c.does}
		seen := map[string]bool{}
		addFlag := func(f complFlag) {
			if !seen[f.name] {
				seen[f.name] = true
				cc.flags = append(cc.flags, f)
			}
		}
		toks := strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(c.args))
		for i := 0; i < len(toks); i++ {
			for alt := range strings.SplitSeq(toks[i], "|") {
				switch {
				case strings.HasPrefix(alt, "-"):
					f := complFlag{name: strings.TrimLeft(alt, "-")}
					// A following word that is not a flag, a UDID or a
					// choice list starting a new group is the flag's
					// argument.
					if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") && toks[i+1] != "UDID" && !strings.Contains(toks[i], "|") {
						i++
						if strings.Contains(toks[i], "|") {
							f.arg, f.values = "VALUE", strings.Split(toks[i], "|")
						} else {
							f.arg = toks[i]
						}
					}
					addFlag(f)
				case alt == "UDID":
					cc.udid = true
				case i == 0 && strings.Contains(toks[i], "|"):
					cc.words = append(cc.words, alt)
				}
			}
		}
		// Every command takes --config (command.execute) and -h.
		addFlag(complFlag{name: "config", arg: "PATH"})
		addFlag(complFlag{name: "h"})
		out = append(out, cc)
	}
	out = append(out, complCmd{name: "version", does: "print the version"}, complCmd{name: "help", does: "print the help"})
	return out
}

func completionCommand() command {
	return command{
		name: "completion", args: "bash|zsh|fish", does: "print a shell completion script",
		help: `Prints a script that completes backupd's commands, flags and the UDIDs of
known iPhones. To install it:

  bash:  backupd completion bash | sudo tee /etc/bash_completion.d/backupd
         (or add 'source <(backupd completion bash)' to ~/.bashrc)
  zsh:   backupd completion zsh > "${fpath[1]}/_backupd"
         (or add 'source <(backupd completion zsh)' to ~/.zshrc)
  fish:  backupd completion fish > ~/.config/fish/completions/backupd.fish`,
		flags: func(fs *flag.FlagSet) runner {
			var udids bool
			fs.BoolVar(&udids, "udids", false, "print the UDIDs of the iPhones backupd knows, one a line (the scripts use it)")
			return func(ctx context.Context, a *app, pos []string) error {
				if udids {
					return printUDIDs(ctx, a)
				}
				if len(pos) != 1 {
					return fail(exitUsage, "name one shell: bash, zsh or fish")
				}
				spec := completionSpec()
				switch pos[0] {
				case "bash":
					io.WriteString(a.stdout, bashCompletion(spec))
				case "zsh":
					io.WriteString(a.stdout, zshCompletion(spec))
				case "fish":
					io.WriteString(a.stdout, fishCompletion(spec))
				default:
					return fail(exitUsage, "%q: want bash, zsh or fish", pos[0])
				}
				return nil
			}
		},
	}
}

// printUDIDs prints the known UDIDs: the daemon's, or the history's when
// it is not running. It stays quiet on errors: a completion has nowhere
// to show them.
func printUDIDs(ctx context.Context, a *app) error {
	stderr := a.stderr
	a.stderr = io.Discard // no version remark either
	cfg, err := a.config()
	if err != nil {
		return exitWith(exitBadConfig)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	devs, err := c.Devices(ctx)
	if err != nil {
		if devs, err = devicesFromHistory(cfg); err != nil {
			fmt.Fprintf(stderr, "backupd completion: %v\n", err)
			return exitWith(exitError)
		}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].UDID < devs[j].UDID })
	for _, d := range devs {
		fmt.Fprintln(a.stdout, d.UDID)
	}
	return nil
}

func flagWords(c complCmd) string {
	var w []string
	for _, f := range c.flags {
		if len(f.name) == 1 {
			w = append(w, "-"+f.name)
		} else {
			w = append(w, "--"+f.name)
		}
	}
	return strings.Join(w, " ")
}

// fileArg: the flag's argument is a file name.
func fileArg(f complFlag) bool { return f.arg == "PATH" || f.arg == "F" || f.arg == "FILE" }

func bashCompletion(spec []complCmd) string {
	var b strings.Builder
	var names []string
	for _, c := range spec {
		names = append(names, c.name)
	}
	fmt.Fprintf(&b, `# bash completion for backupd (generated by "backupd completion bash")
_backupd() {
    local cur prev cmd words=""
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=( $(compgen -W %q -- "$cur") )
        return 0
    fi
    cmd="${COMP_WORDS[1]}"
    case "$cmd" in
`, strings.Join(names, " "))
	for _, c := range spec {
		if len(c.flags) == 0 && len(c.words) == 0 && !c.udid {
			continue
		}
		fmt.Fprintf(&b, "    %s)\n        case \"$prev\" in\n", c.name)
		for _, f := range c.flags {
			if f.arg == "" {
				continue
			}
			fmt.Fprintf(&b, "        -%s|--%s)\n", f.name, f.name)
			switch {
			case len(f.values) > 0:
				fmt.Fprintf(&b, "            COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return 0 ;;\n", strings.Join(f.values, " "))
			case fileArg(f):
				b.WriteString("            COMPREPLY=( $(compgen -f -- \"$cur\") ); return 0 ;;\n")
			default:
				b.WriteString("            return 0 ;;\n")
			}
		}
		b.WriteString("        esac\n")
		fmt.Fprintf(&b, "        if [[ \"$cur\" == -* ]]; then\n            COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return 0\n        fi\n", flagWords(c))
		if len(c.words) > 0 {
			fmt.Fprintf(&b, "        if [ \"$COMP_CWORD\" -eq 2 ]; then\n            COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return 0\n        fi\n", strings.Join(c.words, " "))
		}
		if c.udid {
			b.WriteString("        words=\"$(\"${COMP_WORDS[0]}\" completion --udids 2>/dev/null)\"\n        COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") )\n")
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString("    esac\n    return 0\n}\ncomplete -F _backupd backupd\n")
	return b.String()
}

// zshCompletion is the bash script under zsh's bashcompinit, so both
// shells complete alike from one generator.
func zshCompletion(spec []complCmd) string {
	return "#compdef backupd\n# zsh completion for backupd (generated by \"backupd completion zsh\")\n" +
		"autoload -U +X bashcompinit && bashcompinit\n" + bashCompletion(spec)
}

func fishCompletion(spec []complCmd) string {
	var b strings.Builder
	b.WriteString("# fish completion for backupd (generated by \"backupd completion fish\")\ncomplete -c backupd -f\n")
	for _, c := range spec {
		fmt.Fprintf(&b, "complete -c backupd -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.does))
	}
	for _, c := range spec {
		cond := fishQuote("__fish_seen_subcommand_from " + c.name)
		for _, f := range c.flags {
			opt := "-l " + f.name
			if len(f.name) == 1 {
				opt = "-s " + f.name
			}
			switch {
			case len(f.values) > 0:
				fmt.Fprintf(&b, "complete -c backupd -n %s %s -x -a %s\n", cond, opt, fishQuote(strings.Join(f.values, " ")))
			case fileArg(f):
				fmt.Fprintf(&b, "complete -c backupd -n %s %s -r -F\n", cond, opt)
			case f.arg != "":
				fmt.Fprintf(&b, "complete -c backupd -n %s %s -x\n", cond, opt)
			default:
				fmt.Fprintf(&b, "complete -c backupd -n %s %s\n", cond, opt)
			}
		}
		if len(c.words) > 0 {
			fmt.Fprintf(&b, "complete -c backupd -n %s -a %s\n", cond, fishQuote(strings.Join(c.words, " ")))
		}
		if c.udid {
			fmt.Fprintf(&b, "complete -c backupd -n %s -a '(backupd completion --udids 2>/dev/null)'\n", cond)
		}
	}
	return b.String()
}

// fishQuote quotes s for fish, in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
