package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lease says which Kubernetes Lease elects the one replica of a role
// that acts, and who this replica is.
type Lease struct {
	// Config reaches the kube-apiserver that holds the Lease. Required.
	Config *rest.Config
	// Namespace and Name name the Lease ("isotope-executor"). Required.
	Namespace, Name string
	// Identity is this replica's name in the Lease (its pod name).
	// Required.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election
	// (defaults 15s, 10s and 2s). A follower takes over at most
	// LeaseDuration after a leader vanishes without releasing the Lease;
	// a leader that cannot renew for RenewDeadline stops acting.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// ErrLostLease is returned by RunAsLeader when the Lease was lost.
var ErrLostLease = errors.New("lost the leader Lease")

// RunAsLeader waits until this replica holds the Lease, then calls run
// with a context that ends when the Lease is lost, and returns once run
// has. The Lease is released when run returns or ctx ends, so that
// another replica takes over at once.
//
// It returns nil when ctx ended, run's error when run failed, and an
// error wrapping ErrLostLease when the Lease was lost (run's context
// then ended too): the caller should exit rather than elect again, so
// that a replica that stopped acting never acts alongside the new
// leader.
func RunAsLeader(ctx context.Context, l Lease, run func(context.Context) error) error {
	if l.Config == nil || l.Namespace == "" || l.Name == "" || l.Identity == "" {
		return errors.New("controller: Lease needs Config, Namespace, Name and Identity")
	}
	if l.LeaseDuration <= 0 {
		l.LeaseDuration = 15 * time.Second
	}
	if l.RenewDeadline <= 0 {
		l.RenewDeadline = 10 * time.Second
	}
	if l.RetryPeriod <= 0 {
		l.RetryPeriod = 2 * time.Second
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	cc, err := coordinationv1.NewForConfig(l.Config)
	if err != nil {
		return err
	}
	name := l.Namespace + "/" + l.Name
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leading := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
			Client:     cc,
			LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
		},
		LeaseDuration:   l.LeaseDuration,
		RenewDeadline:   l.RenewDeadline,
		RetryPeriod:     l.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { leading <- lctx },
			OnStoppedLeading: cancel,
		},
	})
	if err != nil {
		return err
	}
	l.Logger.Info("waiting for the leader Lease", "lease", name, "identity", l.Identity)
	elected := make(chan struct{})
	go func() {
		defer close(elected)
		le.Run(ctx)
	}()
	select {
	case <-elected:
		// The elector stopped before run could start: ctx ended while
		// waiting, or the Lease was lost as soon as it was taken.
	case lctx := <-leading:
		l.Logger.Info("leading", "lease", name, "identity", l.Identity)
		err := run(lctx)
		ended := lctx.Err() == nil
		cancel() // give the Lease up
		<-elected
		if err != nil {
			return err
		}
		if ended {
			return nil // run finished by itself
		}
	}
	if parent.Err() != nil {
		return nil
	}
	return fmt.Errorf("%w %s", ErrLostLease, name)
}
