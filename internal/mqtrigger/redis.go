package mqtrigger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	v1 "isotope.dev/isotope/api/v1"
)

// Redis metadata keys: KEDA's redis-streams scaler's.
const (
	MetaRedisAddress       = "address"
	MetaRedisConsumerGroup = "consumerGroup"
	MetaRedisPassword      = "password"
	MetaRedisDatabase      = "databaseIndex"
)

// RedisBodyField is the field of a stream entry that holds the message
// body; an entry without it whose only field is another one uses that
// field's value. Every other field becomes a header.
const RedisBodyField = "body"

// redisQueue reads a stream in a consumer group. Entries this consumer
// read but did not XACK before it stopped (or crashed) are read again
// first, from the group's pending list; an entry is XACKed only after
// it was handled.
type redisQueue struct {
	t        *v1.MessageQueueTrigger
	rdb      *redis.Client
	group    string
	consumer string
	n        int
}

func openRedis(ctx context.Context, t *v1.MessageQueueTrigger, o Options) (Queue, error) {
	addr := t.Spec.Metadata[MetaRedisAddress]
	if addr == "" {
		return nil, fmt.Errorf("trigger %s: spec.metadata.%s is required for redis (host:port)", t.Name, MetaRedisAddress)
	}
	db := 0
	if s := t.Spec.Metadata[MetaRedisDatabase]; s != "" {
		var err error
		if db, err = strconv.Atoi(s); err != nil {
			return nil, fmt.Errorf("trigger %s: spec.metadata.%s %q: not a number", t.Name, MetaRedisDatabase, s)
		}
	}
	q := &redisQueue{
		t:        t,
		rdb:      redis.NewClient(&redis.Options{Addr: addr, Password: t.Spec.Metadata[MetaRedisPassword], DB: db}),
		group:    t.Spec.Metadata[MetaRedisConsumerGroup],
		consumer: o.ConsumerName,
		n:        t.Spec.MQConcurrency(o.Concurrency),
	}
	if q.group == "" {
		q.group = ConsumerName(t)
	}
	if q.consumer == "" {
		q.consumer = "isotope"
	}
	err := q.rdb.XGroupCreateMkStream(ctx, t.Spec.Topic, q.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		q.rdb.Close()
		return nil, fmt.Errorf("redis %s: consumer group %s on stream %s: %w", addr, q.group, t.Spec.Topic, err)
	}
	return q, nil
}

func (q *redisQueue) Consume(ctx context.Context, deliver func(context.Context, Message) error) error {
	// "0" reads this consumer's pending entries (delivered before a
	// restart, never acknowledged); once they are done, ">" reads new ones.
	id := "0"
	for ctx.Err() == nil {
		res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.group, Consumer: q.consumer, Streams: []string{q.t.Spec.Topic, id},
			Count: int64(q.n), Block: time.Second,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !sleep(ctx, 200*time.Millisecond) {
				return nil
			}
			continue
		}
		last := ""
		for _, s := range res {
			for _, e := range s.Messages {
				last = e.ID
				if err := deliver(ctx, q.message(s.Stream, e)); err != nil {
					return nil
				}
			}
		}
		if id != ">" {
			// Pending entries are read by ID: go on after the last one.
			id = last
			if last == "" {
				id = ">"
			}
		}
	}
	return nil
}

func (q *redisQueue) message(stream string, e redis.XMessage) Message {
	h := http.Header{}
	var body []byte
	if v, ok := e.Values[RedisBodyField]; ok {
		body = []byte(fmt.Sprint(v))
	} else if len(e.Values) == 1 {
		for _, v := range e.Values {
			body = []byte(fmt.Sprint(v))
		}
	}
	for k, v := range e.Values {
		if k != RedisBodyField && len(e.Values) > 1 {
			h.Set(k, fmt.Sprint(v))
		}
	}
	id := e.ID
	return Message{Key: stream, Body: body, Header: h, Ack: func(ctx context.Context) error {
		return q.rdb.XAck(ctx, stream, q.group, id).Err()
	}}
}

func (q *redisQueue) Publish(ctx context.Context, topic string, body []byte, header http.Header) error {
	vals := []any{RedisBodyField, body}
	for k, vs := range header {
		vals = append(vals, k, strings.Join(vs, ", "))
	}
	return q.rdb.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: vals}).Err()
}

func (q *redisQueue) Close() error { return q.rdb.Close() }
