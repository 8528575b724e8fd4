package procrt

import (
	"bytes"
	"io"
	"strings"
	"sync"

	"isotope.dev/isotope/internal/fnlog"
)

// tailBytes is how much output an instance keeps for error messages and
// hands to the function's log at specialization.
const tailBytes = 4 << 10

// output collects an instance's stdout and stderr: a small tail for
// error messages until specialization, then the function's log.
type output struct {
	mu      sync.Mutex
	pending []pendingWrite // before attach, bounded by tailBytes
	size    int
	tail    []byte // last tailBytes of output, always kept
	sinks   map[string]io.WriteCloser
}

type pendingWrite struct {
	stream string
	data   []byte
}

func newOutput() *output { return &output{} }

// stream returns the writer for one of the process's streams.
func (o *output) stream(name string) io.Writer { return streamWriter{o, name} }

type streamWriter struct {
	o    *output
	name string
}

func (s streamWriter) Write(p []byte) (int, error) {
	o := s.o
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tail = append(o.tail, p...)
	if len(o.tail) > tailBytes {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-tailBytes:]...)
	}
	if o.sinks != nil {
		o.sinks[s.name].Write(p)
		return len(p), nil
	}
	o.pending = append(o.pending, pendingWrite{s.name, bytes.Clone(p)})
	o.size += len(p)
	for o.size > tailBytes && len(o.pending) > 1 {
		o.size -= len(o.pending[0].data)
		o.pending = o.pending[1:]
	}
	return len(p), nil
}

// attach sends all later output, and what was kept so far, to the log of
// function ns/name.
func (o *output) attach(logs *fnlog.Store, ns, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sinks = map[string]io.WriteCloser{
		"stdout": logs.Writer(ns, name, "stdout"),
		"stderr": logs.Writer(ns, name, "stderr"),
	}
	for _, w := range o.pending {
		o.sinks[w.stream].Write(w.data)
	}
	o.pending, o.size = nil, 0
}

// tailString is the last output, for error messages.
func (o *output) tailString() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.TrimSpace(string(o.tail))
	if s == "" {
		return "(none)"
	}
	return s
}

// close flushes partial lines to the log.
func (o *output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, w := range o.sinks {
		w.Close()
	}
}
