// Command mq benchmarks message queue triggers through the real binary:
// `isotope server --nats` in a child process, functions and triggers
// made with the real CLI, messages published to the embedded NATS
// server with JetStream. It measures messages per second through a
// nats-jetstream trigger to a WAGI function and to a Go reactor
// function (examples/hello built by the go-wasm builder), against a
// plain JetStream consumer acking the same messages in the same run: the
// broker's own consume rate. Each figure is the median of -runs runs.
//
//	make build && go run ./bench/mq -isotope bin/isotope [-n 5000] [-runs 3]
//
// Every message goes to the trigger's one subject, so the trigger
// handles them one after another (its order per subject, see
// docs/message-queues.md): the rate is one over the round trip of fetch,
// call, answer, acknowledgement.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

func main() {
	isotope := flag.String("isotope", os.Getenv("ISOTOPE_BIN"), "path of the isotope binary (default $ISOTOPE_BIN; bench/run sets it to bin/isotope)")
	n := flag.Int("n", 5000, "messages per run and function")
	runs := flag.Int("runs", 3, "runs; each figure is the median")
	conc := flag.Int("c", 4, "the triggers' concurrency (isotope server --mqt-concurrency)")
	fns := flag.String("backend", "wagi,reactor", "functions to measure, comma-separated: wagi (a small WAGI module), reactor (examples/hello/hello.go, Go reactor)")
	flag.Parse()
	if err := run(*isotope, *n, *runs, *conc, strings.Split(*fns, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench/mq:", err)
		os.Exit(1)
	}
}

// function is one function the triggers call.
type function struct {
	name  string
	about string
	setup func(s *server, dir string) error
}

var functions = map[string]function{
	"wagi": {name: "wagi", about: "WAGI", setup: func(s *server, dir string) error {
		mod := filepath.Join(dir, "hello.wasm")
		if err := os.WriteFile(mod, wasmtest.WAGIHello(), 0o644); err != nil {
			return err
		}
		if _, err := s.cli("env", "create", "--name", "wasm", "--image", "isotope/wasm-env"); err != nil {
			return err
		}
		_, err := s.cli("fn", "create", "--name", "wagi", "--env", "wasm", "--deploy", mod)
		return err
	}},
	"reactor": {name: "reactor", about: "Go reactor", setup: func(s *server, _ string) error {
		src := filepath.Join("examples", "hello", "hello.go")
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("the Go reactor's source (run from the repository root): %w", err)
		}
		if _, err := s.cli("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder"); err != nil {
			return err
		}
		if _, err := s.cli("pkg", "create", "--name", "hello", "--env", "go", "--src", src); err != nil {
			return err
		}
		_, err := s.cli("fn", "create", "--name", "reactor", "--env", "go", "--pkg", "hello", "--entrypoint", "Handler")
		return err
	}},
}

