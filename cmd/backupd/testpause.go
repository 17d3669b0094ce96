package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// testPauseEnv names a test-only failpoint: "commit:STEP[:DURATION]" makes
// `backupd run` sleep DURATION (default 60s) after the named step of every
// commit (see repo.Options.StepHook), logging "test pause" first, so the
// torture suite can kill -9 it there. Unset, it does nothing.
const testPauseEnv = "BACKUPD_TEST_PAUSE"

// testPause reads the failpoint's value (read once, in cmdRun) and returns
// the hook for daemon.Options.CommitStepHook; nil when spec is empty.
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
