package buildermgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/kubepod"
	"isotope.dev/isotope/internal/tracing"
)

// Fission's builder labels (pkg/buildermgr/envwatcher.go): the builder
// Deployment, its Service and its pods carry all four.
const (
	LabelEnvName            = "envName"
	LabelEnvNamespace       = "envNamespace"
	LabelEnvResourceVersion = "envResourceVersion"
	LabelOwner              = "owner"
	OwnerBuildermgr         = "buildermgr"
)

// Ports of a builder pod, as in Fission.
const (
	FetcherPort = 8000
	BuilderPort = 8001
)

// DefaultIsotopeImage is a placeholder for the image that holds the
// isotope binary (fetcher containers, the built-in builder). No such
// image is published yet: set ISOTOPE_IMAGE (KubeConfig.IsotopeImage).
const DefaultIsotopeImage = "ghcr.io/isotope-dev/isotope:dev"

// KubeConfig configures KubeBuilders.
type KubeConfig struct {
	// Client talks to the kube-apiserver; its scheme must know core/v1,
	// apps/v1 and Isotope's v1 kinds (for owner references).
	Client client.Client
	// Namespace, when set, is where every builder goes (Fission's
	// fission-builder namespace). Kubernetes refuses owner references
	// across namespaces, so builders there carry none and are cleaned up
	// by Remove only. Empty (the default) puts each builder in its
	// environment's namespace, owned by the Environment.
	Namespace string
	// IsotopeImage is the image with the isotope binary, used for the
	// fetcher container (default DefaultIsotopeImage, a placeholder).
	IsotopeImage string
	// StorageURL is the storage service the fetcher downloads sources
	// from and uploads deploy archives to.
	StorageURL string
	// FetcherEnv is added to the fetcher container (e.g. ISOTOPE_URL and
	// ISOTOPE_TOKEN, which it reads packages with).
	FetcherEnv []corev1.EnvVar
	// ServiceAccount of builder pods ("" = the namespace's default).
	ServiceAccount string
	// PollInterval is how often Pod looks for a ready builder (default 250ms).
	PollInterval time.Duration
	// HTTPClient calls the pods' fetcher and builder (default: a client
	// without timeout; builds are bounded by their context).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// KubeBuilders is the Kubernetes Builders: for each environment with a
// builder, a Deployment (1 replica: builder + fetcher containers over a
// shared /packages emptyDir) and a Service, both named
// <env>-<envResourceVersion> with Fission's labels and ports. Builds talk
// to the pod directly at its IP (no kube-proxy or cluster DNS needed).
// It keeps no state of its own: every call reads the apiserver, so a
// restarted builder manager picks up where it was.
type KubeBuilders struct {
	cfg KubeConfig
	log *slog.Logger
}

var _ Builders = (*KubeBuilders)(nil)

// NewKubeBuilders returns the Kubernetes Builders.
func NewKubeBuilders(cfg KubeConfig) (*KubeBuilders, error) {
	if cfg.Client == nil {
		return nil, errors.New("buildermgr: KubeConfig.Client is nil")
	}
	if cfg.IsotopeImage == "" {
		cfg.IsotopeImage = DefaultIsotopeImage
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &KubeBuilders{cfg: cfg, log: cfg.Logger.With("role", "builders")}, nil
}

// BuilderName is Fission's name of an environment's builder Deployment
// and Service: <env>-<envResourceVersion>.
func BuilderName(env *v1.Environment) string {
	return env.Name + "-" + env.ResourceVersion
}

// BuilderLabels are the labels (and selector) of env's builder.
func BuilderLabels(env *v1.Environment) map[string]string {
	return map[string]string{
		LabelEnvName:            env.Name,
		LabelEnvNamespace:       env.Namespace,
		LabelEnvResourceVersion: env.ResourceVersion,
		LabelOwner:              OwnerBuildermgr,
	}
}

func (k *KubeBuilders) namespaceFor(envNamespace string) string {
	if k.cfg.Namespace != "" {
		return k.cfg.Namespace
	}
	return envNamespace
}

// Ensure implements Builders: builders of env's older versions are
// deleted, then the Service and Deployment of its current version are
// created if missing.
func (k *KubeBuilders) Ensure(ctx context.Context, env *v1.Environment) error {
	if err := k.deleteBuilders(ctx, env.Namespace, env.Name, env.ResourceVersion); err != nil {
		return err
	}
	ns := k.namespaceFor(env.Namespace)
	svc := k.service(env, ns)
	if err := k.cfg.Client.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create builder service %s/%s: %w", ns, svc.Name, err)
	}
	dep := k.deployment(env, ns)
	if err := k.cfg.Client.Create(ctx, dep); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create builder deployment %s/%s: %w", ns, dep.Name, err)
	}
	return nil
}

