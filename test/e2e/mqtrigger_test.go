package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readSubjectE2E reads n messages of subject with an ordered consumer.
func readSubjectE2E(t *testing.T, js jetstream.JetStream, stream, subject string, n int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out []jetstream.Msg
	waitFor(t, 90*time.Second, "messages on "+subject, func() error {
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			return err
		}
		out = out[:0]
		for len(out) < n {
			m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				return fmt.Errorf("%d of %d: %v", len(out), n, err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out
}

// The real binary: `isotope server --nats`, a trigger made with the CLI,
// a WebAssembly function; answers reach respTopic, failures errorTopic
// after the retries.
func TestMQTriggerNATSThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	natsAddr := freePort(t)
	p := startPlatform(t, "", "--nats", "--nats-addr", natsAddr)
	ok := writeFile(t, dir, "ok.wasm", wasmtest.WAGIStatic("Content-Type: text/plain\n\nhandled\n"))
	bad := writeFile(t, dir, "bad.wasm", wasmtest.WAGIStatic("Status: 500\nContent-Type: text/plain\n\nboom\n"))
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	p.ok("fn", "create", "--name", "ok", "--env", "wasm", "--deploy", ok)
	p.ok("fn", "create", "--name", "bad", "--env", "wasm", "--deploy", bad)
	p.ok("mqt", "create", "--name", "good", "--function", "ok", "--mqtype", "nats-jetstream",
		"--topic", "orders.created", "--resptopic", "orders.done")
	p.ok("mqt", "create", "--name", "failing", "--function", "bad", "--mqtype", "nats-jetstream",
		"--topic", "jobs.in", "--errortopic", "jobs.failed", "--maxretries", "2")
	if out := p.ok("mqt", "list"); !strings.Contains(out, "orders.created") || !strings.Contains(out, "jobs.failed") {
		t.Errorf("mqt list:\n%s", out)
	}
	if msg := p.fails("mqt", "create", "--name", "x", "--function", "ok", "--mqtype", "rabbitmq", "--topic", "t"); !strings.Contains(msg, "spec.messageQueueType") {
		t.Errorf("a bad mqtype: %s", msg)
	}

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	waitFor(t, 60*time.Second, "the triggers' streams", func() error {
		for _, s := range []string{"orders", "jobs"} {
			if _, err := js.Stream(ctx, s); err != nil {
				return fmt.Errorf("stream %s: %v", s, err)
			}
		}
		return nil
	})
	const n = 20
	for i := range n {
		if _, err := js.Publish(ctx, "orders.created", fmt.Appendf(nil, "o-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "jobs.in", []byte("job-1")); err != nil {
		t.Fatal(err)
	}
	for i, m := range readSubjectE2E(t, js, "orders", "orders.done", n) {
		if string(m.Data()) != "handled\n" {
			t.Fatalf("response %d = %q", i, m.Data())
		}
	}
	em := readSubjectE2E(t, js, "jobs", "jobs.failed", 1)[0]
	if string(em.Data()) != "job-1" || !strings.Contains(em.Headers().Get("X-Fission-MQTrigger-Error"), "answered 500") ||
		em.Headers().Get("X-Fission-MQTrigger-Attempts") != "3" {
		t.Errorf("error topic: %q %v", em.Data(), em.Headers())
	}
	p.ok("mqt", "delete", "--name", "failing")
}
