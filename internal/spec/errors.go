package spec

import (
	"fmt"
	"strings"
)

// Error is one problem in a spec directory, located as precisely as the
// decoder knows: file, 1-based document number within the file, and the
// kind and name of the object when they were read. Err is the cause; for
// validation problems it is a *field.Error whose text starts with the
// field path. Rendered as
//
//	specs/fn.yaml: document 2 (Function "hello"): spec.functionTimeout: Invalid value: -1: must be > 0 (seconds)
type Error struct {
	File string
	Doc  int // 0 when the problem is about the whole file
	// Line is the line in File where the document starts (1-based; 0
	// when unknown). YAML syntax errors carry their own, file-absolute
	// line in Err's text.
	Line int
	Kind string
	Name string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", e.Doc)
	}
	switch {
	case e.Kind != "" && e.Name != "":
		fmt.Fprintf(&b, " (%s %q)", e.Kind, e.Name)
	case e.Kind != "":
		fmt.Fprintf(&b, " (%s)", e.Kind)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem found; its text is one problem per line.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an individual *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// at returns an Error located at document d.
func (d *Document) errorf(format string, args ...any) *Error {
	return d.wrap(fmt.Errorf(format, args...))
}

func (d *Document) wrap(err error) *Error {
	return &Error{File: d.File, Doc: d.Index, Line: d.Line, Kind: d.Kind, Name: d.Name(), Err: err}
}
