package mqtrigger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "isotope.dev/isotope/api/v1"
)

// NATS JetStream metadata keys (Fission's nats-jetstream connector and
// KEDA's scaler use stream and consumer; natsServerURL is Isotope's
// name for the connector's NATS_SERVER).
const (
	MetaNATSServerURL = "natsServerURL"
	MetaNATSStream    = "stream"
	MetaNATSConsumer  = "consumer"
)

// natsBatch is how many messages one pull asks for.
const natsBatch = 1

// DefaultNATSAckWait is the consumer's AckWait: JetStream's own default.
// A message taken by a process that died is delivered again after it,
// and until then it holds one of the trigger's MaxAckPending places, so
// it is how long a trigger may stall after a crash. A call that takes
// longer keeps its message with a progress ack every third of it.
const DefaultNATSAckWait = 30 * time.Second

// natsQueue reads a JetStream stream through a durable pull consumer
// with explicit acks. The server never has more than MaxAckPending
// messages of the trigger unacknowledged, which bounds what is in flight
// (and what is delivered again after a crash).
type natsQueue struct {
	t       *v1.MessageQueueTrigger
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string
	durable string
	n       int
	ackWait time.Duration
}

// NATSURL is the server a trigger connects to.
func NATSURL(t *v1.MessageQueueTrigger, def string) string {
	if u := t.Spec.Metadata[MetaNATSServerURL]; u != "" {
		return u
	}
	if u := t.Spec.Metadata["natsServer"]; u != "" {
		return u
	}
	return def
}

// StreamName is the stream that holds subject when metadata.stream does
// not name one: Fission's convention is "stream.subject", so the first
// token of the subject.
func StreamName(subject string) string {
	first, _, _ := strings.Cut(subject, ".")
	return strings.Map(func(r rune) rune {
		if r == '*' || r == '>' || r == '/' || r == '\\' || r <= ' ' {
			return '_'
		}
		return r
	}, first)
}

// ConsumerName is a trigger's durable consumer (or consumer group) name
// when metadata does not set one.
func ConsumerName(t *v1.MessageQueueTrigger) string {
	return "isotope-" + t.Namespace + "-" + t.Name
}

func openNATS(ctx context.Context, t *v1.MessageQueueTrigger, o Options) (Queue, error) {
	url := NATSURL(t, o.NATSURL)
	if url == "" {
		return nil, fmt.Errorf("trigger %s: no NATS server: set metadata.%s, or start isotope server with --nats", t.Name, MetaNATSServerURL)
	}
	nc, err := nats.Connect(url, nats.Name("isotope-mqtrigger-"+t.Namespace+"-"+t.Name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("NATS server %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	q := &natsQueue{t: t, nc: nc, js: js, n: t.Spec.MQConcurrency(o.Concurrency), ackWait: o.NATSAckWait}
	if q.ackWait <= 0 {
		q.ackWait = DefaultNATSAckWait
	}
	if q.n <= 0 {
		q.n = DefaultConcurrency
	}
	q.durable = t.Spec.Metadata[MetaNATSConsumer]
	if q.durable == "" {
		q.durable = ConsumerName(t)
	}
	if q.stream, err = q.ensureStream(ctx, t.Spec.Topic, t.Spec.Metadata[MetaNATSStream]); err != nil {
		nc.Close()
		return nil, err
	}
	return q, nil
}

// ensureStream finds the stream that holds subject, creating one (on
// file storage) named name, or after the subject's first token, that
// takes "<first>.>" (or the subject alone when it has one token).
func (q *natsQueue) ensureStream(ctx context.Context, subject, name string) (string, error) {
	if name == "" {
		got, err := q.js.StreamNameBySubject(ctx, subject)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return "", fmt.Errorf("finding the stream of subject %s: %w", subject, err)
		}
		name = StreamName(subject)
	} else if _, err := q.js.Stream(ctx, name); err == nil {
		return name, nil
	}
	subjects := []string{subject}
	if first, _, ok := strings.Cut(subject, "."); ok {
		subjects = []string{first + ".>"}
	}
	_, err := q.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return "", fmt.Errorf("creating stream %s for %s: %w", name, strings.Join(subjects, ","), err)
	}
	return name, nil
}

func (q *natsQueue) Consume(ctx context.Context, deliver func(context.Context, Message) error) error {
	cons, err := q.js.CreateOrUpdateConsumer(ctx, q.stream, jetstream.ConsumerConfig{
		Durable:       q.durable,
		FilterSubject: q.t.Spec.Topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// The server holds back the rest: at most one message per worker
		// plus the one being delivered is out.
		MaxAckPending: q.n + 1,
		AckWait:       q.ackWait,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", q.durable, q.stream, err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(natsBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				return err
			}
			if !sleep(ctx, 200*time.Millisecond) {
				break
			}
			continue
		}
		for msg := range batch.Messages() {
			m := Message{Key: msg.Subject(), Body: msg.Data(), Header: http.Header(msg.Headers())}
			acked := make(chan struct{})
			go keepInProgress(ctx, msg, q.ackWait/3, acked)
			var once sync.Once
			m.Ack = func(ctx context.Context) error {
				// After the first try, progress acks stop: if no ack gets
				// through, AckWait delivers the message again.
				defer once.Do(func() { close(acked) })
				return msg.DoubleAck(ctx)
			}
			if err := deliver(ctx, m); err != nil {
				return nil // ctx ended; the message is delivered again
			}
		}
	}
	return nil
}

// keepInProgress tells JetStream every period that msg is still being
// handled, so a call longer than AckWait is not delivered a second time,
// until the message is acknowledged or the trigger stops.
func keepInProgress(ctx context.Context, msg jetstream.Msg, every time.Duration, acked <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-acked:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			msg.InProgress()
		}
	}
}

func (q *natsQueue) Publish(ctx context.Context, topic string, body []byte, header http.Header) error {
	msg := &nats.Msg{Subject: topic, Data: body, Header: nats.Header(header)}
	_, err := q.js.PublishMsg(ctx, msg)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		// No stream holds topic: make one, as for the trigger's topic,
		// so that answers are kept until someone reads them.
		if _, err := q.ensureStream(ctx, topic, ""); err != nil {
			return err
		}
		_, err = q.js.PublishMsg(ctx, msg)
	}
	return err
}

func (q *natsQueue) Close() error {
	return q.nc.Drain()
}
