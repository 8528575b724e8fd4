package kubetest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// StartControllers starts kube-controller-manager and kube-scheduler
// against the control plane, once per test binary, and waits until the
// controller manager acts (it creates the "default" ServiceAccount).
// Their logs are in Env.Dir; a test that fails while they run gets
// their last lines. Pods are scheduled only onto nodes, and there are
// none until a node agent registers one: until then scheduled work stays
// Pending.
func (e *Env) StartControllers(t testing.TB) {
	t.Helper()
	e.ctrlOnce.Do(func() { e.ctrlErr = e.startControllers() })
	if e.ctrlErr != nil {
		t.Fatalf("kubetest: %v", e.ctrlErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range e.ctrls {
				t.Logf("%s log (last lines):\n%s", p.name, p.tail(30))
			}
		}
	})
}

func (e *Env) startControllers() error {
	if err := CheckAssets(true); err != nil {
		return err
	}
	var health []string
	common := func() ([]string, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		health = append(health, fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		return []string{
			"--kubeconfig=" + e.Kubeconfig,
			"--authentication-kubeconfig=" + e.Kubeconfig,
			"--authorization-kubeconfig=" + e.Kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", port),
			"--cert-dir=" + e.Dir,
			"--v=2",
		}, nil
	}
	args, err := common()
	if err != nil {
		return err
	}
	kcm, err := e.startProc("kube-controller-manager", append(args,
		"--controllers=*",
		"--use-service-account-credentials=false",
		"--cluster-name=isotope-test",
		// The apiserver's service-account signing key, so that the token
		// controller mints tokens the apiserver accepts.
		"--service-account-private-key-file="+filepath.Join(e.env.ControlPlane.APIServer.CertDir, "sa-signer.key"),
	)...)
	if err != nil {
		return err
	}
	e.ctrls = append(e.ctrls, kcm)
	if args, err = common(); err != nil {
		return err
	}
	sched, err := e.startProc("kube-scheduler", args...)
	if err != nil {
		return err
	}
	e.ctrls = append(e.ctrls, sched)

	// Ready when both answer /healthz and the controller manager has
	// acted (its serviceaccount controller creates default/default).
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// Their serving certificates are self-signed; this is loopback.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		err := e.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "default"}, &corev1.ServiceAccount{})
		for _, u := range health {
			if err == nil {
				err = healthy(hc, u)
			}
		}
		if err == nil {
			return nil
		}
		for _, p := range e.ctrls {
			if p.exited() {
				return fmt.Errorf("%s exited: %v\n%s", p.name, p.waitErr, p.tail(30))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("controllers not ready within 2m: %v\n%s\n%s", err, kcm.tail(20), sched.tail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func healthy(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// proc is a control-plane process we started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func (e *Env) startProc(name string, args ...string) (*proc, error) {
	logPath := filepath.Join(e.Dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(AssetsDir(), name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10s.
func (p *proc) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return errors.New(p.name + " ignored SIGTERM for 10s; killed")
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string { return tailFile(p.logPath, n) }
