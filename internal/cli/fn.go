package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newFnCommand) }

// newFnCommand is `isotope fn` (alias function). `fn logs`, `fn test`
// come from other files through registerSub.
func newFnCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.Function]{g: g, noun: "function"}
	return group("fn", []string{"function"}, "Manage functions",
		newFnCreate(g), newFnArchive(g, "get"), newFnArchive(g, "getsrc"), newFnArchive(g, "getdeploy"),
		k.get("getmeta", "Show a function's metadata", describeFn), newFnUpdate(g),
		k.delete("Delete a function (its package stays; see pkg delete --orphan)"), newFnList(k))
}

// fnOptions are the flags of fn create and fn update.
type fnOptions struct {
	archiveFlags
	name, env, pkg, entrypoint, buildcmd      string
	executorType                              string
	minScale, maxScale, targetCPU             int
	resources                                 resourceFlags
	secrets, configmaps                       []string
	specializationTimeout, fnTimeout          int
	idleTimeout, concurrency, rpp, retainPods int
	onceOnly                                  bool
	url, prefix                               string
	methods                                   []string
	noWait, force                             bool
}

func (o *fnOptions) addFlags(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "function name")
	f.StringVar(&o.env, "env", "", "environment name")
	o.archiveFlags.addFlags(f)
	f.StringVar(&o.pkg, "pkg", "", "use this existing package (alias --pkgname)")
	f.StringVar(&o.entrypoint, "entrypoint", "", "entry point of the function in the package (alias --entry)")
	f.StringVar(&o.buildcmd, "buildcmd", "", "build command for the package's source")
	f.StringVar(&o.executorType, "executortype", string(v1.ExecutorTypePoolmgr), "executor type: poolmgr or newdeploy")
	f.IntVar(&o.minScale, "minscale", 1, "minimum instances (newdeploy)")
	f.IntVar(&o.maxScale, "maxscale", 1, "maximum instances (newdeploy)")
	f.IntVar(&o.targetCPU, "targetcpu", 80, "target CPU percent for scaling (newdeploy)")
	o.resources.addFlags(f)
	f.StringArrayVar(&o.secrets, "secret", nil, "secret the function reads (repeatable)")
	f.StringArrayVar(&o.configmaps, "configmap", nil, "config map the function reads (repeatable)")
	f.IntVar(&o.specializationTimeout, "specializationtimeout", 120, "seconds to wait for an instance to specialize (alias --st)")
	f.IntVar(&o.fnTimeout, "fntimeout", 60, "per-request timeout in seconds (alias --ft)")
	f.IntVar(&o.idleTimeout, "idletimeout", 120, "seconds an idle instance is kept")
	f.IntVar(&o.concurrency, "concurrency", 500, "most specialized instances at once (alias --con)")
	f.IntVar(&o.rpp, "requestsperpod", 1, "concurrent requests per instance (alias --rpp)")
	f.BoolVar(&o.onceOnly, "onceonly", false, "each request gets a fresh instance (alias --yolo)")
	f.IntVar(&o.retainPods, "retainpods", 0, "idle specialized instances never reaped")
	f.BoolVar(&o.noWait, "no-wait", false, "do not wait for the package to build")
	if create {
		f.StringVar(&o.url, "url", "", "also create a route for this URL")
		f.StringVar(&o.prefix, "prefix", "", "also create a route for this URL prefix")
		f.StringArrayVar(&o.methods, "method", nil, "HTTP method of the route (repeatable; default GET)")
	} else {
		f.BoolVar(&o.force, "force", false, "change the package even when other functions use it")
	}
	flagAliases(cmd, map[string]string{
		"sourcearchive": "src", "deployarchive": "deploy", "pkgname": "pkg", "entry": "entrypoint",
		"st": "specializationtimeout", "ft": "fntimeout", "con": "concurrency", "rpp": "requestsperpod", "yolo": "onceonly",
	})
}

