package v1

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// KindMessageQueueTrigger is the kind of a MessageQueueTrigger.
const KindMessageQueueTrigger = "MessageQueueTrigger"

// MessageQueueType names the broker a MessageQueueTrigger reads from
// (Fission's messageQueueType, which uses KEDA's scaler names).
type MessageQueueType string

// The kinds of queue Isotope consumes.
const (
	MessageQueueTypeNATSJetStream MessageQueueType = "nats-jetstream"
	MessageQueueTypeKafka         MessageQueueType = "kafka"
	MessageQueueTypeRedis         MessageQueueType = "redis"
	// MessageQueueTypeRedisStreams is KEDA's name for the same: Isotope's
	// redis kind reads streams.
	MessageQueueTypeRedisStreams MessageQueueType = "redis-streams"
)

// MessageQueueTypes are the kinds Isotope consumes, in the order errors
// list them.
var MessageQueueTypes = []MessageQueueType{MessageQueueTypeKafka, MessageQueueTypeNATSJetStream, MessageQueueTypeRedis, MessageQueueTypeRedisStreams}

// Fission's mqtkind values: "fission" (its own consumer) and "keda"
// (a connector Deployment scaled by a KEDA ScaledObject).
const (
	MqtKindFission = "fission"
	MqtKindKeda    = "keda"
)

// Defaults of a MessageQueueTrigger: Fission's CLI flag defaults, which
// are also KEDA's ScaledObject defaults.
const (
	DefaultMQContentType     = "application/json"
	DefaultMQPollingInterval = 30
	DefaultMQCooldownPeriod  = 300
	DefaultMQMinReplicaCount = 0
	DefaultMQMaxReplicaCount = 100
)

// MessageQueueTriggerSpec binds a topic of a message queue to a function:
// each message is POSTed to the function; a 2xx answer's body goes to
// respTopic, a message that still fails after maxRetries retries goes to
// errorTopic. Field names are Fission's, byte for byte.
type MessageQueueTriggerSpec struct {
	// FunctionReference names the function called with each message.
	FunctionReference FunctionReference `json:"functionref"`
	// MessageQueueType is the broker: kafka, nats-jetstream or redis.
	MessageQueueType MessageQueueType `json:"messageQueueType"`
	// Topic is read: a Kafka topic, a NATS subject, a Redis stream key.
	Topic string `json:"topic"`
	// ResponseTopic receives each successful answer's body.
	// +optional
	ResponseTopic string `json:"respTopic,omitempty"`
	// ErrorTopic receives each message that failed maxRetries+1 times,
	// with the error in a header.
	// +optional
	ErrorTopic string `json:"errorTopic"`
	// MaxRetries is how many times a failed call is retried.
	// +optional
	MaxRetries int `json:"maxRetries"`
	// ContentType is the Content-Type of the calls (default
	// application/json).
	// +optional
	ContentType string `json:"contentType"`
	// PollingInterval is how often KEDA checks the queue, in seconds
	// (default 30).
	// +optional
	PollingInterval *int32 `json:"pollingInterval,omitempty"`
	// CooldownPeriod is how long KEDA waits after the last message before
	// scaling the consumers to minReplicaCount, in seconds (default 300).
	// +optional
	CooldownPeriod *int32 `json:"cooldownPeriod,omitempty"`
	// MinReplicaCount and MaxReplicaCount bound the consumer replicas on
	// Kubernetes (defaults 0 and 100).
	// +optional
	MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
	// +optional
	MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
	// Metadata configures the broker connection (KEDA's scaler metadata:
	// bootstrapServers, consumerGroup, natsServerURL, stream, address …;
	// docs/message-queues.md lists them per kind).
	// +optional
	Metadata map[string]string `json:"metadata"`
	// Secret names a Secret with the broker's credentials (Kubernetes).
	// +optional
	Secret string `json:"secret,omitempty"`
	// MqtKind is Fission's "fission" or "keda" (default keda): on
	// Kubernetes, keda also renders a KEDA ScaledObject.
	// +optional
	MqtKind string `json:"mqtkind,omitempty"`
	// PodSpec is merged into the consumer pods on Kubernetes.
	// +optional
	PodSpec *corev1.PodSpec `json:"podspec,omitempty"`
}

// MessageQueueTrigger calls a function with each message of a topic.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,categories=isotope,shortName=mqt
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.messageQueueType`
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topic`
// +kubebuilder:printcolumn:name="Function",type=string,JSONPath=`.spec.functionref.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MessageQueueTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MessageQueueTriggerSpec `json:"spec"`
}

// MessageQueueTriggerList is a list of MessageQueueTriggers.
// +kubebuilder:object:root=true
type MessageQueueTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MessageQueueTrigger `json:"items"`
}

func defaultMessageQueueTrigger(t *MessageQueueTrigger) {
	s := &t.Spec
	defaultFunctionReference(&s.FunctionReference)
	if s.ContentType == "" {
		s.ContentType = DefaultMQContentType
	}
	for _, d := range []struct {
		p **int32
		v int32
	}{
		{&s.PollingInterval, DefaultMQPollingInterval},
		{&s.CooldownPeriod, DefaultMQCooldownPeriod},
		{&s.MinReplicaCount, DefaultMQMinReplicaCount},
		{&s.MaxReplicaCount, DefaultMQMaxReplicaCount},
	} {
		if *d.p == nil {
			v := d.v
			*d.p = &v
		}
	}
	if s.MqtKind == "" {
		s.MqtKind = MqtKindKeda
	}
}

