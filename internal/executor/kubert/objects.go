package kubert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	asv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/fetcher"
)

// Fission's executor labels and annotations (pkg/executor/...).
const (
	LabelExecutorType         = "executorType"
	LabelEnvironmentName      = "environmentName"
	LabelEnvironmentNamespace = "environmentNamespace"
	LabelEnvironmentUID       = "environmentUid"
	LabelFunctionName         = "functionName"
	LabelFunctionNamespace    = "functionNamespace"
	LabelFunctionUID          = "functionUid"
	// LabelManaged is "true" on a pool's generic pods; a specialized pod
	// is relabelled "false", which takes it out of the pool Deployment's
	// selector so its ReplicaSet starts a replacement.
	LabelManaged = "managed"

	AnnotationExecutorInstanceID      = "executorInstanceId"
	AnnotationFunctionResourceVersion = "functionResourceVersion"
	AnnotationSvcHost                 = "svcHost"
	// AnnotationSpecHash records the rendered spec of an object we
	// manage, so a reconcile updates it only when it would change.
	AnnotationSpecHash = "isotope.dev/spec-hash"
)

// Ports of function pods, as in Fission.
const (
	FetcherPort = 8000
	RuntimePort = 8888
)

// DefaultIsotopeImage is a placeholder for the image with the isotope
// binary (fetcher containers; the wasm-env runtime). No such image is
// published yet: set ISOTOPE_IMAGE (Config.IsotopeImage).
const DefaultIsotopeImage = "ghcr.io/isotope-dev/isotope:dev"

// userfuncDir is the function pod's shared directory, and the archive's
// name in it (Fission's v2+ target filename).
const (
	userfuncDir   = "/userfunc"
	deployArchive = "deployarchive"
)

// The function pod's secret and config map volumes, at Fission's paths:
// the fetcher writes <namespace>/<name>/<key> files into them (it reads
// the objects as the pod's ServiceAccount), the runtime container reads
// them. They are emptyDirs, not secret volumes, because a pool pod exists
// before it knows its function (decision 0021).
const (
	SecretsDir = "/secrets"
	ConfigsDir = "/configs"
)

// PoolName is Fission's pool Deployment name:
// poolmgr-<env>-<envNs>-<envRV>, name and namespace cut to 18
// characters each when together they reach 37, lowercased.
func PoolName(env *v1.Environment) string {
	name, ns := env.Name, env.Namespace
	if len(name)+len(ns) >= 37 {
		name, ns = cut(name, 18), cut(ns, 18)
	}
	return strings.ToLower(trimDNS("poolmgr-"+name+"-"+ns+"-"+env.ResourceVersion, 63))
}

