package cli

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"isotope.dev/isotope/internal/testing/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// With --kubeconfig, isotope secret and configmap work on the cluster's
// core/v1 Secrets and ConfigMaps (what kubectl and the function pods'
// fetchers see), against a real apiserver; get prints a secret's values
// only with --show; a typo is refused.
func TestSecretAndConfigMapCommandsOnKubernetes(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "clisec")
	ctx := kubetest.Context(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := execute(append(args, "--kubeconfig", env.Kubeconfig, "-n", ns)...)
		if err != nil {
			t.Fatalf("isotope %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("secret", "create", "--name", "db", "--from-literal", "password=s3cret")
	var sec corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &sec); err != nil || string(sec.Data["password"]) != "s3cret" {
		t.Fatalf("core/v1 Secret after isotope secret create: %v %v", err, sec.Data)
	}
	if out := run("secret", "get", "--name", "db"); strings.Contains(out, "s3cret") || !strings.Contains(out, "6 bytes") {
		t.Errorf("secret get without --show:\n%s", out)
	}
	if out := run("secret", "get", "--name", "db", "--show"); !strings.Contains(out, "s3cret") {
		t.Errorf("secret get --show:\n%s", out)
	}
	if out := run("secret", "list"); !strings.Contains(out, "db") || strings.Contains(out, "s3cret") {
		t.Errorf("secret list:\n%s", out)
	}
	run("secret", "update", "--name", "db", "--from-literal", "user=app")
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &sec); err != nil || string(sec.Data["user"]) != "app" || string(sec.Data["password"]) != "s3cret" {
		t.Errorf("core/v1 Secret after update: %v %v", err, sec.Data)
	}

	run("configmap", "create", "--name", "app", "--from-literal", "mode=fast")
	var cm corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, &cm); err != nil || cm.Data["mode"] != "fast" {
		t.Fatalf("core/v1 ConfigMap after isotope configmap create: %v %v", err, cm.Data)
	}
	if out := run("configmap", "get", "--name", "app"); !strings.Contains(out, "fast") {
		t.Errorf("configmap get:\n%s", out)
	}
	run("configmap", "delete", "--name", "app")
	run("secret", "delete", "--name", "db")
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &sec); err == nil {
		t.Errorf("the Secret is still there after isotope secret delete")
	}

	if _, err := execute("secret", "gte", "--kubeconfig", env.Kubeconfig); err == nil || !strings.Contains(err.Error(), `did you mean "get"`) {
		t.Errorf("typo: %v", err)
	}
}
