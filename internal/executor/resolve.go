package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/executor/procrt"
	"isotope.dev/isotope/internal/store"
)

// errorf returns an *Error with code and a formatted message.
func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// resolve reads the environment and package fn names and checks that a
// runtime serves the environment and the package can be served. A package being rebuilt, or whose latest build
// failed, is served from its last successful build (spec.deployment,
// which the builder manager replaces only when a build succeeds); see
// docs/decisions/0005-serve-last-good-build.md.
func (m *Manager) resolve(ctx context.Context, fn *v1.Function) (instance.Function, error) {
	envRef, pkgRef := fn.Spec.Environment, fn.Spec.Package.PackageRef
	envNs := orDefault(envRef.Namespace, fn.Namespace)
	pkgNs := orDefault(pkgRef.Namespace, fn.Namespace)
	env, err := store.GetAs[*v1.Environment](ctx, m.cfg.Store, envNs, envRef.Name)
	if err != nil {
		return instance.Function{}, storeErr(err, "environment %s/%s of function %s/%s", envNs, envRef.Name, fn.Namespace, fn.Name)
	}
	rt, err := m.runtimeFor(env)
	if err != nil {
		return instance.Function{}, err
	}
	pkg, err := store.GetAs[*v1.Package](ctx, m.cfg.Store, pkgNs, pkgRef.Name)
	if err != nil {
		return instance.Function{}, storeErr(err, "package %s/%s of function %s/%s", pkgNs, pkgRef.Name, fn.Namespace, fn.Name)
	}
	note, err := servable(pkg)
	if err != nil {
		return instance.Function{}, err
	}
	if note != "" {
		m.log.Warn(note, "function", fn.Namespace+"/"+fn.Name)
		if m.cfg.Logs != nil {
			m.cfg.Logs.Append(fn.Namespace, fn.Name, "host", note)
		}
	}
	f := instance.Function{Fn: fn, Env: env, Pkg: pkg}
	if cr, ok := rt.(instance.ConfigReader); ok && cr.ReadsConfig() {
		return f, nil
	}
	for _, r := range fn.Spec.Secrets {
		sec, err := store.GetAs[*v1.Secret](ctx, m.cfg.Store, orDefault(r.Namespace, fn.Namespace), r.Name)
		if err != nil {
			return instance.Function{}, m.configErr(err, "secret", orDefault(r.Namespace, fn.Namespace), r.Name, fn)
		}
		f.Secrets = append(f.Secrets, sec)
	}
	for _, r := range fn.Spec.ConfigMaps {
		cm, err := store.GetAs[*v1.ConfigMap](ctx, m.cfg.Store, orDefault(r.Namespace, fn.Namespace), r.Name)
		if err != nil {
			return instance.Function{}, m.configErr(err, "configmap", orDefault(r.Namespace, fn.Namespace), r.Name, fn)
		}
		f.ConfigMaps = append(f.ConfigMaps, cm)
	}
	return f, nil
}

// servable checks that a package has a deploy archive to serve. A package
// with none yet (its first build) is not servable: 503 with the build
// status. One with an archive is served whatever its status: pending and
// running keep serving the previous build until the new one replaces
// it; failed keeps serving the last good build, and note says so.
func servable(pkg *v1.Package) (note string, err error) {
	st := pkg.Status.BuildStatus
	switch st {
	case v1.BuildStatusSucceeded, v1.BuildStatusNone, v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusFailed, "":
	default:
		return "", errorf(http.StatusServiceUnavailable, "package %s/%s cannot be served: unknown build status %q", pkg.Namespace, pkg.Name, st)
	}
	if pkg.Spec.Deployment.IsEmpty() {
		switch st {
		case v1.BuildStatusFailed:
			return "", errorf(http.StatusServiceUnavailable, "package %s/%s cannot be served: its build failed and it has no earlier successful build (see `isotope pkg info --name %s`)", pkg.Namespace, pkg.Name, pkg.Name)
		case v1.BuildStatusPending, v1.BuildStatusRunning:
			return "", errorf(http.StatusServiceUnavailable, "package %s/%s is not ready: build status is %q (its first build)", pkg.Namespace, pkg.Name, st)
		}
		return "", errorf(http.StatusServiceUnavailable, "package %s/%s has no deployment archive (build status %q)", pkg.Namespace, pkg.Name, st)
	}
	if st == v1.BuildStatusFailed {
		return fmt.Sprintf("the latest build of package %s/%s failed (see `isotope pkg info --name %s`); serving its last successful build", pkg.Namespace, pkg.Name, pkg.Name), nil
	}
	return "", nil
}

// configErr is a secret or config map fn names that cannot be read: the
// function cannot start (503) until it exists. Callers get the router's
// short answer; the function's log (isotope fn logs) says which.
func (m *Manager) configErr(err error, kind, ns, name string, fn *v1.Function) error {
	e := errorf(http.StatusInternalServerError, "read %s %s/%s of function %s/%s: %v", kind, ns, name, fn.Namespace, fn.Name, err)
	if store.IsNotFound(err) {
		e = errorf(http.StatusServiceUnavailable, "%s %s/%s of function %s/%s not found: create it (isotope %s create --name %s)", kind, ns, name, fn.Namespace, fn.Name, kind, name)
	}
	if m.cfg.Logs != nil {
		m.cfg.Logs.Append(fn.Namespace, fn.Name, "host", e.Message)
	}
	return e
}

// storeErr maps a store read failure to an executor error naming what.
func storeErr(err error, what string, args ...any) error {
	name := fmt.Sprintf(what, args...)
	if store.IsNotFound(err) {
		return errorf(http.StatusNotFound, "%s not found", name)
	}
	return errorf(http.StatusInternalServerError, "read %s: %v", name, err)
}

func orDefault(s, def string) string {
	if s == "" {
		if def == "" {
			return v1.DefaultNamespace
		}
		return def
	}
	return s
}

// runtimeFor picks the runtime of env (Config.RuntimeFor).
func (m *Manager) runtimeFor(env *v1.Environment) (instance.Runtime, error) {
	return m.cfg.RuntimeFor(env)
}

// embeddedRuntimes is the embedded mode's RuntimeFor: in-process
// WebAssembly for isotope/wasm-env images, a local process for any other
// environment that names a program to run.
func embeddedRuntimes(wasmRT, procRT instance.Runtime) func(*v1.Environment) (instance.Runtime, error) {
	return func(env *v1.Environment) (instance.Runtime, error) {
		if IsWasmEnvImage(env.Spec.Runtime.Image) {
			if wasmRT == nil {
				return nil, errorf(http.StatusInternalServerError, "environment %s/%s uses %s but this executor has no WebAssembly runtime", env.Namespace, env.Name, WasmEnvImage)
			}
			return wasmRT, nil
		}
		if err := procrt.CheckEnv(env); err != nil {
			return nil, errorf(http.StatusInternalServerError, "%v", err)
		}
		return procRT, nil
	}
}

// deployFingerprint identifies a package's deploy archive: instances are
// replaced when it changes, not on status-only updates.
func deployFingerprint(pkg *v1.Package) string {
	b, _ := json.Marshal(pkg.Spec.Deployment)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
