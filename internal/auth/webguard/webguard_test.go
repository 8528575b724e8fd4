package webguard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"isotope.dev/isotope/internal/auth/webguard"
)

// serve starts a real server behind the guard that counts what reached it.
func serve(t *testing.T, wrap func(http.Handler) http.Handler) (*httptest.Server, *int) {
	t.Helper()
	hits := new(int)
	srv := httptest.NewServer(wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*hits++
		w.WriteHeader(http.StatusNoContent)
	})))
	t.Cleanup(srv.Close)
	return srv, hits
}

// do sends one request; host "" keeps the real one.
func do(t *testing.T, srv *httptest.Server, method, path, host string, hdr map[string]string) (int, *metav1.Status) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("echo pwned"))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden {
		return resp.StatusCode, nil
	}
	var st metav1.Status
	if err := json.Unmarshal(data, &st); err != nil || st.Kind != "Status" || st.Code != 403 || st.Reason != metav1.StatusReasonForbidden {
		t.Fatalf("403 body is not a Forbidden Status: %v: %s", err, data)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("403 Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, &st
}

func mustGuard(t *testing.T, hosts ...string) *webguard.Guard {
	t.Helper()
	g, err := webguard.New(hosts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// A DNS-rebinding page sends its own name as Host: refused with a message
// that names the host and the flag that allows it, for reads too.
func TestForeignHostRefused(t *testing.T) {
	srv, hits := serve(t, mustGuard(t, "build-box.example").Handler)
	for _, host := range []string{
		"evil.example", "EVIL.example:8889", "localhost.evil.example", "127.0.0.1.nip.io",
		"build-box.example.evil", "0x7f.1", "evil.example.", "xn--lcalhost-3ya",
	} {
		for _, method := range []string{"GET", "POST"} {
			code, st := do(t, srv, method, "/apis/x", host, nil)
			if code != 403 {
				t.Errorf("%s with Host %q: %d, want 403", method, host, code)
				continue
			}
			if !strings.Contains(st.Message, "--api-host") || !strings.Contains(st.Message, `"`+host+`"`) ||
				st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "Host" {
				t.Errorf("Host %q: message does not name the host, the header and the fix: %+v", host, st)
			}
		}
	}
	if *hits != 0 {
		t.Fatalf("%d refused requests reached the handler", *hits)
	}
	code, st := do(t, srv, "GET", "/", "evil.example:8889", nil)
	if code != 403 || !strings.Contains(st.Message, "--api-host evil.example to allow it") {
		t.Errorf("the fix should name the host without its port: %d %+v", code, st)
	}
}

func TestAllowedHosts(t *testing.T) {
	srv, hits := serve(t, mustGuard(t, "Build-Box.example").Handler)
	hosts := []string{
		"", // keep the real 127.0.0.1:port
		"localhost", "LOCALHOST:8889", "localhost.", "app.localhost:3000",
		"127.0.0.1", "127.1.2.3:80", "[::1]:8889", "[::1]", "10.0.0.5:8889", "[fe80::1%25eth0]:8889",
		"build-box.example", "BUILD-BOX.EXAMPLE:8889",
	}
	for _, host := range hosts {
		if code, st := do(t, srv, "GET", "/", host, nil); code != 204 {
			t.Errorf("Host %q: %d %+v, want it allowed", host, code, st)
		}
	}
	if *hits != len(hosts) {
		t.Errorf("%d of %d allowed requests reached the handler", *hits, len(hosts))
	}
}

// A page on another origin can send "simple" writes without a preflight;
// they are refused, naming the header that gave them away. Reads, the
// CLI (no browser headers) and same-origin writes pass.
func TestCrossOriginWritesRefused(t *testing.T) {
	srv, hits := serve(t, mustGuard(t).Handler)
	self := srv.Listener.Addr().String()
	refused := []struct {
		method string
		hdr    map[string]string
		field  string
	}{
		{"POST", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, "Origin"},
		{"POST", map[string]string{"Origin": "null", "Content-Type": "text/plain"}, "Origin"},
		{"PUT", map[string]string{"Origin": "http://localhost:3000"}, "Origin"},
		{"DELETE", map[string]string{"Origin": "http://" + self + ".evil.example"}, "Origin"},
		{"POST", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "multipart/form-data; boundary=x"}, "Sec-Fetch-Site"},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://" + self}, "Sec-Fetch-Site"},
	}
	for _, c := range refused {
		code, st := do(t, srv, c.method, "/v1/archive", "", c.hdr)
		if code != 403 {
			t.Errorf("%s %v: %d, want 403", c.method, c.hdr, code)
			continue
		}
		if st.Details.Causes[0].Field != c.field || !strings.Contains(st.Message, "cross-origin "+c.method) || !strings.Contains(st.Message, "isotope CLI") {
			t.Errorf("%s %v: %+v does not say which check failed and what to do", c.method, c.hdr, st)
		}
	}
	if *hits != 0 {
		t.Fatalf("%d refused writes reached the handler", *hits)
	}
	allowed := []struct {
		method string
		hdr    map[string]string
	}{
		{"POST", nil}, // the CLI
		{"POST", map[string]string{"Origin": "http://" + self}},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{"POST", map[string]string{"Sec-Fetch-Site": "none"}}, // typed into the address bar
		{"GET", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
		{"HEAD", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, c := range allowed {
		if code, st := do(t, srv, c.method, "/", "", c.hdr); code != 204 {
			t.Errorf("%s %v: %d %+v, want it allowed", c.method, c.hdr, code, st)
		}
	}
}

// HostHandler checks only the paths it is told to: the router's function
// traffic may be addressed to any host.
func TestHostHandlerGuardsOnlyItsPaths(t *testing.T) {
	g := mustGuard(t)
	srv, hits := serve(t, func(h http.Handler) http.Handler {
		return g.HostHandler(func(p string) bool { return p == "/metrics" }, h)
	})
	if code, _ := do(t, srv, "GET", "/metrics", "evil.example", nil); code != 403 {
		t.Errorf("/metrics with a foreign Host: %d, want 403", code)
	}
	if code, _ := do(t, srv, "POST", "/hello", "shop.example", map[string]string{"Origin": "http://shop.example"}); code != 204 {
		t.Errorf("function traffic with its own Host: %d, want it served", code)
	}
	if *hits != 1 {
		t.Errorf("hits = %d, want 1", *hits)
	}
}

func TestNewRefusesBadHostNames(t *testing.T) {
	for _, h := range []string{"", " ", "http://evil.example", "box:8889", "bad_name!", "a/b"} {
		_, err := webguard.New([]string{h})
		if err == nil || !strings.Contains(err.Error(), "--api-host") {
			t.Errorf("New(%q) = %v, want an error naming --api-host", h, err)
		}
	}
	if _, err := webguard.New([]string{"10.0.0.5", "::1", "box.example."}); err != nil {
		t.Errorf("addresses and a trailing dot: %v", err)
	}
}

// The zero Guard's OriginHandler (the storage service role, reached by
// Service names) refuses cross-origin uploads but not foreign hosts.
func TestZeroGuardOriginHandler(t *testing.T) {
	var g webguard.Guard
	srv, hits := serve(t, g.OriginHandler)
	hdr := map[string]string{"Origin": "http://evil.example", "Content-Type": "multipart/form-data; boundary=x"}
	if code, st := do(t, srv, "POST", "/v1/archive", "", hdr); code != 403 || st.Details.Causes[0].Field != "Origin" {
		t.Errorf("cross-origin upload: %d %+v, want 403 naming Origin", code, st)
	}
	if code, _ := do(t, srv, "POST", "/v1/archive", "storagesvc.isotope.svc:8000", nil); code != 204 {
		t.Errorf("in-cluster upload by Service name: %d, want it served", code)
	}
	if *hits != 1 {
		t.Errorf("hits = %d, want 1", *hits)
	}
}
