package kubert

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	asv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/store"
)

// Config configures the Kubernetes executor: the Controller that keeps
// pool Deployments and newdeploy objects in step with the store, and the
// Runtime that hands the executor pods to serve functions with.
type Config struct {
	// Client talks to the kube-apiserver; its scheme must know core/v1,
	// apps/v1, autoscaling/v2 and Isotope's v1 kinds.
	Client client.Client
	// Store is where Environments, Functions and Packages are read.
	Store store.Store
	// IsotopeImage is the image with the isotope binary (fetcher and
	// wasm-env containers); default DefaultIsotopeImage, a placeholder.
	IsotopeImage string
	// StorageURL is the storage service fetchers download archives from.
	StorageURL string
	// FetcherEnv is added to fetcher containers (how they reach the
	// store and the storage service's token).
	FetcherEnv []corev1.EnvVar
	// ServiceAccount of function pods ("" = the namespace's default).
	ServiceAccount string
	// InstanceID stamps the objects and pods this executor manages
	// (Fission's executorInstanceId); default 8 random characters.
	InstanceID string
	// PollInterval is how often a wait for a ready pod looks again
	// (default 200ms).
	PollInterval time.Duration
	// ResyncInterval is how often every Environment and Function is
	// reconciled again, whatever the watches said (default 5m).
	ResyncInterval time.Duration
	// HTTPClient calls fetchers (default: 30s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Client == nil {
		return errors.New("kubert: Config.Client is nil")
	}
	if c.Store == nil {
		return errors.New("kubert: Config.Store is nil")
	}
	if c.IsotopeImage == "" {
		c.IsotopeImage = DefaultIsotopeImage
	}
	if c.InstanceID == "" {
		c.InstanceID = randomID(8)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = 5 * time.Minute
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func randomID(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// Controller keeps the cluster in step with the store: a pool
// Deployment per Environment version (poolmgr) and a Deployment,
// Service and HorizontalPodAutoscaler per newdeploy Function. It is
// level-triggered: every reconcile reads the store and the cluster and
// converges, so a restart or a missed event changes nothing. Only one
// Controller should act at a time (leader election, in the executor
// role).
type Controller struct {
	cfg   Config
	log   *slog.Logger
	ctrls []*controller.Controller
}

// NewController returns a Controller; call Run.
func NewController(cfg Config) (*Controller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("role", "executor-controller")}
	// Every ResyncInterval each controller reconciles every object of
	// its kind again, and the owners named by the pool and newdeploy
	// Deployments' labels, so objects left by an owner deleted while no
	// executor ran are found too.
	for _, cc := range []controller.Config{{
		Kind: v1.KindEnvironment, Name: "kubert-environments",
		Reconcile:  c.reconcileEnvironment,
		ResyncKeys: c.ownersOf(v1.ExecutorTypePoolmgr, LabelEnvironmentNamespace, LabelEnvironmentName),
	}, {
		Kind: v1.KindFunction, Name: "kubert-functions",
		Reconcile:  c.reconcileFunction,
		ResyncKeys: c.ownersOf(v1.ExecutorTypeNewdeploy, LabelFunctionNamespace, LabelFunctionName),
	}} {
		cc.Store, cc.ResyncInterval, cc.Logger = cfg.Store, cfg.ResyncInterval, c.log
		ctrl, err := controller.New(cc)
		if err != nil {
			return nil, err
		}
		c.ctrls = append(c.ctrls, ctrl)
	}
	return c, nil
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return controller.RunAll(ctx, c.ctrls...)
}

// ownersOf lists the Deployments of executor type et and returns their
// owners' keys, read from the labels nsLabel and nameLabel.
func (c *Controller) ownersOf(et v1.ExecutorType, nsLabel, nameLabel string) func(context.Context) ([]controller.Key, error) {
	return func(ctx context.Context) ([]controller.Key, error) {
		var deps appsv1.DeploymentList
		if err := c.cfg.Client.List(ctx, &deps, client.MatchingLabels{LabelExecutorType: string(et)}); err != nil {
			return nil, err
		}
		keys := make([]controller.Key, 0, len(deps.Items))
		for _, d := range deps.Items {
			keys = append(keys, controller.Key{Namespace: d.Labels[nsLabel], Name: d.Labels[nameLabel]})
		}
		return keys, nil
	}
}

// reconcileEnvironment keeps the environment key's pool in step with it.
func (c *Controller) reconcileEnvironment(ctx context.Context, key controller.Key) error {
	env, err := store.GetAs[*v1.Environment](ctx, c.cfg.Store, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if err != nil {
		env = nil
	}
	return c.reconcilePool(ctx, key.Namespace, key.Name, env)
}

// reconcileFunction keeps the function key's newdeploy objects in step
// with it.
func (c *Controller) reconcileFunction(ctx context.Context, key controller.Key) error {
	fn, err := store.GetAs[*v1.Function](ctx, c.cfg.Store, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if err != nil {
		fn = nil
	}
	return c.reconcileNewdeploy(ctx, key.Namespace, key.Name, fn)
}

// reconcilePool makes env's current pool Deployment exist and deletes
// its older versions' (or all, when env is nil: deleted).
func (c *Controller) reconcilePool(ctx context.Context, ns, name string, env *v1.Environment) error {
	keep := ""
	if env != nil {
		want := c.cfg.poolDeployment(env)
		keep = want.Name
		err := c.cfg.Client.Create(ctx, want)
		switch {
		case err == nil:
			c.log.Info("created pool", "namespace", ns, "deployment", want.Name, "replicas", *want.Spec.Replicas)
		case apierrors.IsAlreadyExists(err):
			// Same environment version: only the pool size may differ.
			var cur appsv1.Deployment
			if err := c.cfg.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur); err != nil {
				return err
			}
			if cur.Spec.Replicas == nil || *cur.Spec.Replicas != *want.Spec.Replicas {
				cur.Spec.Replicas = want.Spec.Replicas
				if err := c.cfg.Client.Update(ctx, &cur); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("create pool %s/%s: %w", ns, want.Name, err)
		}
	}
	var deps appsv1.DeploymentList
	err := c.cfg.Client.List(ctx, &deps, client.InNamespace(ns), client.MatchingLabels{
		LabelExecutorType: string(v1.ExecutorTypePoolmgr), LabelEnvironmentName: name, LabelEnvironmentNamespace: ns,
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := range deps.Items {
		if d := &deps.Items[i]; d.Name != keep {
			errs = append(errs, c.delete(ctx, d))
		}
	}
	return errors.Join(errs...)
}

// reconcileNewdeploy makes fn's Deployment, Service and HPA match its
// spec, or deletes them when fn is gone or no longer newdeploy.
func (c *Controller) reconcileNewdeploy(ctx context.Context, ns, name string, fn *v1.Function) error {
	keep := ""
	if fn != nil && fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType == v1.ExecutorTypeNewdeploy {
		env, pkg, err := c.functionDeps(ctx, fn)
		if err != nil {
			// Retried on the next event or resync; nothing to delete.
			c.log.Warn("newdeploy function not ready", "namespace", ns, "function", name, "err", err)
			return nil
		}
		dep, svc, hpa := c.cfg.newdeployObjects(fn, env, pkg)
		keep = dep.Name
		for _, o := range []client.Object{svc, dep, hpa} {
			if err := c.apply(ctx, o); err != nil {
				return err
			}
		}
	}
	sel := client.MatchingLabels{LabelExecutorType: string(v1.ExecutorTypeNewdeploy), LabelFunctionName: name, LabelFunctionNamespace: ns}
	var errs []error
	var deps appsv1.DeploymentList
	var svcs corev1.ServiceList
	var hpas asv2.HorizontalPodAutoscalerList
	for _, l := range []client.ObjectList{&deps, &svcs, &hpas} {
		if err := c.cfg.Client.List(ctx, l, client.InNamespace(ns), sel); err != nil {
			return err
		}
	}
	for i := range hpas.Items {
		if hpas.Items[i].Name != keep {
			errs = append(errs, c.delete(ctx, &hpas.Items[i]))
		}
	}
	for i := range svcs.Items {
		if svcs.Items[i].Name != keep {
			errs = append(errs, c.delete(ctx, &svcs.Items[i]))
		}
	}
	for i := range deps.Items {
		if deps.Items[i].Name != keep {
			errs = append(errs, c.delete(ctx, &deps.Items[i]))
		}
	}
	return errors.Join(errs...)
}

// functionDeps reads the environment and package fn names.
func (c *Config) functionDepsOf(ctx context.Context, fn *v1.Function) (*v1.Environment, *v1.Package, error) {
	envNs := orDefault(fn.Spec.Environment.Namespace, fn.Namespace)
	env, err := store.GetAs[*v1.Environment](ctx, c.Store, envNs, fn.Spec.Environment.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("environment %s/%s: %w", envNs, fn.Spec.Environment.Name, err)
	}
	ref := fn.Spec.Package.PackageRef
	pkgNs := orDefault(ref.Namespace, fn.Namespace)
	pkg, err := store.GetAs[*v1.Package](ctx, c.Store, pkgNs, ref.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s/%s: %w", pkgNs, ref.Name, err)
	}
	return env, pkg, nil
}

func (c *Controller) functionDeps(ctx context.Context, fn *v1.Function) (*v1.Environment, *v1.Package, error) {
	return c.cfg.functionDepsOf(ctx, fn)
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	if def != "" {
		return def
	}
	return v1.DefaultNamespace
}

// apply creates want, or updates the existing object when its spec hash
// differs. A Deployment's replicas are left alone on update: the HPA and
// the idle scaler own them.
func (c *Controller) apply(ctx context.Context, want client.Object) error {
	err := c.cfg.Client.Create(ctx, want)
	if err == nil {
		c.log.Info("created", "kind", fmt.Sprintf("%T", want), "namespace", want.GetNamespace(), "name", want.GetName())
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s/%s: %w", want.GetNamespace(), want.GetName(), err)
	}
	cur := want.DeepCopyObject().(client.Object)
	if err := c.cfg.Client.Get(ctx, client.ObjectKeyFromObject(want), cur); err != nil {
		return err
	}
	if cur.GetAnnotations()[AnnotationSpecHash] == want.GetAnnotations()[AnnotationSpecHash] {
		return nil
	}
	switch w := want.(type) {
	case *appsv1.Deployment:
		d := cur.(*appsv1.Deployment)
		d.Labels, d.Annotations = w.Labels, w.Annotations
		d.Spec.Template, d.Spec.Strategy = w.Spec.Template, w.Spec.Strategy
	case *corev1.Service:
		s := cur.(*corev1.Service)
		s.Labels, s.Annotations = w.Labels, w.Annotations
		s.Spec.Ports, s.Spec.Selector = w.Spec.Ports, w.Spec.Selector
	case *asv2.HorizontalPodAutoscaler:
		h := cur.(*asv2.HorizontalPodAutoscaler)
		h.Labels, h.Annotations = w.Labels, w.Annotations
		h.Spec = w.Spec
	}
	if err := c.cfg.Client.Update(ctx, cur); err != nil {
		return fmt.Errorf("update %s/%s: %w", want.GetNamespace(), want.GetName(), err)
	}
	c.log.Info("updated", "kind", fmt.Sprintf("%T", want), "namespace", want.GetNamespace(), "name", want.GetName())
	return nil
}

func (c *Controller) delete(ctx context.Context, obj client.Object) error {
	err := c.cfg.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	c.log.Info("deleted", "kind", strings.TrimPrefix(fmt.Sprintf("%T", obj), "*"), "namespace", obj.GetNamespace(), "name", obj.GetName())
	return nil
}
