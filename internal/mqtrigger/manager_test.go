package mqtrigger

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store/boltstore"
)

// A manager given RouterReady consumes nothing before it is closed: a
// server that has just started would otherwise call functions its
// router does not know yet, and those messages fail with 404 (the
// restart of TestMQTriggerRedisKill9 lost two that way). After it is
// closed, triggers consume as usual.
func TestManagerWaitsForTheRouter(t *testing.T) {
	ns, js := startNATS(t)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "store.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := st.Create(ctx, trigger(v1.MessageQueueTypeNATSJetStream, "orders.created", nil)); err != nil {
		t.Fatal(err)
	}
	f := newFnServer(t, func(body string) (int, string) { return 200, "done " + body })
	ready := make(chan struct{})
	results := make(chan Result, 10)
	m := NewManager(ManagerConfig{
		Store: st, RouterURL: f.URL, Queue: Options{NATSURL: ns.URL()}, RouterReady: ready,
		Handled: func(_ string, r Result) { results <- r },
	})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	// Nothing can be observed to not happen without a while to happen
	// in: a manager that did not wait starts the trigger within a few
	// milliseconds of Run.
	select {
	case err := <-done:
		t.Fatalf("Run returned before the router was ready: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if r := m.Running(); len(r) != 0 {
		t.Fatalf("triggers %v consume before the router is ready", r)
	}

	close(ready)
	waitStream(t, js, "orders")
	if _, err := js.Publish(ctx, "orders.created", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, results, 1, 30*time.Second); got[0].Err != nil || got[0].Status != 200 {
		t.Errorf("after the router was ready: %+v", got[0])
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