// apply writes the function flags into spec: all of them on create, the
// given ones on update.
func (o *fnOptions) apply(cmd *cobra.Command, fn *v1.Function, ns string, all bool) {
	set := func(flag string) bool { return all || changed(cmd, flag) }
	s := &fn.Spec
	es := &s.InvokeStrategy.ExecutionStrategy
	s.InvokeStrategy.StrategyType = v1.StrategyTypeExecution
	assign(set("entrypoint"), &s.Package.FunctionName, o.entrypoint)
	assign(set("executortype"), &es.ExecutorType, v1.ExecutorType(o.executorType))
	assign(set("minscale"), &es.MinScale, o.minScale)
	assign(set("maxscale"), &es.MaxScale, o.maxScale)
	assign(set("targetcpu"), &es.TargetCPUPercent, o.targetCPU)
	assign(set("specializationtimeout"), &es.SpecializationTimeout, o.specializationTimeout)
	assign(set("fntimeout"), &s.FunctionTimeout, o.fnTimeout)
	if set("idletimeout") {
		it := o.idleTimeout
		s.IdleTimeout = &it
	}
	assign(set("concurrency"), &s.Concurrency, o.concurrency)
	assign(set("requestsperpod"), &s.RequestsPerPod, o.rpp)
	assign(set("onceonly"), &s.OnceOnly, o.onceOnly)
	assign(set("retainpods"), &s.RetainPods, o.retainPods)
	o.resources.apply(&s.Resources, set)
	if set("secret") && (len(o.secrets) > 0 || !all) {
		s.Secrets = nil
		for _, n := range o.secrets {
			s.Secrets = append(s.Secrets, v1.SecretReference{Namespace: ns, Name: n})
		}
	}
	if set("configmap") && (len(o.configmaps) > 0 || !all) {
		s.ConfigMaps = nil
		for _, n := range o.configmaps {
			s.ConfigMaps = append(s.ConfigMaps, v1.ConfigMapReference{Namespace: ns, Name: n})
		}
	}
}

func newFnCreate(g *Globals) *cobra.Command {
	o := &fnOptions{}
	var sf specFlags
	cmd := createCommand(g, "Create a function (and its package, and a route with --url/--prefix)", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if err := requireFlag("name", o.name); err != nil {
			return err
		}
		hasCode := o.given()
		if o.pkg != "" && hasCode {
			return fmt.Errorf("--pkg uses an existing package; it cannot be combined with --code, --src or --deploy")
		}
		if o.pkg == "" && !hasCode {
			return fmt.Errorf("give the function's code with --code, --src or --deploy, or an existing package with --pkg")
		}
		fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns}}
		v1.SetTypeMeta(fn)
		o.apply(cmd, fn, ns, true)

		var newPkg *v1.Package
		var archiveDocs []any
		if o.pkg != "" {
			if sf.spec || sf.dry {
				if err := requireFlag("env", o.env); err != nil {
					return err
				}
			} else {
				p, err := store.GetAs[*v1.Package](ctx, st, ns, o.pkg)
				if err != nil {
					return fmt.Errorf("--pkg: %w", err)
				}
				if o.env == "" {
					o.env = p.Spec.Environment.Name
				} else if o.env != p.Spec.Environment.Name {
					return fmt.Errorf("--env: function environment '%s' differs from package '%s' environment '%s'", o.env, p.Name, p.Spec.Environment.Name)
				}
				fn.Spec.Package.PackageRef.ResourceVersion = p.ResourceVersion
			}
			fn.Spec.Package.PackageRef.Name = o.pkg
		} else {
			if err := requireFlag("env", o.env); err != nil {
				return err
			}
			if !sf.spec && !sf.dry {
				if err := checkEnvExists(ctx, st, ns, o.env); err != nil {
					return err
				}
			}
			pkgName := uniqueName(o.name)
			src, deploy, docs, err := o.archives(ctx, g, cmd, &sf, pkgName)
			if err != nil {
				return err
			}
			archiveDocs = docs
			newPkg = newPackage(ns, pkgName, o.env, src, deploy, o.buildcmd)
			fn.Spec.Package.PackageRef.Name = newPkg.Name
		}
		fn.Spec.Environment = v1.EnvironmentReference{Namespace: ns, Name: o.env}
		fn.Spec.Package.PackageRef.Namespace = ns

		var route *v1.HTTPTrigger
		if o.url != "" || o.prefix != "" {
			route = &v1.HTTPTrigger{ObjectMeta: metav1.ObjectMeta{Name: uuid.NewString(), Namespace: ns}}
			v1.SetTypeMeta(route)
			if err := setRouteURL(&route.Spec, o.url, o.prefix, true); err != nil {
				return err
			}
			route.Spec.Methods = methodsOrGet(o.methods)
			route.Spec.FunctionReference = v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: o.name}
		}
		objs := archiveDocs
		if newPkg != nil {
			objs = append(objs, newPkg)
		}
		objs = append(objs, fn)
		if route != nil {
			objs = append(objs, route)
		}
		if done, err := sf.save(cmd, "function-"+o.name, objs...); done || err != nil {
			return err
		}

		out := cmd.OutOrStdout()
		var createdPkg *v1.Package
		if newPkg != nil {
			obj, err := st.Create(ctx, newPkg)
			if err != nil {
				return err
			}
			createdPkg = obj.(*v1.Package)
			fn.Spec.Package.PackageRef.ResourceVersion = createdPkg.ResourceVersion
		}
		warnMissingConfig(ctx, st, cmd.ErrOrStderr(), fn)
		if _, err := st.Create(ctx, fn); err != nil {
			if createdPkg != nil {
				// Leave nothing behind for a function that was refused.
				_ = st.Delete(context.WithoutCancel(ctx), v1.KindPackage, ns, createdPkg.Name, "")
			}
			return err
		}
		if createdPkg != nil {
			fmt.Fprintf(out, "package '%s' created\n", createdPkg.Name)
		}
		fmt.Fprintf(out, "function '%s' created\n", o.name)
		if route != nil {
			if _, err := st.Create(ctx, route); err != nil {
				return fmt.Errorf("function '%s' created, but its route was refused: %w", o.name, err)
			}
			fmt.Fprintf(out, "route '%s' created: %s %s -> function '%s'\n", route.Name, strings.Join(route.Spec.Methods, ","), routePath(&route.Spec), o.name)
		}
		if createdPkg != nil && createdPkg.Status.BuildStatus == v1.BuildStatusPending && !o.noWait {
			return waitForBuild(ctx, g, st, out, cmd.ErrOrStderr(), createdPkg)
		}
		return nil
	})
	o.addFlags(cmd, true)
	return cmd
}

