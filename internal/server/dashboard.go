package server

import (
	"context"
	"io"
	"net/http"

	"isotope.dev/isotope/internal/dashboard"
	"isotope.dev/isotope/internal/router"
	isostatus "isotope.dev/isotope/internal/status"
	"isotope.dev/isotope/internal/storagesvc"
)

// mountStatus serves the status report (GET /v2/status, behind the API
// token) and the dashboard (/ui/, its own login and CSRF checks) on the
// API's mux, over the in-process router's stats. Both sit behind the
// API's webguard like every API path.
func (s *Server) mountStatus(mux *http.ServeMux, rtr *router.Router, logs, buildLogs http.Handler, apiURL string) error {
	mux.Handle(isostatus.Path, requireToken(s.cfg.Token, isostatus.Handler(s.store, rtr)))
	archives := storagesvc.NewClient(apiURL, s.cfg.Token)
	ui, err := dashboard.New(dashboard.Config{
		Store:     s.store,
		Stats:     rtr,
		Token:     s.cfg.Token,
		Logs:      logs,
		BuildLogs: buildLogs,
		Download: func(ctx context.Context, url string, w io.Writer) error {
			return archives.Download(ctx, url, w)
		},
		RouterURL:    "http://" + s.routerLn.Addr().String(),
		RouterClient: s.timerClient(),
		Logger:       s.log.With("role", "dashboard"),
	})
	if err != nil {
		return err
	}
	mux.Handle(dashboard.Prefix, ui)
	mux.Handle("GET /ui", http.RedirectHandler(dashboard.Prefix, http.StatusMovedPermanently))
	return nil
}
