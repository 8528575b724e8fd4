package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/mqtrigger"
	"isotope.dev/isotope/internal/mqtrigger/mqtest"
)

// killN is how many messages the kill -9 tests publish; killDelay is
// how long the function takes for each, so that messages are in flight
// when the server dies.
const (
	killN       = 200
	killDelay   = "20ms"
	killDelayD  = 20 * time.Millisecond
	killWorkers = 4
)

// recordingFunction creates a local-process function whose every call
// appends the message body to the returned file (the envserver's
// REQUEST_LOG), taking killDelay to answer.
func recordingFunction(t *testing.T, p *platform, name string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	code := writeFile(t, dir, "body.txt", []byte("ok"))
	p.ok("env", "create", "--name", name, "--image", "example.com/recorder:1", "--runtime-command", proctest.EnvServer(t),
		"--runtime-env", "REQUEST_LOG="+log, "--runtime-env", "REQUEST_DELAY="+killDelay, "--poolsize", "1")
	p.ok("fn", "create", "--name", name, "--env", name, "--code", code)
	return log
}

// callCounts reads the function's call log: how many calls, and how
// many times each body was seen.
func callCounts(t *testing.T, log string) (int, map[string]int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	seen := map[string]int{}
	calls := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			seen[l]++
			calls++
		}
	}
	return calls, seen
}

// checkAfterKill asserts every message was handled at least once, at
// most bound calls were repeats, and the messages (all of one subject or
// stream: one key) were first handled in the order they were published,
// but for at most late of them: those in flight at the kill, which the
// broker delivers again behind the later ones.
func checkAfterKill(t *testing.T, log string, callsAtKill, bound, late int) {
	t.Helper()
	calls, seen := callCounts(t, log)
	b, _ := os.ReadFile(log)
	first := map[string]bool{}
	last := ""
	var overtaken []string
	for _, id := range strings.Fields(string(b)) {
		if first[id] {
			continue // a repeat after the kill
		}
		first[id] = true
		if id < last {
			overtaken = append(overtaken, id)
			continue
		}
		last = id
	}
	t.Logf("first handled out of publish order: %d %v (bound %d)", len(overtaken), overtaken, late)
	if len(overtaken) > late {
		t.Errorf("%d messages first handled after later ones, more than the %d in flight: %v", len(overtaken), late, overtaken)
	}
	var missing []string
	for i := range killN {
		if id := fmt.Sprintf("m-%03d", i); seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d messages never reached the function: %v", len(missing), missing)
	}
	var dups []string
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
	}
	t.Logf("%d messages, %d calls before the kill, %d calls in all: %d repeated (bound %d) %v", killN, callsAtKill, calls, calls-len(seen), bound, dups)
	if calls-len(seen) > bound {
		t.Errorf("%d calls were repeats, more than the %d messages that can be in flight: %v", calls-len(seen), bound, dups)
	}
}

// waitCalls waits until the function was called at least n times.
// killMidStream waits until a quarter of the killN messages were
// handled, kills the server with SIGKILL, checks that it was mid-stream,
// and starts it again on the same data. It returns the calls logged at
// the kill and the new server.
func killMidStream(t *testing.T, p *platform, log, data string, args []string) (int, *platform) {
	t.Helper()
	atKill := waitCalls(t, log, killN/4)
	p.kill()
	if atKill >= killN {
		t.Fatalf("all %d messages were handled before the kill: not mid-stream", killN)
	}
	return atKill, startPlatform(t, data, args...)
}

func waitCalls(t *testing.T, log string, n int) int {
	t.Helper()
	var calls int
	waitFor(t, 120*time.Second, fmt.Sprintf("%d calls of the function", n), func() error {
		if calls, _ = callCounts(t, log); calls < n {
			return fmt.Errorf("%d calls", calls)
		}
		return nil
	})
	return calls
}

