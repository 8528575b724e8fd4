package timer

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store/boltstore"
)

// call is one request the stand-in router received.
type call struct {
	method, path, timer string
	at                  time.Time
}

// standIn is a loopback HTTP server in the router's place that records
// every call.
func standIn(t *testing.T) (*httptest.Server, chan call) {
	calls := make(chan call, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls <- call{r.Method, r.URL.Path, r.Header.Get(HeaderTimerName), time.Now()}
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

func timeTrigger(name, cron, fn string) *v1.TimeTrigger {
	return &v1.TimeTrigger{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.TimeTriggerSpec{Cron: cron, FunctionReference: v1.FunctionReference{
			Type: v1.FunctionReferenceTypeFunctionName, Name: fn,
		}},
	}
}

// next waits for a call (10 s at most).
func next(t *testing.T, calls chan call, what string) call {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("no call: %s", what)
		return call{}
	}
}

func TestTimerFiresUpdatesAndStops(t *testing.T) {
	srv, calls := standIn(t)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tm := New(Config{Store: st, RouterURL: srv.URL + "/"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tm.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tt := timeTrigger("tick", "@every 1s", "hello")
	tt.Spec.Method = "POST"
	tt.Spec.Subpath = "/jobs"
	created := time.Now()
	obj, err := st.Create(context.Background(), tt)
	if err != nil {
		t.Fatal(err)
	}
	c := next(t, calls, "first fire of @every 1s")
	// @every 1s fires on the first whole second at least a second
	// after it is scheduled: within 2 s of the create, with slack for a
	// loaded CI machine.
	if d := c.at.Sub(created); d > 3*time.Second {
		t.Errorf("first fire %v after create, want about 1-2 s", d)
	}
	if c.method != "POST" || c.path != "/fission-function/default/hello/jobs" || c.timer != "tick" {
		t.Fatalf("call = %+v, want POST /fission-function/default/hello/jobs with timer name tick", c)
	}
	c2 := next(t, calls, "second fire")
	if gap := c2.at.Sub(c.at); gap < 500*time.Millisecond || gap > 2500*time.Millisecond {
		t.Errorf("fires %v apart, want about 1 s", gap)
	}

	// An update replaces the schedule: calls go to the new subpath and
	// method.
	upd := obj.(*v1.TimeTrigger)
	upd.Spec.Subpath = "/v2"
	upd.Spec.Method = ""
	if _, err := st.Update(context.Background(), upd); err != nil {
		t.Fatal(err)
	}
	for {
		c = next(t, calls, "a call after the update")
		if c.path == "/fission-function/default/hello/v2" {
			break
		}
	}
	if c.method != "GET" {
		t.Errorf("empty method → %s, want GET", c.method)
	}

	// A delete stops it.
	if err := st.Delete(context.Background(), v1.KindTimeTrigger, "default", "tick", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(tm.Scheduled()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("trigger still scheduled after delete")
		}
		time.Sleep(5 * time.Millisecond)
	}
	drain(calls)
	select {
	case c := <-calls:
		t.Fatalf("call after delete: %+v", c)
	case <-time.After(2200 * time.Millisecond): // two periods of the deleted schedule
	}
}

func drain(ch chan call) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestTimerRetriesOnlyTransportErrors(t *testing.T) {
	var attempts atomic.Int32
	// The first connection is closed without an answer (a transport
	// error); the next request gets a 500, which is not retried.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	tm := New(Config{Store: nil, RouterURL: srv.URL, RetryDelay: 10 * time.Millisecond, MaxRetries: 3,
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	tm.fire(context.Background(), timeTrigger("t", "@every 1s", "f"))
	if n := attempts.Load(); n != 2 {
		t.Fatalf("attempts = %d, want 2 (one transport retry, no retry of the 500)", n)
	}

	// Nothing listening: bounded retries, then give up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tm = New(Config{RouterURL: "http://" + addr, RetryDelay: time.Millisecond, MaxRetries: 2})
	tm.fire(context.Background(), timeTrigger("t", "@every 1s", "f")) // returns: bounded
}

func TestBadTriggersAreNotScheduled(t *testing.T) {
	tm := New(Config{RouterURL: "http://127.0.0.1:1"})
	w := timeTrigger("weights", "@every 1s", "f")
	w.Spec.FunctionReference = v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{"f": 1}}
	bad := timeTrigger("bad", "every now and then", "f")
	tm.reconcile(context.Background(), []v1.Object{w, bad, timeTrigger("good", "*/5 * * * *", "f")})
	if s := tm.Scheduled(); len(s) != 1 || s[0] != "default/good" {
		t.Fatalf("scheduled %v, want only default/good", s)
	}
}

func TestNextTimes(t *testing.T) {
	from := time.Date(2026, 3, 1, 10, 7, 5, 0, time.UTC)
	cases := []struct {
		spec string
		want []string
	}{
		{"*/15 * * * *", []string{"10:15:00", "10:30:00", "10:45:00"}},
		{"*/10 * * * * *", []string{"10:07:10", "10:07:20", "10:07:30"}},
		{"@every 1s", []string{"10:07:06", "10:07:07", "10:07:08"}},
		{"@hourly", []string{"11:00:00", "12:00:00", "13:00:00"}},
	}
	for _, c := range cases {
		got, err := NextTimes(c.spec, 3, from)
		if err != nil {
			t.Fatalf("%s: %v", c.spec, err)
		}
		var s []string
		for _, g := range got {
			s = append(s, g.Format("15:04:05"))
		}
		if strings.Join(s, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: %v, want %v", c.spec, s, c.want)
		}
	}
	if _, err := NextTimes("61 * * * *", 1, from); err == nil || !strings.Contains(err.Error(), `"61 * * * *"`) {
		t.Errorf("bad spec error %v should name the spec", err)
	}
}
