// Package helm_test renders the Isotope chart (deploy/helm/isotope) with
// the real helm binary, built from its Go module by hack/helm/build.sh,
// and validates every object it renders twice: decoded strictly with
// client-go's scheme, and applied with a server-side dry run to the
// kube-apiserver of internal/testing/kubetest, so the apiserver's own schema
// validation (built-in kinds and Isotope's CRDs) and admission check them.
package helm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"isotope.dev/isotope/internal/testing/kubetest"
)

// HelmVersion is the helm that hack/helm builds (a test checks the two).
const HelmVersion = "v3.22.0"

const helmHint = "run make helm (builds helm " + HelmVersion + " from its Go module, a few minutes the first time)"

func TestMain(m *testing.M) { kubetest.Main(m) }

// helmBin is $ISOTOPE_HELM or where hack/helm/build.sh puts helm.
func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ISOTOPE_HELM")
	if bin == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(home, ".cache", "isotope", "helm", HelmVersion, "helm")
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		// Like the control plane, helm is built by make test-kube; a
		// run that switched the Kubernetes suites off skips, saying so.
		kubetest.SkipIfOff(t)
		t.Fatalf("helm binary missing at %s: %s", bin, helmHint)
	}
	return bin
}

func chartDir(t *testing.T) string {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", "helm", "isotope")
}

// helm runs the helm binary with an isolated home (no repositories, no
// plugins, nothing of the user's) and returns its stdout.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String()
}

// render is `helm template` of the chart with the CRDs included.
func render(t *testing.T, namespace string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "isotope", chartDir(t), "--namespace", namespace, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out := helm(t, args...)
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode rendered YAML: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered nothing")
	}
	return objs
}

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// decodeStrict decodes every object into its Go type, refusing unknown
// and duplicate fields, and returns the typed objects.
func decodeStrict(t *testing.T, objs []*unstructured.Unstructured) []runtime.Object {
	t.Helper()
	s := scheme(t)
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Strict: true})
	var out []runtime.Object
	for _, u := range objs {
		data, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := ser.Decode(data, nil, nil)
		if err != nil {
			t.Errorf("%s %s: strict decode: %v", u.GetKind(), u.GetName(), err)
			continue
		}
		out = append(out, obj)
	}
	return out
}

var roles = []string{"storagesvc", "router", "executor", "buildermgr", "timer", "mqtrigger"}

// The default values render the whole control plane: CRDs, and per role
// a ServiceAccount, ClusterRole + binding and Deployment; Services for
// the roles others call; the storage service's 8Gi ReadWriteOnce claim.
func TestChartDefaults(t *testing.T) {
	objs := render(t, "isotope-system")
	typed := decodeStrict(t, objs)

	byKind := map[string][]string{}
	fetcherIn := map[string][]string{} // kind → namespaces of isotope-fetcher
	for _, u := range objs {
		byKind[u.GetKind()] = append(byKind[u.GetKind()], u.GetName())
		ns := u.GetNamespace()
		if u.GetName() == "isotope-fetcher" && ns != "" {
			// The fetchers' identity lives where functions run.
			fetcherIn[u.GetKind()] = append(fetcherIn[u.GetKind()], ns)
			continue
		}
		if (u.GetName() == "isotope-mqt-connector" || u.GetName() == "isotope-mqtrigger-secrets") && ns != "" {
			// So does the message queue connectors' (TestChartMQTrigger).
			continue
		}
		if ns != "" && ns != "isotope-system" {
			t.Errorf("%s %s in namespace %q, want isotope-system", u.GetKind(), u.GetName(), ns)
		}
	}
	for _, kind := range []string{"ServiceAccount", "RoleBinding"} {
		if !slices.Equal(fetcherIn[kind], []string{"default"}) {
			t.Errorf("%s isotope-fetcher in namespaces %v, want [default] (functionNamespaces)", kind, fetcherIn[kind])
		}
	}
	if !slices.Contains(byKind["ClusterRole"], "isotope-fetcher") {
		t.Errorf("no ClusterRole isotope-fetcher")
	}
	if slices.Contains(byKind["ClusterRoleBinding"], "isotope-mqtrigger-secrets") {
		t.Errorf("ClusterRole isotope-mqtrigger-secrets is bound cluster-wide")
	}
	if slices.Contains(byKind["ClusterRoleBinding"], "isotope-fetcher") {
		// It may get secrets: only in the namespaces functions run in.
		t.Errorf("ClusterRole isotope-fetcher is bound cluster-wide")
	}
	if got := len(byKind["CustomResourceDefinition"]); got != 7 {
		t.Errorf("%d CRDs, want 7: %v", got, byKind["CustomResourceDefinition"])
	}
	for _, r := range roles {
		name := "isotope-" + r
		for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} {
			if !slices.Contains(byKind[kind], name) {
				t.Errorf("no %s %s (have %v)", kind, name, byKind[kind])
			}
		}
	}
	for _, svc := range []string{"isotope-storagesvc", "isotope-router"} {
		if !slices.Contains(byKind["Service"], svc) {
			t.Errorf("no Service %s", svc)
		}
	}

	for _, o := range typed {
		switch o := o.(type) {
		case *corev1.PersistentVolumeClaim:
			if q := o.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("8Gi")) != 0 {
				t.Errorf("PVC size %s, want 8Gi", q.String())
			}
			if !slices.Equal(o.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("PVC access modes %v", o.Spec.AccessModes)
			}
		case *appsv1.Deployment:
			checkDeployment(t, o)
		case *corev1.Service:
			if o.Name == "isotope-router" && o.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("router Service type %s, want ClusterIP", o.Spec.Type)
			}
		case *rbacv1.ClusterRole:
			checkLeastPrivilege(t, o.Name, o.Rules)
		case *rbacv1.Role:
			checkLeastPrivilege(t, o.Name, o.Rules)
		}
	}
}

