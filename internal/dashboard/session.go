package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"sync"
	"time"
)

// Sessions: a browser gets a random session id in an HttpOnly,
// SameSite=Strict cookie on its first page; logging in with the API
// token marks a fresh session (a new id: no fixation) as authenticated.
// The token itself never leaves the login form. Every state-changing
// request must carry the session's CSRF token (an HMAC of the session id
// under a per-process key) in a form field or the X-CSRF-Token header,
// besides passing webguard's Host and Origin checks. Sessions live in
// memory: a restart logs everyone out.

const (
	cookieName    = "isotope_session"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
	sessionTTL    = 12 * time.Hour
	maxAnonymous  = 1024 // unauthenticated sessions kept; the oldest go first
	maxSessions   = 4096
	anonymousTTL  = time.Hour
	sessionIDSize = 32
)

type session struct {
	authed  bool
	expires time.Time
	created time.Time
}

type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	key [32]byte
}

func newSessions() *sessions {
	s := &sessions{m: map[string]*session{}}
	rand.Read(s.key[:])
	return s
}

// get returns the request's live session and its id.
func (s *sessions) get(r *http.Request) (string, *session) {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) != 2*sessionIDSize {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[c.Value]
	if ss == nil || time.Now().After(ss.expires) {
		delete(s.m, c.Value)
		return "", nil
	}
	return c.Value, ss
}

// start makes a new session and sets its cookie.
func (s *sessions) start(w http.ResponseWriter, r *http.Request, authed bool) string {
	var b [sessionIDSize]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := time.Now()
	ttl := anonymousTTL
	if authed {
		ttl = sessionTTL
	}
	s.mu.Lock()
	s.m[id] = &session{authed: authed, expires: now.Add(ttl), created: now}
	s.pruneLocked(now)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: "/ui/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		MaxAge: int(ttl / time.Second),
	})
	return id
}

// end forgets a session and clears its cookie.
func (s *sessions) end(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// pruneLocked drops expired sessions, then the oldest anonymous ones
// past maxAnonymous, then the oldest of all past maxSessions: pages that
// anyone may load cannot grow the map without bound.
func (s *sessions) pruneLocked(now time.Time) {
	anon := 0
	for id, ss := range s.m {
		if now.After(ss.expires) {
			delete(s.m, id)
		} else if !ss.authed {
			anon++
		}
	}
	for anon > maxAnonymous || len(s.m) > maxSessions {
		oldID, old := "", (*session)(nil)
		for id, ss := range s.m {
			if (anon > maxAnonymous && ss.authed) || (old != nil && !ss.created.Before(old.created)) {
				continue
			}
			oldID, old = id, ss
		}
		if old == nil {
			return
		}
		if !old.authed {
			anon--
		}
		delete(s.m, oldID)
	}
}

// csrf is the CSRF token of session id.
func (s *sessions) csrf(id string) string {
	m := hmac.New(sha256.New, s.key[:])
	m.Write([]byte("csrf:" + id))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether r carries id's CSRF token.
func (s *sessions) checkCSRF(r *http.Request, id string) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	want := s.csrf(id)
	return id != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
