package client_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/client"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
	"isotope.dev/isotope/internal/store/storetest"
)

const token = "s3cret"

// serve starts a real API server on loopback over a bbolt file and
// returns a client for it.
func serve(t *testing.T, bopts boltstore.Options, aopts apiserver.Options) (*client.Client, *httptest.Server) {
	t.Helper()
	bs, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), bopts)
	if err != nil {
		t.Fatal(err)
	}
	if aopts.Registry == nil {
		aopts.Registry = prometheus.NewRegistry()
	}
	aopts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(apiserver.New(bs, aopts))
	t.Cleanup(func() {
		_ = bs.Close() // ends watch streams, so Close does not wait for them
		srv.Close()
	})
	return client.New(srv.URL, aopts.Token, srv.Client()), srv
}

func TestConformanceOverHTTP(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		c, _ := serve(t, boltstore.Options{}, apiserver.Options{Token: token})
		return c
	})
}

func TestErrorsKeepReasonAndCauses(t *testing.T) {
	c, srv := serve(t, boltstore.Options{EventLogSize: 3}, apiserver.Options{Token: token})
	ctx := storetest.Ctx(t)
	env := storetest.Sample(v1.KindEnvironment, "default", "Bad_Name").(*v1.Environment)
	env.Spec.Version = 7
	_, err := c.Create(ctx, env)
	se, ok := err.(*store.Error)
	if !ok || se.Reason != store.ReasonInvalid {
		t.Fatalf("invalid create: %#v", err)
	}
	fields := map[string]bool{}
	for _, cause := range se.Causes {
		fields[cause.Field] = true
	}
	if !fields["metadata.name"] || !fields["spec.version"] {
		t.Errorf("causes %+v", se.Causes)
	}
	for i := range 5 {
		storetest.MustCreate(t, c, storetest.Sample(v1.KindFunction, "default", "f"+string(rune('a'+i))))
	}
	if _, err := c.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "1"}); !store.IsExpired(err) {
		t.Errorf("watch from an expired version: %v, want Expired", err)
	}
	if _, err := c.Get(ctx, "fn", "default", ""); err == nil {
		t.Errorf("get without a name succeeded")
	}

	wrong := client.New(srv.URL, "wrong", nil)
	if _, _, err := wrong.List(ctx, v1.KindFunction, store.ListOptions{}); !store.IsUnauthorized(err) {
		t.Errorf("wrong token: %v, want Unauthorized", err)
	}
	dead := client.New("http://127.0.0.1:1", "", nil)
	if _, err := dead.Get(ctx, v1.KindFunction, "default", "x"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestWatchOverHTTP(t *testing.T) {
	c, _ := serve(t, boltstore.Options{}, apiserver.Options{Token: token, HeartbeatInterval: 20 * time.Millisecond})
	c.WatchIdleTimeout = 150 * time.Millisecond
	ctx := storetest.Ctx(t)
	pre := storetest.MustCreate(t, c, storetest.Sample(v1.KindFunction, "default", "pre"))
	w, err := c.Watch(ctx, "functions", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := storetest.NextEvent(t, w); ev.Type != store.Added || ev.Object.GetName() != "pre" {
		t.Fatalf("first event %s", storetest.EventString(ev))
	}
	if ev := storetest.NextEvent(t, w); ev.Type != store.Bookmark || ev.Object.GetResourceVersion() != pre.GetResourceVersion() {
		t.Fatalf("second event %s", storetest.EventString(ev))
	}
	// Idle for twice the client's idle timeout: the server's heartbeats
	// keep the stream open.
	select {
	case ev, ok := <-w.ResultChan():
		t.Fatalf("unexpected event or close while idle: %v %v", ok, ev)
	case <-time.After(300 * time.Millisecond):
	}
	obj := pre.DeepCopyObject().(v1.Object)
	storetest.ChangeSpec(obj, 1)
	upd, err := c.Update(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, w); ev.Type != store.Modified || ev.Object.GetResourceVersion() != upd.GetResourceVersion() {
		t.Fatalf("after update: %s", storetest.EventString(ev))
	}
	// Cancelling the context ends the stream.
	cctx, cancel := context.WithCancel(ctx)
	w2, err := c.Watch(cctx, v1.KindFunction, store.WatchOptions{ResourceVersion: upd.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitClosed(t, w2)
}

func waitClosed(t *testing.T, w store.Watcher) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

// A server that stops sending anything, even heartbeats, is detected.
func TestWatchDetectsDeadStream(t *testing.T) {
	stall := make(chan struct{})
	defer close(stall)
	// A fake server: answers the watch with 200 and then goes silent,
	// as a half-dead connection would.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	c := client.New(srv.URL, "", nil)
	c.WatchIdleTimeout = 200 * time.Millisecond
	w, err := c.Watch(storetest.Ctx(t), v1.KindFunction, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, w)
}
