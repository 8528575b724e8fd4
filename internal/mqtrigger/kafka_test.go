package mqtrigger

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	v1 "isotope.dev/isotope/api/v1"
)

// Kafka tests run against franz-go's kfake, an in-process Kafka cluster
// that speaks the real wire protocol on loopback: no Kafka broker can be
// installed from Debian or the Go proxy here (docs/message-queues.md).
func startKafka(t *testing.T, topics ...string) (string, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addrs := strings.Join(c.ListenAddrs(), ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topics[0]),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return addrs, cl
}

// readTopic reads n records of topic from its start.
func readTopic(t *testing.T, addrs, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addrs, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records on %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func TestKafkaTriggerInOrderPerPartitionWithRetriesAndErrors(t *testing.T) {
	addrs, cl := startKafka(t, "orders", "orders-done", "orders-failed")
	f := newFnServer(t, func(body string) (int, string) {
		if strings.HasSuffix(body, "bad") {
			return 502, "no"
		}
		return 200, "done " + body
	})
	tr := trigger(v1.MessageQueueTypeKafka, "orders", map[string]string{MetaKafkaBootstrapServers: addrs})
	tr.Spec.ResponseTopic, tr.Spec.ErrorTopic, tr.Spec.MaxRetries = "orders-done", "orders-failed", 1
	results := runTrigger(t, tr, f, Options{})

	ctx := context.Background()
	const perPartition = 20
	for i := range perPartition {
		for p := range int32(3) {
			r := &kgo.Record{Topic: "orders", Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i),
				Headers: []kgo.RecordHeader{{Key: "Trace-Id", Value: []byte("x")}}}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: 0, Value: []byte("bad")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	collect(t, results, 3*perPartition+1, 120*time.Second)
	var good []call
	for _, c := range f.Calls() {
		if c.body != "bad" {
			good = append(good, c)
		}
		if c.header.Get("Trace-Id") != "x" && c.body != "bad" {
			t.Errorf("the record's header did not reach the function: %v", c.header)
		}
	}
	checkOrder(t, good)
	done := readTopic(t, addrs, "orders-done", 3*perPartition)
	if !strings.HasPrefix(string(done[0].Value), "done p") {
		t.Errorf("orders-done has %q", done[0].Value)
	}
	failed := readTopic(t, addrs, "orders-failed", 1)[0]
	hdr := map[string]string{}
	for _, h := range failed.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(failed.Value) != "bad" || !strings.Contains(hdr[HeaderError], "answered 502") || hdr[HeaderAttempts] != "2" {
		t.Errorf("orders-failed: %q %v", failed.Value, hdr)
	}
}

// Offsets are committed only for handled records: a trigger stopped
// while its function hangs leaves the record uncommitted, and the next
// consumer of the group gets it again.
func TestKafkaTriggerCommitsOnlyAfterTheAnswer(t *testing.T) {
	addrs, cl := startKafka(t, "jobs")
	block := make(chan struct{})
	hung := make(chan struct{}, 10)
	f := newFnServer(t, func(body string) (int, string) {
		if body == "p0-1" {
			hung <- struct{}{}
			<-block
		}
		return 200, ""
	})
	tr := trigger(v1.MessageQueueTypeKafka, "jobs", map[string]string{MetaKafkaBootstrapServers: addrs, "concurrency": "1"})
	ctx := context.Background()
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "jobs", Partition: 0, Value: fmt.Appendf(nil, "p0-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	first := make(chan Result, 10)
	done := make(chan error, 1)
	go func() {
		done <- RunTrigger(rctx, tr, Options{}, Config{RouterURL: f.URL, Handled: func(r Result) { first <- r }})
	}()
	collect(t, first, 1, 60*time.Second)
	select {
	case <-hung:
	case <-time.After(60 * time.Second):
		t.Fatal("p0-1 never reached the function")
	}
	cancel()
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	results := runTrigger(t, tr, f, Options{})
	collect(t, results, 2, 60*time.Second)
	var bodies []string
	for _, c := range f.Calls() {
		bodies = append(bodies, c.body)
	}
	if got := strings.Join(bodies, " "); got != "p0-0 p0-1 p0-1 p0-2" {
		t.Errorf("calls %q, want p0-1 again after the restart and p0-0 not", got)
	}
}
