package kubepod

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadyAndStuck(t *testing.T) {
	ready := func() *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		}}
	}
	if !Ready(ready()) {
		t.Error("a running, Ready pod with an IP is not Ready")
	}
	for name, change := range map[string]func(*corev1.Pod){
		"no IP":         func(p *corev1.Pod) { p.Status.PodIP = "" },
		"pending":       func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
		"being deleted": func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} },
		"not ready":     func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse },
		"no condition":  func(p *corev1.Pod) { p.Status.Conditions = nil },
	} {
		p := ready()
		change(p)
		if Ready(p) {
			t.Errorf("%s: Ready", name)
		}
	}
	p := ready()
	if why := Stuck(p); why != "" {
		t.Errorf("a ready pod is stuck: %s", why)
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "fetcher", State: corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "no such image example.com/x"}}}}
	if why := Stuck(p); !strings.Contains(why, "fetcher") || !strings.Contains(why, "example.com/x") {
		t.Errorf("Stuck = %q, want the container and the image", why)
	}
}
