package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// Config configures an Agent.
type Config struct {
	// NodeName is the Node it registers (default "isotope-node").
	NodeName string
	// Images says how to run each image; default DefaultImages().
	Images []ImageRule
	// Roles says what each program subcommand needs; default
	// IsotopeRoles().
	Roles map[string]Role
	// Layout is an OCI image layout (make images writes bin/images/oci).
	// A container whose image it holds runs from that image: unpacked
	// once per agent, its entrypoint found on the image's PATH inside it,
	// with the image's ENV; absolute paths of the image in arguments and
	// variables map into the unpacked files, and the directories its
	// user may write (/tmp, its home …) become the pod's own.
	Layout string
	// Programs maps a program path inside an image (argv[0]) to a local
	// executable; IsotopePrograms(bin) for Isotope's images. It runs the
	// images that Layout does not hold (each such fallback is logged and
	// listed by Fallbacks). Required without Layout.
	Programs map[string]string
	// WorkDir holds pod directories and container logs (default: a new
	// temporary directory, removed by Stop).
	WorkDir string
	// HostEnv names host environment variables every container inherits
	// (default PATH, HOME, TMPDIR, Go's GOCACHE, GOMODCACHE, GOPATH,
	// GOROOT, GOFLAGS, GOPROXY, GOTOOLCHAIN).
	HostEnv []string
	// ImageHostEnv names host variables that containers run from Layout
	// inherit (default GOCACHE, GOMODCACHE, GOPROXY): the stand-in for a
	// cache volume, so a builder pod's go reuses this machine's compiled
	// standard library. Nothing else of the host's environment (PATH,
	// HOME, GOROOT) reaches them.
	ImageHostEnv []string
	// Env is NAME=VALUE added to every container's environment before
	// the pod's own variables. Tests give pods ISOTOPE_KUBECONFIG here:
	// the stand-in for the service-account token a kubelet mounts, from
	// which a real pod reaches the kube-apiserver in-cluster.
	Env []string
	// ServiceAccountEnv, when set, gives NAME=VALUE added after Env for
	// the pods of one service account: the stand-in for each account's
	// own token (a kubeconfig acting as it), so pods of different
	// accounts get different rights.
	ServiceAccountEnv func(namespace, serviceAccount string) []string
	// Log receives the agent's log (default: discarded).
	Log io.Writer
	// LockDir holds the address locks shared by every agent on the
	// machine (default $TMPDIR/isotope-nodeagent-ips).
	LockDir string
}

var (
	defaultHostEnv      = []string{"PATH", "HOME", "TMPDIR", "GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"}
	defaultImageHostEnv = []string{"GOCACHE", "GOMODCACHE", "GOPROXY"}
)

// MountsEnv holds a container's mount paths and the directories behind
// them as a JSON object; it is wasmenv.MountsEnv (a test checks).
const MountsEnv = "ISOTOPE_NODEAGENT_MOUNTS"

// Agent is a running node agent. It implements virtual-kubelet's
// PodLifecycleHandler and PodNotifier for its pod controller.
type Agent struct {
	cfg     Config
	cs      kubernetes.Interface
	objs    objects
	ips     *ipPool
	store   *imageStore // nil without Config.Layout
	log     *slog.Logger
	tempDir bool

	cancel  context.CancelFunc
	done    sync.WaitGroup
	events  record.EventBroadcaster
	runErrs chan error

	mu        sync.Mutex
	pods      map[string]*podRun // namespace/name
	notify    func(*corev1.Pod)
	fallbacks map[string]bool // images run with Programs although Layout is set
}

