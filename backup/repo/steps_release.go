//go:build !failpoint

package repo

// A release build has no failpoints (failpoint.go, built with the
// failpoint tag, has them): every step goes on and nothing is forced, so
// the compiler drops the checks.

type faults struct{}

func (faults) twoRenames() bool { return false }
func (faults) linkError() error { return nil }

// step marks the end of a named step of a commit or an abort.
func (r *Repo) step(string) error { return nil }

// crashed: only a failpoint crashes on purpose.
func crashed(error) bool { return false }