// MQMetadataConcurrency is Isotope's metadata key for how many messages of
// one trigger are handled at once (per consumer); messages with the same
// key (Kafka partition, NATS subject, Redis stream) stay in order.
const MQMetadataConcurrency = "concurrency"

// MQConcurrency returns the trigger's concurrency: metadata.concurrency,
// or def when unset.
func (s *MessageQueueTriggerSpec) MQConcurrency(def int) int {
	if v, ok := s.Metadata[MQMetadataConcurrency]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// maxMQConcurrency bounds metadata.concurrency: each slot may hold a
// message in flight.
const maxMQConcurrency = 256

func validateMessageQueueTriggerSpec(s *MessageQueueTriggerSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateFunctionReference(&s.FunctionReference, p.Child("functionref"), false)...)
	if !slices.Contains(MessageQueueTypes, s.MessageQueueType) {
		if s.MessageQueueType == "" {
			errs = append(errs, field.Required(p.Child("messageQueueType"), "one of kafka, nats-jetstream, redis, redis-streams"))
		} else {
			errs = append(errs, field.NotSupported(p.Child("messageQueueType"), s.MessageQueueType, MessageQueueTypes))
		}
	}
	topics := []struct{ name, v string }{{"topic", s.Topic}, {"respTopic", s.ResponseTopic}, {"errorTopic", s.ErrorTopic}}
	for _, tp := range topics {
		if tp.name == "topic" && strings.TrimSpace(tp.v) == "" {
			errs = append(errs, field.Required(p.Child("topic"), "the topic, subject or stream to read"))
			continue
		}
		if tp.v != "" {
			if msg := checkTopic(s.MessageQueueType, tp.v); msg != "" {
				errs = append(errs, field.Invalid(p.Child(tp.name), tp.v, msg))
			}
		}
	}
	if s.Topic != "" && (s.Topic == s.ResponseTopic || s.Topic == s.ErrorTopic) {
		errs = append(errs, field.Invalid(p.Child("topic"), s.Topic, "must differ from respTopic and errorTopic, or every answer would be read again"))
	}
	if s.MaxRetries < 0 || s.MaxRetries > 100 {
		errs = append(errs, field.Invalid(p.Child("maxRetries"), s.MaxRetries, "must be between 0 and 100"))
	}
	if s.ContentType != "" && strings.ContainsAny(s.ContentType, "\r\n") {
		errs = append(errs, field.Invalid(p.Child("contentType"), s.ContentType, "must be one header line"))
	}
	for _, n := range []struct {
		name string
		v    *int32
	}{{"pollingInterval", s.PollingInterval}, {"cooldownPeriod", s.CooldownPeriod}, {"minReplicaCount", s.MinReplicaCount}, {"maxReplicaCount", s.MaxReplicaCount}} {
		if n.v != nil && *n.v < 0 {
			errs = append(errs, field.Invalid(p.Child(n.name), *n.v, "must not be negative"))
		}
	}
	if s.PollingInterval != nil && *s.PollingInterval == 0 {
		errs = append(errs, field.Invalid(p.Child("pollingInterval"), 0, "must be at least 1 second"))
	}
	if s.MinReplicaCount != nil && s.MaxReplicaCount != nil && *s.MaxReplicaCount < *s.MinReplicaCount {
		errs = append(errs, field.Invalid(p.Child("maxReplicaCount"), *s.MaxReplicaCount, "must be >= minReplicaCount"))
	}
	if s.MaxReplicaCount != nil && *s.MaxReplicaCount == 0 {
		errs = append(errs, field.Invalid(p.Child("maxReplicaCount"), 0, "must be at least 1"))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Metadata)) {
		v := s.Metadata[k]
		if k == "" {
			errs = append(errs, field.Invalid(p.Child("metadata"), k, "keys must not be empty"))
		}
		if k == MQMetadataConcurrency {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > maxMQConcurrency {
				errs = append(errs, field.Invalid(p.Child("metadata").Key(k), v, fmt.Sprintf("must be a whole number between 1 and %d", maxMQConcurrency)))
			}
		}
	}
	if s.MqtKind != "" && s.MqtKind != MqtKindKeda && s.MqtKind != MqtKindFission {
		errs = append(errs, field.NotSupported(p.Child("mqtkind"), s.MqtKind, []string{MqtKindFission, MqtKindKeda}))
	}
	if s.Secret != "" {
		errs = append(errs, validateName(s.Secret, p.Child("secret"))...)
	}
	return errs
}

// checkTopic says what is wrong with a topic name for a kind of queue, or
// "" when nothing is.
func checkTopic(kind MessageQueueType, t string) string {
	if len(t) > 249 {
		return "must be at most 249 characters"
	}
	if strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "must not contain spaces or control characters"
	}
	switch kind {
	case MessageQueueTypeKafka:
		for _, r := range t {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return "a Kafka topic may contain only letters, digits, '.', '_' and '-'"
			}
		}
	case MessageQueueTypeNATSJetStream:
		if strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") || strings.Contains(t, "..") {
			return "a NATS subject's tokens must not be empty"
		}
		if strings.ContainsAny(t, "*>") {
			return "must name one subject, without wildcards"
		}
	}
	return ""
}
