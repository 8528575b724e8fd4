package mqtrigger

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "isotope.dev/isotope/api/v1"
)

// startNATS runs the embedded server on a free port in a temp dir.
func startNATS(t *testing.T) (*NATSServer, jetstream.JetStream) {
	t.Helper()
	ns, err := StartNATS("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ns, js
}

// readSubject reads n messages of subject from its stream, in order.
func readSubject(t *testing.T, js jetstream.JetStream, subject string, n int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []jetstream.Msg
	for len(out) < n {
		stream, err := js.StreamNameBySubject(ctx, subject)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("no stream holds %s: %v", subject, err)
			}
			time.Sleep(20 * time.Millisecond) // polling for the stream to appear
			continue
		}
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		for len(out) < n {
			m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("%d of %d messages on %s: %v", len(out), n, subject, err)
				}
				break
			}
			out = append(out, m)
		}
	}
	return out
}

func TestNATSTriggerAnswersToRespTopicInOrder(t *testing.T) {
	ns, js := startNATS(t)
	ctx := context.Background()
	f := newFnServer(t, func(body string) (int, string) { return 200, "done " + body })
	tr := trigger(v1.MessageQueueTypeNATSJetStream, "orders.created", nil)
	tr.Spec.ResponseTopic = "results.done"
	results := runTrigger(t, tr, f, Options{NATSURL: ns.URL()})

	// The trigger made the stream "orders" for orders.>; publish to two
	// subjects of it... the trigger reads only its own.
	waitStream(t, js, "orders")
	const n = 40
	for i := range n {
		if _, err := js.Publish(ctx, "orders.created", fmt.Appendf(nil, "a-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "orders.other", []byte("not for the trigger")); err != nil {
		t.Fatal(err)
	}
	collect(t, results, n, 60*time.Second)
	calls := f.Calls()
	if len(calls) != n {
		t.Fatalf("%d calls, want %d", len(calls), n)
	}
	checkOrder(t, calls)
	c := calls[0]
	if c.path != "/fission-function/default/handle" {
		t.Errorf("called %s", c.path)
	}
	for h, want := range map[string]string{HeaderTopic: "orders.created", HeaderRespTopic: "results.done", "Content-Type": "application/json"} {
		if got := c.header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	resp := readSubject(t, js, "results.done", n)
	for i, m := range resp {
		if want := fmt.Sprintf("done a-%d", i); string(m.Data()) != want {
			t.Fatalf("response %d = %q, want %q", i, m.Data(), want)
		}
	}
	if got := resp[0].Headers().Get("X-Answer"); got != "yes" {
		t.Errorf("the answer's headers are not on the response: X-Answer=%q", got)
	}
}

func waitStream(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := js.Stream(context.Background(), name); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("stream %s: %v", name, err)
		}
		time.Sleep(10 * time.Millisecond) // polling for the trigger to create it
	}
}

func TestNATSTriggerFailureGoesToErrorTopicAfterRetries(t *testing.T) {
	ns, js := startNATS(t)
	ctx := context.Background()
	f := newFnServer(t, func(body string) (int, string) {
		if body == "bad" {
			return 500, "cannot handle bad"
		}
		return 200, "ok"
	})
	tr := trigger(v1.MessageQueueTypeNATSJetStream, "jobs", nil)
	tr.Spec.ResponseTopic, tr.Spec.ErrorTopic, tr.Spec.MaxRetries = "jobs-done", "jobs-failed", 2
	results := runTrigger(t, tr, f, Options{NATSURL: ns.URL()})
	waitStream(t, js, "jobs")
	msg := &nats.Msg{Subject: "jobs", Data: []byte("bad"), Header: nats.Header{"Trace-Id": []string{"t1"}}}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "jobs", []byte("good")); err != nil {
		t.Fatal(err)
	}
	rs := collect(t, results, 2, 60*time.Second)
	if rs[0].Err == nil || rs[0].Attempts != 3 || rs[0].Status != 500 {
		t.Errorf("bad message: %+v, want 3 attempts ending in 500", rs[0])
	}
	if n := len(f.Calls()); n != 4 {
		t.Errorf("%d calls, want 3 for bad and 1 for good", n)
	}
	em := readSubject(t, js, "jobs-failed", 1)[0]
	if string(em.Data()) != "bad" {
		t.Errorf("error topic has %q, want the original message", em.Data())
	}
	if e := em.Headers().Get(HeaderError); !strings.Contains(e, "answered 500") || !strings.Contains(e, "cannot handle bad") {
		t.Errorf("%s = %q", HeaderError, e)
	}
	if em.Headers().Get("Trace-Id") != "t1" || em.Headers().Get(HeaderAttempts) != "3" || em.Headers().Get(HeaderSource) != "jobs" {
		t.Errorf("error message headers: %v", em.Headers())
	}
	if got := string(readSubject(t, js, "jobs-done", 1)[0].Data()); got != "ok" {
		t.Errorf("jobs-done has %q", got)
	}
}

