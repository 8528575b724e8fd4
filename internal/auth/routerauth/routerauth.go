// Package routerauth is the router's optional authentication, Fission's
// flow: a client POSTs {"username","password"} to the login path
// (default /auth/login) and gets 201 {"accesstoken","tokentype":"Bearer"},
// an HS256 JWT with a short expiry (default 120 s, Fission's
// jwtExpiryTime); every other router path then requires
// "Authorization: Bearer <token>", except the login path and
// /router-healthz.
//
// JWTs are made and checked with github.com/golang-jwt/jwt/v5: only
// HS256 is accepted (no "none", no algorithm confusion), and the issuer
// and expiry are required.
package routerauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults, Fission's where it has one.
const (
	DefaultLoginPath = "/auth/login"
	DefaultExpiry    = 120 * time.Second
	Issuer           = "isotope"
	// HealthzPath is served without a token (the router's health check).
	HealthzPath = "/router-healthz"
)

// Environment variables `isotope server --router-auth` reads.
const (
	EnvUsername   = "ISOTOPE_ROUTER_USERNAME"
	EnvPassword   = "ISOTOPE_ROUTER_PASSWORD"
	EnvSigningKey = "ISOTOPE_ROUTER_SIGNING_KEY"
)

// LoginRequest is the body of a login, Fission's AuthLogin.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TokenResponse is the answer to a login, Fission's RouterAuthToken.
type TokenResponse struct {
	AccessToken string `json:"accesstoken"`
	TokenType   string `json:"tokentype"`
}

// Options configure Auth.
type Options struct {
	// Username and Password are the one set of credentials a login
	// accepts. Both are required.
	Username, Password string
	// SigningKey signs and checks tokens (HS256); at least 32 bytes. Nil
	// makes a random key, so tokens do not outlive the process.
	SigningKey []byte
	// Expiry is a token's lifetime (default 120 s).
	Expiry time.Duration
	// LoginPath is where logins are answered (default /auth/login).
	LoginPath string
	// StaticTokens are extra bearer tokens accepted as they are (e.g. the
	// API token, whose holder administers the platform anyway).
	StaticTokens []string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets one line per refused login; discarded when nil.
	Logger *slog.Logger
}

// Auth issues and checks router tokens.
type Auth struct {
	opts Options
	key  []byte
	log  *slog.Logger
}

// MinKeyLen is the shortest signing key accepted, HS256's output size.
const MinKeyLen = 32

// New checks opts and returns an Auth.
func New(opts Options) (*Auth, error) {
	if opts.Username == "" || opts.Password == "" {
		return nil, fmt.Errorf("router auth: a username and a password are required (%s, %s)", EnvUsername, EnvPassword)
	}
	key := opts.SigningKey
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("router auth: the signing key (%s) is %d bytes; at least %d are required", EnvSigningKey, len(key), MinKeyLen)
	}
	if opts.Expiry <= 0 {
		opts.Expiry = DefaultExpiry
	}
	if opts.LoginPath == "" {
		opts.LoginPath = DefaultLoginPath
	}
	if !strings.HasPrefix(opts.LoginPath, "/") {
		return nil, fmt.Errorf("router auth: the login path %q must start with /", opts.LoginPath)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Auth{opts: opts, key: key, log: log}, nil
}

// LoginPath is where logins are answered.
func (a *Auth) LoginPath() string { return a.opts.LoginPath }

// Issue returns a new token for the configured user.
func (a *Auth) Issue() (string, error) {
	now := a.opts.Now()
	claims := jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   a.opts.Username,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.opts.Expiry)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.key)
}

// Check validates a bearer token: a static token, or a JWT signed with the
// key by this issuer and not expired.
func (a *Auth) Check(tok string) error {
	for _, s := range a.opts.StaticTokens {
		if s != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s)) == 1 {
			return nil
		}
	}
	_, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.opts.Now),
	)
	return err
}

// Middleware answers logins at the login path and requires a valid bearer
// token on every other path but /router-healthz.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case a.opts.LoginPath:
			a.login(w, r)
			return
		case HealthzPath:
			next.ServeHTTP(w, r)
			return
		}
		h := r.Header.Get("Authorization")
		scheme, tok, _ := strings.Cut(h, " ")
		if h == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			unauthorized(w, "router auth: a bearer token is required (POST "+a.opts.LoginPath+` with {"username","password"} to get one)`)
			return
		}
		if err := a.Check(strings.TrimSpace(tok)); err != nil {
			reason := "invalid"
			if errors.Is(err, jwt.ErrTokenExpired) {
				reason = "expired"
			}
			unauthorized(w, "router auth: the bearer token is "+reason+"; log in again at "+a.opts.LoginPath)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="isotope-router"`)
	http.Error(w, msg, http.StatusUnauthorized)
}

// maxLoginBody caps a login request body.
const maxLoginBody = 64 << 10

func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "router auth: log in with POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err != nil {
		http.Error(w, "router auth: the login body is over 64 KiB", http.StatusRequestEntityTooLarge)
		return
	}
	var req LoginRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `router auth: the login body must be JSON {"username","password"}: `+err.Error(), http.StatusBadRequest)
		return
	}
	// Compare both, always, in constant time: no early exit that tells
	// which one was wrong.
	u := subtle.ConstantTimeCompare([]byte(req.Username), []byte(a.opts.Username))
	p := subtle.ConstantTimeCompare([]byte(req.Password), []byte(a.opts.Password))
	if u&p != 1 {
		a.log.Warn("router auth: login refused", "remote", r.RemoteAddr)
		unauthorized(w, "router auth: wrong username or password")
		return
	}
	tok, err := a.Issue()
	if err != nil {
		http.Error(w, "router auth: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(TokenResponse{AccessToken: tok, TokenType: "Bearer"})
}

// Transport returns a RoundTripper that sends a token of this Auth with
// every request that has no Authorization header, renewing it when half
// its lifetime has passed: for the platform's own callers of the router
// (the timer).
func (a *Auth) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{a: a, next: next}
}

type transport struct {
	a    *Auth
	next http.RoundTripper
	mu   sync.Mutex
	tok  string
	renw time.Time
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.next.RoundTrip(req)
	}
	t.mu.Lock()
	if now := t.a.opts.Now(); t.tok == "" || !now.Before(t.renw) {
		tok, err := t.a.Issue()
		if err != nil {
			t.mu.Unlock()
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		t.tok, t.renw = tok, now.Add(t.a.opts.Expiry/2)
	}
	tok := t.tok
	t.mu.Unlock()
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.next.RoundTrip(req)
}
