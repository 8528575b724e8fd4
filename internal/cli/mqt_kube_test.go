package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// chartObject returns the object of kind and name in the chart's default
// rendering, deploy/manifests/isotope.yaml, decoded into out.
func chartObject(t *testing.T, kind, name string, out any) {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "manifests", "isotope.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal(doc, &meta) != nil || meta.Kind != kind || meta.Metadata.Name != name {
			continue
		}
		if err := yaml.Unmarshal(doc, out); err != nil {
			t.Fatalf("%s %s: %v", kind, name, err)
		}
		return
	}
	t.Fatalf("deploy/manifests/isotope.yaml has no %s %s", kind, name)
}

// connectorIdentity gives namespace ns the chart's connector identity
// (its ClusterRole, and the ServiceAccount and RoleBinding the chart makes
// in each function namespace) and returns a kubeconfig acting as it.
func connectorIdentity(t *testing.T, env *kubetest.Env, ns string) string {
	t.Helper()
	ctx := kubetest.Context(t)
	var cr rbacv1.ClusterRole
	chartObject(t, "ClusterRole", "isotope-mqt-connector", &cr)
	var rb rbacv1.RoleBinding
	chartObject(t, "RoleBinding", "isotope-mqt-connector", &rb)
	cr.ResourceVersion = ""
	if err := env.Client.Create(ctx, &cr); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "isotope-mqt-connector"}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	rb.Namespace = ns
	for i := range rb.Subjects {
		rb.Subjects[i].Namespace = ns
	}
	if err := env.Client.Create(ctx, &rb); err != nil {
		t.Fatal(err)
	}
	return impersonating(t, env, ns, "isotope-mqt-connector")
}

// impersonating writes a kubeconfig that acts as the ServiceAccount
// ns/name (the test control plane's admin may impersonate anyone), so
// a command using it has exactly that account's rights.
func impersonating(t *testing.T, env *kubetest.Env, ns, name string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + ns + ":" + name
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), ns+"-"+name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// fnCalls is a loopback HTTP server standing in for the router: it
// answers every call with "done <body>" and records path and body.
type fnCalls struct {
	mu    sync.Mutex
	calls []string // "path body"
}

func (f *fnCalls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.calls = append(f.calls, r.URL.Path+" "+string(body))
	f.mu.Unlock()
	fmt.Fprintf(w, "done %s", body)
}