// A slow function holds the reading back: no more calls at once than
// the concurrency, and the server never has more than the in-flight
// bound of the trigger's messages unacknowledged.
func TestNATSTriggerBackPressure(t *testing.T) {
	ns, js := startNATS(t)
	ctx := context.Background()
	release := make(chan struct{})
	f := newFnServer(t, func(string) (int, string) { <-release; return 200, "" })
	tr := trigger(v1.MessageQueueTypeNATSJetStream, "slow.in", map[string]string{"concurrency": "2"})
	results := runTrigger(t, tr, f, Options{NATSURL: ns.URL()})
	waitStream(t, js, "slow")
	const n = 200
	for i := range n {
		if _, err := js.Publish(ctx, "slow.in", fmt.Appendf(nil, "m-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, "slow", ConsumerName(tr))
	for err != nil {
		time.Sleep(10 * time.Millisecond) // polling for the consumer
		cons, err = js.Consumer(ctx, "slow", ConsumerName(tr))
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.active.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no call started")
		}
		time.Sleep(10 * time.Millisecond) // polling for the first call
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bound := InFlight(2, natsBatch); info.NumAckPending > bound {
		t.Errorf("%d messages unacknowledged while the function is stuck, want <= %d", info.NumAckPending, bound)
	}
	if info.NumPending < n-uint64(InFlight(2, natsBatch)) {
		t.Errorf("%d messages left in the stream, want the rest held back", info.NumPending)
	}
	close(release)
	collect(t, results, n, 120*time.Second)
	if m := f.maxSeen.Load(); m > 2 {
		t.Errorf("%d calls at once, want <= 2 (concurrency)", m)
	}
	// With one subject, concurrency changes nothing about order.
	checkOrder(t, f.Calls())
}

// A call that lasts longer than the consumer's AckWait keeps its message
// with progress acks: JetStream does not deliver it a second time (the
// reader's next pulls would get it while the first call still runs).
func TestNATSTriggerSlowCallIsNotRedelivered(t *testing.T) {
	ns, js := startNATS(t)
	ctx := context.Background()
	const ackWait = 300 * time.Millisecond
	const n = 3
	f := newFnServer(t, func(string) (int, string) {
		time.Sleep(5 * ackWait) // the function is slow: five AckWaits per message
		return 200, ""
	})
	tr := trigger(v1.MessageQueueTypeNATSJetStream, "long.in", nil)
	results := runTrigger(t, tr, f, Options{NATSURL: ns.URL(), NATSAckWait: ackWait})
	waitStream(t, js, "long")
	for i := range n {
		if _, err := js.Publish(ctx, "long.in", fmt.Appendf(nil, "long-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	collect(t, results, n, 60*time.Second)
	cons, err := js.Consumer(ctx, "long", ConsumerName(tr))
	if err != nil {
		t.Fatal(err)
	}
	// Drained: nothing left to deliver, nothing unacknowledged (a copy
	// delivered again would be at the function or waiting for it).
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && f.active.Load() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not drained: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		time.Sleep(20 * time.Millisecond) // polling the consumer's state
	}
	if calls := f.Calls(); len(calls) != n {
		var bodies []string
		for _, c := range calls {
			bodies = append(bodies, c.body)
		}
		t.Errorf("%d calls for %d messages: %v", len(calls), n, bodies)
	}
}

// Messages a stopped trigger had taken and not acknowledged come back to
// the next run after AckWait: a crash stalls a trigger for AckWait, not
// longer. They come back behind the later messages of their subject,
// which the restarted trigger handles at once, in order.
func TestNATSTriggerResumesAfterAckWait(t *testing.T) {
	ns, js := startNATS(t)
	ctx := context.Background()
	const ackWait = time.Second
	stuck := make(chan struct{})
	first := newFnServer(t, func(string) (int, string) { <-stuck; return 500, "" })
	defer close(stuck)
	tr := trigger(v1.MessageQueueTypeNATSJetStream, "resume.in", nil)
	o := Options{NATSURL: ns.URL(), NATSAckWait: ackWait, Concurrency: 2}

	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() {
		stopped <- RunTrigger(runCtx, tr, o, Config{RouterURL: first.URL, RetryDelay: 5 * time.Millisecond})
	}()
	waitStream(t, js, "resume")
	const n = 20
	for i := range n {
		if _, err := js.Publish(ctx, "resume.in", fmt.Appendf(nil, "resume-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for first.active.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no call started")
		}
		time.Sleep(10 * time.Millisecond) // polling for the first call
	}
	stop() // the process "dies" with messages taken, none acknowledged
	if err := <-stopped; err != nil {
		t.Fatalf("first run: %v", err)
	}

	second := newFnServer(t, func(string) (int, string) { return 200, "" })
	start := time.Now()
	results := runTrigger(t, tr, second, o)
	collect(t, results, n, 30*time.Second)
	took := time.Since(start)
	t.Logf("%d messages handled %v after the restart (AckWait %v)", n, took, ackWait)
	if took > 10*ackWait {
		t.Errorf("the restarted trigger took %v, want about AckWait (%v)", took, ackWait)
	}
	seen := map[string]bool{}
	var later []call
	for _, c := range second.Calls() {
		seen[c.body] = true
		if c.body != "resume-0" && c.body != "resume-1" {
			later = append(later, c)
		}
	}
	for i := range n {
		if id := fmt.Sprintf("resume-%d", i); !seen[id] {
			t.Errorf("%s never reached the restarted trigger's function", id)
		}
	}
	// resume-0 (at the function) and resume-1 (held for the worker) were
	// in flight at the stop; the rest is in publish order.
	for i, c := range later {
		if want := fmt.Sprintf("resume-%d", i+2); c.body != want {
			t.Fatalf("call %d after the restart: %q, want %q (in order)", i, c.body, want)
		}
	}
}
