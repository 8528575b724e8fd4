package mqtkube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/store"
)

// Config configures a Controller.
type Config struct {
	// Store holds the MessageQueueTriggers (kubestore).
	Store store.Store
	// Client writes Deployments and Events, and gets the Secrets
	// triggers name.
	Client client.Client
	// Dynamic writes ScaledObjects and TriggerAuthentications; Discovery
	// tells whether KEDA's CRD is served.
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Render    RenderOptions // Replicas is set per trigger
	// ResyncInterval lists every trigger again (default 1 min).
	ResyncInterval time.Duration
	Logger         *slog.Logger
}

// Controller keeps one connector per MessageQueueTrigger.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	reported map[controller.Key]string // last invalid-spec message evented
}

// New returns a Controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil || cfg.Client == nil || cfg.Dynamic == nil || cfg.Discovery == nil {
		return nil, errors.New("mqtkube: Store, Client, Dynamic and Discovery are required")
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("role", "mqtrigger"), reported: map[controller.Key]string{}}, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	ctl, err := controller.New(controller.Config{
		Store: c.cfg.Store, Kind: v1.KindMessageQueueTrigger, Name: "mqtrigger-connectors",
		Reconcile: c.reconcile, ResyncInterval: c.cfg.ResyncInterval, Logger: c.log,
	})
	if err != nil {
		return err
	}
	return ctl.Run(ctx)
}

// KEDAInstalled says whether the apiserver serves keda.sh/v1alpha1
// ScaledObjects; it asks at every call, so installing KEDA later needs
// no restart.
func KEDAInstalled(d discovery.DiscoveryInterface) (bool, error) {
	rl, err := d.ServerResourcesForGroupVersion(ScaledObjectGVR.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", ScaledObjectGVR.GroupVersion(), err)
	}
	for _, r := range rl.APIResources {
		if r.Name == ScaledObjectGVR.Resource {
			return true, nil
		}
	}
	return false, nil
}

func (c *Controller) reconcile(ctx context.Context, key controller.Key) error {
	obj, err := c.cfg.Store.Get(ctx, v1.KindMessageQueueTrigger, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if obj == nil {
		c.forget(key)
		return c.remove(ctx, key.Namespace, key.Name, true)
	}
	t := obj.(*v1.MessageQueueTrigger).DeepCopy()
	v1.Default(t)
	if errs := v1.Validate(t); len(errs) > 0 {
		msg := errs.ToAggregate().Error()
		c.log.Error("invalid message queue trigger: no connector", "trigger", key.String(), "err", msg)
		c.event(ctx, key, t, msg)
		return c.remove(ctx, key.Namespace, key.Name, true)
	}
	secretVersion, secretKeys, err := c.secret(ctx, key, t)
	if err != nil {
		return err
	}
	c.forget(key)
	keda := false
	if t.Spec.MqtKind == v1.MqtKindKeda {
		if keda, err = KEDAInstalled(c.cfg.Discovery); err != nil {
			return err
		}
	}
	if err := c.applyDeployment(ctx, t, keda, secretVersion); err != nil {
		return err
	}
	if !keda {
		return c.remove(ctx, t.Namespace, t.Name, false)
	}
	// The TriggerAuthentication exists whenever the ScaledObject refers
	// to it: made before, deleted after.
	if t.Spec.Secret != "" {
		if err := c.apply(ctx, TriggerAuthenticationGVR, TriggerAuthentication(t, secretKeys)); err != nil {
			return err
		}
	}
	if err := c.apply(ctx, ScaledObjectGVR, ScaledObject(t)); err != nil {
		return err
	}
	if t.Spec.Secret == "" {
		return c.deleteKEDA(ctx, TriggerAuthenticationGVR, t.Namespace, AuthName(t))
	}
	return nil
}

// secret reads t's Secret (spec.secret), if it names one: its
// resourceVersion and data keys. A Secret that is missing or may not be
// read gets a Warning Event naming spec.secret and an error, so the
// trigger is tried again (with backoff) until it appears; an existing
// connector is left running meanwhile.
func (c *Controller) secret(ctx context.Context, key controller.Key, t *v1.MessageQueueTrigger) (string, []string, error) {
	if t.Spec.Secret == "" {
		return "", nil, nil
	}
	var s corev1.Secret
	if err := c.cfg.Client.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.Spec.Secret}, &s); err != nil {
		msg := fmt.Sprintf("spec.secret: Secret %s/%s: %v", t.Namespace, t.Spec.Secret, err)
		if apierrors.IsNotFound(err) {
			msg = fmt.Sprintf("spec.secret: Secret %s/%s not found", t.Namespace, t.Spec.Secret)
		}
		c.event(ctx, key, t, msg)
		return "", nil, errors.New(msg)
	}
	return s.ResourceVersion, slices.Collect(maps.Keys(s.Data)), nil
}

