// Package mqtrigger runs MessageQueueTriggers: it reads a topic of a
// message queue and calls the trigger's function with each message, the
// way Fission's mqtrigger and KEDA connectors do.
//
// One interface, Queue, hides the broker (nats.go: NATS JetStream,
// kafka.go: Kafka with franz-go, redis.go: Redis streams); everything
// else is shared (Run, dispatch.go, invoke.go):
//
//   - at least once: a message is acknowledged (JetStream ack, Kafka
//     offset commit, Redis XACK) only after the function answered and the
//     answer (or the failure) was published;
//   - in order per key: messages with the same key (Kafka partition, NATS
//     subject, Redis stream) are handled one after another, by one
//     worker;
//   - bounded: a trigger has Concurrency workers, each takes one message
//     at a time, and the reader blocks when the message's worker is busy,
//     so a slow function slows the reading instead of filling memory.
//     What may be in flight at a crash is bounded by InFlight.
//   - a 2xx answer's body goes to respTopic; a call that fails (transport
//     error or a non-2xx answer) is retried maxRetries times, then the
//     message goes to errorTopic with the error in X-Fission-MQTrigger-Error.
//
// The function is called through the router, like HTTP triggers and
// timers: POST <router>/fission-function/<namespace>/<function> with
// Fission's X-Fission-MQTrigger-Topic, -RespTopic and -ErrorTopic
// headers and the message's own headers.
package mqtrigger

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	v1 "isotope.dev/isotope/api/v1"
)

// Headers Isotope sets on calls and on error messages. The first three
// are Fission's.
const (
	HeaderTopic      = "X-Fission-MQTrigger-Topic"
	HeaderRespTopic  = "X-Fission-MQTrigger-RespTopic"
	HeaderErrorTopic = "X-Fission-MQTrigger-ErrorTopic"
	// HeaderError carries why a message went to errorTopic.
	HeaderError = "X-Fission-MQTrigger-Error"
	// HeaderAttempts says how many calls were made for it.
	HeaderAttempts = "X-Fission-MQTrigger-Attempts"
	// HeaderSource names the topic an error message came from (Fission's
	// Kafka consumer calls it MessageSource).
	HeaderSource = "MessageSource"
	// HeaderTrigger names the trigger on calls.
	HeaderTrigger = "X-Fission-MQTrigger-Name"
)

// DefaultConcurrency is how many messages of one trigger are handled at
// once when metadata.concurrency is unset.
const DefaultConcurrency = 4

// Message is one message read from a queue.
type Message struct {
	// Key orders messages: those with the same key are handled in the
	// order the queue gave them.
	Key string
	// Body is the payload; Header its headers (may be nil).
	Body   []byte
	Header http.Header
	// Ack tells the broker the message is done; it is called once, after
	// the answer or the failure was published.
	Ack func(ctx context.Context) error
}

// Queue is one trigger's connection to its broker.
type Queue interface {
	// Consume reads the trigger's topic and passes each message to
	// deliver, which blocks while the message's worker is busy (that is
	// the back-pressure). It returns when ctx ends, or with the error
	// that stopped the reading.
	Consume(ctx context.Context, deliver func(context.Context, Message) error) error
	// Publish writes a message to topic and returns once the broker has
	// it.
	Publish(ctx context.Context, topic string, body []byte, header http.Header) error
	// Close releases the connection.
	Close() error
}

// Options are what opening a Queue takes besides the trigger.
type Options struct {
	// NATSURL is the NATS server used when metadata.natsServerURL is
	// unset (the embedded server of `isotope server --nats`).
	NATSURL string
	// Concurrency is the default number of workers per trigger
	// (DefaultConcurrency when 0).
	Concurrency int
	// ConsumerName names this process among a consumer group's members
	// (Redis streams); default "isotope".
	ConsumerName string
	// NATSAckWait is how long JetStream waits for a message's
	// acknowledgement before it delivers the message again
	// (DefaultNATSAckWait when 0).
	NATSAckWait time.Duration
	Logger      *slog.Logger
}

// Open connects to the trigger's broker.
func Open(ctx context.Context, t *v1.MessageQueueTrigger, o Options) (Queue, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch t.Spec.MessageQueueType {
	case v1.MessageQueueTypeNATSJetStream:
		return openNATS(ctx, t, o)
	case v1.MessageQueueTypeKafka:
		return openKafka(ctx, t, o)
	case v1.MessageQueueTypeRedis, v1.MessageQueueTypeRedisStreams:
		return openRedis(ctx, t, o)
	}
	return nil, fmt.Errorf("spec.messageQueueType %q: not one of %v", t.Spec.MessageQueueType, v1.MessageQueueTypes)
}

// Config configures Run.
type Config struct {
	// Trigger is the trigger to run.
	Trigger *v1.MessageQueueTrigger
	// Queue is its broker connection.
	Queue Queue
	// RouterURL is the router's base URL.
	RouterURL string
	// HTTPClient calls the router (default: a plain client).
	HTTPClient *http.Client
	// Concurrency is the workers when metadata.concurrency is unset.
	Concurrency int
	// CallTimeout bounds one call (default 60 s).
	CallTimeout time.Duration
	// RetryDelay is the first retry's delay, doubling up to 5 s
	// (default 100 ms).
	RetryDelay time.Duration
	Logger     *slog.Logger
	// Handled, when set, is called after each message was acknowledged
	// (tests and benchmarks count with it).
	Handled func(Result)
}

// Result is what became of one message.
type Result struct {
	Key      string
	Status   int // the last answer's status, 0 when none
	Attempts int
	Err      error // nil when the function answered 2xx
}

// InFlight is how many messages a trigger with concurrency n may have
// taken from its queue and not yet acknowledged: one per worker plus one
// the reader holds while it waits for a worker, plus what a broker
// prefetches (batch).
func InFlight(n, batch int) int { return n + 1 + batch }

// Run consumes the trigger's topic until ctx ends. Messages in flight
// when it ends are not acknowledged: the broker delivers them again.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 60 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 100 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	n := cfg.Trigger.Spec.MQConcurrency(cfg.Concurrency)
	h := newHandler(cfg)
	d := newDispatcher(ctx, n, h.handle)
	err := cfg.Queue.Consume(ctx, d.deliver)
	d.stop()
	return err
}
