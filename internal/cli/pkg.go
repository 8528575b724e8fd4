package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newPkgCommand) }

// newPkgCommand is `isotope pkg` (alias package).
func newPkgCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.Package]{g: g, noun: "package"}
	info := k.get("info", "Show a package's build status and log (get -o json|yaml prints the whole object)", describePkg)
	info.Aliases = []string{"get"}
	return group("pkg", []string{"package"}, "Manage packages (source and deploy archives, builds)",
		newPkgCreate(g), newPkgUpdate(g), newPkgArchive(g, "getsrc"), newPkgArchive(g, "getdeploy"),
		info, newPkgList(k), newPkgRebuild(g), newPkgDelete(k))
}

// pkgOptions are the flags of pkg create and pkg update.
type pkgOptions struct {
	archiveFlags
	name, env, buildcmd string
	noWait, force       bool
}

func (o *pkgOptions) addFlags(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	if create {
		f.StringVar(&o.name, "name", "", "package name (default: made from the archive's name)")
	} else {
		f.StringVar(&o.name, "name", "", "package name")
		f.BoolVar(&o.force, "force", false, "change the package even when several functions use it")
	}
	f.StringVar(&o.env, "env", "", "environment name")
	o.archiveFlags.addFlags(f)
	f.StringVar(&o.buildcmd, "buildcmd", "", "build command (default: the environment's)")
	f.BoolVar(&o.noWait, "no-wait", false, "do not wait for the build")
	flagAliases(cmd, map[string]string{"sourcearchive": "src", "deployarchive": "deploy"})
}

func newPkgCreate(g *Globals) *cobra.Command {
	o := &pkgOptions{}
	var sf specFlags
	cmd := createCommand(g, "Create a package; with --src, wait for its build", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if err := requireFlag("env", o.env); err != nil {
			return err
		}
		if !o.given() {
			return fmt.Errorf("give the package's code with --src, --deploy or --code")
		}
		if o.name == "" {
			first := o.code
			switch {
			case len(o.src) > 0:
				first = o.src[0]
			case len(o.deploy) > 0:
				first = o.deploy[0]
			}
			base := filepath.Base(first)
			if isURL(first) {
				base = "pkg"
			}
			o.name = uniqueName(strings.TrimSuffix(base, filepath.Ext(base)))
		}
		if !sf.spec && !sf.dry {
			if err := checkEnvExists(ctx, st, ns, o.env); err != nil {
				return err
			}
		}
		src, deploy, docs, err := o.archives(ctx, g, cmd, &sf, o.name)
		if err != nil {
			return err
		}
		p := newPackage(ns, o.name, o.env, src, deploy, o.buildcmd)
		if done, err := sf.save(cmd, "package-"+o.name, append(docs, p)...); done || err != nil {
			return err
		}
		obj, err := st.Create(ctx, p)
		if err != nil {
			return err
		}
		created := obj.(*v1.Package)
		fmt.Fprintf(cmd.OutOrStdout(), "package '%s' created\n", created.Name)
		if buildUnderWay(created.Status.BuildStatus) && !o.noWait {
			return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), created)
		}
		return nil
	})
	o.addFlags(cmd, true)
	return cmd
}

// newPackage is a package of environment env made from these archives,
// with the build status they call for: pending when there is source to
// build, none for a deploy archive only.
func newPackage(ns, name, env string, src, deploy v1.Archive, buildcmd string) *v1.Package {
	p := &v1.Package{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.PackageSpec{
			Environment:  v1.EnvironmentReference{Namespace: ns, Name: env},
			Source:       src,
			Deployment:   deploy,
			BuildCommand: buildcmd,
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusNone, LastUpdateTimestamp: metav1.Now()},
	}
	if !src.IsEmpty() {
		p.Status.BuildStatus = v1.BuildStatusPending
	}
	v1.SetTypeMeta(p)
	return p
}

// pkgChange is what an update changes in a package.
type pkgChange struct {
	env         string
	setEnv      bool
	src, deploy v1.Archive
	buildcmd    string
	setBuildcmd bool
	force       bool
	// exceptFn is the function on whose behalf the package changes (fn
	// update): it does not count as another user.
	exceptFn string
}

// checkEnvExists refuses --env naming an environment that does not exist.
func checkEnvExists(ctx context.Context, st store.Store, ns, env string) error {
	if _, err := st.Get(ctx, v1.KindEnvironment, ns, env); err != nil {
		if store.IsNotFound(err) {
			return fmt.Errorf("--env: environment '%s' not found in namespace '%s'", env, ns)
		}
		return err
	}
	return nil
}

