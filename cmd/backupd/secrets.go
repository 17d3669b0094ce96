package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// secretKeys names the settings of cfg that hold secrets: the API and
// web tokens and the hooks' headers (API keys, bearer tokens).
func (c fileConfig) secretKeys() []string {
	var keys []string
	if c.API.Token != "" {
		keys = append(keys, "api.token")
	}
	if c.Web.Token != "" {
		keys = append(keys, "web.token")
	}
	for i, h := range c.Notify.Hooks {
		if len(h.Headers) > 0 {
			keys = append(keys, fmt.Sprintf("notify.hook[%d].headers", i+1))
		}
	}
	return keys
}

// exposedSecrets says why the configuration file at path gives its
// secrets away ("" when it does not): it holds a token or hook headers
// and every user of the computer can read it. The group may: the
// package gives it to root:backupd 0640.
func exposedSecrets(path string, cfg fileConfig) string {
	keys := cfg.secretKeys()
	if runtime.GOOS == "windows" || len(keys) == 0 {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	return fmt.Sprintf("%s holds %s and every user of this computer can read it (mode %s): chmod o-r %s",
		path, strings.Join(keys, ", "), fi.Mode().Perm(), path)
}
