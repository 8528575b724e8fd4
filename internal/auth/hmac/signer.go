package hmac

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Signer is an http.RoundTripper that signs each request it sends for one
// service channel and passes it to Next. The request the caller handed in
// is not changed: the signed one is a clone.
//
// The body is hashed before sending: through GetBody when the request has
// one (net/http sets it for bytes and strings readers), so nothing is
// buffered; otherwise it is read once, kept in memory up to MemBody bytes
// and in an unlinked temporary file beyond, and replayed from there.
type Signer struct {
	// Key is the derived key of the channel (DeriveKey); empty sends
	// requests unsigned.
	Key []byte
	// Next sends the signed request; http.DefaultTransport when nil.
	Next http.RoundTripper
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// MaxBody caps a body that can be signed (default DefaultMaxBody);
	// a larger one fails the request before anything is sent.
	MaxBody int64
	// MemBody is how much of a body without GetBody is held in memory
	// (default DefaultMemBody).
	MemBody int64
	// Match, when set, limits signing to the requests it accepts; the
	// others are passed on unsigned (e.g. downloads from third-party URLs
	// made with the same client).
	Match func(*http.Request) bool
}

// NewSigner returns a Signer for svc under the master secret in secrets.
func NewSigner(secrets Secrets, svc Service, next http.RoundTripper) *Signer {
	return &Signer{Key: DeriveKey(secrets.Current, svc), Next: next}
}

// Transport returns next wrapped in a Signer for svc when internal auth is
// enabled in secrets, and next itself otherwise (http.DefaultTransport
// when nil).
func Transport(secrets Secrets, svc Service, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if !secrets.Enabled() {
		return next
	}
	return NewSigner(secrets, svc, next)
}

// RoundTrip implements http.RoundTripper.
func (s *Signer) RoundTrip(req *http.Request) (*http.Response, error) {
	next := s.Next
	if next == nil {
		next = http.DefaultTransport
	}
	if len(s.Key) == 0 || (s.Match != nil && !s.Match(req)) {
		return next.RoundTrip(req)
	}
	max, mem := s.MaxBody, s.MemBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	if mem <= 0 {
		mem = DefaultMemBody
	}
	out := req.Clone(req.Context())
	sum := emptySHA256
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if req.GetBody != nil {
			sum, err = hashGetBody(req, max)
		} else {
			var sp *spooled
			sp, err = spool(req.Body, mem, max)
			req.Body.Close()
			if err == nil {
				sum = sp.sum
				out.Body, out.ContentLength = sp.reader(), sp.size
				out.GetBody = nil
				if sp.file == nil {
					out.GetBody = func() (io.ReadCloser, error) { return sp.reader(), nil }
				}
			}
		}
		if err == errTooLarge {
			err = fmt.Errorf("internal auth: the request body is over %d bytes and cannot be signed", max)
		}
		if err != nil {
			return nil, fmt.Errorf("internal auth: sign %s %s: %w", req.Method, req.URL.Redacted(), err)
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ts := now().Unix()
	out.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	out.Header.Set(HeaderSignature, Sign(s.Key, out.Method, out.URL.RequestURI(), sum, ts))
	return next.RoundTrip(out)
}

// hashGetBody hashes a fresh copy of the body from GetBody, leaving
// req.Body untouched for the transport to send. On error it closes
// req.Body, as a RoundTripper must.
func hashGetBody(req *http.Request, max int64) (string, error) {
	rc, err := req.GetBody()
	if err != nil {
		req.Body.Close()
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, max+1))
	if err == nil && n > max {
		err = errTooLarge
	}
	if err != nil {
		req.Body.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
