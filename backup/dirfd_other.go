//go:build !unix

package backup

// renameAt leaves every move to os.Root.Rename where there is no
// renameat(2).
func (f *stagingFS) renameAt(src, dst string) (done bool) { return false }

// createAt leaves every new file to os.Root.OpenFile where there is no
// openat(2).
func (c *dirCache) createAt(d, name string) (f fileWriter, done bool, err error) {
	return nil, false, nil
}
