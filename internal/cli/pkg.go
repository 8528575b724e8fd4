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
	cmd := &cobra.Command{
		Use:     "pkg",
		Aliases: []string{"package"},
		Short:   "Manage packages (source and deploy archives, builds)",
	}
	cmd.AddCommand(newPkgCreate(g), newPkgUpdate(g), newPkgGetArchive(g, "getsrc"), newPkgGetArchive(g, "getdeploy"),
		newPkgInfo(g), newPkgList(g), newPkgRebuild(g), newPkgDelete(g))
	return cmd
}

// pkgOptions are the flags of pkg create and pkg update.
type pkgOptions struct {
	name, env, code, buildcmd   string
	src, deploy                 []string
	srcChecksum, deployChecksum string
	insecure, noWait, force     bool
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
	f.StringVar(&o.code, "code", "", "one source file, used as the deploy archive as is")
	f.StringArrayVar(&o.src, "src", nil, "source archive: a .zip, files, a directory or a glob, zipped (repeatable; alias --sourcearchive)")
	f.StringArrayVar(&o.deploy, "deploy", nil, "deploy archive: a .zip, files, a directory or a glob, zipped (repeatable; alias --deployarchive)")
	f.StringVar(&o.buildcmd, "buildcmd", "", "build command (default: the environment's)")
	f.StringVar(&o.srcChecksum, "srcchecksum", "", "sha256 of a --src given as a URL")
	f.StringVar(&o.deployChecksum, "deploychecksum", "", "sha256 of a --deploy given as a URL")
	f.BoolVar(&o.insecure, "insecure", false, "take a URL archive without a checksum")
	f.BoolVar(&o.noWait, "no-wait", false, "do not wait for the build")
	flagAliases(cmd, map[string]string{"sourcearchive": "src", "deployarchive": "deploy"})
}

func (o *pkgOptions) archives(ctx context.Context, g *Globals, cmd *cobra.Command, sf *specFlags) (src, deploy v1.Archive, docs []any, err error) {
	fo := fnOptions{src: o.src, deploy: o.deploy, code: o.code, srcChecksum: o.srcChecksum, deployChecksum: o.deployChecksum, insecure: o.insecure}
	return fo.archives(ctx, g, cmd, sf, o.name)
}

func newPkgCreate(g *Globals) *cobra.Command {
	o := &pkgOptions{}
	var sf specFlags
	cmd := &cobra.Command{Use: "create", Short: "Create a package; with --src, wait for its build", Args: cobra.NoArgs}
	o.addFlags(cmd, true)
	sf.addFlags(cmd)
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if err := requireFlag("env", o.env); err != nil {
			return err
		}
		if o.code == "" && len(o.src) == 0 && len(o.deploy) == 0 {
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
			if _, err := st.Get(ctx, v1.KindEnvironment, ns, o.env); err != nil {
				if store.IsNotFound(err) {
					return fmt.Errorf("--env: environment '%s' not found in namespace '%s'", o.env, ns)
				}
				return err
			}
		}
		src, deploy, docs, err := o.archives(ctx, g, cmd, &sf)
		if err != nil {
			return err
		}
		p := &v1.Package{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns},
			Spec: v1.PackageSpec{
				Environment:  v1.EnvironmentReference{Namespace: ns, Name: o.env},
				Source:       src,
				Deployment:   deploy,
				BuildCommand: o.buildcmd,
			},
			Status: initialStatus(src),
		}
		v1.SetTypeMeta(p)
		if done, err := sf.save(cmd, "package-"+o.name, append(docs, p)...); done || err != nil {
			return err
		}
		obj, err := st.Create(ctx, p)
		if err != nil {
			return err
		}
		created := obj.(*v1.Package)
		fmt.Fprintf(cmd.OutOrStdout(), "package '%s' created\n", created.Name)
		if created.Status.BuildStatus == v1.BuildStatusPending && !o.noWait {
			return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), created)
		}
		return nil
	})
	return cmd
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

// functionsUsing returns the functions whose package is ns/name.
func functionsUsing(ctx context.Context, st store.Store, ns, name string) ([]*v1.Function, error) {
	fns, _, err := store.ListAs[*v1.Function](ctx, st, store.ListOptions{Namespace: ns})
	if err != nil {
		return nil, err
	}
	var out []*v1.Function
	for _, fn := range fns {
		if fn.Spec.Package.PackageRef.Name == name {
			out = append(out, fn)
		}
	}
	return out, nil
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
		if o.code == "" && len(o.src) == 0 && len(o.deploy) == 0 && !changed(cmd, "buildcmd") && !changed(cmd, "env") {
			return fmt.Errorf("nothing to change: give --src, --deploy, --code, --buildcmd or --env")
		}
		if _, err := st.Get(ctx, v1.KindPackage, g.ns(), o.name); err != nil {
			return err
		}
		src, deploy, _, err := o.archives(ctx, g, cmd, &specFlags{})
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
		if p.Status.BuildStatus == v1.BuildStatusPending && !o.noWait {
			return waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), p)
		}
		return nil
	})
	return cmd
}

