// Package mqtkube runs MessageQueueTriggers on Kubernetes the way
// Fission's KEDA connectors do: for each trigger a connector Deployment
// whose pods run `isotope mqt consume` for that one trigger, and, when
// KEDA is installed and the trigger's mqtkind is keda, a KEDA
// ScaledObject that scales it, authenticated by a TriggerAuthentication
// when the trigger names a Secret (docs/decisions/0028).
package mqtkube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger"
)

// Labels of a connector Deployment, its pods and its ScaledObject.
const (
	LabelTrigger = "messagequeuetrigger"
	LabelOwner   = "owner"
	OwnerValue   = "isotope-mqtrigger"
	// AnnotationSpecHash on the pod template changes with the trigger's
	// spec, so an updated trigger rolls its connector pods.
	AnnotationSpecHash = "isotope.dev/mqtrigger-spec-hash"
	// AnnotationSecretVersion on the pod template is the resourceVersion
	// of the trigger's Secret, so a changed Secret rolls the pods too.
	AnnotationSecretVersion = "isotope.dev/mqtrigger-secret-version"
	// ContainerName is the connector container; a trigger's podspec may
	// add env, resources and mounts to it by using this name.
	ContainerName = "connector"
	// SecretDir is where a connector finds its trigger's Secret, one
	// file per key (`mqt consume --secret-dir`).
	SecretDir    = "/etc/isotope/mqt-secret"
	secretVolume = "mqt-secret"
)

// KEDA's ScaledObject and TriggerAuthentication resources.
var (
	ScaledObjectGVR          = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
	TriggerAuthenticationGVR = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "triggerauthentications"}
)

// ConnectorName is the name of a trigger's Deployment and ScaledObject.
func ConnectorName(t *v1.MessageQueueTrigger) string {
	n := "mqt-" + t.Name
	if len(n) <= 52 {
		return n
	}
	sum := sha256.Sum256([]byte(t.Name))
	return n[:43] + "-" + hex.EncodeToString(sum[:])[:8]
}

// AuthName is the name of t's KEDA TriggerAuthentication.
func AuthName(t *v1.MessageQueueTrigger) string { return ConnectorName(t) + "-auth" }

// Labels are the labels (and the selector) of t's connector.
func Labels(t *v1.MessageQueueTrigger) map[string]string {
	return map[string]string{LabelTrigger: t.Name, LabelOwner: OwnerValue}
}

func ownerRefs(t *v1.MessageQueueTrigger) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{
		APIVersion: v1.SchemeGroupVersion.String(), Kind: v1.KindMessageQueueTrigger,
		Name: t.Name, UID: t.UID, Controller: &yes,
	}}
}

func specHash(t *v1.MessageQueueTrigger) string {
	b, _ := json.Marshal(t.Spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// RenderOptions are what a connector Deployment takes besides its trigger.
type RenderOptions struct {
	Image          string // has the isotope binary
	RouterURL      string // the router Service URL
	ServiceAccount string // of connector pods: may get MessageQueueTriggers
	// Replicas is the Deployment's replica count.
	Replicas int32
	// SecretVersion is the resourceVersion of the trigger's Secret
	// (spec.secret), when it has one.
	SecretVersion string
}

// Deployment renders t's connector Deployment. t must be defaulted.
func Deployment(t *v1.MessageQueueTrigger, o RenderOptions) *appsv1.Deployment {
	labels := Labels(t)
	c := corev1.Container{
		Name:    ContainerName,
		Image:   o.Image,
		Command: []string{"isotope", "mqt", "consume", t.Name, "--namespace", t.Namespace, "--router", o.RouterURL},
		Env: []corev1.EnvVar{{
			Name:      "POD_NAME",
			ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}},
	}
	spec := corev1.PodSpec{ServiceAccountName: o.ServiceAccount}
	annotations := map[string]string{AnnotationSpecHash: specHash(t)}
	if t.Spec.Secret != "" {
		// The kubelet mounts the Secret: the connector's identity needs
		// no right to read Secrets.
		c.Command = append(c.Command, "--secret-dir", SecretDir)
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: secretVolume, MountPath: SecretDir, ReadOnly: true})
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: secretVolume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: t.Spec.Secret},
		}})
		annotations[AnnotationSecretVersion] = o.SecretVersion
	}
	if p := t.Spec.PodSpec; p != nil {
		mergePodSpec(&spec, &c, p)
	}
	spec.Containers = append([]corev1.Container{c}, spec.Containers...)
	replicas := o.Replicas
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: ConnectorName(t), Namespace: t.Namespace, Labels: labels, OwnerReferences: ownerRefs(t),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels), Annotations: annotations},
				Spec:       spec,
			},
		},
	}
}