// functionsUsing returns the functions whose package is ns/name.
func functionsUsing(ctx context.Context, st store.Store, ns, name string) ([]*v1.Function, error) {
	return functionsWhere(ctx, st, ns, func(fn *v1.Function) bool { return fn.Spec.Package.PackageRef.Name == name })
}

// functionsWhere returns the functions of namespace ns that keep accepts.
func functionsWhere(ctx context.Context, st store.Store, ns string, keep func(*v1.Function) bool) ([]*v1.Function, error) {
	fns, _, err := store.ListAs[*v1.Function](ctx, st, store.ListOptions{Namespace: ns})
	if err != nil {
		return nil, err
	}
	var out []*v1.Function
	for _, fn := range fns {
		if keep(fn) {
			out = append(out, fn)
		}
	}
	return out, nil
}

// functionNames lists the functions' names, comma separated.
func functionNames(fns []*v1.Function) string {
	names := make([]string, len(fns))
	for i, fn := range fns {
		names[i] = fn.Name
	}
	return strings.Join(names, ", ")
}

// updatePackage applies c to a package: its spec, then its status
// (pending when there is source to build again, none for a new deploy
// archive alone), then points the functions that use it at its new
// resourceVersion so executors refresh.
func updatePackage(ctx context.Context, st store.Store, cmd *cobra.Command, ns, name string, c pkgChange) (*v1.Package, error) {
	users, err := functionsUsing(ctx, st, ns, name)
	if err != nil {
		return nil, err
	}
	var others []string
	for _, fn := range users {
		if fn.Name != c.exceptFn {
			others = append(others, fn.Name)
		}
	}
	if !c.force && (c.exceptFn != "" && len(others) > 0 || c.exceptFn == "" && len(others) > 1) {
		return nil, fmt.Errorf("package '%s' is used by function(s) %s; use --force to change it for all of them", name, strings.Join(others, ", "))
	}
	if c.setEnv {
		if _, err := st.Get(ctx, v1.KindEnvironment, ns, c.env); err != nil {
			return nil, fmt.Errorf("--env: %w", err)
		}
	}
	var p *v1.Package
	err = updateObject(ctx, st, v1.KindPackage, ns, name, func(obj v1.Object) error {
		p = obj.(*v1.Package)
		if c.setEnv {
			p.Spec.Environment = v1.EnvironmentReference{Namespace: ns, Name: c.env}
		}
		if !c.src.IsEmpty() {
			p.Spec.Source = c.src
		}
		if !c.deploy.IsEmpty() {
			p.Spec.Deployment = c.deploy
		}
		if c.setBuildcmd {
			p.Spec.BuildCommand = c.buildcmd
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	var status v1.BuildStatus
	switch {
	case !c.src.IsEmpty():
		status = v1.BuildStatusPending // new source: build it
	case !c.deploy.IsEmpty():
		status = v1.BuildStatusNone // a ready deploy archive replaces the build
	case (c.setBuildcmd || c.setEnv) && !p.Spec.Source.IsEmpty():
		status = v1.BuildStatusPending // same source, another build
	}
	final, err := setBuildStatus(ctx, st, ns, name, status, "")
	if err != nil {
		return nil, err
	}
	for _, fn := range users {
		if fn.Name == c.exceptFn {
			continue
		}
		err := updateObject(ctx, st, v1.KindFunction, ns, fn.Name, func(obj v1.Object) error {
			obj.(*v1.Function).Spec.Package.PackageRef.ResourceVersion = final.ResourceVersion
			return nil
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("package '%s' updated, but function '%s' was not pointed at it: %w", name, fn.Name, err)
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "package '%s' updated\n", name)
	return final, nil
}

// setBuildStatus writes a package's build status (none given: keeps it)
// and returns the package as stored.
func setBuildStatus(ctx context.Context, st store.Store, ns, name string, status v1.BuildStatus, logText string) (*v1.Package, error) {
	for attempt := 0; ; attempt++ {
		p, err := store.GetAs[*v1.Package](ctx, st, ns, name)
		if err != nil || status == "" {
			return p, err
		}
		p.Status = v1.PackageStatus{BuildStatus: status, BuildLog: logText, LastUpdateTimestamp: metav1.Now()}
		obj, err := st.UpdateStatus(ctx, p)
		if store.IsConflict(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return obj.(*v1.Package), nil
	}
}

func newPkgUpdate(g *Globals) *cobra.Command {
	o := &pkgOptions{}
	cmd := &cobra.Command{Use: "update", Short: "Change a package's archives or build command; new source rebuilds it", Args: cobra.NoArgs}
	o.addFlags(cmd, false)
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", o.name); err != nil {
			return err
		}
		if !o.given() && !changed(cmd, "buildcmd") && !changed(cmd, "env") {
			return fmt.Errorf("nothing to change: give --src, --deploy, --code, --buildcmd or --env")
		}
		if _, err := st.Get(ctx, v1.KindPackage, g.ns(), o.name); err != nil {
			return err
		}
		src, deploy, _, err := o.archives(ctx, g, cmd, &specFlags{}, o.name)
		if err != nil {
			return err
		}
		p, err := updatePackage(ctx, st, cmd, g.ns(), o.name, pkgChange{
			env: o.env, setEnv: changed(cmd, "env"),
			src: src, deploy: deploy,
			buildcmd: o.buildcmd, setBuildcmd: changed(cmd, "buildcmd"),
			force: o.force,
		})
		if err != nil {
			return err
		}
		if buildUnderWay(p.Status.BuildStatus) && !o.noWait {
			return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), p)
		}
		return nil
	})
	return cmd
}

// newPkgArchive is `pkg getsrc` and `pkg getdeploy`.
func newPkgArchive(g *Globals, use string) *cobra.Command {
	what := "source"
	if use == "getdeploy" {
		what = "deploy"
	}
	return archiveOutCommand(g, use, "Write the package's "+what+" archive to a file or stdout", "package", "file to write (default: stdout)",
		func(ctx context.Context, st store.Store, name string) (v1.Archive, error) {
			p, err := store.GetAs[*v1.Package](ctx, st, g.ns(), name)
			switch {
			case err != nil:
				return v1.Archive{}, err
			case use == "getdeploy":
				return deployArchive(p)
			case p.Spec.Source.IsEmpty():
				return v1.Archive{}, fmt.Errorf("package '%s' has no source archive", name)
			}
			return p.Spec.Source, nil
		})
}

// archiveOutCommand is a command that writes one archive of the object
// named by --name to the file -o names, or to stdout.
func archiveOutCommand(g *Globals, use, short, noun, outputHelp string, pick func(ctx context.Context, st store.Store, name string) (v1.Archive, error)) *cobra.Command {
	var output string
	cmd := namedCommand(g, use, short, noun, func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error {
		a, err := pick(ctx, st, name)
		if err != nil {
			return err
		}
		return writeOutput(output, cmd.OutOrStdout(), func(w io.Writer) error { return readArchive(ctx, g, a, w) })
	})
	cmd.Flags().StringVarP(&output, "output", "o", "", outputHelp)
	return cmd
}

// deployArchive is a package's deploy archive, or an error saying why
// there is none.
func deployArchive(p *v1.Package) (v1.Archive, error) {
	if p.Spec.Deployment.IsEmpty() {
		return v1.Archive{}, fmt.Errorf("package '%s' has no deploy archive (build status: %s)", p.Name, displayStatus(p.Status.BuildStatus))
	}
	return p.Spec.Deployment, nil
}

func archiveString(a v1.Archive) string {
	switch {
	case len(a.Literal) > 0:
		return fmt.Sprintf("literal, %d bytes", len(a.Literal))
	case a.URL != "":
		return a.URL
	}
	return ""
}

// describePkg is what `pkg info` prints: a summary, then the build log.
func describePkg(out io.Writer, p *v1.Package) error {
	s := newSummary(out)
	s.add("Name", p.Name)
	s.add("Namespace", p.Namespace)
	s.add("Environment", p.Spec.Environment.Name)
	s.add("Status", displayStatus(p.Status.BuildStatus))
	s.add("Build command", p.Spec.BuildCommand)
	s.add("Source", archiveString(p.Spec.Source))
	s.add("Deployment", archiveString(p.Spec.Deployment))
	s.add("Last update", timeString(p.Status.LastUpdateTimestamp))
	if err := s.flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Build log:")
	if p.Status.BuildLog == "" {
		fmt.Fprintln(out, "  (empty)")
		return nil
	}
	io.WriteString(out, p.Status.BuildLog)
	if !strings.HasSuffix(p.Status.BuildLog, "\n") {
		fmt.Fprintln(out)
	}
	return nil
}

func timeString(t metav1.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func newPkgList(k kindCommands[*v1.Package]) *cobra.Command {
	var status string
	var orphan bool
	cmd := k.list(listing[*v1.Package]{
		short:   "List packages",
		headers: []string{"NAME", "BUILD_STATUS", "ENV", "LASTUPDATEDAT", "NAMESPACE"},
		row: func(p *v1.Package) []string {
			return []string{p.Name, displayStatus(p.Status.BuildStatus), p.Spec.Environment.Name, timeString(p.Status.LastUpdateTimestamp), p.Namespace}
		},
		check: func() error {
			switch v1.BuildStatus(status) {
			case "", v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusSucceeded, v1.BuildStatusFailed, v1.BuildStatusNone:
				return nil
			}
			return fmt.Errorf("--status: unknown build status %q (want pending, running, succeeded, failed or none)", status)
		},
		filter: func(ctx context.Context, st store.Store, opts store.ListOptions) (func(*v1.Package) bool, error) {
			var used map[string]bool
			if orphan {
				var err error
				if used, err = packagesInUse(ctx, st, opts); err != nil {
					return nil, err
				}
			}
			return func(p *v1.Package) bool {
				return (status == "" || displayStatus(p.Status.BuildStatus) == status) && !(orphan && used[p.Namespace+"/"+p.Name])
			}, nil
		},
	})
	cmd.Flags().StringVar(&status, "status", "", "only packages with this build status (pending, running, succeeded, failed, none)")
	cmd.Flags().BoolVar(&orphan, "orphan", false, "only packages no function uses")
	return cmd
}

// packagesInUse returns "ns/name" of every package a function uses.
func packagesInUse(ctx context.Context, st store.Store, opts store.ListOptions) (map[string]bool, error) {
	fns, _, err := store.ListAs[*v1.Function](ctx, st, opts)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, fn := range fns {
		ref := fn.Spec.Package.PackageRef
		if ref.Namespace == "" {
			ref.Namespace = fn.Namespace
		}
		used[ref.Namespace+"/"+ref.Name] = true
	}
	return used, nil
}

func newPkgRebuild(g *Globals) *cobra.Command {
	var force, noWait bool
	cmd := namedCommand(g, "rebuild", "Build a failed package again (a succeeded one with --force)", "package", func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error {
		p, err := store.GetAs[*v1.Package](ctx, st, g.ns(), name)
		if err != nil {
			return err
		}
		if p.Spec.Source.IsEmpty() {
			return fmt.Errorf("package '%s' has no source archive; there is nothing to build", name)
		}
		switch p.Status.BuildStatus {
		case v1.BuildStatusFailed:
		case v1.BuildStatusSucceeded, v1.BuildStatusNone:
			if !force {
				return fmt.Errorf("package '%s' is %s; use --force to build it again", name, p.Status.BuildStatus)
			}
		default: // pending or running: a build is under way already
			fmt.Fprintf(cmd.ErrOrStderr(), "package '%s' is already %s\n", name, displayStatus(p.Status.BuildStatus))
			if noWait {
				return nil
			}
			return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), p)
		}
		p.Status = v1.PackageStatus{BuildStatus: v1.BuildStatusPending, LastUpdateTimestamp: metav1.Now()}
		obj, err := st.UpdateStatus(ctx, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "package '%s' set to pending for a rebuild\n", name)
		if noWait {
			return nil
		}
		return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), obj.(*v1.Package))
	})
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even a package whose build succeeded")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the build")
	return cmd
}

