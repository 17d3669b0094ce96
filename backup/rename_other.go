//go:build !unix

package backup

// renameAt leaves every move to os.Root.Rename where there is no
// renameat(2).
func (f *stagingFS) renameAt(src, dst string) (done bool) { return false }
