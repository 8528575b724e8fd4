package wasm

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// funcLog writes one function's log lines, each prefixed with a UTC
// timestamp, the function name and the source (stderr, stdout, isotope).
// Writes are serialized, so guest lines never interleave mid-line.
type funcLog struct {
	mu   sync.Mutex
	w    io.Writer
	name string
}

func newFuncLog(w io.Writer, name string) *funcLog {
	if w == nil {
		w = io.Discard
	}
	return &funcLog{w: w, name: name}
}

// LineLogger is a LoadRequest.Log that takes each line as it is: the
// source ("stderr", "stdout" or "isotope", the host) and the text,
// without the timestamp and name a plain io.Writer gets. A host text may
// span lines (a trap's stack trace). A log that
// stores lines (the executor's function logs) is spared formatting and
// parsing them again on every line of every request. It must be safe
// for concurrent use: instances of one function log at once.
type LineLogger interface {
	LogLine(source, text string)
}

func (l *funcLog) line(source, text string) {
	if l.w == io.Discard {
		return
	}
	if ll, ok := l.w.(LineLogger); ok {
		ll.LogLine(source, text)
		return
	}
	var b bytes.Buffer
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteByte(' ')
	b.WriteString(l.name)
	b.WriteByte(' ')
	b.WriteString(source)
	b.WriteString(": ")
	b.WriteString(text)
	b.WriteByte('\n')
	l.mu.Lock()
	_, _ = l.w.Write(b.Bytes())
	l.mu.Unlock()
}

// maxLogLine bounds a partial line held back waiting for its newline.
const maxLogLine = 16 << 10

// lineWriter is a guest's stderr (or stdout): it cuts the byte stream into
// lines for funcLog. It is used by one instance at a time.
type lineWriter struct {
	log    *funcLog
	source string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if w.log.w == io.Discard {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLogLine {
				w.Flush()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.Flush()
		p = p[i+1:]
	}
	return n, nil
}

// Flush emits a pending partial line.
func (w *lineWriter) Flush() {
	if len(w.buf) == 0 {
		return
	}
	w.log.line(w.source, string(bytes.TrimRight(w.buf, "\r")))
	w.buf = w.buf[:0]
}