func newPkgDelete(k kindCommands[*v1.Package]) *cobra.Command {
	var name string
	var orphan, force, ignoreNotFound bool
	cmd := command(k.g, "delete", "Delete a package, or every orphan package", func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := k.g.ns()
		if orphan {
			if name != "" {
				return fmt.Errorf("give --name or --orphan, not both")
			}
			return deleteOrphanPackages(ctx, st, cmd.OutOrStdout(), ns)
		}
		if err := requireFlag("name", name); err != nil {
			return err
		}
		if !force {
			users, err := functionsUsing(ctx, st, ns, name)
			if err != nil {
				return err
			}
			if len(users) > 0 {
				return fmt.Errorf("package '%s' is used by function(s) %s; use --force to delete it anyway", name, functionNames(users))
			}
		}
		_, err := k.deleteOne(ctx, st, cmd.OutOrStdout(), name, ignoreNotFound)
		return err
	})
	cmd.Flags().StringVar(&name, "name", "", "package name")
	cmd.Flags().BoolVar(&orphan, "orphan", false, "delete every package no function uses")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even if functions use the package")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignorenotfound", false, "succeed when the package does not exist")
	return cmd
}

// deleteOrphanPackages deletes every package of ns that no function uses.
func deleteOrphanPackages(ctx context.Context, st store.Store, out io.Writer, ns string) error {
	used, err := packagesInUse(ctx, st, store.ListOptions{Namespace: ns})
	if err != nil {
		return err
	}
	pkgs, _, err := st.List(ctx, v1.KindPackage, store.ListOptions{Namespace: ns})
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		if used[p.GetNamespace()+"/"+p.GetName()] {
			continue
		}
		if err := st.Delete(ctx, v1.KindPackage, ns, p.GetName(), p.GetResourceVersion()); err != nil && !store.IsNotFound(err) {
			return err
		}
		fmt.Fprintf(out, "package '%s' deleted\n", p.GetName())
	}
	return nil
}
