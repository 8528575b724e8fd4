// Package kubert is the executor's Kubernetes runtime: function
// instances are pods, reached at their pod IP (there is no kube-proxy
// or cluster DNS in the picture, as in Fission 1.26's EndpointSlice
// routing).
//
// Two parts, after Fission's poolmgr and newdeploy:
//   - Controller keeps the cluster in step with the store: a pool
//     Deployment of generic pods per Environment version, and a
//     Deployment + Service + HorizontalPodAutoscaler per newdeploy
//     Function, with Fission's names, labels and owner references.
//   - Runtime implements instance.Runtime for the executor's strategies.
//     A poolmgr instance is a pool pod taken out of its pool (relabelled
//     managed=false, so the ReplicaSet starts a replacement) and
//     specialized through its fetcher; a newdeploy instance is a ready
//     pod of the function's own Deployment, which specialized itself at
//     start. Requests are proxied to podIP:8888.
//
// See docs/decisions/0006-kubernetes-controllers.md.
package kubert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/kubepod"
	"isotope.dev/isotope/internal/tracing"
)

// Runtime makes instances of functions out of pods. Start is cheap (an
// unbound instance); Specialize, which knows the function and so its
// executor type, takes or finds the pod.
type Runtime struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// inUse counts newdeploy instances per pod name, so that instances
	// spread over a function's pods.
	inUse map[string]int
	// live counts newdeploy instances per function UID; the last one
	// closed scales the function's Deployment down to MinScale.
	live map[types.UID]int
}

var _ instance.Runtime = (*Runtime)(nil)

// NewRuntime returns the Kubernetes runtime.
func NewRuntime(cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Runtime{cfg: cfg, log: cfg.Logger.With("runtime", "kubernetes"), inUse: map[string]int{}, live: map[types.UID]int{}}, nil
}

// Name implements instance.Runtime.
func (r *Runtime) Name() string { return "kubernetes" }

// ReadsConfig implements instance.ConfigReader: a pod's fetcher reads
// the function's secrets and config maps into the pod's /secrets and
// /configs volumes, so the router (which runs this runtime) needs no
// access to them.
func (r *Runtime) ReadsConfig() bool { return true }

// Pooled implements instance.Runtime: false, because the warm pool is
// the pool Deployment itself; the executor must not keep a second pool
// of pods it took out of it.
func (r *Runtime) Pooled() bool { return false }

// Start implements instance.Runtime. It returns an instance bound to no
// pod yet: which pod depends on the function's executor type, known at
// Specialize.
func (r *Runtime) Start(ctx context.Context, env *v1.Environment) (instance.Instance, error) {
	return &podInstance{rt: r, env: env}, nil
}

// podInstance is one pod serving one function.
type podInstance struct {
	rt  *Runtime
	env *v1.Environment

	mu       sync.Mutex
	pod      *corev1.Pod
	addr     string // podIP:8888
	poolmgr  bool
	fnUID    types.UID
	fn       *v1.Function
	proxy    *httputil.ReverseProxy
	dead     atomic.Bool
	closed   bool
	closeErr error
}

// Specialize implements instance.Instance.
func (p *podInstance) Specialize(ctx context.Context, fn instance.Function) error {
	if fn.Fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType == v1.ExecutorTypeNewdeploy {
		return p.bindNewdeploy(ctx, fn)
	}
	return p.specializePoolPod(ctx, fn)
}

// specializePoolPod is poolmgr's cold path (Fission gp.go getFuncSvc):
// take a ready pod of the environment's pool by relabelling it out of
// the pool's selector, then POST the fetcher's /specialize.
func (p *podInstance) specializePoolPod(ctx context.Context, fn instance.Function) error {
	r := p.rt
	pod, err := r.TakePoolPod(ctx, fn.Env, fn.Fn)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.pod, p.poolmgr, p.fnUID, p.fn = pod, true, fn.Fn.UID, fn.Fn
	p.mu.Unlock()
	if err := r.specializePod(ctx, pod, fn); err != nil {
		// A pod that failed to specialize is not reused (Fission deletes it).
		return err
	}
	addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(RuntimePort))
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		AnnotationSvcHost:                 addr,
		AnnotationFunctionResourceVersion: fn.Fn.ResourceVersion,
	}}})
	if err := r.cfg.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		r.log.Warn("annotate specialized pod", "pod", pod.Name, "err", err)
	}
	p.bind(addr)
	return nil
}

