package wasmbuild

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"isotope.dev/isotope/internal/builder"
)

// ToolError is a toolchain command that ran and failed. Its message
// names the command and the first diagnostic with a position the
// command printed ("hello.c:3:5: error: ..."), so the error a user sees
// first (the CLI's, the package's status) already points at the line;
// the whole output is in the build log.
type ToolError struct {
	Tool string // "clang", "cargo", "build.sh"
	Err  error  // the exit status
	// First is the first error diagnostic, with its position when the
	// tool gave one; empty if none was recognized.
	First string

	output *diagWriter
}

func (e *ToolError) Error() string {
	if e.First != "" {
		return fmt.Sprintf("%s failed: %s", e.Tool, e.First)
	}
	return fmt.Sprintf("%s failed: %v (its output is above)", e.Tool, e.Err)
}

func (e *ToolError) Unwrap() error { return e.Err }

// Printed reports whether the tool's output contains s.
func (e *ToolError) Printed(s string) bool { return e.output != nil && e.output.contains(s) }

// Run runs argv in dir with env, its stdout and stderr going to log as
// they come. tool names it in errors. A failure is a *ToolError; a
// program that cannot be started is reported as such.
func Run(ctx context.Context, tool, dir string, env []string, log io.Writer, argv ...string) error {
	dw := &diagWriter{}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	out := &lockedWriter{w: io.MultiWriter(log, dw)}
	cmd.Stdout, cmd.Stderr = out, out
	builder.KillGroupOnCancel(cmd)
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	dw.flush()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s stopped: %w", tool, ctx.Err())
	}
	if _, ok := err.(*exec.ExitError); !ok {
		return fmt.Errorf("running %s: %w", tool, err)
	}
	return &ToolError{Tool: tool, Err: err, First: dw.first, output: dw}
}

// CommandLine renders argv for the build log, with dir shortened to "."
// so the line reads as the user would type it in the source directory.
func CommandLine(dir string, argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, dir+"/", "")
		if strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// Diagnostics the build log is searched for, first match kept:
//
//	hello.c:3:5: error: use of undeclared identifier 'x'   (clang, gcc)
//	error[E0308]: mismatched types                         (rustc, cargo)
//	 --> src/main.rs:2:5
//	wasm-ld: error: undefined symbol: foo                  (no position)
var (
	positioned = regexp.MustCompile(`^(\S+?:\d+(?::\d+)?): (?:fatal )?error: (.*)$`)
	rustError  = regexp.MustCompile(`^error(\[E\d+\])?: (.*)$`)
	rustArrow  = regexp.MustCompile(`^\s*--> (\S+:\d+:\d+)\s*$`)
	anyError   = regexp.MustCompile(`(^|: )error: `)
)

// maxKept bounds the output a diagWriter keeps for Printed.
const maxKept = 1 << 20

// diagWriter watches a tool's output line by line for its first error
// diagnostic.
type diagWriter struct {
	mu      sync.Mutex
	partial []byte
	kept    bytes.Buffer
	first   string
	// rust is a rustc "error: ..." line waiting for its " --> " line.
	rust string
	// fallback is the first line saying "error:" without a position.
	fallback string
}

func (d *diagWriter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kept.Len() < maxKept {
		d.kept.Write(p[:min(len(p), maxKept-d.kept.Len())])
	}
	d.partial = append(d.partial, p...)
	for {
		i := bytes.IndexByte(d.partial, '\n')
		if i < 0 {
			break
		}
		d.line(strings.TrimRight(string(d.partial[:i]), "\r"))
		d.partial = d.partial[i+1:]
	}
	return len(p), nil
}

func (d *diagWriter) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.partial) > 0 {
		d.line(string(d.partial))
		d.partial = nil
	}
	if d.first == "" && d.rust != "" {
		d.first = d.rust
	}
	if d.first == "" {
		d.first = d.fallback
	}
}

func (d *diagWriter) line(l string) {
	if d.first != "" {
		return
	}
	l = stripANSI(l)
	if m := positioned.FindStringSubmatch(l); m != nil {
		d.first = m[1] + ": error: " + m[2]
		return
	}
	if d.rust != "" {
		if m := rustArrow.FindStringSubmatch(l); m != nil {
			d.first = m[1] + ": " + d.rust
			return
		}
	}
	if m := rustError.FindStringSubmatch(l); m != nil {
		// "error: aborting due to previous error" and cargo's summary
		// lines say nothing new: keep the first real message.
		if d.rust == "" && !strings.HasPrefix(m[2], "aborting due to") && !strings.HasPrefix(m[2], "could not compile") {
			d.rust = "error" + m[1] + ": " + m[2]
		}
		return
	}
	if d.fallback == "" && anyError.MatchString(l) {
		d.fallback = strings.TrimSpace(l)
	}
}

func (d *diagWriter) contains(s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Contains(d.kept.Bytes(), []byte(s))
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
	return ansi.ReplaceAllString(s, "")
}

// lockedWriter serializes writes from a child's stdout and stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
