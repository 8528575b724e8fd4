package mqtkube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger/mqtkube"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/testing/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

type fixture struct {
	kube *kubetest.Env
	ns   string
	dyn  dynamic.Interface
}

// startController runs the controller on the shared control plane,
// confined to a fresh namespace, until the test ends.
func startController(t *testing.T, prefix string) *fixture {
	t.Helper()
	return startControllerResync(t, prefix, 0)
}

// startControllerResync is startController listing every trigger again
// each resync (0: the default).
func startControllerResync(t *testing.T, prefix string, resync time.Duration) *fixture {
	t.Helper()
	kube := kubetest.Start(t)
	ns := kube.Namespace(t, prefix)
	st, err := kubestore.New(kube.Config, kubestore.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mqtkube.New(mqtkube.Config{
		Store: st, Client: kube.Client, Dynamic: dyn, Discovery: disc,
		Render:         mqtkube.RenderOptions{Image: "isotope:test", RouterURL: "http://router.isotope", ServiceAccount: "isotope-mqt-connector"},
		ResyncInterval: resync,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("controller: %v", err)
		}
	})
	return &fixture{kube: kube, ns: ns, dyn: dyn}
}

func (f *fixture) trigger(name string, mut func(*v1.MessageQueueTrigger)) *v1.MessageQueueTrigger {
	t := &v1.MessageQueueTrigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1.MessageQueueTriggerSpec{
			FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
			MessageQueueType:  v1.MessageQueueTypeNATSJetStream,
			Topic:             "orders.new",
			Metadata:          map[string]string{"natsServerURL": "nats://nats:4222", "natsServerMonitoringEndpoint": "nats:8222", "concurrency": "4"},
		},
	}
	if mut != nil {
		mut(t)
	}
	return t
}

// eventually polls cond every 50 ms until it returns "" or 30 s pass.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still %s after 30s", what, last)
}

func (f *fixture) deployment(t *testing.T, name string) (*appsv1.Deployment, error) {
	t.Helper()
	var d appsv1.Deployment
	err := f.kube.Client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, &d)
	return &d, err
}

func TestConnectorDeploymentFollowsTrigger(t *testing.T) {
	f := startController(t, "mqt-dep")
	ctx := context.Background()
	tr := f.trigger("orders", func(t *v1.MessageQueueTrigger) { t.Spec.MqtKind = v1.MqtKindFission })
	if err := f.kube.Client.Create(ctx, tr); err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	eventually(t, "connector deployment", func() string {
		var err error
		if d, err = f.deployment(t, "mqt-orders"); err != nil {
			return err.Error()
		}
		return ""
	})
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1 (minReplicaCount 0 without KEDA)", d.Spec.Replicas)
	}
	if got := d.Labels[mqtkube.LabelTrigger]; got != "orders" {
		t.Errorf("label %s = %q", mqtkube.LabelTrigger, got)
	}
	if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != tr.UID || d.OwnerReferences[0].Kind != v1.KindMessageQueueTrigger {
		t.Errorf("owner references = %+v, want the trigger (uid %s)", d.OwnerReferences, tr.UID)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "isotope-mqt-connector" || len(pod.Containers) != 1 {
		t.Fatalf("pod spec = %+v", pod)
	}
	c := pod.Containers[0]
	wantCmd := "isotope mqt consume orders --namespace " + f.ns + " --router http://router.isotope"
	if c.Image != "isotope:test" || strings.Join(c.Command, " ") != wantCmd {
		t.Errorf("container image %q command %q, want isotope:test %q", c.Image, c.Command, wantCmd)
	}
	hash := d.Spec.Template.Annotations[mqtkube.AnnotationSpecHash]
	if hash == "" {
		t.Error("no spec hash annotation on the pod template")
	}

	// Update: replicas and the pod template follow the trigger.
	if err := f.kube.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
		t.Fatal(err)
	}
	three := int32(3)
	tr.Spec.MinReplicaCount, tr.Spec.MaxReplicaCount = &three, &three
	tr.Spec.Topic = "orders.changed"
	if err := f.kube.Client.Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "updated deployment", func() string {
		d, err := f.deployment(t, "mqt-orders")
		if err != nil {
			return err.Error()
		}
		if *d.Spec.Replicas != 3 || d.Spec.Template.Annotations[mqtkube.AnnotationSpecHash] == hash {
			return fmt.Sprintf("replicas %d, hash %s", *d.Spec.Replicas, d.Spec.Template.Annotations[mqtkube.AnnotationSpecHash])
		}
		return ""
	})

	// Delete: no garbage collector runs in the harness, so this sees the
	// controller's own deletion.
	if err := f.kube.Client.Delete(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deployment deleted", func() string {
		if _, err := f.deployment(t, "mqt-orders"); !apierrors.IsNotFound(err) {
			return "present"
		}
		return ""
	})
}

