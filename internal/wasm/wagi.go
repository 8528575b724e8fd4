package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// headerAllowance is room for the CGI header block on top of the body cap.
const headerAllowance = 1 << 20

// serveWAGI runs one request on a fresh instance (wasm.md §2).
func (m *Module) serveWAGI(ctx context.Context, r *http.Request, opts InvokeOptions, body []byte) (*response, error) {
	select {
	case m.wagiSem <- struct{}{}:
	case <-ctx.Done():
		return nil, m.busyError(ctx)
	}
	defer func() { <-m.wagiSem }()

	vars := cgiEnv(r, opts, len(body))
	// Past the response limit the guest is stopped at its next yield
	// (the call's context ends), not left writing until its deadline.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	out := &cappedBuffer{max: int(m.limits.MaxResponseBody) + headerAllowance, full: stop}
	stderr := &lineWriter{log: m.log, source: "stderr"}
	cfg := m.baseCfg.
		WithArgs(cgiArgs(vars)...).
		WithStdin(bytes.NewReader(body)).
		WithStdout(out).
		WithStderr(stderr).
		WithNanosleep(ctxSleep(ctx))
	// The CGI variables, then the function's own where no CGI variable
	// has the name, then the entry point.
	env := &environ{buf: make([]byte, 0, 1024)}
	set := env.add
	if !m.c.interrupt {
		set = func(k, v string) { cfg = cfg.WithEnv(k, v) }
	}
	for _, kv := range vars {
		set(kv[0], kv[1])
	}
	for _, kv := range m.env {
		if !hasVar(vars, kv[0]) {
			set(kv[0], kv[1])
		}
	}
	if m.entry != "" && !hasVar(vars, EnvEntrypoint) {
		set(EnvEntrypoint, m.entry)
	}
	// The entry point is called after instantiation, not as its start
	// function, so the call can be guarded by the deadline.
	cfg = cfg.WithStartFunctions()
	entry := exportStart
	if m.wagiEntry != "" {
		entry = m.wagiEntry
	}
	g := m.rt.newGuard(m.c)
	g.env = env
	var mod api.Module
	err := g.hold(ctx)
	if err == nil {
		m.started.Add(1)
		mod, err = m.c.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, m.alloc), m.c.cm, cfg)
	}
	if err == nil {
		err = g.call(ctx, mod.ExportedFunction(entry), nil)
	}
	if mod != nil {
		mod.Close(context.Background())
	}
	g.release()
	stderr.Flush()
	if err == nil && ctx.Err() != nil {
		// The guest finished only because its sleep was cut short at
		// the deadline (sleeper): its answer does not count.
		err = ctx.Err()
	}
	if out.overflow {
		return nil, &hostError{reason: "response-too-large", status: http.StatusBadGateway, msg: fmt.Sprintf("function %s wrote more than its response limit of %d bytes; instance stopped", m.name, m.limits.MaxResponseBody)}
	}
	var ge *gateError
	if errors.As(err, &ge) {
		if he := ge.asHostError(m.name); he != nil {
			return nil, he
		}
	}
	var ee *sys.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 0 && ctx.Err() == nil) {
		return nil, m.classify(ctx, err)
	}
	resp, perr := parseCGIResponse(out.Bytes())
	if perr != nil {
		perr.msg = fmt.Sprintf("function %s: %s", m.name, perr.msg)
		return nil, perr
	}
	return resp, nil
}

func (m *Module) busyError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &hostError{reason: "timeout", status: http.StatusGatewayTimeout, msg: fmt.Sprintf("function %s: all %d instances stayed busy until the request deadline", m.name, m.limits.MaxInstances)}
	}
	return ctx.Err()
}

func hasVar(vars [][2]string, k string) bool {
	for _, kv := range vars {
		if kv[0] == k {
			return true
		}
	}
	return false
}