// TakePoolPod waits (bounded by ctx) for a ready generic pod of env's
// pool and takes it for fn: the pod is relabelled managed=false with the
// function's labels (and this executor's instance ID), under the pod's
// resourceVersion so two executors never take the same pod. The pool's
// ReplicaSet no longer selects it and starts a replacement.
func (r *Runtime) TakePoolPod(ctx context.Context, env *v1.Environment, fn *v1.Function) (*corev1.Pod, error) {
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	last := "no pod in the pool yet"
	for {
		var pods corev1.PodList
		err := r.cfg.Client.List(ctx, &pods, client.InNamespace(env.Namespace), client.MatchingLabels(poolSelector(env)))
		if err != nil {
			last = err.Error()
		}
		ready := readyPods(pods.Items)
		rand.Shuffle(len(ready), func(i, j int) { ready[i], ready[j] = ready[j], ready[i] })
		for _, pod := range ready {
			taken, err := r.relabel(ctx, pod, fn)
			if err == nil {
				return taken, nil
			}
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				last = err.Error()
			}
		}
		if len(pods.Items) > 0 && len(ready) == 0 {
			last = fmt.Sprintf("%d pool pods, none ready", len(pods.Items))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no ready pod in the pool of environment %s/%s: %w (%s)", env.Namespace, env.Name, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// relabel takes pod for fn with an optimistic-locked merge patch.
func (r *Runtime) relabel(ctx context.Context, pod *corev1.Pod, fn *v1.Function) (*corev1.Pod, error) {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": pod.ResourceVersion,
		"labels": map[string]string{
			LabelManaged:           "false",
			LabelFunctionName:      fn.Name,
			LabelFunctionNamespace: fn.Namespace,
			LabelFunctionUID:       string(fn.UID),
		},
		"annotations": map[string]string{AnnotationExecutorInstanceID: r.cfg.InstanceID},
	}})
	taken := pod.DeepCopy()
	if err := r.cfg.Client.Patch(ctx, taken, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, err
	}
	if taken.Labels[LabelManaged] != "false" || taken.Labels[LabelFunctionUID] != string(fn.UID) {
		return nil, apierrors.NewConflict(corev1.Resource("pods"), pod.Name, errors.New("relabel raced"))
	}
	r.log.Info("took pool pod", "pod", pod.Name, "function", fn.Namespace+"/"+fn.Name)
	return taken, nil
}

// specializePod posts Fission's FunctionSpecializeRequest to the pod's
// fetcher, which fetches the deploy archive and loads it into the
// runtime container.
func (r *Runtime) specializePod(ctx context.Context, pod *corev1.Pod, fn instance.Function) error {
	body, err := json.Marshal(r.cfg.specializeRequest(fn.Fn, fn.Env, fn.Pkg))
	if err != nil {
		return err
	}
	u := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(FetcherPort)) + "/specialize"
	var lastErr error
	// The fetcher may not listen yet right after Ready: retry dial
	// errors (Fission: 20 attempts, linear 100ms steps).
	for attempt := 0; attempt < 20; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytesReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		tracing.Inject(ctx, req.Header)
		resp, err := r.cfg.HTTPClient.Do(req)
		if err == nil {
			msg := readSome(resp)
			if resp.StatusCode/100 == 2 {
				return nil
			}
			return fmt.Errorf("specialize pod %s: fetcher answered %s: %s", pod.Name, resp.Status, msg)
		}
		lastErr = err
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return fmt.Errorf("specialize pod %s: %w", pod.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("specialize pod %s: %w (last: %v)", pod.Name, ctx.Err(), lastErr)
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return fmt.Errorf("specialize pod %s: fetcher unreachable: %w", pod.Name, lastErr)
}

// bindNewdeploy makes the instance a ready pod of fn's own Deployment,
// scaling it up first if the idle scaler took it to zero. The pod
// specialized itself at start (fetcher -specialize-on-startup).
func (p *podInstance) bindNewdeploy(ctx context.Context, fn instance.Function) error {
	r := p.rt
	name := NewdeployName(fn.Fn)
	var dep appsv1.Deployment
	if err := r.cfg.Client.Get(ctx, types.NamespacedName{Namespace: fn.Fn.Namespace, Name: name}, &dep); err != nil {
		return fmt.Errorf("deployment %s/%s of function %s: %w", fn.Fn.Namespace, name, fn.Fn.Name, err)
	}
	if dep.Spec.Replicas != nil && *dep.Spec.Replicas == 0 {
		if err := r.scale(ctx, &dep, newdeployReplicas(fn.Fn)); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.live[fn.Fn.UID]++
	r.mu.Unlock()
	p.mu.Lock()
	p.fnUID, p.fn = fn.Fn.UID, fn.Fn
	p.mu.Unlock()

	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		var pods corev1.PodList
		if err := r.cfg.Client.List(ctx, &pods, client.InNamespace(fn.Fn.Namespace), client.MatchingLabels(newdeploySelector(fn.Fn))); err == nil {
			if pod := r.leastUsed(readyPods(pods.Items)); pod != nil {
				p.mu.Lock()
				p.pod = pod
				p.mu.Unlock()
				p.bind(net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(RuntimePort)))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no ready pod of %s/%s: %w", fn.Fn.Namespace, name, ctx.Err())
		case <-t.C:
		}
	}
}

