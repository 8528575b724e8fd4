package buildermgr_test

import corev1 "k8s.io/api/core/v1"

func containerCmd(prog string) *corev1.Container {
	return &corev1.Container{Name: "builder", Command: []string{prog}}
}
