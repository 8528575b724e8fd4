// Package kubepod reads what Isotope's Kubernetes roles need from a
// Pod's status: whether it can take traffic, and whether it never will
// on its own. The builder manager (builder pods) and the function
// runtime (pool and newdeploy pods) decide the same way.
package kubepod

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Ready reports whether p is running, not being deleted, Ready (all its
// containers ready) and has an IP.
func Ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stuck says why p will never become ready on its own (an image that
// cannot be pulled, a container that cannot be configured), or "".
func Stuck(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError":
				return fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}
