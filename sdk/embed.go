// Package sdk carries the source of Isotope's guest SDKs so a builder can
// write them next to a user's build.
package sdk

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// GoSource is the Go guest SDK (package isotope.dev/isotope/sdk/go) as the
// files of directory "go".
//
//go:embed go
var GoSource embed.FS

// GoModulePath is the module path the SDK is imported under.
const GoModulePath = "isotope.dev/isotope"

// WriteGoModule writes a standalone module isotope.dev/isotope holding
// only the Go SDK into dir (dir/go.mod and dir/sdk/go/*.go, tests left
// out). A user build then uses it with
//
//	require isotope.dev/isotope v0.0.0
//	replace isotope.dev/isotope => <dir>
func WriteGoModule(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "sdk", "go"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+GoModulePath+"\n\ngo 1.24\n"), 0o644); err != nil {
		return err
	}
	return fs.WalkDir(GoSource, "go", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "testdata" {
			return fs.SkipDir // test inputs (fuzz corpora) are tests too
		}
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := GoSource.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "sdk", filepath.FromSlash(p)), b, 0o644)
	})
}
