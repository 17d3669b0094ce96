//go:build failpoint

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/daemon"
)

// testPauseEnv names a failpoint of the torture suite:
// "commit:STEP[:DURATION]" makes `backupd run` sleep DURATION (default
// 60s) after the named step of every commit (see repo.Failpoints),
// logging "test pause" first, so that the suite can kill -9 it there.
// Unset, it does nothing. Only a binary built with the failpoint tag
// reads it.
const testPauseEnv = "BACKUPD_TEST_PAUSE"

// injectFaults arms the failpoints the environment names (read once,
// when the daemon starts).
func injectFaults(opts *daemon.Options, log zerolog.Logger) error {
	pause, err := testPause(os.Getenv(testPauseEnv), log)
	if err != nil || pause == nil {
		return err
	}
	opts.RepoOptions = func(o repo.Options) repo.Options {
		return repo.WithFailpoints(o, repo.Failpoints{AfterStep: func(step string) error {
			pause(step)
			return nil
		}})
	}
	return nil
}

// testPause reads the failpoint's value and returns what runs after each
// commit step; nil when spec is empty.
func testPause(spec string, log zerolog.Logger) (func(step string), error) {
	if spec == "" {
		return nil, nil
	}
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "commit" || parts[1] == "" {
		return nil, fmt.Errorf("%s=%q: want commit:STEP[:DURATION]", testPauseEnv, spec)
	}
	step, pause := parts[1], time.Minute
	if len(parts) == 3 {
		d, err := time.ParseDuration(parts[2])
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q: bad duration %q", testPauseEnv, spec, parts[2])
		}
		pause = d
	}
	log.Warn().Str("step", step).Dur("pause", pause).Msg("test failpoint armed (" + testPauseEnv + ")")
	return func(s string) {
		if s != step {
			return
		}
		log.Warn().Str("step", s).Dur("pause", pause).Msg("test pause")
		time.Sleep(pause)
	}, nil
}
