package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
	"time"
)

// The invoke form sends one request to the function through the router's
// internal route /fission-function/<ns>/<name><path>, so it is counted,
// logged and timed like any other, and shows the answer.

const maxInvokeBody = 256 << 10 // response body shown

type invokeForm struct {
	Method, Path, Headers, Body string
}

type invokeResult struct {
	Status    string
	Code      int
	Headers   []string
	Body      string
	Truncated bool
	LatencyMs float64
	Error     string
}

func (d *Dashboard) invoke(w http.ResponseWriter, r *http.Request, p *page) {
	ns, name, ok := d.names(w, r)
	if !ok {
		return
	}
	f := invokeForm{
		Method:  strings.ToUpper(strings.TrimSpace(r.PostFormValue("method"))),
		Path:    strings.TrimSpace(r.PostFormValue("path")),
		Headers: r.PostFormValue("headers"),
		Body:    r.PostFormValue("body"),
	}
	if f.Method == "" {
		f.Method = http.MethodGet
	}
	if f.Path == "" {
		f.Path = "/"
	}
	res, code := d.doInvoke(r.Context(), ns, name, f)
	d.renderFunction(w, r, p, res, f, code)
}

// doInvoke checks the form and calls the router.
func (d *Dashboard) doInvoke(ctx context.Context, ns, name string, f invokeForm) (*invokeResult, int) {
	bad := func(msg string) (*invokeResult, int) { return &invokeResult{Error: msg}, http.StatusBadRequest }
	if len(f.Method) > 16 || strings.IndexFunc(f.Method, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
		return bad(fmt.Sprintf("method %q: give an HTTP method such as GET or POST", f.Method))
	}
	if !strings.HasPrefix(f.Path, "/") || strings.ContainsAny(f.Path, " \r\n#") || strings.Contains("/"+f.Path+"/", "/../") {
		return bad(fmt.Sprintf("path %q: give a path that starts with / and has no spaces, fragments or .. segments", f.Path))
	}
	if d.cfg.RouterURL == "" {
		return &invokeResult{Error: "the router's address is not known here"}, http.StatusServiceUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, f.Method, d.cfg.RouterURL+"/fission-function/"+ns+"/"+name+f.Path, strings.NewReader(f.Body))
	if err != nil {
		return bad("path " + f.Path + ": " + err.Error())
	}
	for i, line := range strings.Split(strings.ReplaceAll(f.Headers, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.IndexFunc(k, func(c rune) bool { return c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) }) >= 0 {
			return bad(fmt.Sprintf("headers, line %d: %q is not \"Name: value\"", i+1, line))
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	start := time.Now()
	resp, err := d.cfg.RouterClient.Do(req)
	if err != nil {
		return &invokeResult{Error: "calling the router: " + err.Error(), LatencyMs: ms(time.Since(start))}, http.StatusOK
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxInvokeBody+1))
	res := &invokeResult{Status: resp.Status, Code: resp.StatusCode, LatencyMs: ms(time.Since(start))}
	if len(body) > maxInvokeBody {
		body, res.Truncated = body[:maxInvokeBody], true
	}
	res.Body = string(body)
	for k, vs := range resp.Header {
		for _, v := range vs {
			res.Headers = append(res.Headers, textproto.CanonicalMIMEHeaderKey(k)+": "+v)
		}
	}
	sort.Strings(res.Headers)
	return res, http.StatusOK
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