// leastUsed picks the ready pod with the fewest instances and counts
// one more for it.
func (r *Runtime) leastUsed(pods []*corev1.Pod) *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	var best *corev1.Pod
	for _, p := range pods {
		if best == nil || r.inUse[p.Name] < r.inUse[best.Name] {
			best = p
		}
	}
	if best != nil {
		r.inUse[best.Name]++
	}
	return best
}

func (r *Runtime) scale(ctx context.Context, dep *appsv1.Deployment, n int32) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"replicas": n}})
	if err := r.cfg.Client.Patch(ctx, dep, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("scale %s/%s to %d: %w", dep.Namespace, dep.Name, n, err)
	}
	r.log.Info("scaled", "deployment", dep.Namespace+"/"+dep.Name, "replicas", n)
	return nil
}

func (p *podInstance) bind(addr string) {
	target := &url.URL{Scheme: "http", Host: addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() == nil {
				p.dead.Store(true)
			}
			http.Error(w, "function pod unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.mu.Lock()
	p.addr, p.proxy = addr, proxy
	p.mu.Unlock()
}

// Addr is the pod address requests go to (podIP:8888), "" before
// Specialize.
func (p *podInstance) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// ServeHTTP implements instance.Instance: a reverse proxy to the pod.
func (p *podInstance) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p.mu.Lock()
	proxy := p.proxy
	p.mu.Unlock()
	if proxy == nil {
		http.Error(w, "instance not specialized", http.StatusServiceUnavailable)
		return
	}
	if tracing.Enabled() {
		tracing.Call(w, req, "pod.call", trace.SpanKindClient, []attribute.KeyValue{
			tracing.KeyRuntime.String("kubernetes"), tracing.KeyServerAddress.String(p.Addr()),
		}, proxy.ServeHTTP)
		return
	}
	proxy.ServeHTTP(w, req)
}

// Alive implements instance.Instance.
func (p *podInstance) Alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && !p.dead.Load()
}

// Close implements instance.Instance. A poolmgr pod is deleted (it
// belongs to its function now; the pool already replaced it). A
// newdeploy instance lets go of its pod; the last one of a function
// scales its Deployment down to MinScale (Fission's idle reaper).
func (p *podInstance) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.closeErr
	}
	p.closed = true
	pod, poolmgr, fn := p.pod, p.poolmgr, p.fn
	p.mu.Unlock()
	r := p.rt
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	switch {
	case poolmgr && pod != nil:
		err = r.cfg.Client.Delete(ctx, pod)
		if apierrors.IsNotFound(err) {
			err = nil
		}
	case !poolmgr && fn != nil:
		r.mu.Lock()
		if pod != nil {
			if r.inUse[pod.Name]--; r.inUse[pod.Name] <= 0 {
				delete(r.inUse, pod.Name)
			}
		}
		r.live[fn.UID]--
		last := r.live[fn.UID] <= 0
		if last {
			delete(r.live, fn.UID)
		}
		r.mu.Unlock()
		if last {
			var dep appsv1.Deployment
			gerr := r.cfg.Client.Get(ctx, types.NamespacedName{Namespace: fn.Namespace, Name: NewdeployName(fn)}, &dep)
			min := int32(max(fn.Spec.InvokeStrategy.ExecutionStrategy.MinScale, 0))
			if gerr == nil && (dep.Spec.Replicas == nil || *dep.Spec.Replicas > min) {
				err = r.scale(ctx, &dep, min)
			}
		}
	}
	p.mu.Lock()
	p.closeErr = err
	p.mu.Unlock()
	return err
}

// readyPods returns the pods that are Running, Ready, not being deleted
// and have an IP.
func readyPods(pods []corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range pods {
		if kubepod.Ready(&pods[i]) {
			out = append(out, &pods[i])
		}
	}
	return out
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// readSome reads and closes resp's body, keeping at most 4 KiB of it.
func readSome(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.TrimSpace(string(b))
}
