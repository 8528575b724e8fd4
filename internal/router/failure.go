package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
)

// RequestIDHeader carries the id of a request the platform failed, on
// the answer; the router's log line about the failure has the same id.
const RequestIDHeader = "X-Isotope-Request-Id"

// HostErrorHeader marks a response that a runtime made on a function's
// behalf because the function failed (it crashed, timed out, answered too
// much or a malformed response, or its instance was unreachable), as
// opposed to an answer the function itself chose. The router removes
// it, logs the body and answers the client a short message with a
// request id instead. Its value is one of the reasons in publicReasons,
// or empty.
//
// Runtimes that do not set it yet are recognised by the shape of
// net/http's http.Error, which they all use for these answers: a 5xx
// whose only headers are "Content-Type: text/plain; charset=utf-8" and
// "X-Content-Type-Options: nosniff". A function's own answers never
// have that shape: the WebAssembly runtime sets Content-Length on them,
// and a proxied process answer carries its server's Date.
const HostErrorHeader = "X-Isotope-Error"

// publicReasons are what a caller learns about a failure a runtime marked
// with HostErrorHeader.
var publicReasons = map[string]string{
	"crash":              "the function crashed",
	"response-too-large": "the function's response is larger than its limit",
	"bad-response":       "the function's response was malformed",
	"timeout":            "the function timed out",
	"unavailable":        "the function cannot be served now",
}

// publicMessage is the short text an anonymous caller gets for a failed
// request: nothing from inside the platform (stack traces, paths, URLs).
func publicMessage(code int, reason string) string {
	if m, ok := publicReasons[reason]; ok {
		return m
	}
	switch code {
	case http.StatusBadGateway:
		return "the function failed"
	case http.StatusServiceUnavailable:
		return "the function cannot be served now"
	case http.StatusGatewayTimeout:
		return "the function timed out"
	}
	return "internal error"
}

// hostError reports whether h, the headers of a 5xx a lease is about to
// write, belong to a runtime's failure answer, and its reason. The
// marker header is removed.
func hostError(h http.Header) (reason string, ok bool) {
	if vs, marked := h[HostErrorHeader]; marked {
		h.Del(HostErrorHeader)
		if len(vs) > 0 {
			reason = strings.TrimSpace(vs[0])
		}
		return reason, true
	}
	return "", len(h) == 2 &&
		h.Get("Content-Type") == "text/plain; charset=utf-8" &&
		h.Get("X-Content-Type-Options") == "nosniff"
}

// newRequestID returns 16 hex digits from the process's ChaCha8 source.
func newRequestID() string { return fmt.Sprintf("%016x", rand.Uint64()) }

// writeFailure answers a failed request with a short message that names
// its request id (also in RequestIDHeader): JSON when the client asks for
// it, text otherwise. detail, when not empty, is appended (DebugErrors).
func writeFailure(w http.ResponseWriter, r *http.Request, code int, msg, id string) {
	h := w.Header()
	h.Set(RequestIDHeader, id)
	text := fmt.Sprintf("%s: %s (request id %s; the server log has the details)", http.StatusText(code), msg, id)
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, code, map[string]any{"code": code, "error": text, "requestId": id})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, text)
}

// capture keeps the first bytes of a replaced answer for the log.
type capture struct {
	buf  []byte
	more bool
}

const captureLimit = 4 << 10

func (c *capture) write(b []byte) {
	if n := captureLimit - len(c.buf); n < len(b) {
		c.buf = append(c.buf, b[:max(n, 0)]...)
		c.more = true
		return
	}
	c.buf = append(c.buf, b...)
}

func (c *capture) String() string {
	s := strings.TrimSpace(string(c.buf))
	if c.more {
		s += " …"
	}
	return s
}
