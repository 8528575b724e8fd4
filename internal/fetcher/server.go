package fetcher

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
)

// maxRequestBody caps a JSON request body.
const maxRequestBody = 1 << 20

// Handler serves Fission's fetcher API (see the package doc).
func (f *Fetcher) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fetch", func(w http.ResponseWriter, r *http.Request) {
		var req FunctionFetchRequest
		if !decode(w, r, &req) {
			return
		}
		if err := f.Fetch(r.Context(), req); err != nil {
			f.fail(w, "fetch", err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		var req ArchiveUploadRequest
		if !decode(w, r, &req) {
			return
		}
		resp, err := f.Upload(r.Context(), req)
		if err != nil {
			f.fail(w, "upload", err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("POST /specialize", func(w http.ResponseWriter, r *http.Request) {
		var req FunctionSpecializeRequest
		if !decode(w, r, &req) {
			return
		}
		if err := f.Specialize(r.Context(), req); err != nil {
			f.fail(w, "specialize", err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /readiness-healthz", func(w http.ResponseWriter, r *http.Request) {
		if !f.Ready() {
			http.Error(w, "not specialized yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(versionInfo())
	})
	// Fission runtimes report websocket activity here; Isotope has no
	// pod events to emit, so these only acknowledge.
	mux.HandleFunc("GET /wsevent/start", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /wsevent/end", func(w http.ResponseWriter, r *http.Request) {})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("bad request body: %v", err), http.StatusBadRequest)
		return false
	}
	return true
}

func (f *Fetcher) fail(w http.ResponseWriter, op string, err error) {
	code := StatusOf(err)
	f.log.Error(op+" failed", "err", err, "status", code)
	http.Error(w, err.Error(), code)
}

// VersionInfo is what /version answers.
type VersionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
}

func versionInfo() VersionInfo {
	v := VersionInfo{Version: "devel"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
	}
	return v
}
