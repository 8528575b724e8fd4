package fnconfig

import (
	"io/fs"
	"os"
	"path/filepath"
)

// chmodDirs makes every directory under dir writable by its owner, so
// that os.RemoveAll can empty them.
func chmodDirs(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}