// getFunctionPackage returns a function and its package.
func getFunctionPackage(ctx context.Context, st store.Store, ns, name string) (*v1.Function, *v1.Package, error) {
	fn, err := store.GetAs[*v1.Function](ctx, st, ns, name)
	if err != nil {
		return nil, nil, err
	}
	ref := fn.Spec.Package.PackageRef
	if ref.Namespace == "" {
		ref.Namespace = fn.Namespace
	}
	p, err := store.GetAs[*v1.Package](ctx, st, ref.Namespace, ref.Name)
	if err != nil {
		return fn, nil, fmt.Errorf("function '%s' package: %w", name, err)
	}
	return fn, p, nil
}

// newFnArchive is `fn get` and `fn getsrc`, the function's source archive
// (or, for a function made from a deploy archive only, that archive), and
// `fn getdeploy`, its deploy archive.
func newFnArchive(g *Globals, use string) *cobra.Command {
	short := "Print the function's source code"
	if use == "getdeploy" {
		short = "Print the function's deploy archive"
	}
	return archiveOutCommand(g, use, short, "function", "write to this file instead of stdout",
		func(ctx context.Context, st store.Store, name string) (v1.Archive, error) {
			_, p, err := getFunctionPackage(ctx, st, g.ns(), name)
			switch {
			case err != nil:
				return v1.Archive{}, err
			case use == "getdeploy":
				return deployArchive(p)
			case !p.Spec.Source.IsEmpty():
				return p.Spec.Source, nil
			case !p.Spec.Deployment.IsEmpty():
				return p.Spec.Deployment, nil
			}
			return v1.Archive{}, fmt.Errorf("package '%s' of function '%s' holds no archive", p.Name, name)
		})
}