// NewdeployName is Fission's newdeploy object name:
// newdeploy-<name>-<ns>-<last 17 characters of the UID>, lowercased and at
// most 63 characters, name and namespace cut to 17 when needed.
func NewdeployName(fn *v1.Function) string {
	uid := string(fn.UID)
	if len(uid) > 17 {
		uid = uid[len(uid)-17:]
	}
	name, ns := fn.Name, fn.Namespace
	if len("newdeploy-")+len(name)+len(ns)+len(uid)+2 > 63 {
		name, ns = cut(name, 17), cut(ns, 17)
	}
	return strings.ToLower(trimDNS("newdeploy-"+name+"-"+ns+"-"+uid, 63))
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// trimDNS cuts s to n characters and drops trailing '-' and '.', which
// a DNS label may not end with.
func trimDNS(s string, n int) string {
	return strings.TrimRight(cut(s, n), "-.")
}

// PoolLabels are the labels and selector of env's pool: the
// environment's own labels plus Fission's.
func PoolLabels(env *v1.Environment) map[string]string {
	l := map[string]string{}
	for k, v := range env.Labels {
		l[k] = v
	}
	l[LabelExecutorType] = string(v1.ExecutorTypePoolmgr)
	l[LabelEnvironmentName] = env.Name
	l[LabelEnvironmentNamespace] = env.Namespace
	l[LabelEnvironmentUID] = string(env.UID)
	l[LabelManaged] = "true"
	return l
}

// poolSelector is what identifies env's generic pods: Fission's labels
// without the environment's own (which may change without a new pool).
func poolSelector(env *v1.Environment) map[string]string {
	return map[string]string{
		LabelExecutorType:         string(v1.ExecutorTypePoolmgr),
		LabelEnvironmentName:      env.Name,
		LabelEnvironmentNamespace: env.Namespace,
		LabelEnvironmentUID:       string(env.UID),
		LabelManaged:              "true",
	}
}

// NewdeployLabels are the labels and selector of fn's newdeploy objects.
func NewdeployLabels(fn *v1.Function, env *v1.Environment) map[string]string {
	l := map[string]string{}
	for k, v := range env.Labels {
		l[k] = v
	}
	for k, v := range fn.Labels {
		l[k] = v
	}
	l[LabelExecutorType] = string(v1.ExecutorTypeNewdeploy)
	l[LabelEnvironmentName] = env.Name
	l[LabelEnvironmentNamespace] = env.Namespace
	l[LabelEnvironmentUID] = string(env.UID)
	l[LabelFunctionName] = fn.Name
	l[LabelFunctionNamespace] = fn.Namespace
	l[LabelFunctionUID] = string(fn.UID)
	return l
}

func newdeploySelector(fn *v1.Function) map[string]string {
	return map[string]string{
		LabelExecutorType:      string(v1.ExecutorTypeNewdeploy),
		LabelFunctionName:      fn.Name,
		LabelFunctionNamespace: fn.Namespace,
		LabelFunctionUID:       string(fn.UID),
	}
}

func ownerRef(kind, name string, uid string) []metav1.OwnerReference {
	if uid == "" {
		return nil
	}
	return []metav1.OwnerReference{{
		APIVersion: v1.SchemeGroupVersion.String(),
		Kind:       kind,
		Name:       name,
		UID:        types.UID(uid),
	}}
}

// isWasmEnv reports whether image is Isotope's WebAssembly environment
// (any registry, tag or digest), which runs as `isotope wasm-env`.
func isWasmEnv(image string) bool {
	name := strings.TrimSpace(image)
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	return name == "isotope/wasm-env" || strings.HasSuffix(name, "/isotope/wasm-env")
}

// podSpec is a function pod: the runtime container (named after the
// environment, Fission's http-env port 8888) and the fetcher (8000) over
// a shared /userfunc. fetcherArgs are the fetcher's extra flags
// (newdeploy's -specialize-on-startup).
func (c *Config) podSpec(env *v1.Environment, res corev1.ResourceRequirements, fetcherArgs ...string) corev1.PodSpec {
	mounts := []corev1.VolumeMount{{Name: "userfunc", MountPath: userfuncDir}}
	fetcherMounts := append(mounts,
		corev1.VolumeMount{Name: "secrets", MountPath: SecretsDir},
		corev1.VolumeMount{Name: "configmaps", MountPath: ConfigsDir})
	runtimeMounts := append(mounts,
		corev1.VolumeMount{Name: "secrets", MountPath: SecretsDir, ReadOnly: true},
		corev1.VolumeMount{Name: "configmaps", MountPath: ConfigsDir, ReadOnly: true})
	runtime := corev1.Container{
		Name:      env.Name,
		Image:     env.Spec.Runtime.Image,
		Ports:     []corev1.ContainerPort{{Name: "http-env", ContainerPort: RuntimePort, Protocol: corev1.ProtocolTCP}},
		Resources: res,
		// Programs written for the embedded mode find the files through
		// these, as there (docs/secrets-and-configmaps.md).
		Env:          []corev1.EnvVar{{Name: "SECRETS_DIR", Value: SecretsDir}, {Name: "CONFIGS_DIR", Value: ConfigsDir}},
		VolumeMounts: runtimeMounts,
	}
	if isWasmEnv(env.Spec.Runtime.Image) {
		runtime.Command = []string{"isotope", "wasm-env", "--addr", ":8888"}
	}
	if rc := env.Spec.Runtime.Container; rc != nil {
		if len(rc.Command) > 0 {
			runtime.Command = rc.Command
		}
		if len(rc.Args) > 0 {
			runtime.Args = rc.Args
		}
		runtime.Env = append(runtime.Env, rc.Env...)
	}
	cmd := []string{"isotope", "fetcher", "-secret-dir", SecretsDir, "-cfgmap-dir", ConfigsDir}
	cmd = append(append(cmd, fetcherArgs...), userfuncDir)
	probe := &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readiness-healthz", Port: intstr.FromInt32(FetcherPort)}},
		InitialDelaySeconds: 1, PeriodSeconds: 1, FailureThreshold: 30,
	}
	fetch := corev1.Container{
		Name:           "fetcher",
		Image:          c.IsotopeImage,
		Command:        cmd,
		Env:            c.FetcherEnv,
		Ports:          []corev1.ContainerPort{{Name: "http-fetcher", ContainerPort: FetcherPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: probe,
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(FetcherPort)}},
			InitialDelaySeconds: 1, PeriodSeconds: 5,
		},
		VolumeMounts: fetcherMounts,
	}
	grace := env.Spec.TerminationGracePeriod
	spec := corev1.PodSpec{
		Containers:                    []corev1.Container{runtime, fetch},
		ServiceAccountName:            c.ServiceAccount,
		TerminationGracePeriodSeconds: &grace,
		Volumes: []corev1.Volume{
			{Name: "userfunc", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "secrets", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "configmaps", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
	if env.Spec.ImagePullSecret != "" {
		spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: env.Spec.ImagePullSecret}}
	}
	return spec
}

