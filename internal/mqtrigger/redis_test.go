package mqtrigger

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger/mqtest"
)

// startRedis runs Debian's redis-server, or skips the test.
func startRedis(t *testing.T) (string, *redis.Client) { return mqtest.StartRedis(t) }

func TestRedisTriggerAnswersErrorsAndAcks(t *testing.T) {
	addr, rdb := startRedis(t)
	ctx := context.Background()
	f := newFnServer(t, func(body string) (int, string) {
		if body == "bad" {
			return 500, "boom"
		}
		return 200, "done " + body
	})
	tr := trigger(v1.MessageQueueTypeRedis, "orders", map[string]string{MetaRedisAddress: addr})
	tr.Spec.ResponseTopic, tr.Spec.ErrorTopic, tr.Spec.MaxRetries = "orders-done", "orders-failed", 1
	results := runTrigger(t, tr, f, Options{})
	const n = 30
	for i := range n {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "orders", Values: []any{"body", fmt.Sprintf("a-%d", i), "Trace-Id", "t"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "orders", Values: []any{"body", "bad"}}).Err(); err != nil {
		t.Fatal(err)
	}
	collect(t, results, n+1, 60*time.Second)
	var good []call
	for _, c := range f.Calls() {
		if c.body != "bad" {
			good = append(good, c)
			if c.header.Get("Trace-Id") != "t" {
				t.Errorf("the entry's field did not reach the function as a header: %v", c.header)
			}
		}
	}
	checkOrder(t, good)
	done, err := rdb.XRange(ctx, "orders-done", "-", "+").Result()
	if err != nil || len(done) != n || done[0].Values["body"] != "done a-0" {
		t.Fatalf("orders-done: %v %v", done, err)
	}
	failed, err := rdb.XRange(ctx, "orders-failed", "-", "+").Result()
	if err != nil || len(failed) != 1 || failed[0].Values["body"] != "bad" || !strings.Contains(fmt.Sprint(failed[0].Values[HeaderError]), "answered 500") {
		t.Fatalf("orders-failed: %v %v", failed, err)
	}
	pending, err := rdb.XPending(ctx, "orders", ConsumerName(tr)).Result()
	if err != nil || pending.Count != 0 {
		t.Errorf("entries left unacknowledged: %+v %v", pending, err)
	}
}

// An entry read but not acknowledged before the consumer stopped is
// read again by the next one, before new entries.
func TestRedisTriggerRereadsPendingEntries(t *testing.T) {
	addr, rdb := startRedis(t)
	ctx := context.Background()
	block := make(chan struct{})
	hung := make(chan struct{}, 1)
	f := newFnServer(t, func(body string) (int, string) {
		if body == "a-0" {
			select {
			case hung <- struct{}{}:
				<-block
			default:
			}
		}
		return 200, ""
	})
	tr := trigger(v1.MessageQueueTypeRedis, "jobs", map[string]string{MetaRedisAddress: addr, "concurrency": "1"})
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "jobs", Values: []any{"body", "a-0"}}).Err(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunTrigger(rctx, tr, Options{}, Config{RouterURL: f.URL}) }()
	select {
	case <-hung:
	case <-time.After(60 * time.Second):
		t.Fatal("a-0 never reached the function")
	}
	cancel()
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "jobs", Values: []any{"body", "a-1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	results := runTrigger(t, tr, f, Options{})
	collect(t, results, 2, 60*time.Second)
	var bodies []string
	for _, c := range f.Calls() {
		bodies = append(bodies, c.body)
	}
	if got := strings.Join(bodies, " "); got != "a-0 a-0 a-1" {
		t.Errorf("calls %q, want a-0 again, then a-1", got)
	}
}
