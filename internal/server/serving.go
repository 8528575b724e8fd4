package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"isotope.dev/isotope/internal/canary"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/router"
	"isotope.dev/isotope/internal/timer"
	"isotope.dev/isotope/internal/wasm"
)

// assembleServing wires the request path: the wazero runtime, the
// executor over it (and over local processes), the router, and the timer
// that calls the router.
func (s *Server) assembleServing(reg *prometheus.Registry, logs *fnlog.Store, fetch *fetcher.InProcess) (*router.Router, []role, error) {
	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{
		CacheDir:   filepath.Join(s.cfg.DataDir, "cache", "wasm"),
		GuestSlots: s.cfg.GuestSlots,
		GuestQueue: s.cfg.GuestQueue,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start the WebAssembly runtime: %w", err)
	}
	s.closers = append(s.closers, func() { rt.Close(context.Background()) })

	exec, err := executor.New(executor.Config{
		Store:        s.kv,
		Wasm:         rt,
		Fetcher:      fetch,
		Logs:         logs,
		WorkDir:      filepath.Join(s.cfg.DataDir, "functions"),
		Network:      s.network,
		StartTimeout: s.cfg.InstanceStartTimeout,
		Logger:       s.log.With("role", "executor"),
		Registry:     reg,
	})
	if err != nil {
		return nil, nil, err
	}
	// Stop instances (and their processes) before the runtime closes.
	s.closers = append([]func(){func() { exec.Close() }}, s.closers...)

	rtr := router.New(router.Config{
		Store:    s.store,
		Executor: exec,
		Logger:   s.log.With("role", "router"),
		Registry: reg,
		Version:  Version,
	})
	tmr := timer.New(timer.Config{
		Store:     s.store,
		RouterURL: "http://" + s.routerLn.Addr().String(),
		// Carries router auth tokens when router auth is on.
		HTTPClient: s.timerClient(),
		Logger:     s.log.With("role", "timer"),
	})
	// Canaries move route weights by the router's own counts.
	can := canary.New(canary.Config{Store: s.store, Stats: rtr, Logger: s.log.With("role", "canary")})
	return rtr, []role{
		{"executor", exec.Run},
		{"router", rtr.Run},
		{"timer", tmr.Run},
		{"canary", can.Run},
	}, nil
}

// Version is the platform version reported by the router's /_version;
// set at build time with -ldflags "-X isotope.dev/isotope/internal/server.Version=…".
var Version = "dev"
