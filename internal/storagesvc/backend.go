// Package storagesvc is Isotope's archive store: Fission's storage
// service API (/v1/archive: multipart upload with X-File-Size, download
// by ?id=, HEAD, DELETE, list), a Backend seam with a local filesystem
// implementation, a pruner that deletes archives no Package references,
// and the HTTP client the CLI, fetcher and builder manager use.
//
// Archives stream both ways: nothing is ever held in memory whole, the
// sha256 is computed while the bytes arrive, and an archive becomes
// visible only once it is complete and durable (temp file, fsync,
// rename), so a crash or a disconnect never leaves a partial archive
// behind.
package storagesvc

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"
)

// Info describes one stored archive.
type Info struct {
	// ID is the archive's path-like identifier, as Fission's
	// (e.g. "/isotope/archives/<uuid>"); URL-escape it in ?id=.
	ID string `json:"id"`
	// Size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex sha256 of the bytes.
	SHA256 string `json:"sha256"`
	// ModTime is when the archive was stored; the pruner's grace period
	// counts from it.
	ModTime time.Time `json:"modTime"`
}

// Backend stores archives. Implementations: LocalBackend (a directory);
// an S3-compatible one fits the same shape (Put streams a multipart
// upload, Open does ranged GETs).
type Backend interface {
	// Put stores everything r yields as a new archive and returns its
	// Info. The archive becomes visible (Stat, Open, List) only when Put
	// succeeds; on any error, including a read error from r or a
	// cancelled ctx, nothing is kept. A full disk is an error that
	// matches ErrNoSpace.
	Put(ctx context.Context, r io.Reader) (Info, error)
	// Open returns the archive's bytes, seekable so a server can answer
	// Range requests, and its Info. The caller closes the reader.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, Info, error)
	// Stat returns an archive's Info without reading its bytes.
	Stat(ctx context.Context, id string) (Info, error)
	// Delete removes an archive.
	Delete(ctx context.Context, id string) error
	// List returns every complete archive (never one still being
	// written), in no particular order.
	List(ctx context.Context) ([]Info, error)
	// Type names the storage kind for the X-FISSION-STORAGETYPE header
	// ("local" or "s3").
	Type() string
}

// Errors a Backend, the Server and the Client report; test with errors.Is.
var (
	// ErrNotFound: no archive has this id.
	ErrNotFound = errors.New("archive not found")
	// ErrInvalidID: the id is not one this backend could have issued.
	ErrInvalidID = errors.New("invalid archive id")
	// ErrTooLarge: the archive is over the size cap.
	ErrTooLarge = errors.New("archive too large")
	// ErrNoSpace: the disk (or quota) is full.
	ErrNoSpace = errors.New("no space left for the archive")
	// ErrSizeMismatch: the bytes received differ from X-File-Size.
	ErrSizeMismatch = errors.New("archive size does not match X-File-Size")
)

// noSpace wraps err so it also matches ErrNoSpace when it is ENOSPC or
// EDQUOT, the two ways a write or fsync reports a full disk.
func noSpace(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &wrapped{sentinel: ErrNoSpace, err: err}
	}
	return err
}

// wrapped is an error that matches both a sentinel and its cause.
type wrapped struct {
	sentinel error
	err      error
}

func (w *wrapped) Error() string   { return w.sentinel.Error() + ": " + w.err.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.sentinel, w.err} }
