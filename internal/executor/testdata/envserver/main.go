// envserver is a minimal Fission environment runtime for the executor's
// tests: it speaks /specialize (v1) and /v2/specialize (v2/v3) and then
// answers every request with the content of the loaded file.
//
// Query parameters after specialization: pid (answer the process id),
// stderr=MSG (print MSG on stderr first), echo (answer the request body),
// header=NAME (answer that request header), file=PATH (answer that
// file, $VARS expanded), env=NAME (answer that
// environment variable), sleep=DURATION (take that
// long before answering the content: a slow function for overload tests).
//
// Environment: REQUEST_LOG=PATH appends every request's body, one line
// each, to PATH as the request arrives (a function that records what it
// was given: the message queue tests count deliveries with it), and
// REQUEST_DELAY=DURATION then waits that long before answering.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type loadRequest struct {
	FilePath         string `json:"filepath"`
	FunctionName     string `json:"functionName"`
	FunctionMetadata *struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"FunctionMetadata"`
	EnvVersion int `json:"envVersion"`
}

var (
	mu      sync.Mutex
	content []byte
	loaded  bool
)

func load(w http.ResponseWriter, path, fn string) {
	mu.Lock()
	defer mu.Unlock()
	if loaded {
		http.Error(w, "Not a generic container", http.StatusBadRequest)
		return
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, fn)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	content, loaded = b, true
	if logf := os.Getenv("SPECIALIZE_LOG"); logf != "" {
		f, err := os.OpenFile(logf, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d %s\n", os.Getpid(), fn)
			f.Close()
		}
	}
	fmt.Fprintf(os.Stderr, "specialized with %s\n", path)
	w.WriteHeader(http.StatusAccepted)
}

// record appends the request's body to $REQUEST_LOG (one write, so
// concurrent requests' lines do not interleave) and waits
// $REQUEST_DELAY.
func record(r *http.Request) {
	logf := os.Getenv("REQUEST_LOG")
	if logf == "" {
		return
	}
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	f, err := os.OpenFile(logf, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		f.Write(append(bytes.TrimSpace(b), '\n'))
		f.Close()
	}
	if d, err := time.ParseDuration(os.Getenv("REQUEST_DELAY")); err == nil {
		time.Sleep(d)
	}
}

func main() {
	port := os.Getenv("PORT")
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	http.HandleFunc("POST /specialize", func(w http.ResponseWriter, r *http.Request) {
		load(w, filepath.Join(os.Getenv("USERFUNC_DIR"), "user"), "user")
	})
	http.HandleFunc("POST /v2/specialize", func(w http.ResponseWriter, r *http.Request) {
		var req loadRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.FunctionMetadata == nil || req.FunctionMetadata.Name == "" {
			http.Error(w, fmt.Sprintf("bad load request (%v)", err), http.StatusBadRequest)
			return
		}
		load(w, req.FilePath, req.FunctionName)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c, ok := content, loaded
		mu.Unlock()
		if !ok {
			http.Error(w, "Generic container: no requests supported", http.StatusInternalServerError)
			return
		}
		record(r)
		q := r.URL.Query()
		if m := q.Get("stderr"); m != "" {
			fmt.Fprintln(os.Stderr, m)
		}
		switch {
		case q.Has("pid"):
			fmt.Fprint(w, os.Getpid())
		case q.Has("echo"):
			// Read it all first: Go's HTTP/1 server is not full duplex.
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case q.Has("header"):
			fmt.Fprint(w, r.Header.Get(q.Get("header")))
		case q.Has("env"):
			fmt.Fprint(w, os.Getenv(q.Get("env")))
		case q.Has("file"):
			// A path with $VARS expanded: file=$SECRETS_DIR/ns/name/key.
			b, err := os.ReadFile(os.ExpandEnv(q.Get("file")))
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.Write(b)
		case q.Has("sleep"):
			d, err := time.ParseDuration(q.Get("sleep"))
			if err != nil {
				http.Error(w, "sleep: "+err.Error(), http.StatusBadRequest)
				return
			}
			time.Sleep(d)
			w.Write(c)
		default:
			w.Write(c)
		}
	})
	fmt.Println("envserver listening on", port)
	if err := http.ListenAndServe("127.0.0.1:"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
