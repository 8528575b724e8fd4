package server

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger"
	"isotope.dev/isotope/internal/mqtrigger/mqtkube"
)

// MQTriggerOptions configure the message-queue trigger role.
type MQTriggerOptions struct {
	KubeOptions
	RouterURL        string // the router Service URL the connectors call
	ConnectorAccount string // service account of connector pods
}

// RunMQTrigger runs the mqtrigger role: a connector Deployment (and a
// KEDA ScaledObject when KEDA is installed) per MessageQueueTrigger, as
// the holder of "isotope-mqtrigger".
func RunMQTrigger(ctx context.Context, o MQTriggerOptions) error {
	r, err := o.connect()
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(r.cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(r.cfg)
	if err != nil {
		return err
	}
	c, err := mqtkube.New(mqtkube.Config{
		Store: r.store, Client: r.client, Dynamic: dyn, Discovery: disc, Logger: r.log,
		Render: mqtkube.RenderOptions{Image: o.Image, RouterURL: o.RouterURL, ServiceAccount: o.ConnectorAccount},
	})
	if err != nil {
		return err
	}
	return r.lead(ctx, "isotope-mqtrigger", c.Run)
}

// MQTConsumeOptions configure one connector.
type MQTConsumeOptions struct {
	KubeOptions
	Trigger      string // name, in KubeOptions.Namespace
	RouterURL    string
	ConsumerName string // this replica among a consumer group (Redis)
	// SecretDir holds the trigger's Secret (spec.secret) as mounted by
	// the kubelet, one file per key; its keys are added to the trigger's
	// metadata, replacing metadata keys of the same name. "" = none.
	SecretDir string
}

// RunMQTConsume runs one trigger's consumer: it reads the trigger from
// the apiserver and consumes until ctx ends, reconnecting after
// failures. A changed trigger rolls the connector's pods (the spec hash
// on the pod template), so the spec read at start is the one to run.
func RunMQTConsume(ctx context.Context, o MQTConsumeOptions) error {
	if o.Namespace == "" || o.Trigger == "" {
		return fmt.Errorf("mqt consume: the trigger's name and --namespace are required")
	}
	r, err := o.connect()
	if err != nil {
		return err
	}
	obj, err := r.store.Get(ctx, v1.KindMessageQueueTrigger, o.Namespace, o.Trigger)
	if err != nil {
		return fmt.Errorf("message queue trigger %s/%s: %w", o.Namespace, o.Trigger, err)
	}
	t := obj.(*v1.MessageQueueTrigger).DeepCopy()
	v1.Default(t)
	if o.SecretDir != "" {
		secret, err := ReadSecretDir(o.SecretDir)
		if err != nil {
			return fmt.Errorf("message queue trigger %s/%s: spec.secret %s: %w", o.Namespace, o.Trigger, t.Spec.Secret, err)
		}
		if t.Spec.Metadata == nil {
			t.Spec.Metadata = map[string]string{}
		}
		maps.Copy(t.Spec.Metadata, secret)
	}
	if errs := v1.Validate(t); len(errs) > 0 {
		return fmt.Errorf("message queue trigger %s/%s: %w", o.Namespace, o.Trigger, errs.ToAggregate())
	}
	log := r.log.With("trigger", o.Namespace+"/"+o.Trigger)
	log.Info("consuming", "type", t.Spec.MessageQueueType, "topic", t.Spec.Topic, "function", t.Spec.FunctionReference.Name)
	delay := 500 * time.Millisecond
	for {
		err := mqtrigger.RunTrigger(ctx, t, mqtrigger.Options{ConsumerName: o.ConsumerName, Logger: log},
			mqtrigger.Config{RouterURL: o.RouterURL, Logger: log})
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("stopped consuming; reconnecting", "err", err, "delay", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// ReadSecretDir reads a Secret volume: one file per key. The kubelet's
// own entries (..data and the timestamped directory it points to) start
// with "..", and are skipped like any directory.
func ReadSecretDir(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // follows the kubelet's symlinks
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out[e.Name()] = string(b)
	}
	return out, nil
}
