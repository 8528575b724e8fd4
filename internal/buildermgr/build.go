package buildermgr

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// build runs one pending package to succeeded or failed.
func (m *Manager) build(ctx context.Context, pkg *v1.Package) error {
	ctx, span := traceBuild(ctx, pkg)
	defer span.End()
	key := pkg.Namespace + "/" + pkg.Name
	log := m.log.With("namespace", pkg.Namespace, "package", pkg.Name)

	// The live log exists before the status says running, so a reader
	// that sees "running" always finds this build's log.
	live := m.Logs.Start(key)
	// pending → running. A conflict means the package changed under us:
	// the error requeues it and the next pass sees the new state.
	pkg.Status.BuildStatus = v1.BuildStatusRunning
	pkg.Status.BuildLog = ""
	pkg.Status.LastUpdateTimestamp = metav1.Now()
	obj, err := m.cfg.Store.UpdateStatus(ctx, pkg)
	if err != nil {
		live.Finish()
		return err
	}
	pkg = obj.(*v1.Package)
	log.Info("build started")
	started := time.Now()

	bctx, cancel := context.WithTimeout(ctx, m.cfg.BuildTimeout)
	url, sum, buildLog, err := m.runBuild(bctx, pkg, live)
	cancel()
	if err != nil && ctx.Err() != nil {
		// Shutting down: leave the package running; the next start finds
		// it and builds again.
		live.Finish()
		return ctx.Err()
	}
	if err == nil {
		err = m.succeed(ctx, pkg, url, sum, buildLog)
	}
	if err != nil {
		failLog := buildLog
		if bf, ok := isBuildFailure(err); ok {
			failLog = bf.log
		} else if errors.Is(err, context.DeadlineExceeded) {
			failLog = appendLog(buildLog, fmt.Sprintf("isotope: build timed out after %s", m.cfg.BuildTimeout))
		} else {
			failLog = appendLog(buildLog, "isotope: "+err.Error())
		}
		live.Write([]byte(failLog[min(len(buildLog), len(failLog)):]))
		live.Finish()
		log.Info("build failed", "took", time.Since(started).Round(time.Millisecond))
		buildOutcome(span, v1.BuildStatusFailed, err)
		return m.fail(ctx, key, failLog)
	}
	live.Finish()
	log.Info("build succeeded", "took", time.Since(started).Round(time.Millisecond))
	buildOutcome(span, v1.BuildStatusSucceeded, nil)
	return nil
}

// runBuild fetches, builds and uploads; every failure is an *errBuild
// whose log says what went wrong and what to do.
func (m *Manager) runBuild(ctx context.Context, pkg *v1.Package, live *LiveLog) (string, v1.Checksum, string, error) {
	var none v1.Checksum
	obj, err := m.cfg.Store.Get(ctx, v1.KindEnvironment, pkg.Spec.Environment.Namespace, pkg.Spec.Environment.Name)
	if store.IsNotFound(err) {
		return "", none, "", buildFailure("", "environment %s/%s does not exist: create it (isotope env create --name %s --image … --builder …) and rebuild the package (isotope pkg rebuild --name %s)",
			pkg.Spec.Environment.Namespace, pkg.Spec.Environment.Name, pkg.Spec.Environment.Name, pkg.Name)
	}
	if err != nil {
		return "", none, "", err
	}
	env := obj.(*v1.Environment)
	if !HasBuilder(env) {
		return "", none, "", buildFailure("", "environment %s/%s has no builder (it needs version >= 2 and a builder image): give it one (isotope env update --name %s --builder …) or create the package with a deploy archive (--deploy)",
			env.Namespace, env.Name, env.Name)
	}
	command := buildCommand(pkg, env)

	if err := m.cfg.Builders.Ensure(ctx, env); err != nil {
		return "", none, "", buildFailure("", "cannot start the builder of environment %s/%s: %v", env.Namespace, env.Name, err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, m.cfg.BuilderReadyTimeout)
	pod, err := m.cfg.Builders.Pod(readyCtx, env)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return "", none, "", buildFailure("", "the builder of environment %s/%s did not become ready within %s: %v", env.Namespace, env.Name, m.cfg.BuilderReadyTimeout, err)
		}
		return "", none, "", buildFailure("", "the builder of environment %s/%s is not available: %v", env.Namespace, env.Name, err)
	}

	src := pkg.Name + "-" + randSuffix()
	defer pod.Clean(context.WithoutCancel(ctx), src)
	if err := step(ctx, "build.fetch", func(ctx context.Context) error { return pod.FetchSource(ctx, pkg, src) }); err != nil {
		return "", none, "", buildFailure("", "fetching the source archive failed: %v", err)
	}
	var artifact, blog string
	err = step(ctx, "build.run", func(ctx context.Context) (err error) {
		artifact, blog, err = pod.Build(ctx, src, command, live)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", none, blog, ctx.Err()
		}
		return "", none, blog, buildFailure(blog, "isotope: build command %q failed: %v", command, err)
	}
	var url string
	var sum v1.Checksum
	err = step(ctx, "build.upload", func(ctx context.Context) (err error) {
		url, sum, err = pod.Upload(ctx, artifact, !env.Spec.KeepArchive)
		return err
	})
	if err != nil {
		return "", none, blog, buildFailure(blog, "isotope: uploading the deploy archive failed: %v", err)
	}
	return url, sum, blog, nil
}