// TestInvalidTriggerGetsEventNoDeployment: triggers the apiserver
// accepts (its schema only asks for the fields) but Isotope cannot run.
func TestInvalidTriggerGetsEventNoDeployment(t *testing.T) {
	f := startController(t, "mqt-bad")
	ctx := context.Background()
	cases := map[string]struct {
		mut   func(*v1.MessageQueueTrigger)
		field string
	}{
		"bad-type":  {func(t *v1.MessageQueueTrigger) { t.Spec.MessageQueueType = "rabbitmq" }, "spec.messageQueueType"},
		"no-topic":  {func(t *v1.MessageQueueTrigger) { t.Spec.Topic = "" }, "spec.topic"},
		"bad-topic": {func(t *v1.MessageQueueTrigger) { t.Spec.Topic = "a b" }, "spec.topic"},
	}
	for name, tc := range cases {
		if err := f.kube.Client.Create(ctx, f.trigger(name, tc.mut)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A valid trigger created after them is reconciled after them (one
	// worker, in order): once its Deployment exists, theirs would too.
	if err := f.kube.Client.Create(ctx, f.trigger("good", nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "good deployment", func() string {
		if _, err := f.deployment(t, "mqt-good"); err != nil {
			return err.Error()
		}
		return ""
	})
	for name, tc := range cases {
		if _, err := f.deployment(t, "mqt-"+name); !apierrors.IsNotFound(err) {
			t.Errorf("%s: deployment exists (err %v)", name, err)
		}
		eventually(t, name+" event", func() string {
			var evs corev1.EventList
			if err := f.kube.Client.List(ctx, &evs, client.InNamespace(f.ns)); err != nil {
				return err.Error()
			}
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == name && e.Reason == mqtkube.ReasonInvalid && e.Type == corev1.EventTypeWarning {
					if !strings.Contains(e.Message, tc.field) {
						return "message " + e.Message + " does not name " + tc.field
					}
					return ""
				}
			}
			return "no event"
		})
	}
}

// installScaledObjectCRD installs a minimal keda.sh ScaledObject CRD
// (KEDA's group, kind and version; its schema left open) and waits until
// it is served.
func installScaledObjectCRD(t *testing.T, kube *kubetest.Env) {
	t.Helper()
	installKEDACRD(t, kube, "scaledobjects", "scaledobject", "ScaledObject")
	disc, err := discovery.NewDiscoveryClientForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := mqtkube.KEDAInstalled(disc); !ok || err != nil {
		t.Fatalf("KEDAInstalled = %v, %v once the ScaledObject CRD is served", ok, err)
	}
}

// installKEDACRD installs a minimal keda.sh/v1alpha1 CRD and waits until
// the apiserver serves it.
func installKEDACRD(t *testing.T, kube *kubetest.Env, plural, singular, kind string) {
	t.Helper()
	yes := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".keda.sh"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "keda.sh", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Singular: singular, Kind: kind, ListKind: kind + "List"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &yes,
				}},
			}},
		},
	}
	ctx := context.Background()
	if err := kube.Client.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, kind+" CRD served", func() string {
		rl, err := disc.ServerResourcesForGroupVersion("keda.sh/v1alpha1")
		if err != nil {
			return err.Error()
		}
		for _, r := range rl.APIResources {
			if r.Name == plural {
				return ""
			}
		}
		return "not served"
	})
}