// Remove implements Builders. Owner references would have the garbage
// collector do the same once the Environment is gone; deleting
// explicitly does not depend on it (nor on the builders sharing the
// Environment's namespace).
func (k *KubeBuilders) Remove(ctx context.Context, namespace, name string) error {
	return k.deleteBuilders(ctx, namespace, name, "")
}

// deleteBuilders deletes the builder Deployments and Services of the
// environment namespace/name, except those of version keep.
func (k *KubeBuilders) deleteBuilders(ctx context.Context, envNamespace, envName, keep string) error {
	ns := k.namespaceFor(envNamespace)
	sel := client.MatchingLabels{LabelEnvName: envName, LabelEnvNamespace: envNamespace, LabelOwner: OwnerBuildermgr}
	var errs []error
	var deps appsv1.DeploymentList
	if err := k.cfg.Client.List(ctx, &deps, client.InNamespace(ns), sel); err != nil {
		return fmt.Errorf("list builder deployments of %s/%s: %w", envNamespace, envName, err)
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		if keep != "" && d.Labels[LabelEnvResourceVersion] == keep {
			continue
		}
		errs = append(errs, k.delete(ctx, d))
	}
	var svcs corev1.ServiceList
	if err := k.cfg.Client.List(ctx, &svcs, client.InNamespace(ns), sel); err != nil {
		return fmt.Errorf("list builder services of %s/%s: %w", envNamespace, envName, err)
	}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if keep != "" && s.Labels[LabelEnvResourceVersion] == keep {
			continue
		}
		errs = append(errs, k.delete(ctx, s))
	}
	return errors.Join(errs...)
}

func (k *KubeBuilders) delete(ctx context.Context, obj client.Object) error {
	err := k.cfg.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete builder %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	if err == nil {
		k.log.Info("deleted old builder", "namespace", obj.GetNamespace(), "name", obj.GetName())
	}
	return nil
}

// ownerRefs is the Environment as owner, when it is in the builder's
// namespace (Kubernetes forbids cross-namespace owners).
func (k *KubeBuilders) ownerRefs(env *v1.Environment, ns string) []metav1.OwnerReference {
	if env.Namespace != ns || env.UID == "" {
		return nil
	}
	return []metav1.OwnerReference{{
		APIVersion: v1.SchemeGroupVersion.String(),
		Kind:       v1.KindEnvironment,
		Name:       env.Name,
		UID:        env.UID,
	}}
}

func (k *KubeBuilders) service(env *v1.Environment, ns string) *corev1.Service {
	labels := BuilderLabels(env)
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: BuilderName(env), Namespace: ns, Labels: labels,
			OwnerReferences: k.ownerRefs(env, ns),
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "fetcher-port", Protocol: corev1.ProtocolTCP, Port: FetcherPort, TargetPort: intstr.FromInt32(FetcherPort)},
				{Name: "builder-port", Protocol: corev1.ProtocolTCP, Port: BuilderPort, TargetPort: intstr.FromInt32(BuilderPort)},
			},
		},
	}
}

// builderCommand is the builder container's command: Isotope's built-in
// builders run `isotope builder /packages`; any other image is taken to
// be a Fission builder image (`/builder /packages`). A command in the
// environment's builder.container wins.
func builderCommand(env *v1.Environment) []string {
	if c := env.Spec.Builder.Container; c != nil && len(c.Command) > 0 {
		return c.Command
	}
	if IsBuiltinBuilderImage(env.Spec.Builder.Image) {
		return []string{"isotope", "builder", "/packages"}
	}
	return []string{"/builder", "/packages"}
}

func (k *KubeBuilders) deployment(env *v1.Environment, ns string) *appsv1.Deployment {
	labels := BuilderLabels(env)
	one := int32(1)
	mounts := []corev1.VolumeMount{{Name: "packages", MountPath: "/packages"}}
	builder := corev1.Container{
		Name:    "builder",
		Image:   env.Spec.Builder.Image,
		Command: builderCommand(env),
		Ports:   []corev1.ContainerPort{{Name: "builder-port", ContainerPort: BuilderPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(BuilderPort)}},
			InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 30,
		},
		VolumeMounts: mounts,
	}
	if c := env.Spec.Builder.Container; c != nil {
		// builder.container is merged over the generated container (the
		// fields Isotope's environments use).
		if len(c.Args) > 0 {
			builder.Args = c.Args
		}
		builder.Env = append(builder.Env, c.Env...)
		if c.Resources.Limits != nil || c.Resources.Requests != nil {
			builder.Resources = c.Resources
		}
		builder.VolumeMounts = append(builder.VolumeMounts, c.VolumeMounts...)
	}
	fetcherC := corev1.Container{
		Name:    "fetcher",
		Image:   k.cfg.IsotopeImage,
		Command: []string{"isotope", "fetcher", "-secret-dir", "/secrets", "-cfgmap-dir", "/configs", "/packages"},
		Ports:   []corev1.ContainerPort{{Name: "fetcher-port", ContainerPort: FetcherPort, Protocol: corev1.ProtocolTCP}},
		Env:     k.cfg.FetcherEnv,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readiness-healthz", Port: intstr.FromInt32(FetcherPort)}},
			InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 30,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(FetcherPort)}},
			InitialDelaySeconds: 1, PeriodSeconds: 5,
		},
		VolumeMounts: mounts,
	}
	spec := corev1.PodSpec{
		Containers:         []corev1.Container{builder, fetcherC},
		ServiceAccountName: k.cfg.ServiceAccount,
		Volumes:            []corev1.Volume{{Name: "packages", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	if env.Spec.ImagePullSecret != "" {
		spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: env.Spec.ImagePullSecret}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: BuilderName(env), Namespace: ns, Labels: labels,
			OwnerReferences: k.ownerRefs(env, ns),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: env.Annotations},
				Spec:       spec,
			},
		},
	}
}

