package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newMQTCommand) }

// newMQTCommand is `isotope mqt` (aliases mqtrigger, messagequeuetrigger),
// Fission's `fission mqt` with its flags. The Kubernetes roles `mqt serve`
// and `mqt consume` come from mqtroles.go.
func newMQTCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.MessageQueueTrigger]{g: g, noun: "message queue trigger"}
	return group("mqt", []string{"mqtrigger", "messagequeuetrigger"}, "Manage message queue triggers that call functions with each message of a topic",
		newMQTCreate(g), k.get("get", "Show a message queue trigger", describeMQT), newMQTList(k), newMQTUpdate(k), k.delete("Delete a message queue trigger"))
}

type mqtOptions struct {
	name, function, mqtype, mqtkind, topic, respTopic, errorTopic, contentType, secret string
	maxRetries                                                                         int
	pollingInterval, cooldownPeriod, minReplicas, maxReplicas                          int32
	metadata                                                                           []string
}

func (o *mqtOptions) addFlags(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "trigger name (default on create: a random UUID)")
	f.StringVar(&o.function, "function", "", "function called with each message")
	f.StringVar(&o.topic, "topic", "", "topic read: a Kafka topic, a NATS subject, a Redis stream")
	f.StringVar(&o.respTopic, "resptopic", "", "topic that receives each successful answer")
	f.StringVar(&o.errorTopic, "errortopic", "", "topic that receives each message that still failed after the retries")
	f.IntVar(&o.maxRetries, "maxretries", 0, "how many times a failed call is retried")
	f.StringVar(&o.contentType, "contenttype", v1.DefaultMQContentType, "Content-Type of the calls")
	f.Int32Var(&o.pollingInterval, "pollinginterval", v1.DefaultMQPollingInterval, "seconds between KEDA's checks of the queue (Kubernetes)")
	f.Int32Var(&o.cooldownPeriod, "cooldownperiod", v1.DefaultMQCooldownPeriod, "seconds KEDA waits after the last message before scaling down (Kubernetes)")
	f.Int32Var(&o.minReplicas, "minreplicacount", v1.DefaultMQMinReplicaCount, "fewest consumer replicas (Kubernetes)")
	f.Int32Var(&o.maxReplicas, "maxreplicacount", v1.DefaultMQMaxReplicaCount, "most consumer replicas (Kubernetes)")
	f.StringArrayVar(&o.metadata, "metadata", nil, "broker setting key=value (repeatable): bootstrapServers, consumerGroup, natsServerURL, stream, address, concurrency …")
	f.StringVar(&o.secret, "secret", "", "Secret with the broker's credentials (Kubernetes)")
	if create {
		f.StringVar(&o.mqtype, "mqtype", "", "queue kind: nats-jetstream, kafka, redis")
		f.StringVar(&o.mqtkind, "mqtkind", v1.MqtKindKeda, "Fission's trigger kind: keda (a ScaledObject on Kubernetes when KEDA is installed) or fission")
	}
}

func newMQTCreate(g *Globals) *cobra.Command {
	o := &mqtOptions{}
	var sf specFlags
	cmd := createCommand(g, "Create a message queue trigger", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		for _, r := range [][2]string{{"function", o.function}, {"mqtype", o.mqtype}, {"topic", o.topic}} {
			if err := requireFlag(r[0], r[1]); err != nil {
				return err
			}
		}
		meta, err := parseKeyValues("metadata", o.metadata)
		if err != nil {
			return err
		}
		if o.name == "" {
			o.name = uuid.NewString()
		}
		t := &v1.MessageQueueTrigger{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns},
			Spec: v1.MessageQueueTriggerSpec{
				FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: o.function},
				MessageQueueType:  v1.MessageQueueType(o.mqtype),
				Topic:             o.topic,
				ResponseTopic:     o.respTopic,
				ErrorTopic:        o.errorTopic,
				MaxRetries:        o.maxRetries,
				ContentType:       o.contentType,
				PollingInterval:   &o.pollingInterval,
				CooldownPeriod:    &o.cooldownPeriod,
				MinReplicaCount:   &o.minReplicas,
				MaxReplicaCount:   &o.maxReplicas,
				Metadata:          meta,
				Secret:            o.secret,
				MqtKind:           o.mqtkind,
			},
		}
		v1.SetTypeMeta(t)
		if done, err := sf.save(cmd, "mqtrigger-"+o.name, t); done || err != nil {
			return err
		}
		if err := checkFunctionsExist(ctx, st, ns, []string{o.function}); err != nil {
			return err
		}
		if _, err := st.Create(ctx, t); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "message queue trigger '%s' created: %s topic '%s' calls function '%s'\n", o.name, o.mqtype, o.topic, o.function)
		return nil
	})
	o.addFlags(cmd, true)
	return cmd
}

