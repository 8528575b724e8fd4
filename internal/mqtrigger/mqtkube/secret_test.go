package mqtkube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/mqtrigger/mqtkube"
)

// secretRefs are the (parameter, name, key) triples of a
// TriggerAuthentication's spec.secretTargetRef.
func secretRefs(u *unstructured.Unstructured) []string {
	refs, _, _ := unstructured.NestedSlice(u.Object, "spec", "secretTargetRef")
	var out []string
	for _, r := range refs {
		m, _ := r.(map[string]any)
		out = append(out, fmt.Sprintf("%v/%v/%v", m["parameter"], m["name"], m["key"]))
	}
	return out
}

// A trigger naming a Secret (spec.secret), with KEDA installed: until
// the Secret exists the trigger gets a Warning Event naming spec.secret
// and no connector; then the connector's pods mount the Secret (their
// identity needs no right to read it) and roll when it changes, a KEDA
// TriggerAuthentication maps each of its keys to the scaler parameter of
// that name, and the ScaledObject refers to it. Dropping spec.secret
// drops all of that; deleting the trigger deletes it all.
func TestTriggerSecretBecomesTriggerAuthentication(t *testing.T) {
	f := startControllerResync(t, "mqt-secret", 200*time.Millisecond)
	ctx := context.Background()
	installScaledObjectCRD(t, f.kube)
	installKEDACRD(t, f.kube, "triggerauthentications", "triggerauthentication", "TriggerAuthentication")
	so := f.dyn.Resource(mqtkube.ScaledObjectGVR).Namespace(f.ns)
	ta := f.dyn.Resource(mqtkube.TriggerAuthenticationGVR).Namespace(f.ns)

	tr := f.trigger("jobs", func(t *v1.MessageQueueTrigger) {
		t.Spec.MessageQueueType, t.Spec.Topic = v1.MessageQueueTypeRedis, "jobs"
		t.Spec.Metadata = map[string]string{"address": "redis:6379"}
		t.Spec.Secret = "redis-auth"
	})
	if err := f.kube.Client.Create(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "missing-secret event", func() string {
		var evs corev1.EventList
		if err := f.kube.Client.List(ctx, &evs, client.InNamespace(f.ns)); err != nil {
			return err.Error()
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "jobs" && e.Type == corev1.EventTypeWarning {
				if !strings.Contains(e.Message, "spec.secret") || !strings.Contains(e.Message, "redis-auth") || !strings.Contains(e.Message, "not found") {
					return "message " + e.Message + " does not name spec.secret, the Secret and not found"
				}
				return ""
			}
		}
		return "no event"
	})
	if _, err := f.deployment(t, "mqt-jobs"); !apierrors.IsNotFound(err) {
		t.Errorf("a connector Deployment without its Secret (err %v)", err)
	}

	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "redis-auth"},
		Data:       map[string][]byte{"password": []byte("s3cret"), "username": []byte("app")},
	}
	if err := f.kube.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connector with the Secret mounted", func() string {
		d, err := f.deployment(t, "mqt-jobs")
		if err != nil {
			return err.Error()
		}
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		if !strings.HasSuffix(strings.Join(c.Command, " "), "--secret-dir "+mqtkube.SecretDir) {
			return fmt.Sprintf("command %q", c.Command)
		}
		if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "redis-auth" ||
			len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != mqtkube.SecretDir || !c.VolumeMounts[0].ReadOnly {
			return fmt.Sprintf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
		}
		if v := d.Spec.Template.Annotations[mqtkube.AnnotationSecretVersion]; v != sec.ResourceVersion {
			return fmt.Sprintf("secret version %q, want %q", v, sec.ResourceVersion)
		}
		return ""
	})
	eventually(t, "TriggerAuthentication", func() string {
		u, err := ta.Get(ctx, "mqt-jobs-auth", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if got, want := secretRefs(u), []string{"password/redis-auth/password", "username/redis-auth/username"}; !slices.Equal(got, want) {
			return fmt.Sprintf("secretTargetRef %v, want %v", got, want)
		}
		if refs := u.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != tr.UID {
			return fmt.Sprintf("owner references %+v", refs)
		}
		return ""
	})
	// The controller writes the TriggerAuthentication before the
	// ScaledObject that refers to it: wait for the latter too.
	eventually(t, "ScaledObject linked to the TriggerAuthentication", func() string {
		u, err := so.Get(ctx, "mqt-jobs", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		trig, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
		if len(trig) != 1 {
			return fmt.Sprintf("%d ScaledObject triggers", len(trig))
		}
		tm, _ := trig[0].(map[string]any)
		if ref, _, _ := unstructured.NestedString(tm, "authenticationRef", "name"); ref != "mqt-jobs-auth" || tm["type"] != "redis-streams" {
			return fmt.Sprintf("ScaledObject trigger %v: want type redis-streams, authenticationRef mqt-jobs-auth", tm)
		}
		return ""
	})

	// A changed Secret rolls the pods and is mapped again (the
	// controller reads it at each resync).
	sec.Data["tls"] = []byte("enable")
	if err := f.kube.Client.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Secret change followed", func() string {
		d, err := f.deployment(t, "mqt-jobs")
		if err != nil {
			return err.Error()
		}
		if v := d.Spec.Template.Annotations[mqtkube.AnnotationSecretVersion]; v != sec.ResourceVersion {
			return fmt.Sprintf("secret version %q, want %q", v, sec.ResourceVersion)
		}
		u, err := ta.Get(ctx, "mqt-jobs-auth", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if got := secretRefs(u); !slices.Contains(got, "tls/redis-auth/tls") {
			return fmt.Sprintf("secretTargetRef %v without tls", got)
		}
		return ""
	})

	// Without spec.secret: no TriggerAuthentication, no reference, no mount.
	if err := f.kube.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
		t.Fatal(err)
	}
	tr.Spec.Secret = ""
	if err := f.kube.Client.Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "secret dropped", func() string {
		if _, err := ta.Get(ctx, "mqt-jobs-auth", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return "TriggerAuthentication present"
		}
		u, err := so.Get(ctx, "mqt-jobs", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		trig, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
		if _, ok := trig[0].(map[string]any)["authenticationRef"]; ok {
			return "ScaledObject still has an authenticationRef"
		}
		d, err := f.deployment(t, "mqt-jobs")
		if err != nil {
			return err.Error()
		}
		if len(d.Spec.Template.Spec.Volumes) != 0 || slices.Contains(d.Spec.Template.Spec.Containers[0].Command, "--secret-dir") {
			return "the connector still mounts the Secret"
		}
		return ""
	})

	// Deleting the trigger deletes its connector, with a Secret again.
	if err := f.kube.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
		t.Fatal(err)
	}
	tr.Spec.Secret = "redis-auth"
	if err := f.kube.Client.Update(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "TriggerAuthentication again", func() string {
		if _, err := ta.Get(ctx, "mqt-jobs-auth", metav1.GetOptions{}); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := f.kube.Client.Delete(ctx, tr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "everything deleted", func() string {
		if _, err := ta.Get(ctx, "mqt-jobs-auth", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return "TriggerAuthentication present"
		}
		if _, err := so.Get(ctx, "mqt-jobs", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return "ScaledObject present"
		}
		if _, err := f.deployment(t, "mqt-jobs"); !apierrors.IsNotFound(err) {
			return "Deployment present"
		}
		return ""
	})
}
