package archive

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Check and CheckReader reach the same verdict as Extract, naming the
// same entry, on every seed of the fuzz corpus: valid trees and every
// hostile case, the symlink chain that only resolving links can catch
// included.
func TestCheckAgreesWithExtract(t *testing.T) {
	for name, data := range extractSeeds(t) {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			zipPath := filepath.Join(base, "pkg.zip")
			if err := os.WriteFile(zipPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			extractErr := Extract(zipPath, filepath.Join(base, "out"), fuzzLimits)
			checkErr := Check(zipPath, fuzzLimits)
			readerErr := CheckReader(bytes.NewReader(data), int64(len(data)), "upload", fuzzLimits)
			for what, err := range map[string]error{"Check": checkErr, "CheckReader": readerErr} {
				if (err == nil) != (extractErr == nil) {
					t.Fatalf("%s: %v, Extract: %v", what, err, extractErr)
				}
				if err == nil {
					continue
				}
				var got, want *EntryError
				if !errors.As(err, &got) || !errors.As(extractErr, &want) {
					t.Fatalf("%s: %v (%T) is not an *EntryError like Extract's %v", what, err, err, extractErr)
				}
				if got.Entry != want.Entry || got.Reason != want.Reason {
					t.Errorf("%s names entry %q (%s), Extract %q (%s)", what, got.Entry, got.Reason, want.Entry, want.Reason)
				}
			}
			if checkErr != nil && !bytes.Contains([]byte(checkErr.Error()), []byte(zipPath)) {
				t.Errorf("Check's error %q does not name the archive", checkErr)
			}
			if readerErr != nil && !bytes.Contains([]byte(readerErr.Error()), []byte("archive upload")) {
				t.Errorf("CheckReader's error %q does not use the name given", readerErr)
			}
		})
	}
}
