package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"isotope.dev/isotope/internal/tracing"
)

// specializeAttempts is how often the runtime is tried while it is not
// yet listening (Fission's 30).
const specializeAttempts = 30

// Specialize fetches the function's archive and then asks the runtime to
// load it: POST <RuntimeURL>/v2/specialize with the FunctionLoadRequest
// for envVersion ≥ 2, POST <RuntimeURL>/specialize with an empty body
// for v1 runtimes. A runtime that is not listening yet is retried up to
// 30 times, waiting 25 ms and doubling to at most 500 ms (Fission PR
// #3559's schedule); any answer below 300 is success.
func (f *Fetcher) Specialize(ctx context.Context, req FunctionSpecializeRequest) error {
	start := time.Now()
	if err := f.Fetch(ctx, req.FetchReq); err != nil {
		return err
	}
	path, body, ctype := "/specialize", []byte(nil), "text/plain"
	if req.LoadReq.EnvVersion >= 2 {
		b, err := json.Marshal(req.LoadReq)
		if err != nil {
			return err
		}
		path, body, ctype = "/v2/specialize", b, "application/json"
	}
	target := strings.TrimRight(f.cfg.RuntimeURL, "/") + path
	delay := 25 * time.Millisecond
	var lastErr error
	for attempt := 1; attempt <= specializeAttempts; attempt++ {
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		hreq.Header.Set("Content-Type", ctype)
		tracing.Inject(ctx, hreq.Header)
		resp, err := f.http.Do(hreq)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode < 300 {
				f.log.Info("specialized", "function", req.LoadReq.FunctionName, "runtime", target,
					"attempts", attempt, "duration", time.Since(start))
				return nil
			}
			return errorf(http.StatusInternalServerError, "specialize %s: runtime answered %s: %s", target, resp.Status, strings.TrimSpace(string(msg)))
		}
		if !isDialError(err) {
			return fmt.Errorf("specialize %s: %w", target, err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("specialize %s: %w (last error: %v)", target, ctx.Err(), lastErr)
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
	return fmt.Errorf("specialize %s: runtime not reachable after %d attempts: %w", target, specializeAttempts, lastErr)
}

// isDialError reports whether err means the runtime is not listening yet.
func isDialError(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// SpecializeOnStartup is the fetcher's -specialize-on-startup mode
// (newdeploy): readiness answers 503 until the specialization succeeds.
func (f *Fetcher) SpecializeOnStartup(ctx context.Context, req FunctionSpecializeRequest) error {
	f.notReady.Store(true)
	if err := f.Specialize(ctx, req); err != nil {
		return err
	}
	f.notReady.Store(false)
	return nil
}

// Ready reports whether /readiness-healthz answers 200.
func (f *Fetcher) Ready() bool { return !f.notReady.Load() }