// Start registers the node, starts the pod controller and returns once
// both are running: from then on pods scheduled to cfg.NodeName run.
func Start(ctx context.Context, rc *rest.Config, cfg Config) (*Agent, error) {
	if len(cfg.Programs) == 0 && cfg.Layout == "" {
		return nil, errors.New("node agent: neither Config.Layout nor Config.Programs: no image can run")
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "isotope-node"
	}
	if cfg.Images == nil {
		cfg.Images = DefaultImages()
	}
	if cfg.Roles == nil {
		cfg.Roles = IsotopeRoles()
	}
	if cfg.HostEnv == nil {
		cfg.HostEnv = defaultHostEnv
	}
	if cfg.ImageHostEnv == nil {
		cfg.ImageHostEnv = defaultImageHostEnv
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.LockDir == "" {
		cfg.LockDir = filepath.Join(os.TempDir(), "isotope-nodeagent-ips")
	}
	a := &Agent{cfg: cfg, pods: map[string]*podRun{}, fallbacks: map[string]bool{}, log: slog.New(slog.NewTextHandler(cfg.Log, nil)).With("node", cfg.NodeName)}
	if a.cfg.WorkDir == "" {
		d, err := os.MkdirTemp("", "isotope-nodeagent-")
		if err != nil {
			return nil, err
		}
		a.cfg.WorkDir, a.tempDir = d, true
	}
	if err := os.MkdirAll(filepath.Join(a.cfg.WorkDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	var err error
	if cfg.Layout != "" {
		if a.store, err = openImageStore(cfg.Layout, filepath.Join(a.cfg.WorkDir, "images")); err != nil {
			return nil, fmt.Errorf("node agent: %w", err)
		}
	}
	if a.ips, err = newIPPool(cfg.LockDir); err != nil {
		return nil, err
	}
	if a.cs, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, err
	}
	a.objs = objects{a.cs}

	runCtx, cancel := context.WithCancel(vklog.WithLogger(context.Background(), vkLogger{a.log}))
	a.cancel = cancel
	a.runErrs = make(chan error, 2)

	nc, err := node.NewNodeController(node.NaiveNodeProvider{}, a.nodeObject(), a.cs.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(a.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease), 40),
		node.WithNodeStatusUpdateInterval(10*time.Second))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node agent: %w", err)
	}
	a.goRun(func() error { return nc.Run(runCtx) })
	if err := a.waitReady(ctx, nc.Ready(), "node controller"); err != nil {
		a.Stop()
		return nil, err
	}

	podInformers := informers.NewSharedInformerFactoryWithOptions(a.cs, time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	all := informers.NewSharedInformerFactory(a.cs, time.Minute)
	a.events = record.NewBroadcaster()
	a.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.cs.CoreV1().Events("")})
	pc, err := node.NewPodController(node.PodControllerConfig{
		PodClient:                 a.cs.CoreV1(),
		PodInformer:               podInformers.Core().V1().Pods(),
		EventRecorder:             a.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "isotope-nodeagent", Host: cfg.NodeName}),
		Provider:                  a,
		ConfigMapInformer:         all.Core().V1().ConfigMaps(),
		SecretInformer:            all.Core().V1().Secrets(),
		ServiceInformer:           all.Core().V1().Services(),
		SkipDownwardAPIResolution: true, // we resolve env ourselves: status.podIP is ours to give
	})
	if err != nil {
		a.Stop()
		return nil, fmt.Errorf("node agent: %w", err)
	}
	podInformers.Start(runCtx.Done())
	all.Start(runCtx.Done())
	a.goRun(func() error { return pc.Run(runCtx, 4) })
	if err := a.waitReady(ctx, pc.Ready(), "pod controller"); err != nil {
		a.Stop()
		return nil, err
	}
	a.log.Info("node agent ready", "workDir", a.cfg.WorkDir)
	return a, nil
}

func (a *Agent) goRun(f func() error) {
	a.done.Add(1)
	go func() {
		defer a.done.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("controller stopped", "err", err)
			a.runErrs <- err
		}
	}()
}

func (a *Agent) waitReady(ctx context.Context, ready <-chan struct{}, what string) error {
	select {
	case <-ready:
		return nil
	case err := <-a.runErrs:
		return fmt.Errorf("node agent: %s: %w", what, err)
	case <-ctx.Done():
		return fmt.Errorf("node agent: %s not ready: %w", what, ctx.Err())
	}
}

// nodeObject is the Node the agent registers: Ready, roomy, no taints,
// reachable at 127.0.0.1.
func (a *Agent) nodeObject() *corev1.Node {
	name := a.cfg.NodeName
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": runtime.GOOS, "kubernetes.io/arch": runtime.GOARCH,
			"type": "virtual-kubelet", "isotope.dev/node-agent": "true",
		}},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "NodeAgentReady",
				Message: "isotope node agent (a kubelet test double) runs pods as local processes",
			}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
				KubeletVersion: "v1.37.2-isotope-nodeagent", ContainerRuntimeVersion: "nodeagent://processes",
			},
		},
	}
}

