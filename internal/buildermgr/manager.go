package buildermgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
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

// Manager runs the environment and package controllers.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	Logs *LiveLogs
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
		cfg:  cfg,
		log:  cfg.Logger.With("role", "buildermgr"),
		Logs: NewLiveLogs(),
	}
}

// Run reconciles environments (their builders) and packages (their
// builds, Parallel at once) until ctx ends. Packages found "running" when
// it starts were interrupted by a crash or restart: they are set back to
// pending and built again.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.recoverInterrupted(ctx); err != nil {
		return err
	}
	envs, err := controller.New(controller.Config{
		Store: m.cfg.Store, Kind: v1.KindEnvironment, Name: "environments",
		Reconcile: m.reconcileEnvironment, Logger: m.log,
	})
	if err != nil {
		return err
	}
	pkgs, err := controller.New(controller.Config{
		Store: m.cfg.Store, Kind: v1.KindPackage, Name: "packages",
		Reconcile: m.reconcilePackage, Workers: m.cfg.Parallel, Filter: mayNeedBuild, Logger: m.log,
	})
	if err != nil {
		return err
	}
	return controller.RunAll(ctx, envs, pkgs)
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

// mayNeedBuild passes the package events that may need work: a package
// without a status yet, or a pending one.
func mayNeedBuild(ev store.Event) bool {
	pkg, ok := ev.Object.(*v1.Package)
	return ok && ev.Type != store.Deleted &&
		(pkg.Status.BuildStatus == v1.BuildStatusPending || pkg.Status.BuildStatus == "")
}

// reconcileEnvironment keeps a builder running for the environment key
// at its current version while it has a builder image, and none
// otherwise. An error (a builder that could not be started or stopped)
// is retried.
func (m *Manager) reconcileEnvironment(ctx context.Context, key controller.Key) error {
	env, err := store.GetAs[*v1.Environment](ctx, m.cfg.Store, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if err != nil || !HasBuilder(env) {
		if err := m.cfg.Builders.Remove(ctx, key.Namespace, key.Name); err != nil {
			return fmt.Errorf("stop builder: %w", err)
		}
		return nil
	}
	if err := m.cfg.Builders.Ensure(ctx, env); err != nil {
		return fmt.Errorf("start builder: %w", err)
	}
	return nil
}

// reconcilePackage builds the package key if it is pending. Errors
// returned are transient (store conflicts, unreachable store) and
// retried; build failures end in status failed and return nil.
func (m *Manager) reconcilePackage(ctx context.Context, key controller.Key) error {
	obj, err := m.cfg.Store.Get(ctx, v1.KindPackage, key.Namespace, key.Name)
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