// checkDeployment: one container running `isotope <role>` from the
// control-plane image, as its own ServiceAccount, non-root on a
// read-only root filesystem, with resources, the storage service on its
// claim.
func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	role := strings.TrimPrefix(d.Name, "isotope-")
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	sub := []string{role}
	switch role {
	case "timer":
		sub = []string{"timer", "serve"} // "timer" alone is the TimeTrigger command group
	case "mqtrigger":
		sub = []string{"mqt", "serve"} // "mqt" alone is the MessageQueueTrigger command group
	}
	if c.Image != "isotope/isotope:0.1.0" || len(c.Args) < len(sub) || !slices.Equal(c.Args[:len(sub)], sub) {
		t.Errorf("%s: image %s args %v, want isotope/isotope:0.1.0 running %s", d.Name, c.Image, c.Args, sub)
	}
	if spec.ServiceAccountName != d.Name {
		t.Errorf("%s: service account %q", d.Name, spec.ServiceAccountName)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v", d.Name, c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container security context %+v", d.Name, sc)
	}
	if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: pod does not require non-root", d.Name)
	}
	if role == "executor" || role == "buildermgr" {
		// Fetcher sidecars run from the fetcher image make images builds.
		if want := "--image=isotope/fetcher:0.1.0"; !slices.Contains(c.Args, want) {
			t.Errorf("%s: args %v, want %s", d.Name, c.Args, want)
		}
	}
	if role == "storagesvc" {
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("storagesvc strategy %s, want Recreate (one writer on a ReadWriteOnce volume)", d.Spec.Strategy.Type)
		}
		claim := false
		for _, v := range spec.Volumes {
			claim = claim || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "isotope-storagesvc")
		}
		if !claim || !slices.Contains(c.Args, "--dir=/archives") {
			t.Errorf("storagesvc: volumes %+v args %v, want the claim at --dir=/archives", spec.Volumes, c.Args)
		}
	}
}

// checkLeastPrivilege refuses wildcards, secrets and RBAC objects: no
// role may read credentials or grant itself more. The one exception is
// the fetcher, which gets (never lists or watches) the secrets a function
// names; its ClusterRole is bound only by RoleBindings in function
// namespaces (TestChartDefaults checks). So is the mqtrigger role's
// isotope-mqtrigger-secrets, which gets the Secret a trigger names.
func checkLeastPrivilege(t *testing.T, name string, rules []rbacv1.PolicyRule) {
	t.Helper()
	for _, r := range rules {
		if name == "isotope-fetcher" && slices.Equal(r.APIGroups, []string{""}) && slices.Equal(r.Verbs, []string{"get"}) &&
			slices.Equal(r.Resources, []string{"secrets", "configmaps"}) {
			continue
		}
		if name == "isotope-mqtrigger-secrets" && slices.Equal(r.APIGroups, []string{""}) && slices.Equal(r.Verbs, []string{"get"}) &&
			slices.Equal(r.Resources, []string{"secrets"}) {
			continue
		}
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
			if slices.Contains(list, "*") {
				t.Errorf("%s: wildcard in rule %+v", name, r)
			}
		}
		for _, res := range r.Resources {
			if res == "secrets" || strings.HasPrefix(res, "roles") || strings.HasPrefix(res, "clusterroles") || strings.HasSuffix(res, "bindings") {
				t.Errorf("%s: may touch %s", name, res)
			}
		}
		if slices.Contains(r.Verbs, "escalate") || slices.Contains(r.Verbs, "bind") || slices.Contains(r.Verbs, "impersonate") {
			t.Errorf("%s: privileged verbs %v", name, r.Verbs)
		}
	}
}

