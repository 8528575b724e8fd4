// Package kubetest runs Isotope's Kubernetes tests against a real control
// plane: controller-runtime's envtest starting the etcd and kube-apiserver
// that hack/kube-assets/build.sh builds from pinned Go modules, with
// Isotope's CRDs (deploy/crds) installed. Optionally the
// kube-controller-manager and kube-scheduler join it as processes
// (Env.StartControllers), so that Deployments become ReplicaSets and Pods
// and Pods get scheduled. There is no kubelet: Pods stay Pending until a
// node agent registers a node.
//
// Starting the control plane costs seconds, so a test binary shares one:
// its TestMain calls kubetest.Main(m), and each test calls Start(t) to
// get the shared Env (started on first use, stopped when Main returns).
// Tests isolate themselves by namespace (Env.Namespace).
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/netns"
)

// The control plane's pinned versions; hack/kube-assets/go.mod and
// build.sh pin the same (TestAssetVersionsMatchBuildScript checks).
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
)

// MissingAssetsHint is the failure message when the binaries are absent.
const MissingAssetsHint = "run make kube-assets (builds the control plane from Go modules, ~10 min the first time)"

// AssetsDir is where hack/kube-assets/build.sh puts the binaries:
// $ISOTOPE_KUBE_ASSETS, or ~/.cache/isotope/kube-assets/<k8s>-<etcd>.
func AssetsDir() string {
	if d := os.Getenv("ISOTOPE_KUBE_ASSETS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "isotope", "kube-assets", KubernetesVersion+"-"+EtcdVersion)
}

// CheckAssets returns an error naming every missing binary (and the
// hint) when the control plane has not been built; controllers says
// whether kube-controller-manager and kube-scheduler are needed too.
func CheckAssets(controllers bool) error {
	bins := []string{"etcd", "kube-apiserver"}
	if controllers {
		bins = append(bins, "kube-controller-manager", "kube-scheduler")
	}
	var missing []string
	for _, b := range bins {
		if fi, err := os.Stat(filepath.Join(AssetsDir(), b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("Kubernetes test binaries missing in %s (%s): %s", AssetsDir(), strings.Join(missing, ", "), MissingAssetsHint)
	}
	return nil
}

// RepoRoot returns the directory of the isotope.dev/isotope go.mod,
// found by walking up from the working directory (a package's directory
// under go test).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module isotope.dev/isotope\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: no isotope.dev/isotope go.mod above the working directory")
		}
		dir = parent
	}
}

// Env is a running control plane.
type Env struct {
	// Config authenticates as an admin (system:masters).
	Config *rest.Config
	// Scheme knows the built-in kinds, CRDs and Isotope's v1 kinds.
	Scheme *runtime.Scheme
	// Client is a controller-runtime client with Scheme.
	Client client.Client
	// Kubeconfig is the path of a kubeconfig file for Config, for
	// processes (kube-controller-manager, kube-scheduler, our roles).
	Kubeconfig string
	// Dir holds the kubeconfig and the controllers' logs.
	Dir string

	env *envtest.Environment

	compacted atomic.Int64

	ctrlOnce sync.Once
	ctrlErr  error
	ctrls    []*proc
}

var (
	mainCalled bool
	shared     struct {
		sync.Mutex
		env *Env
		err error
	}
)

// Main runs a test binary's tests and then stops the shared control
// plane (if a test started it). Call it from TestMain:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// Main also acts as the network shim when the binary is started as one
// (netns.ShimCommand): a package whose tests run an embedded server
// makes the server probe for network namespaces with its own executable,
// the test binary.
func Main(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == netns.ShimCommand {
		os.Exit(netns.ShimMain(os.Args[2:]))
	}
	mainCalled = true
	code := m.Run()
	shared.Lock()
	if shared.env != nil {
		if err := shared.env.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "kubetest: stop control plane:", err)
			if code == 0 {
				code = 1
			}
		}
		shared.env = nil
	}
	shared.Unlock()
	os.Exit(code)
}

// Start returns the test binary's shared control plane, starting it on
// first use. It fails the test (it does not skip) when the binaries have
// not been built, and when TestMain does not call Main (the control
// plane's processes would outlive the test binary).
func Start(t testing.TB) *Env {
	t.Helper()
	SkipIfOff(t)
	if !mainCalled {
		t.Fatal("kubetest: the package's TestMain must call kubetest.Main(m)")
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.env == nil && shared.err == nil {
		start := time.Now()
		shared.env, shared.err = startEnv()
		if shared.err == nil {
			t.Logf("kubetest: control plane (kube-apiserver %s, etcd %s) up in %v", KubernetesVersion, EtcdVersion, time.Since(start).Round(time.Millisecond))
		}
	}
	if shared.err != nil {
		t.Fatalf("kubetest: %v", shared.err)
	}
	return shared.env
}

// OffEnv, set to "off", skips every test that needs the control plane,
// saying so. `make test` sets it while the Kubernetes suites are not yet
// part of the default run (see docs/kubernetes.md); `make test-kube`
// never does.
const OffEnv = "ISOTOPE_KUBE_TESTS"

// SkipIfOff skips t when the Kubernetes suites are switched off.
func SkipIfOff(t testing.TB) {
	t.Helper()
	if os.Getenv(OffEnv) == "off" {
		t.Skipf("%s=off: the Kubernetes suites run with make test-kube", OffEnv)
	}
}

func startEnv() (*Env, error) {
	if err := CheckAssets(false); err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "isotope-kubetest-")
	if err != nil {
		return nil, err
	}
	assets := AssetsDir()
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "deploy", "crds")},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// Name the binaries explicitly: envtest would otherwise prefer
	// $KUBEBUILDER_ASSETS, which may hold another Kubernetes version.
	te.ControlPlane.GetAPIServer().Path = filepath.Join(assets, "kube-apiserver")
	te.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(assets, "etcd")}
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start envtest with %s: %w", assets, err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, te.KubeConfig, 0o600); err != nil {
		_ = te.Stop()
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Scheme: scheme, Client: c, Kubeconfig: kubeconfig, Dir: dir, env: te}, nil
}

func (e *Env) stop() error {
	var errs []error
	for i := len(e.ctrls) - 1; i >= 0; i-- {
		errs = append(errs, e.ctrls[i].stop())
	}
	errs = append(errs, e.env.Stop())
	err := errors.Join(errs...)
	if err == nil {
		_ = os.RemoveAll(e.Dir)
	}
	return err
}

// Namespace creates a namespace with a unique name starting with prefix
// and returns its name. Namespaces are not deleted afterwards: without
// a kube-controller-manager their deletion never completes, and the
// control plane lives only as long as the test binary.
func (e *Env) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace %s-*: %v", prefix, err)
	}
	return ns.Name
}