// TestMQTriggerNATSKill9 kills `isotope server --nats` (its embedded
// NATS server with it) while a trigger is mid-stream and restarts it on
// the same data dir: every message reaches the function, and the repeats
// are at most what the trigger may have in flight.
func TestMQTriggerNATSKill9(t *testing.T) {
	data := t.TempDir()
	natsAddr := freePort(t)
	args := []string{"--nats", "--nats-addr", natsAddr, "--mqt-concurrency", fmt.Sprint(killWorkers)}
	p := startPlatform(t, data, args...)
	log := recordingFunction(t, p, "recorder")
	p.ok("mqt", "create", "--name", "kill", "--function", "recorder", "--mqtype", "nats-jetstream",
		"--topic", "kill.in", "--resptopic", "kill.out")

	nc, err := nats.Connect("nats://"+natsAddr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	waitFor(t, 60*time.Second, "the trigger's stream", func() error {
		_, err := js.Stream(ctx, "kill")
		return err
	})
	for i := range killN {
		if _, err := js.Publish(ctx, "kill.in", fmt.Appendf(nil, "m-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	atKill, p := killMidStream(t, p, log, data, args)
	waitFor(t, 120*time.Second, "every message acknowledged", func() error {
		c, err := js.Consumer(ctx, "kill", mqtrigger.ConsumerName(&v1.MessageQueueTrigger{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kill"}}))
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	// The consumer's MaxAckPending is what the trigger may have in
	// flight. JetStream also writes a consumer's acks to disk at most
	// every 100 ms: the kill -9 of the embedded server loses up to 100 ms
	// of acknowledged calls (one at a time, killDelay each), and those
	// come again too.
	lostAcks := int(100*time.Millisecond/killDelayD) + 1
	checkAfterKill(t, log, atKill, mqtrigger.InFlight(killWorkers, 0)+lostAcks, mqtrigger.InFlight(killWorkers, 0))
	if got := len(readSubjectE2E(t, js, "kill", "kill.out", killN)); got < killN {
		t.Errorf("%d answers on kill.out, want %d", got, killN)
	}
}

// TestMQTriggerRedisKill9 kills `isotope server` while a Redis streams
// trigger is mid-stream (redis-server lives on) and restarts it.
func TestMQTriggerRedisKill9(t *testing.T) {
	addr, rdb := mqtest.StartRedis(t)
	data := t.TempDir()
	args := []string{"--mqt-concurrency", fmt.Sprint(killWorkers)}
	p := startPlatform(t, data, args...)
	log := recordingFunction(t, p, "recorder")
	p.ok("mqt", "create", "--name", "kill", "--function", "recorder", "--mqtype", "redis",
		"--topic", "kill-in", "--resptopic", "kill-out", "--metadata", "address="+addr)
	ctx := context.Background()
	waitFor(t, 60*time.Second, "the trigger's consumer group", func() error {
		gs, err := rdb.XInfoGroups(ctx, "kill-in").Result()
		if err == nil && len(gs) == 0 {
			err = fmt.Errorf("no group yet")
		}
		return err
	})
	for i := range killN {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "kill-in", Values: []any{"body", fmt.Sprintf("m-%03d", i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	atKill, p := killMidStream(t, p, log, data, args)
	waitFor(t, 120*time.Second, "every entry acknowledged", func() error {
		gs, err := rdb.XInfoGroups(ctx, "kill-in").Result()
		if err != nil {
			return err
		}
		if len(gs) != 1 || gs[0].Pending != 0 || gs[0].Lag != 0 {
			return fmt.Errorf("groups %+v", gs)
		}
		return nil
	})
	// A read takes up to one entry per worker besides those the workers hold.
	checkAfterKill(t, log, atKill, mqtrigger.InFlight(killWorkers, killWorkers), mqtrigger.InFlight(killWorkers, killWorkers))
	if n, err := rdb.XLen(ctx, "kill-out").Result(); err != nil || n < killN {
		t.Errorf("kill-out holds %d answers (%v), want %d", n, err, killN)
	}
}