// Stop kills every pod's processes, stops the controllers, deletes the
// Node and (if the agent made it) the work directory.
func (a *Agent) Stop() {
	a.mu.Lock()
	pods := make([]*podRun, 0, len(a.pods))
	for k, p := range a.pods {
		pods = append(pods, p)
		delete(a.pods, k)
	}
	a.mu.Unlock()
	for _, p := range pods {
		p.stop()
		a.ips.release(p.ip)
	}
	a.cancel()
	a.done.Wait()
	if a.events != nil {
		a.events.Shutdown()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.cs.CoreV1().Nodes().Delete(ctx, a.cfg.NodeName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		a.log.Warn("delete node", "err", err)
	}
	if a.tempDir {
		_ = os.RemoveAll(a.cfg.WorkDir)
	}
}

// Fallbacks are the images that Config.Layout did not hold and the agent
// ran with Config.Programs instead (the host's binary), sorted.
func (a *Agent) Fallbacks() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.fallbacks))
	for im := range a.fallbacks {
		out = append(out, im)
	}
	sort.Strings(out)
	return out
}

// launchFor is how the agent runs image: from the layout when it holds
// it, else by an image rule with a program of this machine.
func (a *Agent) launchFor(image string) (launch, error) {
	if a.store != nil {
		l, ok, err := a.store.find(image)
		if err != nil || ok {
			return l, err
		}
	}
	l, ok := launch{}, false
	if len(a.cfg.Programs) > 0 {
		l, ok = ruleLaunch(a.cfg.Images, image)
	}
	if !ok {
		msg := fmt.Sprintf("node agent: image %q has no local equivalent (known repositories: %s)", image, knownRepos(a.cfg.Images))
		if a.store != nil {
			msg = fmt.Sprintf("node agent: image %q is not in the image layout %s (it holds %s)", image, a.cfg.Layout, strings.Join(a.store.layout.Refs(), ", "))
			if len(a.cfg.Programs) > 0 {
				msg += fmt.Sprintf(" and has no local equivalent (known repositories: %s)", knownRepos(a.cfg.Images))
			}
		}
		return launch{}, &errImage{msg}
	}
	if a.store != nil {
		a.mu.Lock()
		first := !a.fallbacks[image]
		a.fallbacks[image] = true
		a.mu.Unlock()
		if first {
			a.log.Warn("image not in the layout: running it with the host's program instead", "image", image, "layout", a.cfg.Layout)
		}
	}
	return l, nil
}

// NodeName is the name of the agent's Node.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// PIDs returns the process ids of a pod's running containers (none when
// the agent does not run the pod).
func (a *Agent) PIDs(namespace, name string) []int {
	a.mu.Lock()
	p := a.pods[namespace+"/"+name]
	a.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.pids()
}

// ContainerLog returns what a container of a pod has written so far
// (kept after the pod is deleted, until Stop).
func (a *Agent) ContainerLog(namespace, pod, container string) (string, error) {
	data, err := os.ReadFile(a.logPath(namespace, pod, container))
	return string(data), err
}

func (a *Agent) logPath(namespace, pod, container string) string {
	return filepath.Join(a.cfg.WorkDir, "logs", namespace+"_"+pod+"_"+container+".log")
}

func key(namespace, name string) string { return namespace + "/" + name }

