package fnlog

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
)

// Handler serves the logs API on the API listener:
//
//	GET /v1/logs?namespace=NS&function=NAME[&recordcount=N][&follow=true]
//
// It answers text/plain, one line per log line ("<RFC3339Nano UTC time>
// <stream> <text>"), the N most recent lines (all kept lines when N is 0
// or absent), and with follow=true keeps the response open, streaming new
// lines until the client goes away. namespace defaults to "default".
func (s *Store) Handler() http.Handler {
	return http.HandlerFunc(s.serveLogs)
}

func (s *Store) serveLogs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	ns, name := q.Get("namespace"), q.Get("function")
	if ns == "" {
		ns = "default"
	}
	if name == "" {
		http.Error(w, "missing query parameter \"function\" (the function's name)", http.StatusBadRequest)
		return
	}
	count := 0
	if v := q.Get("recordcount"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("query parameter \"recordcount\": %q is not a non-negative integer", v), http.StatusBadRequest)
			return
		}
		count = n
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, fmt.Sprintf("query parameter \"follow\": %q is not a boolean", v), http.StatusBadRequest)
			return
		}
		follow = b
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !follow {
		bw := bufio.NewWriter(w)
		for _, l := range s.Tail(ns, name, count) {
			bw.WriteString(l.String())
			bw.WriteByte('\n')
		}
		bw.Flush()
		return
	}
	past, sub := s.Subscribe(ns, name, count)
	defer sub.Close()
	rc := http.NewResponseController(w)
	for _, l := range past {
		if _, err := fmt.Fprintln(w, l.String()); err != nil {
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case l := <-sub.C():
			if _, err := fmt.Fprintln(w, l.String()); err != nil {
				return
			}
			// Send whatever else is already queued before flushing.
			for more := true; more; {
				select {
				case l := <-sub.C():
					if _, err := fmt.Fprintln(w, l.String()); err != nil {
						return
					}
				default:
					more = false
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}