func run(bin string, n, runs, conc int, names []string) error {
	if bin == "" {
		return errors.New("no isotope binary: set -isotope or $ISOTOPE_BIN (make build makes bin/isotope)")
	}
	if n < 2 || runs < 1 || conc < 1 {
		return fmt.Errorf("-n must be at least 2, -runs and -c at least 1 (got %d, %d, %d)", n, runs, conc)
	}
	var fs []function
	for _, name := range names {
		f, ok := functions[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("-backend: unknown function %q (wagi, reactor)", name)
		}
		fs = append(fs, f)
	}
	dir, err := os.MkdirTemp("", "isotope-bench-mq-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := startServer(bin, dir, conc)
	if err != nil {
		return err
	}
	defer s.stop()
	nc, err := nats.Connect("nats://" + s.natsAddr)
	if err != nil {
		return fmt.Errorf("embedded NATS server: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, f := range fs {
		start := time.Now()
		if err := f.setup(s, dir); err != nil {
			return fmt.Errorf("function %s: %w", f.name, err)
		}
		if err := warm(s, f.name); err != nil {
			return err
		}
		fmt.Printf("function %s ready in %v\n", f.name, time.Since(start).Round(time.Millisecond))
	}

	// Runs interleave the plain consumer and the functions, so a load
	// change on the machine touches every figure alike.
	var base, floor []float64
	rates := map[string][]float64{}
	for r := range runs {
		for _, f := range fs {
			stream := fmt.Sprintf("mq%s%d", f.name, r)
			if err := publish(js, stream, n); err != nil {
				return err
			}
			b, err := plainRate(js, stream, n)
			if err != nil {
				return fmt.Errorf("plain consumer: %w", err)
			}
			fl, err := serialRate(js, stream, n)
			if err != nil {
				return fmt.Errorf("one-at-a-time consumer: %w", err)
			}
			t, err := triggerRate(s, js, stream, f.name, n)
			if err != nil {
				return fmt.Errorf("trigger to %s: %w", f.name, err)
			}
			fmt.Printf("run %d %s: plain consumer %.0f msg/s, one at a time %.0f msg/s, trigger %.0f msg/s (%.0f us a message)\n", r+1, f.name, b, fl, t, 1e6/t)
			base = append(base, b)
			floor = append(floor, fl)
			rates[f.name] = append(rates[f.name], t)
		}
	}
	b, fl := median(base), median(floor)
	fmt.Printf("BENCH | mq one-at-a-time JetStream consumer, no function (%d msgs) | %.0f msg/s | %.0f msg/s plain consumer | %.3f | info (the trigger's protocol alone)\n",
		n, fl, b, fl/b)
	for _, f := range fs {
		t := median(rates[f.name])
		fmt.Printf("BENCH | mq nats-jetstream trigger -> %s (%d msgs, one subject) | %.0f msg/s | %.0f msg/s plain consumer | %.3f | info (one call at a time per subject)\n",
			f.about, n, t, b, t/b)
	}
	return nil
}

// warm calls the function through the router until it answers 200, so
// the first message does not pay its cold start.
func warm(s *server, fn string) error {
	u := s.router + "/fission-function/default/" + fn
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Post(u, "text/plain", strings.NewReader("warm"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("function %s did not answer 200 within 2 minutes: %v", fn, err)
		}
		time.Sleep(50 * time.Millisecond) // polling for the function's route
	}
}

// publish makes stream (file storage, taking "<stream>.>", as a trigger
// would) and puts n numbered messages on <stream>.in.
func publish(js jetstream.JetStream, stream string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	for i := range n {
		if _, err := js.PublishAsync(stream+".in", fmt.Appendf(nil, "m-%06d", i)); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publishing %d messages to %s.in: %w", n, stream, ctx.Err())
	}
}

// plainRate reads the n messages of <stream>.in with a plain durable
// JetStream consumer (the client's default pull settings) and acks each:
// messages per second from the first message to the n-th ack.
func plainRate(js jetstream.JetStream, stream string, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "plain", FilterSubject: stream + ".in", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, err
	}
	rc := newRateCounter(n)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		m.Ack()
		rc.tick()
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	select {
	case <-rc.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("%d of %d messages within 5 minutes", rc.seen(), n)
	}
	if err := acked(ctx, cons); err != nil {
		return 0, err
	}
	return rc.rate(), nil
}

// rateCounter counts n arrivals: the rate from the first to the n-th.
type rateCounter struct {
	n           int
	mu          sync.Mutex
	count       int
	first, last time.Time
	done        chan struct{} // closed at the n-th arrival
}

func newRateCounter(n int) *rateCounter { return &rateCounter{n: n, done: make(chan struct{})} }

// tick records one arrival.
func (r *rateCounter) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if r.count == 1 {
		r.first = time.Now()
	}
	if r.count == r.n {
		r.last = time.Now()
		close(r.done)
	}
}

// seen is how many arrived so far.
func (r *rateCounter) seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// rate is arrivals per second from the first to the n-th; only after done.
func (r *rateCounter) rate() float64 { return float64(r.n-1) / r.last.Sub(r.first).Seconds() }

// serialRate reads the n messages of <stream>.in as a trigger on one
// subject does, without a function: fetch one message, publish an
// answer, acknowledge it with a confirmed (double) ack, then the next.
// It is the most a trigger on one subject can reach.
func serialRate(js jetstream.JetStream, stream string, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "serial", FilterSubject: stream + ".in", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, err
	}
	var first time.Time
	for count := 0; count < n; {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, err
		}
		for m := range batch.Messages() {
			if _, err := js.Publish(ctx, stream+".floor", m.Data()); err != nil {
				return 0, err
			}
			if err := m.DoubleAck(ctx); err != nil {
				return 0, err
			}
			if count++; count == 1 {
				first = time.Now()
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%d of %d messages within 5 minutes", count, n)
		}
	}
	return float64(n-1) / time.Since(first).Seconds(), nil
}

// triggerRate makes a trigger from <stream>.in (holding n messages) to
// fn answering on <stream>.out: messages per second from the first
// answer to the n-th. The trigger is deleted once every message is
// acknowledged.
func triggerRate(s *server, js jetstream.JetStream, stream, fn string, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rc := newRateCounter(n)
	sub, err := js.Conn().Subscribe(stream+".out", func(*nats.Msg) { rc.tick() })
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := js.Conn().Flush(); err != nil {
		return 0, err
	}
	name := "bench-" + stream
	if _, err := s.cli("mqt", "create", "--name", name, "--function", fn, "--mqtype", "nats-jetstream",
		"--topic", stream+".in", "--resptopic", stream+".out"); err != nil {
		return 0, err
	}
	select {
	case <-rc.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("%d of %d answers within 10 minutes", rc.seen(), n)
	}
	cons, err := js.Consumer(ctx, stream, "isotope-default-"+name)
	if err != nil {
		return 0, err
	}
	if err := acked(ctx, cons); err != nil {
		return 0, err
	}
	if _, err := s.cli("mqt", "delete", "--name", name); err != nil {
		return 0, err
	}
	return rc.rate(), nil
}

// acked waits until the consumer has nothing pending or unacknowledged.
func acked(ctx context.Context, c jetstream.Consumer) error {
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer %s: %d pending, %d unacknowledged", info.Name, info.NumPending, info.NumAckPending)
		case <-time.After(10 * time.Millisecond): // polling the consumer's state
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