// CreatePod starts a pod: an address, its volumes, its containers. What
// the agent cannot run is reported in the pod's status (the containers
// wait with reason ErrImagePull or CreateContainerConfigError and a
// message naming the cause); CreatePod fails only when no address is left.
func (a *Agent) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	a.mu.Lock()
	if _, ok := a.pods[k]; ok {
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	ip, err := a.ips.allocate()
	if err != nil {
		return err
	}
	dir := filepath.Join(a.cfg.WorkDir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		a.ips.release(ip)
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p := &podRun{
		ip: ip, dir: dir, policy: pod.Spec.RestartPolicy, pod: pod.DeepCopy(),
		startTime: metav1.Now(), ctx: runCtx, cancel: cancel,
		notify: a.push,
	}
	p.grace = func() time.Duration {
		p.mu.Lock()
		defer p.mu.Unlock()
		if g := p.pod.DeletionGracePeriodSeconds; g != nil {
			return time.Duration(*g) * time.Second
		}
		if g := p.pod.Spec.TerminationGracePeriodSeconds; g != nil {
			return time.Duration(*g) * time.Second
		}
		return 30 * time.Second
	}
	a.prepare(ctx, p)
	a.mu.Lock()
	a.pods[k] = p
	a.mu.Unlock()
	a.log.Info("pod created", "pod", k, "ip", ip)
	for _, c := range p.containers {
		if c.cmd != nil && p.podErr == "" {
			p.wg.Add(1)
			go p.supervise(runCtx, c)
		}
	}
	p.changed()
	return nil
}

// prepare resolves volumes and each container's command line and env;
// failures become waiting reasons.
func (a *Agent) prepare(ctx context.Context, p *podRun) {
	pod := p.pod
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		p.containers = append(p.containers, &containerRun{spec: *c, logPath: a.logPath(pod.Namespace, pod.Name, c.Name)})
	}
	fail := func(reason, msg string) {
		for _, c := range p.containers {
			if c.cmd == nil && c.waitingReason == "" {
				c.waitingReason, c.waitingMessage = reason, msg
			}
		}
	}
	if len(pod.Spec.InitContainers) > 0 {
		p.podErr = "node agent: init containers are not supported"
		fail("CreateContainerConfigError", p.podErr)
		return
	}
	vols, err := volumeDirs(ctx, a.objs, pod, p.dir)
	if err != nil {
		p.podErr = "node agent: " + err.Error()
		fail("CreateContainerConfigError", p.podErr)
		return
	}
	for _, c := range p.containers {
		env, order, err := a.objs.containerEnv(ctx, pod, &c.spec, p.ip)
		if err != nil {
			c.waitingReason, c.waitingMessage = "CreateContainerConfigError", "node agent: "+err.Error()
			continue
		}
		mounts, err := mountsOf(&c.spec, vols)
		if err != nil {
			c.waitingReason, c.waitingMessage = "CreateContainerConfigError", "node agent: "+err.Error()
			continue
		}
		l, err := a.launchFor(c.spec.Image)
		var cmd *commandLine
		place := podPlace{ip: p.ip, dir: p.dir, mounts: mounts, rootfs: l.rootfs}
		if err == nil {
			c.imageID = l.imageID
			cmd, err = resolveCommand(&c.spec, l, a.cfg.Programs, a.cfg.Roles, env, place)
		}
		if err != nil {
			reason := "CreateContainerConfigError"
			var ie *errImage
			if errors.As(err, &ie) {
				reason = "ErrImagePull"
			}
			c.waitingReason, c.waitingMessage = reason, err.Error()
			continue
		}
		c.cmd = cmd
		c.env = a.processEnv(pod, env, order, place)
	}
}

// processEnv is the process environment: the inherited host variables,
// the image's ENV (run from the layout), HOSTNAME, then the pod's
// variables (values rewritten like arguments; the last of a name wins).
func (a *Agent) processEnv(pod *corev1.Pod, env map[string]string, order []string, place podPlace) []string {
	var out []string
	inherit := a.cfg.HostEnv
	if place.rootfs != nil {
		inherit = a.cfg.ImageHostEnv
	}
	for _, name := range inherit {
		if v, ok := os.LookupEnv(name); ok {
			out = append(out, name+"="+v)
		}
	}
	if place.rootfs != nil {
		for _, kv := range place.rootfs.Config.Env {
			k, v, _ := strings.Cut(kv, "=")
			out = append(out, k+"="+rewriteEnv(v, place))
		}
		if tmp, ok := place.mounts["/tmp"]; ok {
			out = append(out, "TMPDIR="+tmp)
		}
	}
	out = append(out, "HOSTNAME="+pod.Name)
	// Where the pod's volumes really are, for programs that get a
	// container path in a request body (wasm-env's specialize filepath),
	// which no argument rewriting reaches.
	if len(place.mounts) > 0 {
		b, _ := json.Marshal(place.mounts)
		out = append(out, MountsEnv+"="+string(b))
	}
	out = append(out, a.cfg.Env...)
	if f := a.cfg.ServiceAccountEnv; f != nil {
		out = append(out, f(pod.Namespace, pod.Spec.ServiceAccountName)...)
	}
	for _, k := range order {
		out = append(out, k+"="+rewriteEnv(env[k], place))
	}
	return out
}

// UpdatePod takes the pod's new labels and annotations (relabelling a
// pool pod out of its Deployment is routine); containers keep running.
func (a *Agent) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	a.mu.Lock()
	p := a.pods[key(pod.Namespace, pod.Name)]
	a.mu.Unlock()
	if p == nil {
		return errdefs.NotFoundf("pod %s/%s is not on node %s", pod.Namespace, pod.Name, a.cfg.NodeName)
	}
	p.mu.Lock()
	p.pod.Labels, p.pod.Annotations = pod.Labels, pod.Annotations
	p.pod.DeletionTimestamp, p.pod.DeletionGracePeriodSeconds = pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds
	p.mu.Unlock()
	p.changed()
	return nil
}