// mergePodSpec applies a trigger's podspec: pod-level scheduling and
// volume fields are taken when set; a container named "connector" adds
// its env, envFrom, mounts and resources to the connector; other
// containers run beside it (sidecars).
func mergePodSpec(spec *corev1.PodSpec, c *corev1.Container, p *corev1.PodSpec) {
	if p.ServiceAccountName != "" {
		spec.ServiceAccountName = p.ServiceAccountName
	}
	spec.Volumes = append(spec.Volumes, p.Volumes...)
	spec.NodeSelector = p.NodeSelector
	spec.Tolerations = p.Tolerations
	spec.Affinity = p.Affinity
	spec.ImagePullSecrets = p.ImagePullSecrets
	spec.SecurityContext = p.SecurityContext
	spec.PriorityClassName = p.PriorityClassName
	for _, pc := range p.Containers {
		if pc.Name != ContainerName {
			spec.Containers = append(spec.Containers, pc)
			continue
		}
		c.Env = append(c.Env, pc.Env...)
		c.EnvFrom = append(c.EnvFrom, pc.EnvFrom...)
		c.VolumeMounts = append(c.VolumeMounts, pc.VolumeMounts...)
		if pc.Resources.Limits != nil || pc.Resources.Requests != nil {
			c.Resources = pc.Resources
		}
		if pc.Image != "" {
			c.Image = pc.Image
		}
	}
}

// KEDAType is KEDA's scaler name for a queue kind.
func KEDAType(k v1.MessageQueueType) string {
	if k == v1.MessageQueueTypeRedis {
		return string(v1.MessageQueueTypeRedisStreams)
	}
	return string(k)
}

// kedaSkip are metadata keys that do not go to KEDA: Isotope's own
// (concurrency) and credentials, which belong in a Secret.
var kedaSkip = map[string]bool{v1.MQMetadataConcurrency: true, mqtrigger.MetaRedisPassword: true, mqtrigger.MetaNATSServerURL: true}

// KEDAMetadata is the scaler metadata of t: its metadata under KEDA's
// names, with the topic, consumer group or consumer the connector uses
// filled in where KEDA needs them.
func KEDAMetadata(t *v1.MessageQueueTrigger) map[string]string {
	md := map[string]string{}
	for k, v := range t.Spec.Metadata {
		if !kedaSkip[k] {
			md[k] = v
		}
	}
	setDefault := func(k, v string) {
		if md[k] == "" {
			md[k] = v
		}
	}
	switch t.Spec.MessageQueueType {
	case v1.MessageQueueTypeKafka:
		md["topic"] = t.Spec.Topic
		setDefault(mqtrigger.MetaKafkaConsumerGroup, mqtrigger.ConsumerName(t))
	case v1.MessageQueueTypeNATSJetStream:
		setDefault(mqtrigger.MetaNATSStream, mqtrigger.StreamName(t.Spec.Topic))
		setDefault(mqtrigger.MetaNATSConsumer, mqtrigger.ConsumerName(t))
	case v1.MessageQueueTypeRedis, v1.MessageQueueTypeRedisStreams:
		md["stream"] = t.Spec.Topic
		setDefault(mqtrigger.MetaRedisConsumerGroup, mqtrigger.ConsumerName(t))
	}
	return md
}

// ScaledObject renders t's KEDA ScaledObject targeting its Deployment.
// t must be defaulted.
func ScaledObject(t *v1.MessageQueueTrigger) *unstructured.Unstructured {
	md := map[string]any{}
	for k, v := range KEDAMetadata(t) {
		md[k] = v
	}
	trigger := map[string]any{"type": KEDAType(t.Spec.MessageQueueType), "metadata": md}
	if t.Spec.Secret != "" {
		trigger["authenticationRef"] = map[string]any{"name": AuthName(t)}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "ScaledObject",
		"metadata": map[string]any{
			"name": ConnectorName(t), "namespace": t.Namespace, "labels": anyLabels(t),
		},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": ConnectorName(t)},
			"minReplicaCount": int64(*t.Spec.MinReplicaCount),
			"maxReplicaCount": int64(*t.Spec.MaxReplicaCount),
			"pollingInterval": int64(*t.Spec.PollingInterval),
			"cooldownPeriod":  int64(*t.Spec.CooldownPeriod),
			"triggers":        []any{trigger},
		},
	}}
	u.SetOwnerReferences(ownerRefs(t))
	return u
}

func anyLabels(t *v1.MessageQueueTrigger) map[string]any {
	labels := map[string]any{}
	for k, v := range Labels(t) {
		labels[k] = v
	}
	return labels
}

// TriggerAuthentication renders the KEDA TriggerAuthentication of t's
// ScaledObject: each key of its Secret (spec.secret) is the scaler
// parameter of the same name, as Fission does. keys are the Secret's
// data keys; no value is copied into the object.
func TriggerAuthentication(t *v1.MessageQueueTrigger, keys []string) *unstructured.Unstructured {
	keys = slices.Sorted(slices.Values(keys))
	refs := make([]any, 0, len(keys))
	for _, k := range keys {
		refs = append(refs, map[string]any{"parameter": k, "name": t.Spec.Secret, "key": k})
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "TriggerAuthentication",
		"metadata": map[string]any{
			"name": AuthName(t), "namespace": t.Namespace, "labels": anyLabels(t),
		},
		"spec": map[string]any{"secretTargetRef": refs},
	}}
	u.SetOwnerReferences(ownerRefs(t))
	return u
}
