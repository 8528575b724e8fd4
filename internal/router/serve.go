package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/executor/instance"
)

// serveFunction sends one matched request to fn through a lease, under
// fn's deadline, and records the outcome.
func (rt *Router) serveFunction(w http.ResponseWriter, r *http.Request, fn *v1.Function, m *match) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), functionTimeout(fn))
	defer cancel()

	lease, err := rt.exec.Acquire(ctx, fn)
	if err != nil {
		code := rt.failureCode(r, ctx, err)
		var ee *executor.Error
		switch {
		case code == statusClientClosed:
			rt.log.Info("client closed request while waiting for an instance", "function", fn.Namespace+"/"+fn.Name)
		case code >= 500:
			// Executor failures carry storage URLs, data-dir paths and
			// build output: logged with an id, not shown to callers.
			id := newRequestID()
			rt.log.Warn("function request failed", "request_id", id, "function", fn.Namespace+"/"+fn.Name, "code", code, "err", err)
			msg := publicMessage(code, "")
			if rt.cfg.DebugErrors {
				msg += ": " + err.Error()
			}
			writeFailure(w, r, code, msg, id)
		case errors.As(err, &ee) || rt.cfg.DebugErrors:
			writeError(w, r, code, http.StatusText(code)+": "+err.Error())
		default:
			writeError(w, r, code, http.StatusText(code))
		}
		rt.finish(r, fn, code, start, false)
		return
	}
	cold := lease.ColdStart()
	if cold {
		traceCold(r.Context())
	}

	if r.ContentLength != 0 {
		// Let the function answer while it still reads the request
		// (HTTP/1 otherwise drains the body before the first response
		// byte), so bodies stream both ways. HTTP/2 is always duplex.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	req := rewrite(r, ctx, fn, m)
	rw := &responseWriter{ResponseWriter: w, ctx: ctx, client: r.Context(), req: r, passErrors: rt.cfg.DebugErrors}
	completed := false
	defer func() {
		if completed {
			return
		}
		// The lease panicked (http.ErrAbortHandler included): release
		// the instance as failed, count it, and let net/http abort the
		// connection.
		p := recover()
		lease.Release(fmt.Errorf("router: handler panic: %v", p))
		code := rw.code
		if code == 0 {
			code = http.StatusBadGateway
		}
		rt.finish(r, fn, code, start, cold)
		panic(p)
	}()
	lease.ServeHTTP(rw, req)
	completed = true

	ctxErr := ctx.Err()
	switch {
	case !rw.wroteHeader && ctxErr != nil:
		// The function gave up (or never started) because the deadline
		// passed or the client left: say which.
		rw.failWith(rt.ctxCode(r))
	case !rw.wroteHeader:
		rw.WriteHeader(http.StatusOK)
	}
	if rw.reqID != "" {
		rt.log.Warn("function request failed", "request_id", rw.reqID, "function", fn.Namespace+"/"+fn.Name,
			"code", rw.code, "path", r.URL.Path, "detail", rw.captured.String())
	}
	lease.Release(ctxErr)

	code := rw.code
	truncated := ctxErr != nil && !rw.replaced && r.Context().Err() == nil
	if truncated {
		// The response had started when the deadline passed: its body
		// is cut short, so record a timeout and abort the connection
		// below rather than end the response as if it were complete.
		code = http.StatusGatewayTimeout
	}
	if ctxErr != nil && r.Context().Err() != nil {
		code = statusClientClosed
		rt.log.Info("client closed request", "function", fn.Namespace+"/"+fn.Name, "path", r.URL.Path)
	}
	rt.finish(r, fn, code, start, cold)
	if truncated {
		panic(http.ErrAbortHandler)
	}
}

// failureCode maps an Acquire failure to a status: the client leaving is
// 499, our deadline 504, otherwise the executor's code (429 stays 429).
func (rt *Router) failureCode(r *http.Request, ctx context.Context, err error) int {
	if ctx.Err() != nil {
		return rt.ctxCode(r)
	}
	return executor.CodeOf(err)
}

// ctxCode is the status for a request whose context has ended.
func (rt *Router) ctxCode(r *http.Request) int {
	if r.Context().Err() != nil {
		return statusClientClosed
	}
	return http.StatusGatewayTimeout
}

