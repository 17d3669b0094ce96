package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// outputLimit bounds what is kept of a command's stdout and stderr for
// the log.
const outputLimit = 4 << 10

// waitDelay bounds the wait for a command's output after it exits or is
// killed: a child it left running may hold its stdout open.
const waitDelay = 2 * time.Second

// runCommand runs a command hook with the event on stdin and in the
// environment, killing it (and, on unix, its process group) after the
// timeout. A non-zero exit is a failure; its output goes into the error.
func (n *Runner) runCommand(ctx context.Context, h Hook, ev Event) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	cmd.Stdin = bytes.NewReader(encode(ev))
	cmd.Env = append(os.Environ(), ev.Env()...)
	out := &capped{max: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	killGroup(cmd)
	err := cmd.Run()
	said := ""
	if s := out.String(); s != "" {
		said = ": " + s
	}
	switch {
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return fmt.Errorf("killed after %v%s", n.opts.Timeout, said)
	case ctx.Err() != nil:
		return fmt.Errorf("killed: backupd is stopping%s", said)
	case err != nil:
		return fmt.Errorf("%w%s", err, said)
	}
	if s := out.String(); s != "" {
		n.log.Info("hook output", "hook", h.label(), "output", s)
	}
	return nil
}