func TestScaledObjectOnlyWithKEDA(t *testing.T) {
	f := startController(t, "mqt-keda")
	ctx := context.Background()
	kedaCRD := &apiextensionsv1.CustomResourceDefinition{}
	if err := f.kube.Client.Get(ctx, client.ObjectKey{Name: "scaledobjects.keda.sh"}, kedaCRD); err == nil {
		t.Fatal("ScaledObject CRD installed before this test: it must run first in this package")
	}
	ten, five := int32(10), int32(5)
	tr := f.trigger("orders", func(t *v1.MessageQueueTrigger) {
		t.Spec.MaxReplicaCount, t.Spec.PollingInterval = &ten, &five
	})
	if err := f.kube.Client.Create(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connector deployment", func() string {
		if _, err := f.deployment(t, "mqt-orders"); err != nil {
			return err.Error()
		}
		return ""
	})
	if d, _ := f.deployment(t, "mqt-orders"); *d.Spec.Replicas != 1 {
		t.Errorf("without KEDA replicas = %d, want 1", *d.Spec.Replicas)
	}

	installScaledObjectCRD(t, f.kube)
	so := f.dyn.Resource(mqtkube.ScaledObjectGVR).Namespace(f.ns)
	if _, err := so.Get(ctx, "mqt-orders", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("ScaledObject before any reconcile with KEDA: err %v", err)
	}
	// Any change reconciles the trigger again, now with KEDA present.
	if err := f.kube.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
		t.Fatal(err)
	}
	tr.Spec.CooldownPeriod = &ten
	if err := f.kube.Client.Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	var u *unstructured.Unstructured
	eventually(t, "ScaledObject", func() string {
		var err error
		if u, err = so.Get(ctx, "mqt-orders", metav1.GetOptions{}); err != nil {
			return err.Error()
		}
		return ""
	})
	for path, want := range map[string]int64{"minReplicaCount": 0, "maxReplicaCount": 10, "pollingInterval": 5, "cooldownPeriod": 10} {
		got, ok, _ := unstructured.NestedInt64(u.Object, "spec", path)
		if !ok || got != want {
			t.Errorf("spec.%s = %d (present %v), want %d", path, got, ok, want)
		}
	}
	if name, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name"); name != "mqt-orders" {
		t.Errorf("scaleTargetRef.name = %q", name)
	}
	trig, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
	if len(trig) != 1 {
		t.Fatalf("triggers = %v", trig)
	}
	tm := trig[0].(map[string]any)
	md, _ := tm["metadata"].(map[string]any)
	wantMD := map[string]string{
		"stream": "orders", "consumer": "isotope-" + f.ns + "-orders", "natsServerMonitoringEndpoint": "nats:8222",
	}
	if tm["type"] != "nats-jetstream" {
		t.Errorf("trigger type = %v, want nats-jetstream", tm["type"])
	}
	for k, v := range wantMD {
		if md[k] != v {
			t.Errorf("metadata.%s = %v, want %s", k, md[k], v)
		}
	}
	for _, k := range []string{"concurrency", "natsServerURL"} {
		if _, ok := md[k]; ok {
			t.Errorf("metadata.%s passed to KEDA", k)
		}
	}
	if refs := u.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != tr.UID {
		t.Errorf("owner references = %+v", refs)
	}
	// Deleting the trigger deletes the ScaledObject and the Deployment.
	if err := f.kube.Client.Delete(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ScaledObject deleted", func() string {
		if _, err := so.Get(ctx, "mqt-orders", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return "present"
		}
		if _, err := f.deployment(t, "mqt-orders"); !apierrors.IsNotFound(err) {
			return "deployment present"
		}
		return ""
	})
}
