// fissionstandin behaves, where it matters to Isotope, like Fission's own
// programs written for a pod: it ignores $PORT.
//
//	fissionstandin runtime   Fission's environment server: listens on
//	                         :8888; GET /healthz, POST /specialize (v1:
//	                         loads $USERFUNC_DIR/user), POST /v2/specialize
//	                         (a FunctionLoadRequest), then answers every
//	                         request with the loaded file. Query: pid,
//	                         netns (its network namespace), port.
//	fissionstandin builder DIR
//	                         Fission's builder: listens on :8001; GET
//	                         /healthz, POST / with {"srcPkgFilename",
//	                         "command"} builds DIR/<src> into
//	                         DIR/<src>-<suffix> (the source with "built: "
//	                         before each file's content), DELETE /clean.
//	... --never-ready        prints a few lines and never listens.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fissionstandin runtime|builder [DIR] [--never-ready]")
		os.Exit(2)
	}
	for _, a := range os.Args[2:] {
		if a == "--never-ready" {
			fmt.Println("standin: loading a very large model")
			fmt.Fprintln(os.Stderr, "standin: still warming up, port not open yet")
			for {
				time.Sleep(time.Hour)
			}
		}
	}
	switch os.Args[1] {
	case "runtime":
		runtime()
	case "builder":
		builder(os.Args[len(os.Args)-1])
	}
	os.Exit(2)
}

func runtime() {
	var (
		mu      sync.Mutex
		content []byte
	)
	load := func(w http.ResponseWriter, path, entry string) {
		mu.Lock()
		defer mu.Unlock()
		if content != nil {
			http.Error(w, "Not a generic container", http.StatusBadRequest)
			return
		}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			path = filepath.Join(path, entry)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		content = b
		fmt.Printf("standin: specialized with %s\n", path)
	}
	userfunc := os.Getenv("USERFUNC_DIR")
	if userfunc == "" {
		userfunc = "/userfunc"
	}
	http.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	http.HandleFunc("POST /specialize", func(w http.ResponseWriter, r *http.Request) {
		load(w, filepath.Join(userfunc, "user"), "")
	})
	http.HandleFunc("POST /v2/specialize", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			FilePath     string `json:"filepath"`
			FunctionName string `json:"functionName"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		load(w, req.FilePath, req.FunctionName)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c := content
		mu.Unlock()
		q := r.URL.Query()
		switch {
		case q.Has("pid"):
			fmt.Fprint(w, os.Getpid())
		case q.Has("netns"):
			ns, _ := os.Readlink("/proc/self/ns/net")
			fmt.Fprint(w, ns)
		case c == nil:
			http.Error(w, "Generic container: no requests supported", http.StatusInternalServerError)
		default:
			w.Write(c)
		}
	})
	serve(":8888")
}

func builder(dir string) {
	http.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Src     string `json:"srcPkgFilename"`
			Command string `json:"command"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Src == "" || filepath.Base(req.Src) != req.Src {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"buildLogs": fmt.Sprintf("bad request (%v)\n", err)})
			return
		}
		src := filepath.Join(dir, req.Src)
		out := req.Src + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
		log := fmt.Sprintf("standin builder on :8001 building %s with %q\n", req.Src, req.Command)
		err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if rel == "." {
				rel = filepath.Base(p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			dst := filepath.Join(dir, out, rel)
			os.MkdirAll(filepath.Dir(dst), 0o755)
			log += "built " + rel + "\n"
			return os.WriteFile(dst, append([]byte("built: "), b...), 0o644)
		})
		fmt.Print(log)
		code := http.StatusOK
		if err != nil {
			code, log = http.StatusInternalServerError, log+err.Error()+"\n"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"artifactFilename": out, "buildLogs": log})
	})
	http.HandleFunc("DELETE /clean", func(w http.ResponseWriter, r *http.Request) {
		if n := r.URL.Query().Get("name"); n != "" && filepath.Base(n) == n {
			os.RemoveAll(filepath.Join(dir, n))
		}
	})
	serve(":8001")
}

func serve(addr string) {
	fmt.Println("standin: listening on", addr)
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}
