package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"isotope.dev/isotope/internal/auth/hmac"
	"isotope.dev/isotope/internal/tracing"
)

// ServeRole serves h on addr until ctx ends, then shuts down gracefully.
// With internal auth on (VerifyInternal), requests must be signed for the
// channel role names (builder, fetcher, router …).
func ServeRole(ctx context.Context, log *slog.Logger, role, addr string, h http.Handler, kv ...any) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	h = VerifyInternal(log, hmac.Service(role), h, hmac.VerifierOptions{})
	stop, err := StartTracing(ctx, log, role)
	if err != nil {
		ln.Close()
		return err
	}
	defer stop()
	h = tracing.Handler(h, roleRoutes[role]...)
	log.Info(role+" listening", append([]any{"addr", ln.Addr().String()}, kv...)...)
	return ServeHTTP(ctx, ln, h, func() { log.Info(role + " shutting down") })
}

// roleRoutes are the paths of the roles ServeRole serves, which name
// their spans (any other path is traced by method only).
var roleRoutes = map[string][]string{
	"builder": {"/", "/logs", "/clean"},
	"fetcher": {"/fetch", "/upload", "/specialize"},
}

// ServeHTTP serves h on ln until serving fails or ctx ends; then stopping
// runs (when set) and the server shuts down gracefully, giving requests
// in flight up to 10 s.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler, stopping func()) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if stopping != nil {
		stopping()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// VerifyInternal puts the HMAC verifier of svc in front of a role's
// handler when ISOTOPE_INTERNAL_AUTH_SECRET (or Fission's
// FISSION_INTERNAL_AUTH_SECRET) is set, and returns h unchanged when not.
// /healthz, /metrics and /readiness-healthz stay open.
func VerifyInternal(log *slog.Logger, svc hmac.Service, h http.Handler, opts hmac.VerifierOptions) http.Handler {
	secrets := hmac.SecretsFromEnv()
	if !secrets.Enabled() {
		return h
	}
	opts.Logger = log
	log.Info("internal auth on: requests must be HMAC-signed", "service", string(svc), "rotation", len(secrets.Old) > 0)
	return hmac.Verifier(secrets, svc, opts)(h)
}