// succeed records the deploy archive and the succeeded status, then bumps
// the functions that use the package so executors load the new code.
func (m *Manager) succeed(ctx context.Context, pkg *v1.Package, url string, sum v1.Checksum, buildLog string) error {
	for attempt := 0; ; attempt++ {
		obj, err := m.cfg.Store.Get(ctx, v1.KindPackage, pkg.Namespace, pkg.Name)
		if err != nil {
			return err
		}
		cur := obj.(*v1.Package)
		if cur.UID != pkg.UID {
			return fmt.Errorf("package was replaced during the build")
		}
		cur.Spec.Deployment = v1.Archive{Type: v1.ArchiveTypeURL, URL: url, Checksum: sum}
		obj, err = m.cfg.Store.Update(ctx, cur)
		if store.IsConflict(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return err
		}
		cur = obj.(*v1.Package)
		cur.Status = v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded, BuildLog: buildLog, LastUpdateTimestamp: metav1.Now()}
		obj, err = m.cfg.Store.UpdateStatus(ctx, cur)
		if store.IsConflict(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return err
		}
		if err := m.bumpFunctions(ctx, obj.(*v1.Package)); err != nil {
			// The build itself succeeded and is recorded; the functions
			// keep their old code until their next update.
			m.log.Warn("build succeeded but functions were not refreshed", "package", pkg.Name, "err", err)
		}
		return nil
	}
}

// fail records a failed build, retrying on conflicts with the latest
// object (the status is ours to write while the package is running).
func (m *Manager) fail(ctx context.Context, key, buildLog string) error {
	ns, name := splitKey(key)
	for attempt := 0; attempt < 5; attempt++ {
		obj, err := m.cfg.Store.Get(ctx, v1.KindPackage, ns, name)
		if store.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		pkg := obj.(*v1.Package)
		pkg.Status = v1.PackageStatus{BuildStatus: v1.BuildStatusFailed, BuildLog: buildLog, LastUpdateTimestamp: metav1.Now()}
		if _, err = m.cfg.Store.UpdateStatus(ctx, pkg); !store.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("package %s: status kept changing; retrying", key)
}

// bumpFunctions points every function that uses pkg at its new
// resourceVersion (Fission's rebuild propagation).
func (m *Manager) bumpFunctions(ctx context.Context, pkg *v1.Package) error {
	objs, _, err := m.cfg.Store.List(ctx, v1.KindFunction, store.ListOptions{Namespace: pkg.Namespace})
	if err != nil {
		return err
	}
	for _, o := range objs {
		fn := o.(*v1.Function)
		ref := &fn.Spec.Package.PackageRef
		if ref.Name != pkg.Name || (ref.Namespace != "" && ref.Namespace != pkg.Namespace) || ref.ResourceVersion == pkg.ResourceVersion {
			continue
		}
		ref.ResourceVersion = pkg.ResourceVersion
		if _, err := m.cfg.Store.Update(ctx, fn); err != nil && !store.IsNotFound(err) {
			return fmt.Errorf("point function %s/%s at the rebuilt package: %w", fn.Namespace, fn.Name, err)
		}
	}
	return nil
}

func splitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

// randSuffix is six random lowercase letters, as Fission names fetched
// sources.
func randSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
