//go:build failpoint

package repo

import "errors"

// Failpoints stop or fail a Repo's work at its named steps, for the crash
// and torture tests. They exist only in a build with the failpoint tag;
// a release build has none (see steps_release.go).
type Failpoints struct {
	// AfterStep runs after every named step of a commit (and of an
	// abort). An error from it stops there as a crash would: nothing
	// runs after it, not even the clean-up a real error gets. An error
	// that wraps ErrInjected instead fails the step as if a system call
	// had failed.
	AfterStep func(step string) error
	// TwoRenames forces the commit without the atomic exchange.
	TwoRenames bool
	// LinkErr, when set, is what every hard link attempt fails with.
	LinkErr error
}

// faults is Options' failpoints.
type faults struct{ fp Failpoints }

// WithFailpoints returns opts with the failpoints fp armed.
func WithFailpoints(opts Options, fp Failpoints) Options {
	opts.faults = faults{fp}
	return opts
}

// ErrInjected, wrapped by an AfterStep error, makes the step fail as if a
// system call had failed, rather than stop there as a crash.
var ErrInjected = errors.New("injected failure")

func (f faults) twoRenames() bool { return f.fp.TwoRenames }
func (f faults) linkError() error { return f.fp.LinkErr }

// step runs the AfterStep failpoint after a step.
func (r *Repo) step(name string) error {
	h := r.opts.faults.fp.AfterStep
	if h == nil {
		return nil
	}
	if err := h(name); err != nil {
		if errors.Is(err, ErrInjected) {
			return err
		}
		return &crashError{step: name, err: err}
	}
	return nil
}

// crashError is a failpoint's "crash here": nothing may run after it,
// not even the clean-up a real error gets, or it would not be a crash.
type crashError struct {
	step string
	err  error
}

func (e *crashError) Error() string { return "stopped after step " + e.step + ": " + e.err.Error() }
func (e *crashError) Unwrap() error { return e.err }

// crashed reports whether err is a failpoint's crash.
func crashed(err error) bool {
	var ce *crashError
	return errors.As(err, &ce)
}