// poolSize is Fission's rule: poolsize for version 3, 3 below.
func poolSize(env *v1.Environment) int32 {
	if env.Spec.Version >= 3 {
		return int32(max(env.Spec.Poolsize, 0))
	}
	return 3
}

// poolDeployment is env's generic pool.
func (c *Config) poolDeployment(env *v1.Environment) *appsv1.Deployment {
	labels := PoolLabels(env)
	replicas := poolSize(env)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: PoolName(env), Namespace: env.Namespace, Labels: labels,
			Annotations:     map[string]string{AnnotationExecutorInstanceID: c.InstanceID},
			OwnerReferences: ownerRef(v1.KindEnvironment, env.Name, string(env.UID)),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: env.Annotations},
				Spec:       c.podSpec(env, env.Spec.Resources),
			},
		},
	}
	return d
}

// specializeRequest is what a fetcher needs to load fn: fetch the
// package's deploy archive to /userfunc/deployarchive, then have the
// runtime load it (Fission's FunctionSpecializeRequest).
func (c *Config) specializeRequest(fn *v1.Function, env *v1.Environment, pkg *v1.Package) fetcher.FunctionSpecializeRequest {
	pkgNs := fn.Spec.Package.PackageRef.Namespace
	if pkgNs == "" {
		pkgNs = fn.Namespace
	}
	rv := fn.Spec.Package.PackageRef.ResourceVersion
	if pkg != nil {
		rv = pkg.ResourceVersion
	}
	return fetcher.FunctionSpecializeRequest{
		FetchReq: fetcher.FunctionFetchRequest{
			FetchType:     fetcher.FetchDeployment,
			Package:       metav1.ObjectMeta{Name: fn.Spec.Package.PackageRef.Name, Namespace: pkgNs, ResourceVersion: rv},
			StorageSvcURL: c.StorageURL,
			Filename:      deployArchive,
			Secrets:       secretRefs(fn),
			ConfigMaps:    configMapRefs(fn),
			KeepArchive:   env.Spec.KeepArchive,
		},
		LoadReq: fetcher.FunctionLoadRequest{
			FilePath:     userfuncDir + "/" + deployArchive,
			FunctionName: fn.Spec.Package.FunctionName,
			URL:          "/",
			FunctionMetadata: &metav1.ObjectMeta{
				Name: fn.Name, Namespace: fn.Namespace, UID: fn.UID,
				ResourceVersion: fn.ResourceVersion, Generation: fn.Generation,
			},
			EnvVersion: env.Spec.Version,
		},
	}
}

// secretRefs are fn's spec.secrets with the namespace filled in: an
// empty one is the function's (the fetcher, which knows no function,
// would otherwise write /secrets//<name>).
func secretRefs(fn *v1.Function) []v1.SecretReference {
	out := make([]v1.SecretReference, len(fn.Spec.Secrets))
	for i, r := range fn.Spec.Secrets {
		if r.Namespace == "" {
			r.Namespace = fn.Namespace
		}
		out[i] = r
	}
	return out
}

