package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/auth/routerauth"
)

func TestTokenCreate(t *testing.T) {
	a := newTestAPI(t)
	auth, err := routerauth.New(routerauth.Options{Username: "admin", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	router := httptest.NewServer(auth.Middleware(http.NotFoundHandler()))
	t.Cleanup(router.Close)

	r := a.ok("--router", router.URL, "token", "create", "--username", "admin", "--password", "pw")
	tok := strings.TrimSpace(r.Stdout)
	if err := auth.Check(tok); err != nil {
		t.Fatalf("printed token %q: %v", tok, err)
	}
	a.fails([]string{"--router", router.URL, "token", "create", "--username", "admin", "--password", "nope"}, "401", "wrong username or password")
	a.fails([]string{"--router", router.URL, "token", "create", "--password", "pw"}, "--username is required")
	a.fails([]string{"--router", router.URL, "token", "create", "--username", "admin", "--password", "pw", "--authuri", "/elsewhere"}, "401")

	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	a.fails([]string{"--router", plain.URL, "token", "create", "--username", "admin", "--password", "pw"}, "--router-auth")
}