// cgiEnv computes the CGI 1.1 / WAGI variables of r (wasm.md §2.1).
func cgiEnv(r *http.Request, opts InvokeOptions, bodyLen int) [][2]string {
	route := opts.MatchedRoute
	if route == "" {
		route = "/..."
	}
	path := r.URL.Path
	rawPath := r.URL.EscapedPath()
	script := opts.ScriptName
	if script == "" && opts.MatchedRoute != "" {
		base := strings.TrimSuffix(opts.MatchedRoute, "/...")
		if base != "" && base != "/" && (path == base || strings.HasPrefix(path, base+"/")) {
			script = base
		}
	}
	pathInfo, rawPathInfo := path, rawPath
	if script != "" {
		pathInfo = strings.TrimPrefix(path, script)
		rawPathInfo = strings.TrimPrefix(rawPath, script)
	}
	fullURL := opts.FullURL
	if fullURL == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fullURL = scheme + "://" + r.Host + r.URL.RequestURI()
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	if port == "" {
		port = "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	remote := r.RemoteAddr
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h
	}
	requestURI := r.RequestURI
	if requestURI == "" {
		requestURI = r.URL.RequestURI()
	}
	vars := [][2]string{
		{"AUTH_TYPE", ""},
		{"CONTENT_LENGTH", strconv.Itoa(bodyLen)},
		{"CONTENT_TYPE", r.Header.Get("Content-Type")},
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"PATH_INFO", pathInfo},
		{"PATH_TRANSLATED", pathInfo},
		{"QUERY_STRING", r.URL.RawQuery},
		{"REMOTE_ADDR", remote},
		{"REMOTE_HOST", remote},
		{"REMOTE_USER", ""},
		{"REQUEST_METHOD", r.Method},
		{"REQUEST_URI", requestURI},
		{"SCRIPT_NAME", script},
		{"SERVER_NAME", host},
		{"SERVER_PORT", port},
		{"SERVER_PROTOCOL", r.Proto},
		{"SERVER_SOFTWARE", "WAGI/1"},
		{"X_FULL_URL", fullURL},
		{"X_MATCHED_ROUTE", route},
		{"X_RAW_PATH_INFO", rawPathInfo},
	}
	if r.Host != "" {
		vars = append(vars, [2]string{"HTTP_HOST", r.Host})
	}
	for k, vs := range r.Header {
		if k == "Authorization" || k == "Connection" || k == "Host" {
			continue
		}
		sep := ", "
		if k == "Cookie" {
			sep = "; "
		}
		name := "HTTP_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		vars = append(vars, [2]string{name, strings.Join(vs, sep)})
	}
	return vars
}

// cgiArgs is WAGI's default argv: SCRIPT_NAME, then each &-separated query
// item.
func cgiArgs(vars [][2]string) []string {
	var script, query string
	for _, kv := range vars {
		switch kv[0] {
		case "SCRIPT_NAME":
			script = kv[1]
		case "QUERY_STRING":
			query = kv[1]
		}
	}
	if script == "" {
		script = "/"
	}
	args := []string{script}
	if query != "" {
		for _, item := range strings.Split(query, "&") {
			if item != "" {
				args = append(args, item)
			}
		}
	}
	return args
}

// parseCGIResponse reads a CGI response from a guest's stdout (wasm.md
// §2.2): header lines, an empty line, the body.
func parseCGIResponse(out []byte) (*response, *hostError) {
	if len(out) == 0 {
		return nil, &hostError{reason: "bad-response", status: http.StatusInternalServerError, msg: "wrote nothing on stdout; a WAGI module must print CGI headers (at least one of Content-Type, Location or Status), an empty line, then the body"}
	}
	resp := &response{status: http.StatusOK, header: http.Header{}}
	rest := out
	statusSet, seen := false, false
	for {
		var line []byte
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i], rest[i+1:]
		}
		line = bytes.ReplaceAll(line, []byte("\r"), nil)
		if len(line) == 0 {
			break
		}
		k, v, ok := strings.Cut(string(line), ":")
		if !ok || !validHeaderName(k) {
			return nil, &hostError{reason: "bad-response", status: http.StatusBadGateway, msg: fmt.Sprintf("malformed CGI header line %q on stdout (want \"Name: value\", then an empty line before the body)", truncate(string(line), 80))}
		}
		k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		switch k {
		case "Status":
			code, _, _ := strings.Cut(v, " ")
			n, err := strconv.Atoi(code)
			if err != nil || n < 100 || n > 999 {
				return nil, &hostError{reason: "bad-response", status: http.StatusBadGateway, msg: fmt.Sprintf("invalid CGI Status %q", v)}
			}
			resp.status, statusSet, seen = n, true, true
		case "Location":
			resp.header.Set("Location", v)
			if !statusSet {
				resp.status = http.StatusFound
			}
			seen = true
		case "Content-Type":
			resp.header.Set("Content-Type", v)
			seen = true
		default:
			resp.header.Add(k, v)
		}
		if rest == nil {
			break
		}
	}
	if !seen {
		return nil, &hostError{reason: "bad-response", status: http.StatusInternalServerError, msg: "CGI response names none of Content-Type, Location or Status; a WAGI module must print at least one of them before the empty line"}
	}
	resp.body = rest
	return resp, nil
}

func validHeaderName(k string) bool {
	k = strings.TrimSpace(k)
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// cappedBuffer is a guest's stdout: in memory, never blocking, and
// refusing to grow past max (the rest is dropped and flagged).
type cappedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
	full     func() // called at the first write past max
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if b.Len()+n > b.max {
		// Claim the write succeeded: a short write would make the guest
		// retry until its deadline.
		if !b.overflow && b.full != nil {
			b.full()
		}
		b.overflow = true
		p = p[:max(0, b.max-b.Len())]
	}
	b.Buffer.Write(p)
	return n, nil
}