// Pod implements Builders: it polls until a pod of env's current builder
// is Running and Ready with an IP. A pod that cannot start for good
// (its image cannot be pulled or is invalid) fails at once.
func (k *KubeBuilders) Pod(ctx context.Context, env *v1.Environment) (BuildPod, error) {
	ns := k.namespaceFor(env.Namespace)
	t := time.NewTicker(k.cfg.PollInterval)
	defer t.Stop()
	last := "no builder pod yet"
	for {
		var pods corev1.PodList
		if err := k.cfg.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(BuilderLabels(env))); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w (%s)", ctx.Err(), last)
			}
			last = err.Error()
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if kubepod.Ready(p) {
				return &kubePod{ip: p.Status.PodIP, name: p.Name, http: k.cfg.HTTPClient, storageURL: k.cfg.StorageURL}, nil
			}
			if why := kubepod.Stuck(p); why != "" {
				return nil, fmt.Errorf("builder pod %s/%s cannot start: %s", p.Namespace, p.Name, why)
			}
			last = fmt.Sprintf("builder pod %s is %s", p.Name, p.Status.Phase)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%s)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// Close implements Builders; builders are cluster objects and outlive
// the builder manager.
func (k *KubeBuilders) Close() error { return nil }

// kubePod is a BuildPod at a builder pod's IP: its fetcher on 8000 and
// its builder on 8001, spoken to with Fission's JSON.
type kubePod struct {
	ip, name   string
	http       *http.Client
	storageURL string
}

func (p *kubePod) base(port int) string {
	return "http://" + net.JoinHostPort(p.ip, strconv.Itoa(port))
}

// postJSON posts in to url and decodes a 2xx answer into out; any other
// status is an error carrying the answer's text.
func (p *kubePod) postJSON(ctx context.Context, url string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	tracing.Inject(ctx, req.Header)
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("builder pod %s unreachable: %w", p.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s answered with a body that is not JSON: %.200s", url, raw)
		}
	}
	return nil
}

func (p *kubePod) FetchSource(ctx context.Context, pkg *v1.Package, filename string) error {
	return p.postJSON(ctx, p.base(FetcherPort)+"/fetch", fetcher.FunctionFetchRequest{
		FetchType:     fetcher.FetchSource,
		Package:       metav1.ObjectMeta{Name: pkg.Name, Namespace: pkg.Namespace, ResourceVersion: pkg.ResourceVersion},
		StorageSvcURL: p.storageURL,
		Filename:      filename,
	}, nil)
}

func (p *kubePod) Build(ctx context.Context, src, command string, live io.Writer) (string, string, error) {
	return buildOverHTTP(ctx, http.DefaultClient, p.base(BuilderPort), src, command, live)
}

func (p *kubePod) Upload(ctx context.Context, artifact string, zip bool) (string, v1.Checksum, error) {
	var resp fetcher.ArchiveUploadResponse
	err := p.postJSON(ctx, p.base(FetcherPort)+"/upload", fetcher.ArchiveUploadRequest{
		Filename: artifact, StorageSvcURL: p.storageURL, ArchivePackage: zip,
	}, &resp)
	if err != nil {
		return "", v1.Checksum{}, err
	}
	if resp.ArchiveDownloadURL == "" {
		return "", v1.Checksum{}, fmt.Errorf("builder pod %s: upload answered no archiveDownloadUrl", p.name)
	}
	return resp.ArchiveDownloadURL, resp.Checksum, nil
}

func (p *kubePod) Clean(ctx context.Context, src string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.base(BuilderPort)+"/clean?name="+url.QueryEscape(src), nil)
	if err != nil {
		return
	}
	if resp, err := p.http.Do(req); err == nil {
		resp.Body.Close()
	}
}
