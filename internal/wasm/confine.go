package wasm

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkConfined refuses an archive directory holding a symlink that
// leaves it. wazero's directory mount follows symlinks wherever they
// point, so such a link would let a guest read any host file the server
// can (internal/wasm's TestIsolationFiles shows it). Archives unpacked by
// internal/archive never hold one; this is the runtime's own guard for
// directories that arrive some other way. Links within the directory,
// dangling or not, are fine.
func checkConfined(dir string) error {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	inside := func(p string) bool {
		rel, err := filepath.Rel(root, p)
		return err == nil && (rel == "." || filepath.IsLocal(rel))
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		lexical := target
		if !filepath.IsAbs(target) {
			lexical = filepath.Join(filepath.Dir(p), target)
		}
		resolved, err := filepath.EvalSymlinks(p)
		if !inside(lexical) || err == nil && !inside(resolved) {
			rel, _ := filepath.Rel(root, p)
			return fmt.Errorf("symlink %s -> %s points outside the archive directory %s; a function may only see its own archive", rel, target, dir)
		}
		return nil
	})
}
