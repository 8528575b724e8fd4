package isotope

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// frame builds a request frame as docs/reactor-abi.md describes.
func frame(method, uri string, hdr [][2]string, meta [][2]string, body string) []byte {
	var b []byte
	str := func(s string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint32(b, 1)
	str(method)
	str(uri)
	str("example.com")
	str("10.0.0.1:5555")
	str("HTTP/1.1")
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hdr)))
	for _, kv := range hdr {
		str(kv[0])
		str(kv[1])
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	for _, kv := range meta {
		str(kv[0])
		str(kv[1])
	}
	str(body)
	return b
}

type decoded struct {
	status int
	header http.Header
	body   string
}

func decode(t *testing.T, b []byte) decoded {
	t.Helper()
	r := &reader{b: b}
	if v := r.u32(); v != 1 {
		t.Fatalf("version %d", v)
	}
	d := decoded{status: int(r.u32()), header: http.Header{}}
	for n := r.u32(); n > 0; n-- {
		k := r.str()
		d.header.Add(k, r.str())
	}
	d.body = r.str()
	if r.err != nil || len(r.b) != 0 {
		t.Fatalf("bad response frame: %v, %d bytes left", r.err, len(r.b))
	}
	return d
}

func reset(t *testing.T) {
	mu.Lock()
	handlers, served, chosen = map[string]http.Handler{}, nil, nil
	mu.Unlock()
	t.Setenv(EntrypointEnv, "")
}

func TestHandleFrameRoundTrip(t *testing.T) {
	reset(t)
	Register("Handler", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Method+" "+r.URL.Path+" "+r.URL.RawQuery+" "+r.Header.Get("X-In")+" "+r.Host+" "+MatchedRoute(r))
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(201)
		w.Write(bytes.ToUpper(b))
	})
	d := decode(t, handleFrame(nil, frame("POST", "/p/q?x=1", [][2]string{{"X-In", "v"}}, [][2]string{{"matched_route", "/p/..."}}, "body")))
	if d.status != 201 || d.body != "BODY" || d.header.Get("X-Got") != "POST /p/q x=1 v example.com /p/..." {
		t.Errorf("got %+v", d)
	}
	if got := d.header["X-Multi"]; strings.Join(got, ",") != "a,b" {
		t.Errorf("X-Multi = %v", got)
	}
	if ct := d.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("sniffed Content-Type = %q", ct)
	}
}

func TestEntrypointSelection(t *testing.T) {
	named := func(s string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, s) }
	}
	req := frame("GET", "/", nil, nil, "")
	cases := []struct {
		env      string
		register []string
		serve    bool
		status   int
		body     string
	}{
		{"", []string{"Other"}, false, 200, "Other"},
		{"", []string{"Handler", "Other"}, false, 200, "Handler"},
		{"Other", []string{"Handler", "Other"}, false, 200, "Other"},
		{"", []string{"A", "B"}, false, 500, "one of: A, B"},
		{"Nope", []string{"A", "B"}, false, 500, `entrypoint "Nope" is not a handler of this function; registered: A, B`},
		{"", nil, true, 200, "served"},
		{"Handler", nil, true, 200, "served"},
		{"", nil, false, 500, "registered none"},
	}
	for _, c := range cases {
		reset(t)
		os.Setenv(EntrypointEnv, c.env)
		for _, n := range c.register {
			Register(n, named(n))
		}
		if c.serve {
			Serve(http.HandlerFunc(named("served")))
		}
		d := decode(t, handleFrame(nil, req))
		if d.status != c.status || !strings.Contains(d.body, c.body) {
			t.Errorf("env %q registered %v serve %v: %d %q, want %d %q", c.env, c.register, c.serve, d.status, d.body, c.status, c.body)
		}
	}
}

func TestPanicAndBadFrame(t *testing.T) {
	reset(t)
	Register("Handler", func(http.ResponseWriter, *http.Request) { panic("boom") })
	if d := decode(t, handleFrame(nil, frame("GET", "/", nil, nil, ""))); d.status != 500 || !strings.Contains(d.body, "boom") {
		t.Errorf("panic: %+v", d)
	}
	if d := decode(t, handleFrame(nil, []byte{1, 0, 0})); d.status != 500 || !strings.Contains(d.body, "bad request frame") {
		t.Errorf("bad frame: %+v", d)
	}
	called := false
	Register("Handler", func(http.ResponseWriter, *http.Request) { called = true })
	if d := decode(t, handleFrame(nil, frame("GET", "/", nil, [][2]string{{"isotope_warmup", "1"}}, ""))); d.status != 204 || called {
		t.Errorf("warm-up: %+v, user code called: %v", d, called)
	}
}

// Header values arrive one entry per value; values of one name need not
// be next to each other, and keep their order either way.
func TestHeaderValuesInAnyOrder(t *testing.T) {
	for name, hdr := range map[string][][2]string{
		"grouped":     {{"A", "1"}, {"A", "2"}, {"B", "3"}},
		"interleaved": {{"A", "1"}, {"B", "3"}, {"A", "2"}},
	} {
		req, err := decodeRequest(frame("GET", "/", hdr, nil, ""))
		if err != nil {
			t.Fatal(err)
		}
		if a, b := strings.Join(req.Header["A"], ","), strings.Join(req.Header["B"], ","); a != "1,2" || b != "3" || len(req.Header) != 2 {
			t.Errorf("%s: header = %v", name, req.Header)
		}
	}
}
