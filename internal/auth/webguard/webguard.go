// Package webguard keeps web pages away from Isotope's control endpoints
// (the API on its listener, the router's /metrics and /_version).
//
// A browser lets any page it shows send requests to 127.0.0.1. Two
// attacks follow, and both matter most for the API on loopback, which
// needs no token:
//
//   - Cross-site requests. A page on evil.example can POST to
//     http://127.0.0.1:8889 with a "simple" content type (text/plain,
//     multipart/form-data, application/x-www-form-urlencoded): the
//     browser sends it without a CORS preflight and only hides the
//     answer, so the request's effect (an Environment whose runtime
//     command runs at once) happens anyway.
//   - DNS rebinding. evil.example first resolves to the attacker's server,
//     then to 127.0.0.1: the page's later requests are same-origin for the
//     browser, so it can read the answers too. They carry
//     "Host: evil.example".
//
// Guard refuses both. The Host must be a loopback name (localhost,
// *.localhost), an IP address, or a name the operator allowed (--api-host):
// a rebinding page always sends its own DNS name, and an IP address cannot
// be rebound. Requests with unsafe methods (anything but GET, HEAD and
// OPTIONS) must not come from another origin, as net/http's
// CrossOriginProtection decides it: Sec-Fetch-Site, else Origin against
// Host. The CLI and other programs send neither header and pass.
//
// Refusals are 403s with a Kubernetes Status body that says which check
// failed and how to fix it.
package webguard

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// HostFlag is the command-line flag that allows another Host; messages
// name it.
const HostFlag = "--api-host"

// Guard checks requests; the zero value allows loopback names and IP
// addresses only.
type Guard struct {
	hosts map[string]bool // lower case, no port, no trailing dot
}

// crossOrigin is net/http's check, unconfigured: no trusted origins, no
// exempt paths. It is safe for concurrent use.
var crossOrigin = http.NewCrossOriginProtection()

// New returns a Guard that also accepts the host names in hosts (case
// insensitive, without a port). A name that is not a valid DNS name or
// IP address is an error naming HostFlag.
func New(hosts []string) (*Guard, error) {
	g := &Guard{hosts: map[string]bool{}}
	for _, h := range hosts {
		n := normalize(h)
		switch {
		case n == "":
			return nil, fmt.Errorf("%s: empty host name", HostFlag)
		case strings.ContainsAny(h, "/:") && net.ParseIP(strings.Trim(h, "[]")) == nil:
			return nil, fmt.Errorf("%s %q: give a host name without a scheme or port (e.g. %s build-box.example)", HostFlag, h, HostFlag)
		case net.ParseIP(n) != nil:
			// IP addresses are always allowed; accept them silently.
		default:
			if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
				return nil, fmt.Errorf("%s %q: not a host name: %s", HostFlag, h, strings.Join(msgs, "; "))
			}
		}
		g.hosts[n] = true
	}
	return g, nil
}

// normalize lowers a host name and drops a trailing dot and IPv6
// brackets.
func normalize(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(h, ".")
	return strings.Trim(h, "[]")
}

// Refusal is a request the Guard turned away.
type Refusal struct {
	Header  string // the request header that failed: Host, Origin or Sec-Fetch-Site
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// CheckHost refuses a request whose Host is not a loopback name, an IP
// address or an allowed name. A request without a Host (HTTP/1.0) comes
// from no browser and passes.
func (g *Guard) CheckHost(r *http.Request) *Refusal {
	if r.Host == "" {
		return nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	n := normalize(host)
	if i := strings.IndexByte(n, '%'); i >= 0 && net.ParseIP(n[:i]) != nil { // fe80::1%eth0
		return nil
	}
	if net.ParseIP(n) != nil || n == "localhost" || strings.HasSuffix(n, ".localhost") || g.hosts[n] {
		return nil
	}
	return &Refusal{Header: "Host", Message: fmt.Sprintf(
		"Host %q is not allowed; start the server with %s %s to allow it "+
			"(only loopback names, IP addresses and %s names are accepted, so that a web page cannot reach this server through DNS rebinding)",
		r.Host, HostFlag, n, HostFlag)}
}

// CheckOrigin refuses a request with an unsafe method that a browser sent
// on behalf of a page from another origin.
func (g *Guard) CheckOrigin(r *http.Request) *Refusal {
	if crossOrigin.Check(r) == nil {
		return nil
	}
	const fix = "a web page may not change this server through your browser; use the isotope CLI, or a client that sends no Origin or Sec-Fetch-Site header"
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return &Refusal{Header: "Sec-Fetch-Site", Message: fmt.Sprintf("cross-origin %s refused: Sec-Fetch-Site is %q; %s", r.Method, s, fix)}
	}
	return &Refusal{Header: "Origin", Message: fmt.Sprintf("cross-origin %s refused: Origin %q is not this server (Host %q); %s", r.Method, r.Header.Get("Origin"), r.Host, fix)}
}

// Check runs CheckHost, then CheckOrigin.
func (g *Guard) Check(r *http.Request) *Refusal {
	if ref := g.CheckHost(r); ref != nil {
		return ref
	}
	return g.CheckOrigin(r)
}

// Handler serves h only to requests that pass Check.
func (g *Guard) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ref := g.Check(r); ref != nil {
			Refuse(w, ref)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// OriginHandler serves h only to requests that pass CheckOrigin, for
// services reached by names the operator cannot list in advance (the
// storage service behind a Kubernetes Service).
func (g *Guard) OriginHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ref := g.CheckOrigin(r); ref != nil {
			Refuse(w, ref)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// HostHandler serves h only to requests that pass CheckHost on the paths
// for which guarded returns true; other paths go to h unchecked (function
// traffic on the router, which may be addressed to any host).
func (g *Guard) HostHandler(guarded func(path string) bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if guarded(r.URL.Path) {
			if ref := g.CheckHost(r); ref != nil {
				Refuse(w, ref)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Refuse answers 403 with a Kubernetes Status naming the failed header.
func Refuse(w http.ResponseWriter, ref *Refusal) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  ref.Message,
		Reason:   metav1.StatusReasonForbidden,
		Code:     http.StatusForbidden,
		Details:  &metav1.StatusDetails{Causes: []metav1.StatusCause{{Field: ref.Header, Message: ref.Message}}},
	}
	data, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(append(data, '\n'))
}