func (f *fnCalls) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// `isotope mqt consume`, the command of connector pods, run as the
// chart's connector ServiceAccount against a real kube-apiserver: it
// reads its MessageQueueTrigger, consumes the NATS JetStream subject,
// calls the function through the router URL and publishes the answer on
// the trigger's respTopic; it stops cleanly when its context ends. The
// broker's URL comes from the trigger's Secret, mounted as a directory. The
// same identity may not read a trigger of another namespace, and a
// missing or invalid trigger is refused naming it and the field.
func TestMQTConsumeDeliversThroughTheRouter(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "mqtcons")
	other := env.Namespace(t, "mqtcons-other")
	kubeconfig := connectorIdentity(t, env, ns)

	nsrv, err := mqtrigger.StartNATS("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nsrv.Close)
	nc, err := nats.Connect(nsrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	fn := &fnCalls{}
	router := httptest.NewServer(fn)
	t.Cleanup(router.Close)

	trigger := func(ns, name string, mut func(*v1.MessageQueueTrigger)) {
		t.Helper()
		tr := &v1.MessageQueueTrigger{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1.MessageQueueTriggerSpec{
				FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "hello"},
				MessageQueueType:  v1.MessageQueueTypeNATSJetStream,
				Topic:             "orders.new",
				ResponseTopic:     "orders.done",
				Metadata:          map[string]string{mqtrigger.MetaNATSServerURL: nsrv.URL()},
			},
		}
		if mut != nil {
			mut(tr)
		}
		if err := env.Client.Create(kubetest.Context(t), tr); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(ctx context.Context, ns, name string, extra ...string) (string, error) {
		root := NewRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"mqt", "consume", name, "-n", ns, "--router", router.URL, "--kubeconfig", kubeconfig, "--consumer-name", "pod-0"}, extra...))
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}

	// Refused: a trigger that is not there, one of another namespace,
	// one without a topic (the apiserver's schema lets it through; the
	// connector's validation does not).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := consume(ctx, ns, "nope"); err == nil || !strings.Contains(err.Error(), ns+"/nope") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("consume of a missing trigger: %v", err)
	}
	trigger(other, "orders", nil)
	if _, err := consume(ctx, other, "orders"); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("the connector identity of %s read a trigger of %s: %v", ns, other, err)
	}
	trigger(ns, "notopic", func(tr *v1.MessageQueueTrigger) { tr.Spec.Topic = "" })
	if _, err := consume(ctx, ns, "notopic"); err == nil || !strings.Contains(err.Error(), "spec.topic") {
		t.Errorf("consume of a trigger without a topic: %v, want an error naming spec.topic", err)
	}

	if _, err := consume(ctx, ns, "notopic", "--secret-dir", filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "spec.secret") {
		t.Errorf("consume with a missing --secret-dir: %v, want an error naming spec.secret", err)
	}

	// Delivered: publish, see the call and the answer on respTopic. The
	// NATS URL is only in the trigger's Secret, which the connector reads
	// from the directory the kubelet mounts it in.
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, mqtrigger.MetaNATSServerURL), []byte(nsrv.URL()), 0o600); err != nil {
		t.Fatal(err)
	}
	trigger(ns, "orders", func(tr *v1.MessageQueueTrigger) {
		tr.Spec.Metadata, tr.Spec.Secret = nil, "nats-auth"
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = consume(runCtx, ns, "orders", "--secret-dir", secretDir)
		done <- err
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
			<-done
		}
	})
	stream := mqtrigger.StreamName("orders.new")
	kubetest.Eventually(t, 60*time.Second, func() string {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("mqt consume ended: %v\n%s", err, out)
		default:
		}
		if _, err := js.Stream(context.Background(), stream); err != nil {
			return "the connector made no stream " + stream + ": " + err.Error()
		}
		return ""
	})
	pubCtx, pubCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pubCancel()
	for _, m := range []string{"order-1", "order-2"} {
		if _, err := js.Publish(pubCtx, "orders.new", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"/fission-function/" + ns + "/hello order-1", "/fission-function/" + ns + "/hello order-2"}
	kubetest.Eventually(t, 60*time.Second, func() string {
		if got := fn.seen(); !slices.Equal(got, want) {
			return fmt.Sprintf("the router got %q, want %q", got, want)
		}
		return ""
	})
	cons, err := js.OrderedConsumer(pubCtx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"orders.done"}})
	if err != nil {
		t.Fatal(err)
	}
	var answers []string
	kubetest.Eventually(t, 30*time.Second, func() string {
		if m, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond)); err == nil {
			answers = append(answers, string(m.Data()))
		}
		if !slices.Equal(answers, []string{"done order-1", "done order-2"}) {
			return fmt.Sprintf("orders.done holds %q", answers)
		}
		return ""
	})

	stop()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("mqt consume after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mqt consume did not stop within 30s of its context ending")
	}
}

// The Kubernetes subcommands of mqt suggest the nearest name and flag.
func TestMQTRoleTypos(t *testing.T) {
	if _, err := execute("mqt", "consme", "x"); err == nil || !strings.Contains(err.Error(), `did you mean "consume"?`) {
		t.Errorf("mqt consme: %v", err)
	}
	if _, err := execute("mqt", "serv"); err == nil || !strings.Contains(err.Error(), `did you mean "serve"?`) {
		t.Errorf("mqt serv: %v", err)
	}
	if _, err := execute("mqt", "serve", "--connector-service-acount", "x"); err == nil || !strings.Contains(err.Error(), "did you mean --connector-service-account?") {
		t.Errorf("mqt serve --connector-service-acount: %v", err)
	}
	if _, err := execute("mqt", "consume"); err == nil || !strings.Contains(err.Error(), "accepts 1 arg") {
		t.Errorf("mqt consume without a name: %v", err)
	}
}