// newPkgGetArchive is `pkg getsrc` and `pkg getdeploy`.
func newPkgGetArchive(g *Globals, use string) *cobra.Command {
	var name, output string
	what := "source"
	if use == "getdeploy" {
		what = "deploy"
	}
	cmd := &cobra.Command{Use: use, Short: "Write the package's " + what + " archive to a file or stdout", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&name, "name", "", "package name")
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default: stdout)")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		p, err := store.GetAs[*v1.Package](ctx, st, g.ns(), name)
		if err != nil {
			return err
		}
		if use == "getdeploy" {
			return writeDeploy(ctx, g, p, output, cmd)
		}
		if p.Spec.Source.IsEmpty() {
			return fmt.Errorf("package '%s' has no source archive", name)
		}
		return writeOutput(output, cmd.OutOrStdout(), func(w io.Writer) error { return readArchive(ctx, g, p.Spec.Source, w) })
	})
	return cmd
}

// writeDeploy writes a package's deploy archive, or says why there is none.
func writeDeploy(ctx context.Context, g *Globals, p *v1.Package, output string, cmd *cobra.Command) error {
	if p.Spec.Deployment.IsEmpty() {
		return fmt.Errorf("package '%s' has no deploy archive (build status: %s)", p.Name, displayStatus(p.Status.BuildStatus))
	}
	return writeOutput(output, cmd.OutOrStdout(), func(w io.Writer) error { return readArchive(ctx, g, p.Spec.Deployment, w) })
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

func newPkgInfo(g *Globals) *cobra.Command {
	var name, output string
	cmd := &cobra.Command{Use: "info", Aliases: []string{"get"}, Short: "Show a package's build status and log (get -o json|yaml prints the whole object)", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&name, "name", "", "package name")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a summary)")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		if err := checkFormat(output); err != nil {
			return err
		}
		p, err := store.GetAs[*v1.Package](ctx, st, g.ns(), name)
		if err != nil {
			return err
		}
		if output != "" {
			return printObject(cmd.OutOrStdout(), p, output)
		}
		s := newSummary(cmd.OutOrStdout())
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
		out := cmd.OutOrStdout()
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
	})
	return cmd
}

func timeString(t metav1.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func newPkgList(g *Globals) *cobra.Command {
	var output, status string
	var orphan, all bool
	cmd := &cobra.Command{Use: "list", Short: "List packages", Args: cobra.NoArgs}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.Flags().StringVar(&status, "status", "", "only packages with this build status (pending, running, succeeded, failed, none)")
	cmd.Flags().BoolVar(&orphan, "orphan", false, "only packages no function uses")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		switch v1.BuildStatus(status) {
		case "", v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusSucceeded, v1.BuildStatusFailed, v1.BuildStatusNone:
		default:
			return fmt.Errorf("--status: unknown build status %q (want pending, running, succeeded, failed or none)", status)
		}
		objs, rv, err := st.List(ctx, v1.KindPackage, listOpts(g, all))
		if err != nil {
			return err
		}
		var used map[string]bool
		if orphan {
			if used, err = packagesInUse(ctx, st, listOpts(g, all)); err != nil {
				return err
			}
		}
		kept := objs[:0]
		for _, o := range objs {
			p := o.(*v1.Package)
			if status != "" && displayStatus(p.Status.BuildStatus) != status {
				continue
			}
			if orphan && used[p.Namespace+"/"+p.Name] {
				continue
			}
			kept = append(kept, o)
		}
		if output != "" {
			return printList(cmd.OutOrStdout(), v1.KindPackage, kept, rv, output)
		}
		t := newTable(cmd.OutOrStdout(), "NAME", "BUILD_STATUS", "ENV", "LASTUPDATEDAT", "NAMESPACE")
		for _, o := range kept {
			p := o.(*v1.Package)
			t.row(p.Name, displayStatus(p.Status.BuildStatus), p.Spec.Environment.Name, timeString(p.Status.LastUpdateTimestamp), p.Namespace)
		}
		return t.flush()
	})
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
	var name string
	var force, noWait bool
	cmd := &cobra.Command{Use: "rebuild", Short: "Build a failed package again (a succeeded one with --force)", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&name, "name", "", "package name")
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even a package whose build succeeded")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the build")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
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
	return cmd
}

func newPkgDelete(g *Globals) *cobra.Command {
	var name string
	var orphan, force, ignoreNotFound bool
	cmd := &cobra.Command{Use: "delete", Short: "Delete a package, or every orphan package", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&name, "name", "", "package name")
	cmd.Flags().BoolVar(&orphan, "orphan", false, "delete every package no function uses")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even if functions use the package")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignorenotfound", false, "succeed when the package does not exist")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		out := cmd.OutOrStdout()
		if orphan {
			if name != "" {
				return fmt.Errorf("give --name or --orphan, not both")
			}
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
		if err := requireFlag("name", name); err != nil {
			return err
		}
		if !force {
			users, err := functionsUsing(ctx, st, ns, name)
			if err != nil {
				return err
			}
			if len(users) > 0 {
				names := make([]string, len(users))
				for i, fn := range users {
					names[i] = fn.Name
				}
				return fmt.Errorf("package '%s' is used by function(s) %s; use --force to delete it anyway", name, strings.Join(names, ", "))
			}
		}
		err := st.Delete(ctx, v1.KindPackage, ns, name, "")
		if store.IsNotFound(err) && ignoreNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "package '%s' deleted\n", name)
		return nil
	})
	return cmd
}