// Each role's ClusterRole grants exactly what the role needs.
func TestChartRBACPerRole(t *testing.T) {
	type grant struct{ group, resource, verb string }
	want := map[string][]grant{
		"isotope-storagesvc": {{"isotope.dev", "packages", "list"}},
		"isotope-router":     {{"isotope.dev", "httptriggers", "watch"}, {"isotope.dev", "functions", "get"}, {"", "pods", "patch"}, {"", "pods", "delete"}},
		"isotope-timer":      {{"isotope.dev", "timetriggers", "watch"}},
		"isotope-buildermgr": {{"apps", "deployments", "create"}, {"", "services", "delete"}, {"isotope.dev", "packages", "update"}, {"isotope.dev", "packages/status", "update"}, {"isotope.dev", "environments", "watch"}, {"isotope.dev", "functions", "list"}, {"isotope.dev", "functions", "update"}},
		"isotope-fetcher":    {{"isotope.dev", "packages", "get"}, {"", "secrets", "get"}, {"", "configmaps", "get"}},
		"isotope-executor":   {{"", "pods", "list"}, {"apps", "deployments", "create"}, {"", "services", "create"}, {"autoscaling", "horizontalpodautoscalers", "create"}, {"isotope.dev", "functions", "watch"}, {"isotope.dev", "packages", "get"}, {"isotope.dev", "environments", "get"}},
		"isotope-mqtrigger": {{"isotope.dev", "messagequeuetriggers", "watch"}, {"apps", "deployments", "create"}, {"apps", "deployments", "update"}, {"apps", "deployments", "delete"},
			{"keda.sh", "scaledobjects", "create"}, {"keda.sh", "scaledobjects", "update"}, {"keda.sh", "scaledobjects", "delete"}, {"", "events", "create"},
			{"keda.sh", "triggerauthentications", "create"}, {"keda.sh", "triggerauthentications", "update"}, {"keda.sh", "triggerauthentications", "delete"}},
		"isotope-mqtrigger-secrets": {{"", "secrets", "get"}},
		"isotope-mqt-connector":     {{"isotope.dev", "messagequeuetriggers", "get"}},
	}
	deny := map[string][]grant{
		"isotope-storagesvc": {{"isotope.dev", "packages", "update"}, {"", "pods", "get"}},
		"isotope-router":     {{"isotope.dev", "functions", "update"}, {"apps", "deployments", "create"}, {"", "services", "create"}, {"", "pods", "create"}},
		"isotope-timer":      {{"isotope.dev", "functions", "get"}, {"isotope.dev", "timetriggers", "update"}},
		"isotope-buildermgr": {{"", "pods", "delete"}, {"autoscaling", "horizontalpodautoscalers", "create"}, {"isotope.dev", "functions", "delete"}, {"isotope.dev", "functions", "create"}},
		"isotope-fetcher":    {{"isotope.dev", "packages", "list"}, {"isotope.dev", "packages", "update"}, {"isotope.dev", "functions", "get"}, {"", "secrets", "list"}, {"", "secrets", "watch"}, {"", "configmaps", "list"}},
		"isotope-executor":   {{"isotope.dev", "functions", "update"}, {"isotope.dev", "packages", "update"}, {"", "pods", "delete"}},
		"isotope-mqtrigger": {{"isotope.dev", "messagequeuetriggers", "update"}, {"isotope.dev", "functions", "get"}, {"", "pods", "create"},
			{"", "services", "create"}, {"autoscaling", "horizontalpodautoscalers", "create"}, {"", "secrets", "get"}},
		"isotope-mqtrigger-secrets": {{"", "secrets", "list"}, {"", "secrets", "watch"}, {"", "configmaps", "get"}},
		"isotope-mqt-connector": {{"isotope.dev", "messagequeuetriggers", "list"}, {"isotope.dev", "messagequeuetriggers", "update"},
			{"isotope.dev", "functions", "get"}, {"apps", "deployments", "get"}, {"", "secrets", "get"}},
	}
	allows := func(rules []rbacv1.PolicyRule, g grant) bool {
		for _, r := range rules {
			if slices.Contains(r.APIGroups, g.group) && slices.Contains(r.Resources, g.resource) && slices.Contains(r.Verbs, g.verb) {
				return true
			}
		}
		return false
	}
	check := func(set []string, builderNS bool) {
		for _, o := range decodeStrict(t, render(t, "isotope-system", set...)) {
			cr, ok := o.(*rbacv1.ClusterRole)
			if !ok {
				continue
			}
			for _, g := range want[cr.Name] {
				if builderNS && cr.Name == "isotope-buildermgr" && (g.resource == "deployments" || g.resource == "services") {
					if allows(cr.Rules, g) {
						t.Errorf("with builderNamespace, %s still may %s %s cluster-wide", cr.Name, g.verb, g.resource)
					}
					continue
				}
				if !allows(cr.Rules, g) {
					t.Errorf("%s may not %s %s.%s", cr.Name, g.verb, g.resource, g.group)
				}
			}
			for _, g := range deny[cr.Name] {
				if allows(cr.Rules, g) {
					t.Errorf("%s may %s %s.%s, which it does not need", cr.Name, g.verb, g.resource, g.group)
				}
			}
		}
	}
	check(nil, false)
	check([]string{"builderNamespace=isotope-builder"}, true)

	// Builder pods' fetchers need their identity where builders live.
	var fetcherNS []string
	for _, u := range render(t, "isotope-system", "builderNamespace=isotope-builder", "functionNamespaces={default,team-a}") {
		if u.GetKind() == "ServiceAccount" && u.GetName() == "isotope-fetcher" {
			fetcherNS = append(fetcherNS, u.GetNamespace())
		}
	}
	slices.Sort(fetcherNS)
	if want := []string{"default", "isotope-builder", "team-a"}; !slices.Equal(fetcherNS, want) {
		t.Errorf("isotope-fetcher ServiceAccounts in %v, want %v", fetcherNS, want)
	}
}

