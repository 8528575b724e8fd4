package cli

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger/mqtkube"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// lockedBuffer is the log of a command still running: written by its
// goroutines, read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// createAll creates objects, tolerating ones a previous test made.
func createAll(t *testing.T, env *kubetest.Env, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetResourceVersion("")
		if err := env.Client.Create(kubetest.Context(t), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// installKEDACRDs installs minimal keda.sh/v1alpha1 ScaledObject and
// TriggerAuthentication CRDs (schemas left open) and waits until both
// are served.
func installKEDACRDs(t *testing.T, env *kubetest.Env) {
	t.Helper()
	yes := true
	for _, kind := range []string{"ScaledObject", "TriggerAuthentication"} {
		singular := strings.ToLower(kind)
		createAll(t, env, &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: singular + "s.keda.sh"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "keda.sh", Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: singular + "s", Singular: singular, Kind: kind, ListKind: kind + "List"},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1alpha1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &yes}},
				}},
			},
		})
	}
	disc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		rl, err := disc.ServerResourcesForGroupVersion("keda.sh/v1alpha1")
		if err != nil {
			return err.Error()
		}
		var served []string
		for _, r := range rl.APIResources {
			served = append(served, r.Name)
		}
		if !slices.Contains(served, "scaledobjects") || !slices.Contains(served, "triggerauthentications") {
			return fmt.Sprintf("keda.sh/v1alpha1 serves %v", served)
		}
		return ""
	})
}

// `isotope mqt serve` with exactly the rights the chart gives the
// mqtrigger role (its ClusterRole and binding, the leader-election Role
// in the control plane's namespace, the Secret grant in a function
// namespace), with KEDA's CRDs installed: it takes its Lease and makes a
// trigger's connector Deployment, ScaledObject and TriggerAuthentication
// (reading the Secret the trigger names), and records a Warning Event
// for an invalid trigger. A missing grant in the chart fails here.
func TestMQTServeWithTheChartsRights(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "mqtserve")
	const system = "isotope-system"
	ctx := kubetest.Context(t)
	createAll(t, env, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: system}})
	var cr, secretsCR rbacv1.ClusterRole
	var crb rbacv1.ClusterRoleBinding
	var leader rbacv1.Role
	var leaderRB, secretsRB rbacv1.RoleBinding
	chartObject(t, "ClusterRole", "isotope-mqtrigger", &cr)
	chartObject(t, "ClusterRoleBinding", "isotope-mqtrigger", &crb)
	chartObject(t, "Role", "isotope-mqtrigger-leader", &leader)
	chartObject(t, "RoleBinding", "isotope-mqtrigger-leader", &leaderRB)
	chartObject(t, "ClusterRole", "isotope-mqtrigger-secrets", &secretsCR)
	chartObject(t, "RoleBinding", "isotope-mqtrigger-secrets", &secretsRB)
	secretsRB.Namespace = ns // the chart binds it in each function namespace
	createAll(t, env, &cr, &crb, &leader, &leaderRB, &secretsCR, &secretsRB)
	installKEDACRDs(t, env)
	kubeconfig := impersonating(t, env, system, "isotope-mqtrigger")

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out lockedBuffer
	go func() {
		root := NewRootCommand()
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs([]string{"mqt", "serve", "--kubeconfig", kubeconfig, "--router", "http://isotope-router.isotope-system.svc",
			"--image", "isotope/isotope:test", "--lease-namespace", system, "--identity", "test-0",
			"--connector-service-account", "isotope-mqt-connector"})
		done <- root.ExecuteContext(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("mqt serve: %v", err)
		}
	})

	createAll(t, env,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nats-auth"}, Data: map[string][]byte{"natsServerURL": []byte("nats://nats:4222")}},
		&v1.MessageQueueTrigger{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
			Spec: v1.MessageQueueTriggerSpec{
				FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
				MessageQueueType:  v1.MessageQueueTypeNATSJetStream, Topic: "orders.new", Secret: "nats-auth",
				Metadata: map[string]string{"natsServerMonitoringEndpoint": "nats:8222"},
			},
		},
		&v1.MessageQueueTrigger{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
			Spec: v1.MessageQueueTriggerSpec{
				FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
				MessageQueueType:  "rabbitmq", Topic: "x",
			},
		})
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx = context.Background() // polls may outlast one kubetest.Context
	kubetest.Eventually(t, 60*time.Second, func() string {
		why := connectorMade(ctx, env, dyn, ns)
		if why != "" {
			log := out.String()
			why += "\nlog of mqt serve (end): " + log[max(0, len(log)-2000):]
		}
		return why
	})
}

// connectorMade says what is still missing of trigger orders' connector
// and trigger bad's Event in ns ("" when nothing).
func connectorMade(ctx context.Context, env *kubetest.Env, dyn dynamic.Interface, ns string) string {
	var d appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mqt-orders"}, &d); err != nil {
		return "connector Deployment: " + err.Error()
	}
	if c := d.Spec.Template.Spec.Containers[0]; c.Image != "isotope/isotope:test" || d.Spec.Template.Spec.ServiceAccountName != "isotope-mqt-connector" {
		return fmt.Sprintf("connector image %s account %s", c.Image, d.Spec.Template.Spec.ServiceAccountName)
	}
	if _, err := dyn.Resource(mqtkube.ScaledObjectGVR).Namespace(ns).Get(ctx, "mqt-orders", metav1.GetOptions{}); err != nil {
		return "ScaledObject: " + err.Error()
	}
	ta, err := dyn.Resource(mqtkube.TriggerAuthenticationGVR).Namespace(ns).Get(ctx, "mqt-orders-auth", metav1.GetOptions{})
	if err != nil {
		return "TriggerAuthentication: " + err.Error()
	}
	if refs, _, _ := unstructured.NestedSlice(ta.Object, "spec", "secretTargetRef"); len(refs) != 1 {
		return fmt.Sprintf("secretTargetRef %v", refs)
	}
	var evs corev1.EventList
	if err := env.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == "bad" && e.Reason == mqtkube.ReasonInvalid && strings.Contains(e.Message, "spec.messageQueueType") {
			return ""
		}
	}
	return "no InvalidSpec Event for the bad trigger"
}
