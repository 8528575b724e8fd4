package fnlog

import (
	"bytes"
	"sync"
)

// LineWriter is an io.WriteCloser that splits what is written into lines
// and appends each to one function's log. A partial last line is kept
// until its newline arrives, it grows past MaxLineBytes, or Close.
type LineWriter struct {
	s                    *Store
	namespace, name, std string

	mu  sync.Mutex
	buf []byte
}

// Writer returns a writer appending to the log of function namespace/name
// under stream ("stdout", "stderr" …). It is safe for concurrent use;
// concurrent writers' lines are not interleaved within a line.
func (s *Store) Writer(namespace, name, stream string) *LineWriter {
	return &LineWriter{s: s, namespace: namespace, name: name, std: stream}
}

// Write appends every complete line of p; it never fails.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) >= w.s.lim.MaxLineBytes {
				w.s.Append(w.namespace, w.name, w.std, string(w.buf[:w.s.lim.MaxLineBytes]))
				w.buf = append(w.buf[:0], w.buf[w.s.lim.MaxLineBytes:]...)
			}
			break
		}
		line := p[:i]
		if len(w.buf) > 0 {
			line = append(w.buf, line...)
		}
		w.s.Append(w.namespace, w.name, w.std, string(bytes.TrimSuffix(line, []byte{'\r'})))
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Close appends a partial last line, if any.
func (w *LineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.s.Append(w.namespace, w.name, w.std, string(w.buf))
		w.buf = nil
	}
	return nil
}