// describeFn is the summary `fn getmeta` prints.
func describeFn(w io.Writer, fn *v1.Function) error {
	s := newSummary(w)
	es := fn.Spec.InvokeStrategy.ExecutionStrategy
	s.add("Name", fn.Name)
	s.add("Namespace", fn.Namespace)
	s.add("Environment", fn.Spec.Environment.Name)
	s.add("Package", fn.Spec.Package.PackageRef.Name)
	s.add("Entry point", fn.Spec.Package.FunctionName)
	s.add("Executor type", string(es.ExecutorType))
	s.add("Scale", fmt.Sprintf("%d..%d", es.MinScale, es.MaxScale))
	s.add("Function timeout", fmt.Sprintf("%ds", fn.Spec.FunctionTimeout))
	if fn.Spec.IdleTimeout != nil {
		s.add("Idle timeout", fmt.Sprintf("%ds", *fn.Spec.IdleTimeout))
	}
	s.add("Concurrency", strconv.Itoa(fn.Spec.Concurrency))
	s.add("Requests per instance", strconv.Itoa(fn.Spec.RequestsPerPod))
	s.add("Resources", resourcesString(fn.Spec.Resources))
	s.add("Created", fn.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"))
	return s.flush()
}

func newFnUpdate(g *Globals) *cobra.Command {
	o := &fnOptions{}
	cmd := &cobra.Command{Use: "update", Short: "Change a function (only the flags given); new code rebuilds its package", Args: cobra.NoArgs}
	o.addFlags(cmd, false)
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if err := requireFlag("name", o.name); err != nil {
			return err
		}
		newCode := o.given() || changed(cmd, "buildcmd")
		if o.pkg != "" && newCode {
			return fmt.Errorf("--pkg switches to another package; it cannot be combined with --code, --src, --deploy or --buildcmd")
		}
		fn, err := store.GetAs[*v1.Function](ctx, st, ns, o.name)
		if err != nil {
			return err
		}
		if changed(cmd, "env") {
			if _, err := st.Get(ctx, v1.KindEnvironment, ns, o.env); err != nil {
				return fmt.Errorf("--env: %w", err)
			}
		}
		var rebuilt *v1.Package
		switch {
		case o.pkg != "":
			p, err := store.GetAs[*v1.Package](ctx, st, ns, o.pkg)
			if err != nil {
				return fmt.Errorf("--pkg: %w", err)
			}
			fn.Spec.Package.PackageRef = v1.PackageRef{Namespace: ns, Name: p.Name, ResourceVersion: p.ResourceVersion}
		case newCode:
			src, deploy, _, err := o.archives(ctx, g, cmd, &specFlags{}, "")
			if err != nil {
				return err
			}
			ref := fn.Spec.Package.PackageRef
			rebuilt, err = updatePackage(ctx, st, cmd, ns, ref.Name, pkgChange{
				env: o.env, setEnv: changed(cmd, "env"),
				src: src, deploy: deploy,
				buildcmd: o.buildcmd, setBuildcmd: changed(cmd, "buildcmd"),
				force: o.force, exceptFn: o.name,
			})
			if err != nil {
				return err
			}
			fn.Spec.Package.PackageRef.ResourceVersion = rebuilt.ResourceVersion
		}
		assign(changed(cmd, "env"), &fn.Spec.Environment, v1.EnvironmentReference{Namespace: ns, Name: o.env})
		o.apply(cmd, fn, ns, false)
		warnMissingConfig(ctx, st, cmd.ErrOrStderr(), fn)
		updated, err := st.Update(ctx, fn)
		if err != nil {
			return err
		}
		reportUpdate(cmd, "function", o.name, updated.GetResourceVersion() != fn.ResourceVersion)
		if rebuilt != nil && rebuilt.Status.BuildStatus == v1.BuildStatusPending && !o.noWait {
			return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), rebuilt)
		}
		return nil
	})
	return cmd
}

func newFnList(k kindCommands[*v1.Function]) *cobra.Command {
	var env string
	cmd := k.list(listing[*v1.Function]{
		short:   "List functions",
		headers: []string{"NAME", "ENV", "EXECUTORTYPE", "MINSCALE", "MAXSCALE", "MINCPU", "MAXCPU", "MINMEMORY", "MAXMEMORY", "SECRETS", "CONFIGMAPS", "NAMESPACE"},
		row: func(fn *v1.Function) []string {
			es := fn.Spec.InvokeStrategy.ExecutionStrategy
			r := fn.Spec.Resources
			var secrets, cms []string
			for _, s := range fn.Spec.Secrets {
				secrets = append(secrets, s.Name)
			}
			for _, c := range fn.Spec.ConfigMaps {
				cms = append(cms, c.Name)
			}
			return []string{fn.Name, fn.Spec.Environment.Name, string(es.ExecutorType), strconv.Itoa(es.MinScale), strconv.Itoa(es.MaxScale),
				quantity(r.Requests, corev1.ResourceCPU), quantity(r.Limits, corev1.ResourceCPU),
				quantity(r.Requests, corev1.ResourceMemory), quantity(r.Limits, corev1.ResourceMemory),
				strings.Join(secrets, ","), strings.Join(cms, ","), fn.Namespace}
		},
		filter: func(context.Context, store.Store, store.ListOptions) (func(*v1.Function) bool, error) {
			if env == "" {
				return nil, nil
			}
			return func(fn *v1.Function) bool { return fn.Spec.Environment.Name == env }, nil
		},
		wide: func(ctx context.Context, out io.Writer, kept []*v1.Function, all bool) error {
			return printWide(ctx, k.g, out, kept, all)
		},
	})
	cmd.Flags().StringVar(&env, "env", "", "only functions of this environment")
	return cmd
}
