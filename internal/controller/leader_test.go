package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// Short enough for tests, within client-go's rules.
const (
	leaseDuration = 3 * time.Second
	renewDeadline = 2 * time.Second
	retryPeriod   = 250 * time.Millisecond
)

// candidate runs RunAsLeader as identity in the background; run records
// in log when it starts and ends, and returns runErr once its context
// ends or stop is closed.
type candidate struct {
	cancel context.CancelFunc
	done   chan error
	stop   chan struct{}
}

type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.ev = append(l.ev, s)
	l.mu.Unlock()
}

func (l *eventLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.ev, s)
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

func elect(t *testing.T, env *kubetest.Env, ns, identity string, log *eventLog, runErr error) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{cancel: cancel, done: make(chan error, 1), stop: make(chan struct{})}
	lease := controller.Lease{
		Config: env.Config, Namespace: ns, Name: "isotope-test", Identity: identity,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
	}
	go func() {
		c.done <- controller.RunAsLeader(ctx, lease, func(ctx context.Context) error {
			log.add(identity + " leads")
			defer log.add(identity + " stops")
			select {
			case <-ctx.Done():
			case <-c.stop:
				return runErr
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

func (c *candidate) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("RunAsLeader did not return")
		return nil
	}
}

func getLease(t *testing.T, env *kubetest.Env, ns string) *coordinationv1.Lease {
	t.Helper()
	var l coordinationv1.Lease
	if err := env.Client.Get(kubetest.Context(t), client.ObjectKey{Namespace: ns, Name: "isotope-test"}, &l); err != nil {
		t.Fatal(err)
	}
	return &l
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// One candidate acts while it holds the Lease; the other waits, and
// takes over as soon as the first gives the Lease up, whether its
// context ended or its run failed (that error is returned).
func TestOneLeaderActsAtATime(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "lease")
	log := &eventLog{}
	a := elect(t, env, ns, "a", log, nil)
	waitFor(t, "a to lead", func() bool { return log.has("a leads") })
	boom := errors.New("boom")
	b := elect(t, env, ns, "b", log, boom)

	// Give b time to try: a renews the Lease twice while b waits.
	first := getLease(t, env, ns).Spec.RenewTime.Time
	waitFor(t, "a to renew its Lease twice", func() bool {
		l := getLease(t, env, ns)
		return holder(l) == "a" && l.Spec.RenewTime.Sub(first) >= 2*retryPeriod
	})
	a.cancel()
	if err := a.result(t); err != nil {
		t.Fatalf("a, whose context ended: %v; want nil", err)
	}
	waitFor(t, "b to lead", func() bool { return log.has("b leads") })
	if got, want := log.all(), []string{"a leads", "a stops", "b leads"}; !slices.Equal(got, want) {
		t.Fatalf("events %q; want %q", got, want)
	}

	close(b.stop)
	if err := b.result(t); !errors.Is(err, boom) {
		t.Fatalf("b, whose run failed: %v; want boom", err)
	}
	if h := holder(getLease(t, env, ns)); h != "" {
		t.Fatalf("Lease held by %q after its leader stopped; want it released", h)
	}
}

// A leader that can no longer renew its Lease (another holder took it)
// stops acting and returns ErrLostLease.
func TestLostLeaseStopsTheLeader(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "lease")
	log := &eventLog{}
	a := elect(t, env, ns, "a", log, nil)
	waitFor(t, "a to lead", func() bool { return log.has("a leads") })

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := getLease(t, env, ns)
		thief, secs := "thief", int32(600)
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &thief, &secs
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		return env.Client.Update(kubetest.Context(t), l)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = a.result(t)
	if !errors.Is(err, controller.ErrLostLease) {
		t.Fatalf("RunAsLeader: %v; want ErrLostLease", err)
	}
	if want := fmt.Sprintf("%s/isotope-test", ns); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the Lease %s", err, want)
	}
	if !log.has("a stops") {
		t.Fatal("run was still going when RunAsLeader returned")
	}
	if h := holder(getLease(t, env, ns)); h != "thief" {
		t.Fatalf("Lease held by %q; the old leader must not release another's Lease", h)
	}
}
