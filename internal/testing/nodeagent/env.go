package nodeagent

import (
	"context"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// objects reads the Secrets and ConfigMaps that env and volumes refer to.
type objects struct{ cs kubernetes.Interface }

func (o objects) secret(ctx context.Context, ns, name string) (map[string]string, error) {
	s, err := o.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out, nil
}

func (o objects) configMap(ctx context.Context, ns, name string) (map[string]string, error) {
	cm, err := o.cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range cm.Data {
		out[k] = v
	}
	for k, v := range cm.BinaryData {
		out[k] = string(v)
	}
	return out, nil
}

// keyed reads one key of a Secret or ConfigMap; an optional reference to
// a missing object or key yields ok=false.
func (o objects) keyed(ctx context.Context, ns, kind, name, key string, optional *bool, read func(context.Context, string, string) (map[string]string, error)) (string, bool, error) {
	opt := optional != nil && *optional
	data, err := read(ctx, ns, name)
	if apierrors.IsNotFound(err) && opt {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
	}
	v, ok := data[key]
	if !ok && !opt {
		return "", false, fmt.Errorf("%s %s/%s has no key %q", kind, ns, name, key)
	}
	return v, ok, nil
}

// containerEnv is the container's environment as the kubelet would build
// it: envFrom first, then env in order, each value's $(VAR) references
// expanded from the variables before it. podIP fills status.podIP.
func (o objects) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIP string) (map[string]string, []string, error) {
	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, seen := env[k]; !seen {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, ef := range c.EnvFrom {
		var (
			data map[string]string
			err  error
			opt  *bool
			what string
		)
		switch {
		case ef.ConfigMapRef != nil:
			what, opt = "configmap "+ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional
			data, err = o.configMap(ctx, pod.Namespace, ef.ConfigMapRef.Name)
		case ef.SecretRef != nil:
			what, opt = "secret "+ef.SecretRef.Name, ef.SecretRef.Optional
			data, err = o.secret(ctx, pod.Namespace, ef.SecretRef.Name)
		default:
			continue
		}
		if apierrors.IsNotFound(err) && opt != nil && *opt {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("container %q envFrom %s: %w", c.Name, what, err)
		}
		for k, v := range data {
			set(ef.Prefix+k, v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, env))
			continue
		}
		var (
			v   string
			ok  = true
			err error
		)
		vf := e.ValueFrom
		switch {
		case vf.FieldRef != nil:
			v, err = fieldValue(pod, vf.FieldRef.FieldPath, podIP)
		case vf.SecretKeyRef != nil:
			r := vf.SecretKeyRef
			v, ok, err = o.keyed(ctx, pod.Namespace, "secret", r.Name, r.Key, r.Optional, o.secret)
		case vf.ConfigMapKeyRef != nil:
			r := vf.ConfigMapKeyRef
			v, ok, err = o.keyed(ctx, pod.Namespace, "configmap", r.Name, r.Key, r.Optional, o.configMap)
		default:
			err = fmt.Errorf("only fieldRef, secretKeyRef and configMapKeyRef are supported by the node agent")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("container %q env %s: %w", c.Name, e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return env, order, nil
}

var labelRef = regexp.MustCompile(`^metadata\.(labels|annotations)\['([^']+)'\]$`)

// fieldValue resolves a downward-API field path of pod.
func fieldValue(pod *corev1.Pod, path, podIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	}
	if m := labelRef.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]], nil
		}
		return pod.Annotations[m[2]], nil
	}
	return "", fmt.Errorf("downward-API field %q is not supported by the node agent", path)
}