// describeMQT is the summary `mqt get` prints.
func describeMQT(w io.Writer, t *v1.MessageQueueTrigger) error {
	s := newSummary(w)
	i32 := func(p *int32) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(int(*p))
	}
	s.add("Name", t.Name)
	s.add("Namespace", t.Namespace)
	s.add("Function", t.Spec.FunctionReference.Name)
	s.add("Type", string(t.Spec.MessageQueueType))
	s.add("Kind", t.Spec.MqtKind)
	s.add("Topic", t.Spec.Topic)
	s.add("Response topic", t.Spec.ResponseTopic)
	s.add("Error topic", t.Spec.ErrorTopic)
	s.add("Max retries", strconv.Itoa(t.Spec.MaxRetries))
	s.add("Content type", t.Spec.ContentType)
	s.add("Polling interval", i32(t.Spec.PollingInterval))
	s.add("Cooldown period", i32(t.Spec.CooldownPeriod))
	s.add("Replicas", i32(t.Spec.MinReplicaCount)+".."+i32(t.Spec.MaxReplicaCount))
	s.add("Metadata", mapString(t.Spec.Metadata))
	s.add("Secret", t.Spec.Secret)
	return s.flush()
}

func newMQTList(k kindCommands[*v1.MessageQueueTrigger]) *cobra.Command {
	return k.list(listing[*v1.MessageQueueTrigger]{
		short:   "List message queue triggers",
		headers: []string{"NAME", "FUNCTION_NAME", "MESSAGE_QUEUE_TYPE", "TOPIC", "RESPONSE_TOPIC", "ERROR_TOPIC", "MAX_RETRIES", "NAMESPACE"},
		row: func(t *v1.MessageQueueTrigger) []string {
			s := &t.Spec
			return []string{t.Name, s.FunctionReference.Name, string(s.MessageQueueType), s.Topic, s.ResponseTopic, s.ErrorTopic, strconv.Itoa(s.MaxRetries), t.Namespace}
		},
	})
}

func newMQTUpdate(k kindCommands[*v1.MessageQueueTrigger]) *cobra.Command {
	o := &mqtOptions{}
	var meta map[string]string
	check := func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		var err error
		if meta, err = parseKeyValues("metadata", o.metadata); err != nil {
			return err
		}
		if changed(cmd, "function") {
			return checkFunctionsExist(ctx, st, k.g.ns(), []string{o.function})
		}
		return nil
	}
	cmd := k.update("Change a message queue trigger (only the flags given; --metadata keys are merged)", &o.name, check, func(cmd *cobra.Command, t *v1.MessageQueueTrigger) error {
		s := &t.Spec
		assign(changed(cmd, "function"), &s.FunctionReference, v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: o.function})
		assign(changed(cmd, "topic"), &s.Topic, o.topic)
		assign(changed(cmd, "resptopic"), &s.ResponseTopic, o.respTopic)
		assign(changed(cmd, "errortopic"), &s.ErrorTopic, o.errorTopic)
		assign(changed(cmd, "maxretries"), &s.MaxRetries, o.maxRetries)
		assign(changed(cmd, "contenttype"), &s.ContentType, o.contentType)
		assign(changed(cmd, "pollinginterval"), &s.PollingInterval, &o.pollingInterval)
		assign(changed(cmd, "cooldownperiod"), &s.CooldownPeriod, &o.cooldownPeriod)
		assign(changed(cmd, "minreplicacount"), &s.MinReplicaCount, &o.minReplicas)
		assign(changed(cmd, "maxreplicacount"), &s.MaxReplicaCount, &o.maxReplicas)
		assign(changed(cmd, "secret"), &s.Secret, o.secret)
		if len(meta) > 0 && s.Metadata == nil {
			s.Metadata = map[string]string{}
		}
		for key, v := range meta {
			s.Metadata[key] = v
		}
		return nil
	})
	o.addFlags(cmd, false)
	return cmd
}
