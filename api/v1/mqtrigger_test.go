package v1

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMessageQueueTriggerDefaultsAndFissionJSON(t *testing.T) {
	tr := &MessageQueueTrigger{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: MessageQueueTriggerSpec{
		FunctionReference: FunctionReference{Name: "f"}, MessageQueueType: MessageQueueTypeKafka,
		Topic: "in", ResponseTopic: "out", ErrorTopic: "err", MaxRetries: 2,
	}}
	Default(tr)
	if errs := Validate(tr); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	b, _ := json.Marshal(tr.Spec)
	for _, k := range []string{`"messageQueueType":"kafka"`, `"respTopic":"out"`, `"errorTopic":"err"`, `"maxRetries":2`,
		`"contentType":"application/json"`, `"pollingInterval":30`, `"cooldownPeriod":300`, `"minReplicaCount":0`, `"maxReplicaCount":100`, `"mqtkind":"keda"`, `"functionref"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
}

func TestMessageQueueTriggerValidationNamesTheField(t *testing.T) {
	for _, c := range []struct {
		mut  func(*MessageQueueTriggerSpec)
		want string
	}{
		{func(s *MessageQueueTriggerSpec) { s.MessageQueueType = "rabbitmq" }, "spec.messageQueueType"},
		{func(s *MessageQueueTriggerSpec) { s.Topic = "" }, "spec.topic"},
		{func(s *MessageQueueTriggerSpec) { s.ResponseTopic = s.Topic }, "spec.topic"},
		{func(s *MessageQueueTriggerSpec) { s.Topic = "a b" }, "spec.topic"},
		{func(s *MessageQueueTriggerSpec) { s.MaxRetries = -1 }, "spec.maxRetries"},
		{func(s *MessageQueueTriggerSpec) {
			v := int32(1)
			s.MaxReplicaCount = &v
			w := int32(2)
			s.MinReplicaCount = &w
		}, "spec.maxReplicaCount"},
		{func(s *MessageQueueTriggerSpec) { s.Metadata = map[string]string{"concurrency": "0"} }, "spec.metadata[concurrency]"},
		{func(s *MessageQueueTriggerSpec) { s.MqtKind = "other" }, "spec.mqtkind"},
		{func(s *MessageQueueTriggerSpec) { s.FunctionReference.Name = "" }, "spec.functionref.name"},
		{func(s *MessageQueueTriggerSpec) { s.MessageQueueType = MessageQueueTypeNATSJetStream; s.Topic = "a.*" }, "spec.topic"},
		{func(s *MessageQueueTriggerSpec) { s.ContentType = "a\r\nX: y" }, "spec.contentType"},
	} {
		tr := &MessageQueueTrigger{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: MessageQueueTriggerSpec{
			FunctionReference: FunctionReference{Name: "f"}, MessageQueueType: MessageQueueTypeKafka, Topic: "in",
		}}
		c.mut(&tr.Spec)
		Default(tr)
		errs := Validate(tr)
		if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), c.want) {
			t.Errorf("want an error naming %s, got %v", c.want, errs.ToAggregate())
		}
	}
}