func (rt *Router) finish(r *http.Request, fn *v1.Function, code int, start time.Time, cold bool) {
	d := time.Since(start)
	rt.metrics.observe(fn.Namespace, fn.Name, code, d, cold)
	rt.stats.observe(fn.Namespace, fn.Name, r.URL.Path, code, d, cold)
	if rt.cfg.AccessLog {
		rt.log.Info("request", "method", r.Method, "uri", r.RequestURI, "host", r.Host,
			"function", fn.Namespace+"/"+fn.Name, "code", code, "duration", d, "cold", cold)
	}
}

// rewrite makes the request the function sees (fission.md §3e): the
// X-Fission-* headers, forwarding headers, and the path rewritten for
// the route. The incoming request is the router's to change, so its
// header map is reused rather than copied; the URL is copied.
func rewrite(r *http.Request, ctx context.Context, fn *v1.Function, m *match) *http.Request {
	req := r.WithContext(ctx)
	u := *r.URL
	u.Path = m.path
	u.RawPath = ""
	req.URL = &u
	req.RequestURI = u.RequestURI()

	h := req.Header
	h.Set("X-Fission-Function-Uid", string(fn.UID))
	h.Set("X-Fission-Function-Name", fn.Name)
	h.Set("X-Fission-Function-Namespace", fn.Namespace)
	h.Set("X-Fission-Function-Resourceversion", fn.ResourceVersion)
	if m.route != nil && m.route.pat != nil {
		for i, name := range m.route.pat.names {
			if i < len(m.params) {
				h.Set("X-Fission-Params-"+name, m.params[i])
			}
		}
	}
	full := r.RequestURI
	if full == "" {
		full = r.URL.RequestURI()
	}
	h.Set("X-Fission-Full-Url", full)
	if _, ok := h["X-Forwarded-Host"]; !ok {
		h.Set("X-Forwarded-Host", r.Host)
	}
	if _, ok := h["Forwarded"]; !ok {
		h.Set("Forwarded", "host="+r.Host+";")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return req.WithContext(instance.WithRoute(ctx, instance.Route{Pattern: m.pattern(), FullURL: scheme + "://" + r.Host + full}))
}

// pattern is the route as WAGI's X_MATCHED_ROUTE shows it: the trigger's
// relativeurl, its prefix followed by "/...", or "/..." for the internal
// /fission-function route.
func (m *match) pattern() string {
	switch {
	case m.route == nil:
		return "/..."
	case m.route.kind == kindPrefix:
		return m.route.prefix + "/..."
	default:
		return m.route.trigger.Spec.RelativeURL
	}
}

// responseWriter records the status a lease writes and replaces two
// kinds of answers: an error written because the router's deadline
// passed or the client left (a reverse proxy writes 502 then) becomes
// 504 or 499; a runtime's failure answer (hostError: a crash, a stack
// trace, paths) becomes a short message with a request id, its body kept
// for the log. A function's own answers, 5xx included, pass unchanged.
// Flush and Unwrap keep streaming, trailers and upgrades working through
// http.ResponseController.
type responseWriter struct {
	http.ResponseWriter
	ctx, client context.Context
	req         *http.Request
	passErrors  bool // DebugErrors: runtime failure answers pass unchanged
	code        int
	wroteHeader bool
	replaced    bool    // the lease's response was replaced; drop its body
	reqID       string  // set when a replaced answer is to be logged
	captured    capture // the replaced body, for that log line
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if code >= 500 && w.ctx.Err() != nil {
		c := http.StatusGatewayTimeout
		if w.client.Err() != nil {
			c = statusClientClosed
		}
		w.failWith(c)
		return
	}
	if code >= 500 && !w.passErrors {
		if reason, ok := hostError(w.ResponseWriter.Header()); ok {
			w.wroteHeader, w.replaced, w.code = true, true, code
			w.reqID = newRequestID()
			clearHeader(w.ResponseWriter.Header())
			writeFailure(w.ResponseWriter, w.req, code, publicMessage(code, reason), w.reqID)
			return
		}
	}
	w.wroteHeader = true
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// failWith answers code with a short text body in place of whatever the
// lease would have written.
func (w *responseWriter) failWith(code int) {
	w.wroteHeader, w.replaced, w.code = true, true, code
	clearHeader(w.ResponseWriter.Header())
	if code == statusClientClosed {
		return // nobody is listening
	}
	w.reqID = newRequestID()
	writeFailure(w.ResponseWriter, w.req, code, publicMessage(code, "timeout"), w.reqID)
}

func clearHeader(h http.Header) {
	for k := range h {
		delete(h, k)
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		if w.reqID != "" {
			w.captured.write(b)
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client now (streaming responses).
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
