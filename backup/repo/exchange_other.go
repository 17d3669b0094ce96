//go:build !linux && !darwin

package repo

// exchange: no atomic directory exchange here (Windows has none); the
// commit uses two renames and its journal.
func exchange(a, b string) error { return errNoExchange }