// replicas is minReplicaCount, but at least 1 when nothing scales the
// connector from zero (no KEDA, or mqtkind fission).
func replicas(t *v1.MessageQueueTrigger, keda bool) int32 {
	n := *t.Spec.MinReplicaCount
	if n == 0 && !keda {
		return 1
	}
	return n
}

func (c *Controller) applyDeployment(ctx context.Context, t *v1.MessageQueueTrigger, keda bool, secretVersion string) error {
	o := c.cfg.Render
	o.Replicas, o.SecretVersion = replicas(t, keda), secretVersion
	want := Deployment(t, o)
	var cur appsv1.Deployment
	err := c.cfg.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur)
	if apierrors.IsNotFound(err) {
		if err := c.cfg.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("create connector deployment %s/%s: %w", want.Namespace, want.Name, err)
		}
		c.log.Info("created connector", "trigger", t.Namespace+"/"+t.Name, "deployment", want.Name, "replicas", o.Replicas, "keda", keda)
		return nil
	}
	if err != nil {
		return err
	}
	if keda && cur.Spec.Replicas != nil {
		// KEDA owns the replica count once its ScaledObject exists.
		want.Spec.Replicas = cur.Spec.Replicas
	}
	cur.Labels, cur.OwnerReferences = want.Labels, want.OwnerReferences
	cur.Spec.Replicas, cur.Spec.Template = want.Spec.Replicas, want.Spec.Template
	if err := c.cfg.Client.Update(ctx, &cur); err != nil {
		return fmt.Errorf("update connector deployment %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	return nil
}

// apply creates or replaces a KEDA object (a ScaledObject or a
// TriggerAuthentication).
func (c *Controller) apply(ctx context.Context, gvr schema.GroupVersionResource, want *unstructured.Unstructured) error {
	ns, name, what := want.GetNamespace(), want.GetName(), strings.ToLower(want.GetKind())
	ri := c.cfg.Dynamic.Resource(gvr).Namespace(ns)
	cur, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := ri.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create %s %s/%s: %w", what, ns, name, err)
		}
		c.log.Info("created "+what, "namespace", ns, "name", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s %s/%s: %w", what, ns, name, err)
	}
	want.SetResourceVersion(cur.GetResourceVersion())
	if _, err := ri.Update(ctx, want, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s %s/%s: %w", what, ns, name, err)
	}
	return nil
}

// deleteKEDA deletes a KEDA object if it is there.
func (c *Controller) deleteKEDA(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) error {
	err := c.cfg.Dynamic.Resource(gvr).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s/%s: %w", gvr.Resource, ns, name, err)
	}
	return nil
}

// remove deletes the connector of trigger ns/name: its ScaledObject and
// TriggerAuthentication (when KEDA is served), and its Deployment too
// when withDeployment.
// Owner references let the garbage collector do the same; deleting here
// does not depend on it.
func (c *Controller) remove(ctx context.Context, ns, name string, withDeployment bool) error {
	t := &v1.MessageQueueTrigger{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	cn := ConnectorName(t)
	if keda, err := KEDAInstalled(c.cfg.Discovery); err != nil {
		return err
	} else if keda {
		if err := c.deleteKEDA(ctx, ScaledObjectGVR, ns, cn); err != nil {
			return err
		}
		if err := c.deleteKEDA(ctx, TriggerAuthenticationGVR, ns, AuthName(t)); err != nil {
			return err
		}
	}
	if !withDeployment {
		return nil
	}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cn}}
	err := c.cfg.Client.Delete(ctx, dep, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete connector deployment %s/%s: %w", ns, cn, err)
	}
	if err == nil {
		c.log.Info("deleted connector", "trigger", ns+"/"+name, "deployment", cn)
	}
	return nil
}

func (c *Controller) forget(key controller.Key) {
	c.mu.Lock()
	delete(c.reported, key)
	c.mu.Unlock()
}

// ReasonInvalid is the reason of the Warning Event an invalid trigger gets.
const ReasonInvalid = "InvalidSpec"

// event records a Warning Event on the trigger naming what is wrong,
// once per distinct message.
func (c *Controller) event(ctx context.Context, key controller.Key, t *v1.MessageQueueTrigger, msg string) {
	c.mu.Lock()
	same := c.reported[key] == msg
	c.reported[key] = msg
	c.mu.Unlock()
	if same {
		return
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name + "." + strconv.FormatInt(now.UnixNano(), 16)},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: v1.SchemeGroupVersion.String(), Kind: v1.KindMessageQueueTrigger,
			Namespace: t.Namespace, Name: t.Name, UID: t.UID, ResourceVersion: t.ResourceVersion,
		},
		Reason: ReasonInvalid, Message: "no connector: " + msg, Type: corev1.EventTypeWarning,
		Source: corev1.EventSource{Component: "isotope-mqtrigger"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if err := c.cfg.Client.Create(ctx, ev); err != nil {
		c.log.Warn("record event", "trigger", key.String(), "err", err)
	}
}