// dashboard.enabled adds the dashboard role (off by default, so the
// default render has none): its ServiceAccount, a ClusterRole that reads
// and writes only the Isotope objects its pages show and its forms make,
// a Deployment taking its token from the Secret (optional: without it the
// role runs locked) and a Service on the router's and storage service's
// in-cluster URLs' pattern.
func TestChartDashboard(t *testing.T) {
	for _, u := range render(t, "isotope-system") {
		if strings.Contains(u.GetName(), "dashboard") {
			t.Errorf("default values render %s %s; the dashboard is off by default", u.GetKind(), u.GetName())
		}
	}
	objs := render(t, "isotope-system", "dashboard.enabled=true", "dashboard.hosts={dash.example.com}",
		"dashboard.tokenSecret.name=my-dash", "dashboard.service.port=8080")
	kinds := map[string]bool{}
	type grant struct{ group, resource, verb string }
	allow := []grant{
		{"isotope.dev", "functions", "list"}, {"isotope.dev", "functions", "watch"}, {"isotope.dev", "functions", "create"},
		{"isotope.dev", "packages", "create"}, {"isotope.dev", "packages", "delete"}, {"isotope.dev", "packages/status", "update"},
		{"isotope.dev", "httptriggers", "create"}, {"isotope.dev", "environments", "list"}, {"isotope.dev", "timetriggers", "list"},
	}
	deny := []grant{
		{"isotope.dev", "functions", "delete"}, {"isotope.dev", "functions", "update"}, {"isotope.dev", "environments", "create"},
		{"isotope.dev", "timetriggers", "create"}, {"", "pods", "get"}, {"", "secrets", "get"}, {"apps", "deployments", "create"},
	}
	allows := func(rules []rbacv1.PolicyRule, g grant) bool {
		for _, r := range rules {
			if slices.Contains(r.APIGroups, g.group) && slices.Contains(r.Resources, g.resource) && slices.Contains(r.Verbs, g.verb) {
				return true
			}
		}
		return false
	}
	for _, o := range decodeStrict(t, objs) {
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			kinds["ServiceAccount/"+o.Name] = true
		case *rbacv1.ClusterRoleBinding:
			if o.Name == "isotope-dashboard" && o.Subjects[0].Name == "isotope-dashboard" {
				kinds["ClusterRoleBinding"] = true
			}
		case *rbacv1.ClusterRole:
			if o.Name != "isotope-dashboard" {
				continue
			}
			kinds["ClusterRole"] = true
			checkLeastPrivilege(t, o.Name, o.Rules)
			for _, g := range allow {
				if !allows(o.Rules, g) {
					t.Errorf("the dashboard may not %s %s.%s", g.verb, g.resource, g.group)
				}
			}
			for _, g := range deny {
				if allows(o.Rules, g) {
					t.Errorf("the dashboard may %s %s.%s, which it does not need", g.verb, g.resource, g.group)
				}
			}
		case *corev1.Service:
			if o.Name == "isotope-dashboard" {
				kinds["Service"] = true
				if o.Spec.Type != corev1.ServiceTypeClusterIP || o.Spec.Ports[0].Port != 8080 {
					t.Errorf("dashboard Service %s %+v, want ClusterIP on 8080", o.Spec.Type, o.Spec.Ports)
				}
			}
		case *appsv1.Deployment:
			if o.Name != "isotope-dashboard" {
				continue
			}
			kinds["Deployment"] = true
			checkDeployment(t, o)
			c := o.Spec.Template.Spec.Containers[0]
			for _, a := range []string{"--addr=:8889", "--router=http://isotope-router.isotope-system.svc",
				"--storage-url=http://isotope-storagesvc.isotope-system.svc", "--api-host=isotope-dashboard",
				"--api-host=isotope-dashboard.isotope-system.svc", "--api-host=dash.example.com"} {
				if !slices.Contains(c.Args, a) {
					t.Errorf("dashboard args %v, want %s", c.Args, a)
				}
			}
			token := false
			for _, e := range c.Env {
				if e.Name == "ISOTOPE_DASHBOARD_TOKEN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					r := e.ValueFrom.SecretKeyRef
					token = r.Name == "my-dash" && r.Key == "token" && r.Optional != nil && *r.Optional
				}
			}
			if !token {
				t.Errorf("dashboard env %+v, want ISOTOPE_DASHBOARD_TOKEN from Secret my-dash key token, optional", c.Env)
			}
		}
	}
	for _, k := range []string{"ServiceAccount/isotope-dashboard", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"} {
		if !kinds[k] {
			t.Errorf("dashboard.enabled rendered no %s", k)
		}
	}
}

