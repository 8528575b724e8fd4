package kubetest_test

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"isotope.dev/isotope/internal/testing/kubetest"
)

// With the controller manager and scheduler running, a Deployment gets a
// ReplicaSet, the ReplicaSet its Pods, and the scheduler looks at each
// Pod and reports it unschedulable: there is no node (and so no kubelet)
// yet. That is the whole chain up to the node agent.
func TestDeploymentMakesReplicaSetAndPods(t *testing.T) {
	env := kubetest.Start(t)
	env.StartControllers(t)
	ns := env.Namespace(t, "deploy")
	replicas := int32(2)
	labels := map[string]string{"app": "hello"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "isotope/test"}}},
			},
		},
	}
	if err := env.Client.Create(kubetest.Context(t), d); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(90 * time.Second)
	var (
		rs   *appsv1.ReplicaSet
		pods []corev1.Pod
	)
	for {
		rs, pods = nil, nil
		var rsl appsv1.ReplicaSetList
		if err := env.Client.List(kubetest.Context(t), &rsl, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for i := range rsl.Items {
			if owner := metav1.GetControllerOf(&rsl.Items[i]); owner != nil && owner.UID == d.UID {
				rs = &rsl.Items[i]
			}
		}
		if rs != nil {
			var pl corev1.PodList
			if err := env.Client.List(kubetest.Context(t), &pl, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
			for _, p := range pl.Items {
				if owner := metav1.GetControllerOf(&p); owner != nil && owner.UID == rs.UID && unschedulable(p) {
					pods = append(pods, p)
				}
			}
		}
		if len(pods) == int(replicas) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: replicaset %v, %d scheduled-and-unschedulable pods, want %d", rs != nil, len(pods), replicas)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
			t.Errorf("pod %s: phase %s node %q, want Pending on no node", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}
}

// unschedulable reports whether the scheduler has tried p and found no node.
func unschedulable(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}
