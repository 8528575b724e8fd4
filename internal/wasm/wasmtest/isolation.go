package wasmtest

// IsolationGoSource is a hostile WAGI guest for isolation tests: a Go
// net/http/cgi program for wasip1 that tries, on request, what a function
// must not be able to do, and reports what happened. ?op= selects:
//
//	read&path=P     os.ReadFile(P): 200 and the content, or 403 "ERR <error>"
//	write&path=P    os.WriteFile(P): 200 "wrote", or 403 "ERR <error>"
//	dial&addr=A     net.Dial("tcp", A): 200 "connected", or 403 "ERR <error>"
//	listeners       net.FileListener on every fd 0..63: 200 and one line per
//	                fd that became a listener (none expected), then "done"
//	env             os.Environ(), one variable per line, sorted
//	alloc&mb=N      allocates and touches N MiB: 200 "allocated N MiB", or
//	                the Go runtime dies out of memory
const IsolationGoSource = `package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"sort"
	"strconv"
	"strings"
)

var sink [][]byte

func main() {
	cgi.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/plain")
		fail := func(err error) {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "ERR %v\n", err)
		}
		switch q.Get("op") {
		case "read":
			b, err := os.ReadFile(q.Get("path"))
			if err != nil {
				fail(err)
				return
			}
			w.Write(b)
		case "write":
			if err := os.WriteFile(q.Get("path"), []byte("overwritten"), 0o644); err != nil {
				fail(err)
				return
			}
			fmt.Fprintln(w, "wrote")
		case "dial":
			c, err := net.Dial("tcp", q.Get("addr"))
			if err != nil {
				fail(err)
				return
			}
			c.Write([]byte("hello from a guest\n"))
			c.Close()
			fmt.Fprintln(w, "connected")
		case "listeners":
			for fd := 0; fd < 64; fd++ {
				l, err := net.FileListener(os.NewFile(uintptr(fd), "fd"))
				if err == nil {
					fmt.Fprintf(w, "fd %d is a listener on %v\n", fd, l.Addr())
				}
			}
			fmt.Fprintln(w, "done")
		case "env":
			env := os.Environ()
			sort.Strings(env)
			fmt.Fprintln(w, strings.Join(env, "\n"))
		case "alloc":
			mb, _ := strconv.Atoi(q.Get("mb"))
			for i := 0; i < mb; i++ {
				b := make([]byte, 1<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				sink = append(sink, b)
			}
			fmt.Fprintf(w, "allocated %d MiB\n", mb)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintln(w, "unknown op")
		}
	}))
}
`

// BuildIsolationGuest builds IsolationGoSource as a wasip1 command (once
// per test binary, cached across runs like BuildWAGI) and returns the path
// of the .wasm file.
func BuildIsolationGuest() (string, error) {
	return build("isolation", map[string]string{
		"go.mod":  "module isolationtest\n\ngo 1.24\n",
		"main.go": IsolationGoSource,
	}, false)
}