// The message queue trigger role (on by default, mqtrigger.enabled):
// `isotope mqt serve` leader-elected in the control plane's namespace,
// giving connector pods the chart's image and the ServiceAccount
// isotope-mqt-connector, which exists in every function namespace and is
// bound there only (it reads its trigger by name, nothing else); the
// role itself may get Secrets only there (isotope-mqtrigger-secrets).
// Switched off, nothing of it is rendered.
func TestChartMQTrigger(t *testing.T) {
	found := map[string]bool{}
	for _, o := range decodeStrict(t, render(t, "isotope-system", "functionNamespaces={default,team-a}")) {
		switch o := o.(type) {
		case *appsv1.Deployment:
			if o.Name != "isotope-mqtrigger" {
				continue
			}
			found["Deployment"] = true
			args := o.Spec.Template.Spec.Containers[0].Args
			for _, a := range []string{"--router=http://isotope-router.isotope-system.svc", "--image=isotope/isotope:0.1.0",
				"--lease-namespace=isotope-system", "--connector-service-account=isotope-mqt-connector"} {
				if !slices.Contains(args, a) {
					t.Errorf("mqtrigger args %v, want %s", args, a)
				}
			}
		case *corev1.ServiceAccount:
			if o.Name == "isotope-mqt-connector" {
				found["ServiceAccount/"+o.Namespace] = true
			}
		case *rbacv1.RoleBinding:
			switch o.Name {
			case "isotope-mqt-connector":
				if o.RoleRef.Kind != "ClusterRole" || o.RoleRef.Name != "isotope-mqt-connector" || len(o.Subjects) != 1 ||
					o.Subjects[0].Name != "isotope-mqt-connector" || o.Subjects[0].Namespace != o.Namespace {
					t.Errorf("RoleBinding %s/%s: %+v %+v", o.Namespace, o.Name, o.RoleRef, o.Subjects)
				}
				found["RoleBinding/"+o.Namespace] = true
			case "isotope-mqtrigger-secrets":
				if o.RoleRef.Name != "isotope-mqtrigger-secrets" || len(o.Subjects) != 1 ||
					o.Subjects[0].Name != "isotope-mqtrigger" || o.Subjects[0].Namespace != "isotope-system" {
					t.Errorf("RoleBinding %s/%s: %+v %+v", o.Namespace, o.Name, o.RoleRef, o.Subjects)
				}
				found["secrets/"+o.Namespace] = true
			case "isotope-mqtrigger-leader":
				found["leader"] = o.Namespace == "isotope-system" && o.Subjects[0].Name == "isotope-mqtrigger"
			}
		case *rbacv1.ClusterRoleBinding:
			if o.Name == "isotope-mqt-connector" || o.Name == "isotope-mqtrigger-secrets" {
				t.Errorf("ClusterRole %s is bound cluster-wide", o.Name)
			}
		}
	}
	for _, k := range []string{"Deployment", "ServiceAccount/default", "ServiceAccount/team-a", "RoleBinding/default", "RoleBinding/team-a", "leader", "secrets/default", "secrets/team-a"} {
		if !found[k] {
			t.Errorf("mqtrigger: rendered no %s", k)
		}
	}
	for _, u := range render(t, "isotope-system", "mqtrigger.enabled=false") {
		if strings.Contains(u.GetName(), "mqt") {
			t.Errorf("mqtrigger.enabled=false renders %s %s", u.GetKind(), u.GetName())
		}
	}
}

