package mqtrigger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	v1 "isotope.dev/isotope/api/v1"
)

// Kafka metadata keys: KEDA's kafka scaler's, which Fission passes on.
const (
	MetaKafkaBootstrapServers = "bootstrapServers"
	MetaKafkaConsumerGroup    = "consumerGroup"
)

// kafkaQueue reads a topic as a member of a consumer group. A partition
// goes to one worker (its key), so its records are handled in order, and
// a record's offset is marked for commit only after it was handled;
// marked offsets are committed every second, when partitions are
// revoked, and on Close. A crash therefore repeats at most what was
// handled in the last second plus what was in flight.
type kafkaQueue struct {
	t  *v1.MessageQueueTrigger
	cl *kgo.Client
	n  int
}

func openKafka(_ context.Context, t *v1.MessageQueueTrigger, o Options) (Queue, error) {
	servers := t.Spec.Metadata[MetaKafkaBootstrapServers]
	if servers == "" {
		return nil, fmt.Errorf("trigger %s: spec.metadata.%s is required for kafka (host:port,…)", t.Name, MetaKafkaBootstrapServers)
	}
	group := t.Spec.Metadata[MetaKafkaConsumerGroup]
	if group == "" {
		group = ConsumerName(t)
	}
	q := &kafkaQueue{t: t, n: t.Spec.MQConcurrency(o.Concurrency)}
	var err error
	q.cl, err = kgo.NewClient(
		kgo.SeedBrokers(strings.Split(servers, ",")...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(t.Spec.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			_ = cl.CommitMarkedOffsets(ctx)
		}),
		kgo.MaxConcurrentFetches(1),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", servers, err)
	}
	return q, nil
}

func (q *kafkaQueue) Consume(ctx context.Context, deliver func(context.Context, Message) error) error {
	for ctx.Err() == nil {
		fs := q.cl.PollRecords(ctx, q.n)
		if fs.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.Canceled) {
				return fmt.Errorf("kafka fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
			}
		}
		for _, r := range fs.Records() {
			h := http.Header{}
			for _, rh := range r.Headers {
				h.Add(rh.Key, string(rh.Value))
			}
			m := Message{Key: r.Topic + "/" + strconv.Itoa(int(r.Partition)), Body: r.Value, Header: h}
			m.Ack = func(context.Context) error { q.cl.MarkCommitRecords(r); return nil }
			if err := deliver(ctx, m); err != nil {
				return nil
			}
		}
	}
	return nil
}

func (q *kafkaQueue) Publish(ctx context.Context, topic string, body []byte, header http.Header) error {
	r := &kgo.Record{Topic: topic, Value: body}
	for k, vs := range header {
		for _, v := range vs {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	return q.cl.ProduceSync(ctx, r).FirstErr()
}

func (q *kafkaQueue) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := q.cl.CommitMarkedOffsets(ctx)
	q.cl.Close()
	return err
}
