package hmac

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
)

// errTooLarge is returned by spool when a body exceeds its cap.
var errTooLarge = errors.New("body too large")

// spooled is a body read once to hash it, kept for a second read: in
// memory up to a threshold, in a temporary file beyond it.
type spooled struct {
	sum  string
	size int64
	mem  []byte
	file *os.File // nil when the body fit in memory
}

// spool reads r to its end, hashing it. It keeps up to memMax bytes in
// memory and spills the rest to a temporary file; more than max bytes
// (max > 0) fail with errTooLarge. Read errors are returned as they are
// (an *http.MaxBytesError from a server's MaxBytesReader included).
func spool(r io.Reader, memMax, max int64) (*spooled, error) {
	h := sha256.New()
	limit := r
	if max > 0 {
		limit = io.LimitReader(r, max+1)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(limit, memMax+1))
	if err != nil {
		return nil, err
	}
	s := &spooled{size: n}
	if n <= memMax {
		h.Write(buf.Bytes())
		s.mem = buf.Bytes()
	} else {
		f, err := os.CreateTemp("", "isotope-hmac-body-*")
		if err != nil {
			return nil, err
		}
		os.Remove(f.Name()) // unlinked: the open file is all that is left, gone on Close
		s.file = f
		m, err := io.Copy(io.MultiWriter(f, h), io.MultiReader(&buf, limit))
		s.size = m
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	if max > 0 && s.size > max {
		s.close()
		return nil, errTooLarge
	}
	s.sum = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// reader returns the body for its second read. For a file-backed body
// the returned ReadCloser owns the file and closes it.
func (s *spooled) reader() io.ReadCloser {
	if s.file != nil {
		return s.file
	}
	return io.NopCloser(bytes.NewReader(s.mem))
}

func (s *spooled) close() {
	if s.file != nil {
		s.file.Close()
	}
}
