package kubetest

import (
	"context"
	"testing"
	"time"
)

// Context is a context for one call to the control plane: it ends after
// 30 seconds, or with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond until it returns "" or d has passed; then the
// test fails with cond's last answer, which says what was still missing.
func Eventually(t testing.TB, d time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, why)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
