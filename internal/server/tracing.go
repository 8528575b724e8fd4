package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"isotope.dev/isotope/internal/tracing"
)

// tracingFlushTimeout bounds the export of the spans still queued when a
// role stops.
const tracingFlushTimeout = 5 * time.Second

// StartTracing sets up OpenTelemetry tracing for a role from the OTEL_*
// environment (package tracing): off, at no cost, unless an OTLP
// endpoint is configured. The service name is "isotope-<role>" ("isotope"
// for the embedded server) unless OTEL_SERVICE_NAME says otherwise. The
// returned function flushes the queued spans and stops the exporter; a
// bad OTEL_* value fails the role, naming the variable.
func StartTracing(ctx context.Context, log *slog.Logger, role string) (stop func(), err error) {
	service := "isotope"
	if role != "" {
		service += "-" + role
	}
	shutdown, err := tracing.Setup(ctx, service)
	if err != nil {
		return func() {}, fmt.Errorf("tracing: %w", err)
	}
	if !tracing.Enabled() {
		return func() {}, nil
	}
	cfg, _ := tracing.ConfigFromEnv(nil)
	log.Info("tracing on: exporting spans over OTLP", "protocol", cfg.Protocol, "service", service)
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("tracing: flushing spans on exit failed", "err", err)
		}
	}, nil
}