// configMapRefs is secretRefs for spec.configmaps.
func configMapRefs(fn *v1.Function) []v1.ConfigMapReference {
	out := make([]v1.ConfigMapReference, len(fn.Spec.ConfigMaps))
	for i, r := range fn.Spec.ConfigMaps {
		if r.Namespace == "" {
			r.Namespace = fn.Namespace
		}
		out[i] = r
	}
	return out
}

// newdeployReplicas is the replica count at creation: max(MinScale, 1).
func newdeployReplicas(fn *v1.Function) int32 {
	return int32(max(fn.Spec.InvokeStrategy.ExecutionStrategy.MinScale, 1))
}

// newdeployObjects renders fn's Deployment, Service and HPA.
func (c *Config) newdeployObjects(fn *v1.Function, env *v1.Environment, pkg *v1.Package) (*appsv1.Deployment, *corev1.Service, *asv2.HorizontalPodAutoscaler) {
	name := NewdeployName(fn)
	labels := NewdeployLabels(fn, env)
	sel := newdeploySelector(fn)
	owners := ownerRef(v1.KindFunction, fn.Name, string(fn.UID))
	annotations := map[string]string{
		AnnotationExecutorInstanceID:      c.InstanceID,
		AnnotationFunctionResourceVersion: fn.ResourceVersion,
	}
	meta := func() metav1.ObjectMeta {
		a := map[string]string{}
		for k, v := range annotations {
			a[k] = v
		}
		return metav1.ObjectMeta{Name: name, Namespace: fn.Namespace, Labels: labels, Annotations: a, OwnerReferences: owners}
	}
	sr, _ := json.Marshal(c.specializeRequest(fn, env, pkg))
	res := env.Spec.Resources
	if fr := fn.Spec.Resources; fr.Requests != nil || fr.Limits != nil {
		// The function's values override the environment's, key by key.
		res = *res.DeepCopy()
		for k, v := range fr.Requests {
			if res.Requests == nil {
				res.Requests = corev1.ResourceList{}
			}
			res.Requests[k] = v
		}
		for k, v := range fr.Limits {
			if res.Limits == nil {
				res.Limits = corev1.ResourceList{}
			}
			res.Limits[k] = v
		}
	}
	replicas := newdeployReplicas(fn)
	zero := int32(0)
	surge := intstr.FromString("20%")
	dep := &appsv1.Deployment{
		ObjectMeta: meta(),
		Spec: appsv1.DeploymentSpec{
			Replicas:             &replicas,
			Selector:             &metav1.LabelSelector{MatchLabels: sel},
			RevisionHistoryLimit: &zero,
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &surge},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: env.Annotations},
				Spec:       c.podSpec(env, res, "-specialize-on-startup", "-specialize-request", string(sr)),
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: meta(),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: sel,
			Ports:    []corev1.ServicePort{{Name: "http-env", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(RuntimePort)}},
		},
	}
	es := fn.Spec.InvokeStrategy.ExecutionStrategy
	minR := int32(max(es.MinScale, 1))
	maxR := int32(es.MaxScale)
	if maxR < minR {
		maxR = minR
	}
	metrics := append([]asv2.MetricSpec{}, es.HpaMetrics...)
	if es.TargetCPUPercent > 0 {
		target := int32(es.TargetCPUPercent)
		metrics = append(metrics, asv2.MetricSpec{
			Type: asv2.ResourceMetricSourceType,
			Resource: &asv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: asv2.MetricTarget{Type: asv2.UtilizationMetricType, AverageUtilization: &target},
			},
		})
	}
	hpa := &asv2.HorizontalPodAutoscaler{
		ObjectMeta: meta(),
		Spec: asv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: asv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &minR,
			MaxReplicas:    maxR,
			Metrics:        metrics,
			Behavior:       es.HpaBehavior,
		},
	}
	setHash(&dep.ObjectMeta, dep.Spec.Template, dep.Spec.Selector, dep.Labels)
	setHash(&svc.ObjectMeta, svc.Spec.Ports, svc.Spec.Selector, svc.Labels)
	setHash(&hpa.ObjectMeta, hpa.Spec, hpa.Labels)
	return dep, svc, hpa
}

// setHash records a digest of parts as the object's spec hash.
func setHash(m *metav1.ObjectMeta, parts ...any) {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[AnnotationSpecHash] = hex.EncodeToString(sum[:12])
}