// The chart's crds/ are deploy/crds, byte for byte.
func TestChartCRDsMatchDeploy(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Glob(filepath.Join(root, "deploy", "crds", "*.yaml"))
	if err != nil || len(src) == 0 {
		t.Fatalf("deploy/crds: %v %v", src, err)
	}
	got, _ := filepath.Glob(filepath.Join(chartDir(t), "crds", "*.yaml"))
	if len(got) != len(src) {
		t.Errorf("chart has %d CRDs, deploy/crds %d: cp deploy/crds/*.yaml deploy/helm/isotope/crds/", len(got), len(src))
	}
	for _, f := range src {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(chartDir(t), "crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("deploy/helm/isotope/crds/%s differs from deploy/crds (cp deploy/crds/*.yaml deploy/helm/isotope/crds/)", filepath.Base(f))
		}
	}
}

// helm lint passes, strict.
func TestChartLint(t *testing.T) {
	out := helm(t, "lint", "--strict", chartDir(t))
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint: %s", out)
	}
}

// Values change what they should: storage size and class, router
// Service type and node port, resources, images (also the fetcher image
// the executor and buildermgr give fetcher containers, with the
// release's tag), namespaces.
func TestChartValues(t *testing.T) {
	objs := render(t, "isotope-system",
		"storage.size=20Gi", "storage.storageClassName=fast", "router.service.type=NodePort", "router.service.nodePort=30080",
		"image.repository=registry.example/isotope", "image.tag=v9", "runtimeImages.fetcher=registry.example/fetcher", "resources.router.limits.memory=1Gi",
		"namespace=isotope-cp", "builderNamespace=isotope-builder")
	for _, o := range decodeStrict(t, objs) {
		switch o := o.(type) {
		case *corev1.PersistentVolumeClaim:
			if q := o.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "20Gi" || o.Spec.StorageClassName == nil || *o.Spec.StorageClassName != "fast" {
				t.Errorf("PVC %s class %v", q.String(), o.Spec.StorageClassName)
			}
		case *corev1.Service:
			if o.Name == "isotope-router" && (o.Spec.Type != corev1.ServiceTypeNodePort || o.Spec.Ports[0].NodePort != 30080) {
				t.Errorf("router Service %s %+v", o.Spec.Type, o.Spec.Ports)
			}
		case *appsv1.Deployment:
			c := o.Spec.Template.Spec.Containers[0]
			if c.Image != "registry.example/isotope:v9" || o.Namespace != "isotope-cp" {
				t.Errorf("%s: image %s namespace %s", o.Name, c.Image, o.Namespace)
			}
			if o.Name == "isotope-router" && c.Resources.Limits.Memory().String() != "1Gi" {
				t.Errorf("router memory limit %s", c.Resources.Limits.Memory())
			}
			if o.Name == "isotope-buildermgr" && !slices.Contains(c.Args, "--builder-namespace=isotope-builder") {
				t.Errorf("buildermgr args %v", c.Args)
			}
			if (o.Name == "isotope-executor" || o.Name == "isotope-buildermgr") && !slices.Contains(c.Args, "--image=registry.example/fetcher:v9") {
				t.Errorf("%s args %v, want the fetcher image with the release's tag", o.Name, c.Args)
			}
		case *rbacv1.Role:
			if strings.HasSuffix(o.Name, "-builders") && o.Namespace != "isotope-builder" {
				t.Errorf("Role %s in %s", o.Name, o.Namespace)
			}
		}
	}
}

// Every rendered object, for the default values and a variant, passes
// the kube-apiserver's validation: applied with a server-side dry run
// (nothing is stored), as `kubectl apply --server-side --dry-run=server`.
func TestChartAppliesToAPIServer(t *testing.T) {
	env := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := env.Namespace(t, "isotope-chart")
	builderNS := env.Namespace(t, "isotope-builder")
	variants := [][]string{
		nil,
		{"builderNamespace=" + builderNS, "router.service.type=LoadBalancer", "storage.storageClassName=standard", "internalAuth.secretName=isotope-internal",
			"dashboard.enabled=true", "dashboard.hosts={dash.example.com}"},
	}
	for i, set := range variants {
		objs := render(t, ns, set...)
		for _, u := range objs {
			err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
				client.DryRunAll, client.FieldOwner("isotope-chart-test"), client.ForceOwnership)
			if err != nil {
				t.Errorf("variant %d: %s %s/%s: server-side dry-run apply: %v", i, u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	}
	// The dry run stored nothing.
	var deps appsv1.DeploymentList
	if err := env.Client.List(ctx, &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 0 {
		t.Errorf("dry run stored %d Deployments", len(deps.Items))
	}
}

// The apiserver does refuse what is invalid: the dry-run check is not
// vacuous (an unknown field and a bad quantity in a rendered object).
func TestChartDryRunRefusesInvalid(t *testing.T) {
	env := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := env.Namespace(t, "isotope-chart-bad")
	var pvc *unstructured.Unstructured
	for _, u := range render(t, ns) {
		if u.GetKind() == "PersistentVolumeClaim" {
			pvc = u
		}
	}
	if pvc == nil {
		t.Fatal("no PVC rendered")
	}
	bad := pvc.DeepCopy()
	if err := unstructured.SetNestedField(bad.Object, "eight gigs", "spec", "resources", "requests", "storage"); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(bad), client.DryRunAll, client.FieldOwner("isotope-chart-test"))
	if err == nil {
		t.Error("a PVC asking for \"eight gigs\" passed the dry run")
	}
	bad = pvc.DeepCopy()
	if err := unstructured.SetNestedField(bad.Object, true, "spec", "notAField"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(bad), client.DryRunAll, client.FieldOwner("isotope-chart-test")); err == nil {
		t.Error("a PVC with spec.notAField passed the dry run")
	}
}

// The helm version here, in hack/helm/build.sh and in its go.mod agree.
func TestHelmVersionMatchesBuildScript(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, pattern string }{
		{"hack/helm/build.sh", `(?m)^HELM_VERSION=(\S+)$`},
		{"hack/helm/go.mod", `(?m)^\s*helm\.sh/helm/v3 (v\S+)`},
	} {
		data, err := os.ReadFile(filepath.Join(root, c.file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(c.pattern).FindSubmatch(data)
		if m == nil || string(m[1]) != HelmVersion {
			t.Errorf("%s: %s gives %q, want %s", c.file, c.pattern, fmt.Sprint(m), HelmVersion)
		}
	}
}

// deploy/manifests/isotope.yaml is the chart rendered with default values
// (for kubectl apply without helm), not an older rendering.
func TestManifestsMatchChart(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "manifests", "isotope.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasPrefix(line, "# ") || len(body) > 0 {
			body = append(body, line)
		}
	}
	want := helm(t, "template", "isotope", chartDir(t), "--namespace", "isotope-system", "--include-crds")
	if strings.Join(body, "") != want {
		t.Error("deploy/manifests/isotope.yaml differs from the chart: regenerate it with the command in its header")
	}
}
