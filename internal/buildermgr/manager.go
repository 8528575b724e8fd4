package buildermgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Config configures a Manager.
type Config struct {
	Store    store.Store
	Builders Builders
	// Parallel is how many packages build at once (default 2).
	Parallel int
	// BuildTimeout bounds one build, builder start-up included (default 10m).
	BuildTimeout time.Duration
	// BuilderReadyTimeout bounds the wait for a builder to become ready
	// (default 2m); past it the build fails saying the builder never came up.
	BuilderReadyTimeout time.Duration
	Logger              *slog.Logger
}

// Manager runs the environment and package watchers.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[string]
	Logs  *LiveLogs
	// building tracks builds in flight by namespace/name.
	mu       sync.Mutex
	building map[string]bool
}

// New returns a Manager; call Run to start it.
func New(cfg Config) *Manager {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 2
	}
	if cfg.BuildTimeout <= 0 {
		cfg.BuildTimeout = 10 * time.Minute
	}
	if cfg.BuilderReadyTimeout <= 0 {
		cfg.BuilderReadyTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{
		cfg: cfg,
		log: cfg.Logger.With("role", "buildermgr"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "packages"}),
		Logs:     NewLiveLogs(),
		building: map[string]bool{},
	}
}

// Run watches environments and packages until ctx ends. Packages found
// "running" when it starts were interrupted by a crash or restart: they are
// set back to pending and built again.
func (m *Manager) Run(ctx context.Context) error {
	defer m.queue.ShutDown()
	if err := m.recoverInterrupted(ctx); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- m.watchEnvironments(ctx) }()
	go func() { errc <- m.watchPackages(ctx) }()
	var wg sync.WaitGroup
	for i := 0; i < m.cfg.Parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m.processNext(ctx) {
			}
		}()
	}
	go func() {
		<-ctx.Done()
		m.queue.ShutDown()
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	m.queue.ShutDown()
	wg.Wait()
	return err
}

func (m *Manager) recoverInterrupted(ctx context.Context) error {
	objs, _, err := m.cfg.Store.List(ctx, v1.KindPackage, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("buildermgr: list packages: %w", err)
	}
	for _, o := range objs {
		pkg := o.(*v1.Package)
		if pkg.Status.BuildStatus != v1.BuildStatusRunning {
			continue
		}
		pkg.Status.BuildStatus = v1.BuildStatusPending
		pkg.Status.BuildLog = appendLog(pkg.Status.BuildLog,
			"isotope: the previous build was interrupted (the builder manager restarted); building again")
		pkg.Status.LastUpdateTimestamp = metav1.Now()
		if _, err := m.cfg.Store.UpdateStatus(ctx, pkg); err != nil && !store.IsNotFound(err) {
			return fmt.Errorf("buildermgr: reset interrupted package %s/%s: %w", pkg.Namespace, pkg.Name, err)
		}
		m.log.Info("rebuilding interrupted package", "namespace", pkg.Namespace, "package", pkg.Name)
	}
	return nil
}

// watchPackages enqueues every package that may need work; the watch is
// re-opened (from the last seen version) if the stream ends.
func (m *Manager) watchPackages(ctx context.Context) error {
	return watchLoop(ctx, m.cfg.Store, v1.KindPackage, m.log, func(ev store.Event) {
		if ev.Type == store.Deleted || ev.Type == store.Bookmark {
			return
		}
		pkg := ev.Object.(*v1.Package)
		if pkg.Status.BuildStatus == v1.BuildStatusPending || pkg.Status.BuildStatus == "" {
			m.queue.Add(pkg.Namespace + "/" + pkg.Name)
		}
	})
}

// watchEnvironments keeps builders in step with environments.
func (m *Manager) watchEnvironments(ctx context.Context) error {
	return watchLoop(ctx, m.cfg.Store, v1.KindEnvironment, m.log, func(ev store.Event) {
		if ev.Type == store.Bookmark {
			return
		}
		env := ev.Object.(*v1.Environment)
		if ev.Type == store.Deleted || !HasBuilder(env) {
			if err := m.cfg.Builders.Remove(ctx, env.Namespace, env.Name); err != nil {
				m.log.Warn("stop builder", "namespace", env.Namespace, "environment", env.Name, "err", err)
			}
			return
		}
		if err := m.cfg.Builders.Ensure(ctx, env); err != nil {
			m.log.Warn("start builder", "namespace", env.Namespace, "environment", env.Name, "err", err)
		}
	})
}

// watchLoop runs a watch of kind, calling handle for each event and
// resuming from the last resourceVersion when the stream closes. An
// expired version restarts from the current state (which re-sends ADDED
// events: handlers are idempotent).
func watchLoop(ctx context.Context, st store.Store, kind string, log *slog.Logger, handle func(store.Event)) error {
	rv := ""
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		w, err := st.Watch(ctx, kind, store.WatchOptions{ResourceVersion: rv})
		if err != nil {
			if store.IsExpired(err) {
				rv = ""
				continue
			}
			log.Warn("watch failed; retrying", "kind", kind, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for ev := range w.ResultChan() {
			if ev.Object != nil {
				rv = ev.Object.GetResourceVersion()
			}
			handle(ev)
		}
		w.Stop()
	}
	return nil
}

func (m *Manager) processNext(ctx context.Context) bool {
	key, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(key)
	if err := m.reconcile(ctx, key); err != nil {
		if ctx.Err() != nil {
			return true
		}
		m.log.Warn("reconcile package; retrying", "package", key, "err", err)
		m.queue.AddRateLimited(key)
		return true
	}
	m.queue.Forget(key)
	return true
}

// reconcile builds the package key if it is pending. Errors returned are
// transient (store conflicts, unreachable store) and retried; build
// failures end in status failed and return nil.
func (m *Manager) reconcile(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	obj, err := m.cfg.Store.Get(ctx, v1.KindPackage, ns, name)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	pkg := obj.(*v1.Package)
	if pkg.Status.BuildStatus == "" {
		pkg.Status = initialStatus(pkg)
		_, err := m.cfg.Store.UpdateStatus(ctx, pkg)
		return err
	}
	if pkg.Status.BuildStatus != v1.BuildStatusPending {
		return nil
	}
	return m.build(ctx, pkg)
}

// initialStatus is Fission's initial package status.
func initialStatus(pkg *v1.Package) v1.PackageStatus {
	st := v1.PackageStatus{LastUpdateTimestamp: metav1.Now()}
	switch {
	case !pkg.Spec.Deployment.IsEmpty():
		st.BuildStatus = v1.BuildStatusNone
	case !pkg.Spec.Source.IsEmpty():
		st.BuildStatus = v1.BuildStatusPending
	default:
		st.BuildStatus = v1.BuildStatusFailed
		st.BuildLog = "Both source and deployment archives are empty: give the package --src or --deploy.\n"
	}
	return st
}

func appendLog(log, line string) string {
	if log != "" && !strings.HasSuffix(log, "\n") {
		log += "\n"
	}
	return log + line + "\n"
}

// errBuild is a build failure: the package ends failed with this log.
type errBuild struct{ log string }

func (e *errBuild) Error() string { return e.log }

func buildFailure(log string, format string, args ...any) error {
	return &errBuild{log: appendLog(log, fmt.Sprintf(format, args...))}
}

func isBuildFailure(err error) (*errBuild, bool) {
	var e *errBuild
	ok := errors.As(err, &e)
	return e, ok
}
