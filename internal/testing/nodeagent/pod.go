package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podRun is one pod on the node: its address, its directory (volumes
// and a private scratch area), its containers' supervisors.
type podRun struct {
	ip, dir string
	policy  corev1.RestartPolicy
	grace   func() time.Duration
	notify  func(*corev1.Pod)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	pod        *corev1.Pod // the pod as last given, status not used
	containers []*containerRun
	startTime  metav1.Time
	podErr     string // why no container can start (a volume, say)
}

// volumeDirs materializes the pod's volumes under dir/volumes and returns
// each volume's directory by name. emptyDir, secret and configMap are
// supported; a container that mounts any other kind is an error.
func volumeDirs(ctx context.Context, o objects, pod *corev1.Pod, dir string) (map[string]string, error) {
	mounted := map[string]bool{}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			mounted[m.Name] = true
		}
	}
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		vd := filepath.Join(dir, "volumes", v.Name)
		var data map[string]string
		var items []corev1.KeyToPath
		var err error
		switch {
		case v.EmptyDir != nil:
		case v.Secret != nil:
			data, err = o.secret(ctx, pod.Namespace, v.Secret.SecretName)
			items = v.Secret.Items
			if err != nil && v.Secret.Optional != nil && *v.Secret.Optional {
				data, err = nil, nil
			}
		case v.ConfigMap != nil:
			data, err = o.configMap(ctx, pod.Namespace, v.ConfigMap.Name)
			items = v.ConfigMap.Items
			if err != nil && v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
				data, err = nil, nil
			}
		default:
			if mounted[v.Name] {
				return nil, fmt.Errorf("volume %q: only emptyDir, secret and configMap volumes are supported by the node agent", v.Name)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		if err := os.MkdirAll(vd, 0o755); err != nil {
			return nil, err
		}
		files := map[string]string{}
		if len(items) == 0 {
			for k, val := range data {
				files[k] = val
			}
		}
		for _, it := range items {
			val, ok := data[it.Key]
			if !ok {
				return nil, fmt.Errorf("volume %q: no key %q", v.Name, it.Key)
			}
			files[it.Path] = val
		}
		for name, val := range files {
			p := filepath.Join(vd, filepath.FromSlash(name))
			if !strings.HasPrefix(p, vd+string(filepath.Separator)) {
				return nil, fmt.Errorf("volume %q: path %q leaves the volume", v.Name, name)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
				return nil, err
			}
		}
		out[v.Name] = vd
	}
	return out, nil
}

// mountsOf maps c's mount paths to local directories.
func mountsOf(c *corev1.Container, vols map[string]string) (map[string]string, error) {
	m := map[string]string{}
	for _, vm := range c.VolumeMounts {
		d, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %q mounts unknown volume %q", c.Name, vm.Name)
		}
		if vm.SubPath != "" {
			d = filepath.Join(d, filepath.FromSlash(vm.SubPath))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		m[vm.MountPath] = d
	}
	return m, nil
}

// changed pushes the pod's current status to the pod controller.
func (p *podRun) changed() {
	p.notify(p.snapshot())
}

// snapshot is the pod with its current status.
func (p *podRun) snapshot() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod := p.pod.DeepCopy()
	pod.Status = p.statusLocked()
	return pod
}

func (p *podRun) statusLocked() corev1.PodStatus {
	st := corev1.PodStatus{
		HostIP:    "127.0.0.1",
		HostIPs:   []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP:     p.ip,
		PodIPs:    []corev1.PodIP{{IP: p.ip}},
		StartTime: &p.startTime,
		QOSClass:  corev1.PodQOSBestEffort,
	}
	if p.pod.Status.QOSClass != "" {
		st.QOSClass = p.pod.Status.QOSClass
	}
	var ready, succeeded, failed, started int
	for _, c := range p.containers {
		cs := corev1.ContainerStatus{
			Name: c.spec.Name, Image: c.spec.Image, ImageID: c.imageID,
			Ready: c.ready, RestartCount: c.restartCount, LastTerminationState: corev1.ContainerState{Terminated: c.lastTerminated},
		}
		switch {
		case c.running:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt)}
			cs.Started = ptrTo(true)
			cs.ContainerID = fmt.Sprintf("nodeagent://%d", c.pid)
			started++
		case c.terminated != nil:
			cs.State.Terminated = c.terminated
			started++
			if c.terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		default:
			reason, msg := c.waitingReason, c.waitingMessage
			if reason == "" {
				reason = "ContainerCreating"
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
			if c.restartCount > 0 {
				started++
			}
			cs.Started = ptrTo(false)
		}
		if c.ready {
			ready++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	n := len(p.containers)
	restarts := p.policy == "" || p.policy == corev1.RestartPolicyAlways
	switch {
	case n > 0 && succeeded == n && !restarts:
		st.Phase = corev1.PodSucceeded
	case n > 0 && succeeded+failed == n && failed > 0 && p.policy == corev1.RestartPolicyNever:
		st.Phase = corev1.PodFailed
	case started == n && n > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	if p.podErr != "" {
		st.Reason, st.Message = "NodeAgentRefused", p.podErr
	} else {
		for _, c := range p.containers {
			if c.cmd == nil && c.waitingMessage != "" {
				st.Reason, st.Message = "NodeAgentRefused", c.waitingMessage
				break
			}
		}
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: p.startTime}
	}
	allReady := n > 0 && ready == n
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, p.podErr == ""),
		cond(corev1.PodInitialized, true),
		cond(corev1.ContainersReady, allReady),
		cond(corev1.PodReady, allReady),
		cond(corev1.PodScheduled, true),
	}
	sort.SliceStable(st.Conditions, func(i, j int) bool { return st.Conditions[i].Type < st.Conditions[j].Type })
	return st
}

func ptrTo[T any](v T) *T { return &v }

// stop ends every container (SIGTERM, SIGKILL after the grace period)
// and waits for their supervisors.
func (p *podRun) stop() {
	p.cancel()
	p.wg.Wait()
}

// pids returns the process ids of the pod's running containers.
func (p *podRun) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, c := range p.containers {
		if c.pid != 0 {
			out = append(out, c.pid)
		}
	}
	return out
}