// DeletePod stops the pod's containers (SIGTERM to each process group,
// SIGKILL after the grace period), reports them terminated and forgets
// the pod. It returns at once; the stopping happens behind it.
func (a *Agent) DeletePod(_ context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	a.mu.Lock()
	p := a.pods[k]
	if p != nil {
		delete(a.pods, k)
	}
	a.mu.Unlock()
	if p == nil {
		return errdefs.NotFoundf("pod %s is not on node %s", k, a.cfg.NodeName)
	}
	p.mu.Lock()
	p.pod.DeletionTimestamp, p.pod.DeletionGracePeriodSeconds = pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds
	p.mu.Unlock()
	go func() {
		p.stop()
		// Containers that never ran are terminated too: the pod is gone.
		p.mu.Lock()
		for _, c := range p.containers {
			if c.terminated == nil {
				c.terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", FinishedAt: metav1.Now()}
				c.waitingReason = ""
			}
		}
		p.mu.Unlock()
		final := p.snapshot()
		if final.Status.Phase != corev1.PodFailed {
			final.Status.Phase = corev1.PodSucceeded
		}
		a.push(final)
		a.ips.release(p.ip)
		_ = os.RemoveAll(p.dir)
		a.log.Info("pod deleted", "pod", k)
	}()
	return nil
}

// GetPod returns the pod with its current status.
func (a *Agent) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	a.mu.Lock()
	p := a.pods[key(namespace, name)]
	a.mu.Unlock()
	if p == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, a.cfg.NodeName)
	}
	return p.snapshot(), nil
}

// GetPodStatus returns the pod's current status.
func (a *Agent) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := a.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods returns every pod the agent runs.
func (a *Agent) GetPods(context.Context) ([]*corev1.Pod, error) {
	a.mu.Lock()
	ps := make([]*podRun, 0, len(a.pods))
	keys := make([]string, 0, len(a.pods))
	for k := range a.pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps = append(ps, a.pods[k])
	}
	a.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.snapshot())
	}
	return out, nil
}

// NotifyPods registers the pod controller's status callback.
func (a *Agent) NotifyPods(_ context.Context, f func(*corev1.Pod)) {
	a.mu.Lock()
	a.notify = f
	a.mu.Unlock()
}

func (a *Agent) push(pod *corev1.Pod) {
	a.mu.Lock()
	f := a.notify
	a.mu.Unlock()
	if f != nil {
		f(pod)
	}
}

// vkLogger adapts virtual-kubelet's logger interface to slog.
type vkLogger struct{ l *slog.Logger }

func (v vkLogger) Debug(args ...any)                        { v.l.Debug(fmt.Sprint(args...)) }
func (v vkLogger) Debugf(f string, args ...any)             { v.l.Debug(fmt.Sprintf(f, args...)) }
func (v vkLogger) Info(args ...any)                         { v.l.Info(fmt.Sprint(args...)) }
func (v vkLogger) Infof(f string, args ...any)              { v.l.Info(fmt.Sprintf(f, args...)) }
func (v vkLogger) Warn(args ...any)                         { v.l.Warn(fmt.Sprint(args...)) }
func (v vkLogger) Warnf(f string, args ...any)              { v.l.Warn(fmt.Sprintf(f, args...)) }
func (v vkLogger) Error(args ...any)                        { v.l.Error(fmt.Sprint(args...)) }
func (v vkLogger) Errorf(f string, args ...any)             { v.l.Error(fmt.Sprintf(f, args...)) }
func (v vkLogger) Fatal(args ...any)                        { v.l.Error(strings.TrimSpace("FATAL " + fmt.Sprint(args...))) }
func (v vkLogger) Fatalf(f string, args ...any)             { v.l.Error("FATAL " + fmt.Sprintf(f, args...)) }
func (v vkLogger) WithField(k string, val any) vklog.Logger { return vkLogger{v.l.With(k, val)} }
func (v vkLogger) WithError(err error) vklog.Logger         { return vkLogger{v.l.With("err", err)} }
func (v vkLogger) WithFields(f vklog.Fields) vklog.Logger {
	l := v.l
	for k, val := range f {
		l = l.With(k, val)
	}
	return vkLogger{l}
}
