package hmac

import (
	stdhmac "crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultExempt are the paths a verifier lets through unsigned: probes and
// metrics scrapes, which carry no secrets and must work without one.
var DefaultExempt = []string{"/healthz", "/metrics", "/readiness-healthz"}

// VerifierOptions tune a Verifier; the zero value is Fission's behaviour.
type VerifierOptions struct {
	// Skew is how far a timestamp may be from this clock (default 60 s).
	Skew time.Duration
	// MaxBody caps a request body (default DefaultMaxBody); larger
	// bodies get 413 before any signature is checked.
	MaxBody int64
	// MemBody is how much of a body is held in memory while it is hashed
	// (default DefaultMemBody); the rest spills to an unlinked temp file.
	MemBody int64
	// Exempt are exact paths served without a signature; nil means
	// DefaultExempt.
	Exempt []string
	// Protect, when set, limits verification to the requests it accepts
	// (e.g. only a runtime's /specialize, not the function traffic).
	Protect func(*http.Request) bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets one line per refused request (never the signature);
	// discarded when nil.
	Logger *slog.Logger
}

// Verifier returns middleware that refuses requests not signed for svc
// with secrets.Current or secrets.Old: 401 with the reason when the
// signature is missing, stale or wrong, 413 when the body is over
// MaxBody. When secrets is not Enabled it returns handlers unchanged.
// The handler behind it reads the same body the signature covered.
func Verifier(secrets Secrets, svc Service, opts VerifierOptions) func(http.Handler) http.Handler {
	if !secrets.Enabled() {
		return func(h http.Handler) http.Handler { return h }
	}
	keys := [][]byte{DeriveKey(secrets.Current, svc)}
	if len(secrets.Old) > 0 {
		keys = append(keys, DeriveKey(secrets.Old, svc))
	}
	if opts.Skew <= 0 {
		opts.Skew = DefaultSkew
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MemBody <= 0 {
		opts.MemBody = DefaultMemBody
	}
	if opts.Exempt == nil {
		opts.Exempt = DefaultExempt
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	exempt := map[string]bool{}
	for _, p := range opts.Exempt {
		exempt[p] = true
	}
	skew := int64(opts.Skew / time.Second)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if exempt[r.URL.Path] || (opts.Protect != nil && !opts.Protect(r)) {
				next.ServeHTTP(w, r)
				return
			}
			refuse := func(code int, reason string) {
				opts.Logger.Warn("internal auth refused a request", "service", string(svc),
					"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", code, "reason", reason)
				http.Error(w, "internal auth ("+string(svc)+"): "+reason, code)
			}
			tsText, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
			if tsText == "" || sig == "" {
				refuse(http.StatusUnauthorized, "the request is not signed: "+HeaderTimestamp+" and "+HeaderSignature+
					" are required; give the caller the same "+EnvSecret+" as this service")
				return
			}
			ts, err := strconv.ParseInt(strings.TrimSpace(tsText), 10, 64)
			if err != nil {
				refuse(http.StatusUnauthorized, HeaderTimestamp+": not a unix time in seconds")
				return
			}
			// Freshness first, so a stale request costs no body read.
			if d := opts.Now().Unix() - ts; d > skew || d < -skew {
				refuse(http.StatusUnauthorized, fmt.Sprintf("%s: %d s away from this server's clock, more than the %d s allowed (clock skew, or a replayed request)",
					HeaderTimestamp, d, skew))
				return
			}
			if r.ContentLength > opts.MaxBody {
				refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body (%d bytes) is over the %d byte limit", r.ContentLength, opts.MaxBody))
				return
			}
			sum := emptySHA256
			if r.Body != nil && r.Body != http.NoBody {
				sp, err := spool(http.MaxBytesReader(w, r.Body, opts.MaxBody), opts.MemBody, opts.MaxBody)
				if err != nil {
					if _, ok := errors.AsType[*http.MaxBytesError](err); ok || err == errTooLarge {
						refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over the %d byte limit", opts.MaxBody))
						return
					}
					refuse(http.StatusBadRequest, "reading the body: "+err.Error())
					return
				}
				defer sp.close()
				sum = sp.sum
				r.Body = sp.reader()
			}
			uri := r.URL.RequestURI()
			for _, k := range keys {
				if stdhmac.Equal([]byte(Sign(k, r.Method, uri, sum, ts)), []byte(sig)) {
					next.ServeHTTP(w, r)
					return
				}
			}
			refuse(http.StatusUnauthorized, HeaderSignature+": does not match (a different secret, or the request was changed on the way)")
		})
	}
}
