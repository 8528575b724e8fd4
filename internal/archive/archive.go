// Package archive reads and writes the zip archives that carry function
// source and deployment packages between the CLI, the storage service, the
// fetcher and the builder.
//
// Extraction is defensive because an archive is user input that lands on
// a shared volume: every entry name must be a local, relative path (no
// "..", no absolute names); symlinks must point inside the extracted tree;
// device files and other special entries are refused; the expanded size is
// capped and so is the ratio of expanded to compressed bytes, so a zip bomb
// stops early; a corrupt archive or entry is reported as such. Every
// refusal is an *EntryError that names the offending entry. Extraction
// happens in a temporary directory next to the destination, confined with
// os.Root, and is renamed into place only when everything succeeded, so a
// refused archive leaves nothing behind.
package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Defaults for Limits fields left at zero.
const (
	DefaultMaxExpandedBytes = 1 << 30 // 1 GiB
	DefaultMaxRatio         = 100
	DefaultMaxEntries       = 100_000
	// ratioFloor is the expanded size below which the ratio is not
	// checked: a small file of repetitive text compresses very well and
	// is harmless.
	ratioFloor = 1 << 20
)

// Limits bounds what Extract accepts. The zero value means the defaults.
type Limits struct {
	// MaxExpandedBytes caps the sum of the entries' uncompressed sizes.
	MaxExpandedBytes int64
	// MaxRatio caps expanded bytes / archive bytes once more than 1 MiB
	// has been expanded.
	MaxRatio float64
	// MaxEntries caps the number of entries.
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxExpandedBytes <= 0 {
		l.MaxExpandedBytes = DefaultMaxExpandedBytes
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// EntryError is a refused or unreadable archive entry. Entry is the name
// as stored in the archive, or "" when the archive as a whole is bad.
type EntryError struct {
	Archive string // path of the archive file
	Entry   string
	Reason  string
	Err     error // underlying error, if any
}

func (e *EntryError) Error() string {
	msg := e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Entry == "" {
		return fmt.Sprintf("archive %s: %s", e.Archive, msg)
	}
	return fmt.Sprintf("archive %s: entry %q: %s", e.Archive, e.Entry, msg)
}

func (e *EntryError) Unwrap() error { return e.Err }

// ErrRefused is wrapped by every EntryError about a policy refusal (unsafe
// path, symlink escape, size or ratio cap); errors.Is(err, ErrRefused)
// tells them from I/O failures.
var ErrRefused = errors.New("refused")

var zipMagic = []byte("PK\x03\x04")
var emptyZipMagic = []byte("PK\x05\x06")

// IsZip reports whether the file at path starts like a zip archive.
func IsZip(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return HasZipMagic(head[:n]), nil
}

// HasZipMagic reports whether head, an archive's first bytes, starts like
// a zip archive.
func HasZipMagic(head []byte) bool {
	return bytes.HasPrefix(head, zipMagic) || bytes.HasPrefix(head, emptyZipMagic)
}

// openZip opens src and wraps a failure as an EntryError naming the file.
func openZip(src string) (*zip.ReadCloser, int64, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, 0, err
	}
	zr, err := zip.OpenReader(src)
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		err = nil // Extract checks every name itself and names the entry
	}
	if err != nil {
		return nil, 0, &EntryError{Archive: src, Reason: "not a valid zip archive", Err: err}
	}
	return zr, st.Size(), nil
}
