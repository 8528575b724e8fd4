package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/spec"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newSpecCommand) }

// newSpecCommand is `isotope spec` (alias specs): a directory of YAML
// documents (isotope.dev/v1 or fission.io/v1) applied idempotently.
func newSpecCommand(g *Globals) *cobra.Command {
	return group("spec", []string{"specs"}, "Apply a directory of resource specs (YAML) idempotently",
		newSpecInit(g), newSpecValidate(g), newSpecApply(g), newSpecDestroy(g), newSpecList(g))
}

func addSpecDir(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "specdir", "specs", "spec directory")
}

func newSpecInit(g *Globals) *cobra.Command {
	var dir, name string
	cmd := &cobra.Command{Use: "init", Short: "Create a spec directory with its deployment config", Args: cobra.NoArgs}
	addSpecDir(cmd, &dir)
	cmd.Flags().StringVar(&name, "name", "", "deployment name (default: the project directory's name)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := spec.Init(dir, name)
		if err != nil {
			return userError(g, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "created %s (deployment '%s', uid %s)\n", filepath.Join(dir, spec.DeploymentConfigFile), cfg.Name, cfg.UID)
		return nil
	}
	return cmd
}

// loadSpecs decodes and validates a spec directory. Every problem is
// printed on errOut, one per line; the returned error is a one-line
// summary.
func loadSpecs(dir string, errOut io.Writer) (*spec.Set, error) {
	set, err := spec.DecodeDir(dir)
	if err == nil {
		var warnings []string
		warnings, err = spec.Validate(set)
		for _, w := range warnings {
			fmt.Fprintln(errOut, "warning:", w)
		}
	}
	if err != nil {
		return nil, specProblems(dir, err, errOut)
	}
	return set, nil
}

// specProblems prints every problem of a spec error list and sums them up
// in one line.
func specProblems(dir string, err error, errOut io.Writer) error {
	var list spec.ErrorList
	if errors.As(err, &list) && len(list) > 1 {
		for _, e := range list {
			fmt.Fprintln(errOut, e.Error())
		}
		return fmt.Errorf("%d problems in spec directory %s (listed above); nothing was changed", len(list), dir)
	}
	return err
}

func newSpecValidate(g *Globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{Use: "validate", Short: "Check a spec directory without changing anything", Args: cobra.NoArgs}
	addSpecDir(cmd, &dir)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		set, err := loadSpecs(dir, cmd.ErrOrStderr())
		if err != nil {
			return userError(g, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "spec directory %s is valid: %d object(s)\n", dir, len(set.Objects()))
		return nil
	}
	return cmd
}

// specUploader sends large spec archives to the storage service at the
// API URL.
type specUploader struct{ c *storagesvc.Client }

func (u specUploader) Upload(ctx context.Context, name string, r io.Reader, size int64) (string, string, error) {
	res, err := u.c.Upload(ctx, r, size, name, nil)
	return res.URL, res.Checksum.Sum, err
}

func newSpecApply(g *Globals) *cobra.Command {
	var dir string
	var del, wait, allowConflicts bool
	cmd := &cobra.Command{Use: "apply", Short: "Create or update what a spec directory describes", Args: cobra.NoArgs}
	addSpecDir(cmd, &dir)
	cmd.Flags().BoolVar(&del, "delete", false, "delete objects of this deployment that the specs no longer contain")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the packages to build; fail if a build fails")
	cmd.Flags().BoolVar(&allowConflicts, "allowconflicts", false, "take over objects of the same name made elsewhere")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		set, err := loadSpecs(dir, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		res, err := spec.Apply(ctx, st, set, spec.ApplyOptions{
			Delete:         del,
			Namespace:      g.ns(),
			Uploader:       specUploader{g.storageClient()},
			AllowConflicts: allowConflicts,
		})
		printSpecResult(cmd.OutOrStdout(), cmd.ErrOrStderr(), res)
		if err != nil {
			return specProblems(dir, err, cmd.ErrOrStderr())
		}
		if !wait {
			return nil
		}
		var failed []string
		for _, d := range set.Objects() {
			if _, ok := d.Object.(*v1.Package); !ok {
				continue
			}
			ns := d.Object.GetNamespace()
			if ns == "" {
				ns = g.ns()
			}
			p, err := store.GetAs[*v1.Package](ctx, st, ns, d.Object.GetName())
			if err != nil {
				return err
			}
			switch p.Status.BuildStatus {
			case v1.BuildStatusNone:
				continue
			case v1.BuildStatusSucceeded:
				// Built before the wait began (a fast build, or an
				// unchanged package): said as a wait would say it.
				fmt.Fprintf(cmd.ErrOrStderr(), "package '%s': %s\n", p.Name, displayStatus(p.Status.BuildStatus))
				continue
			case v1.BuildStatusFailed:
				failed = append(failed, p.Name)
				fmt.Fprintf(cmd.ErrOrStderr(), "package '%s': failed\n", p.Name)
				continue
			}
			var ee *exitError
			if err := waitForBuild(ctx, g, st, cmd.OutOrStdout(), cmd.ErrOrStderr(), p); errors.As(err, &ee) {
				failed = append(failed, p.Name)
			} else if err != nil {
				return err
			}
		}
		if len(failed) > 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("build failed for package(s) %v (`isotope pkg info --name N` shows each log)", failed)}
		}
		return nil
	})
	return cmd
}

// printSpecResult prints what apply or destroy did, one object a line.
func printSpecResult(out, errOut io.Writer, res spec.Result) {
	for _, r := range res.Created {
		fmt.Fprintf(out, "created %s\n", r)
	}
	for _, r := range res.Updated {
		fmt.Fprintf(out, "updated %s\n", r)
	}
	for _, r := range res.Deleted {
		fmt.Fprintf(out, "deleted %s\n", r)
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(errOut, "warning:", w)
	}
	fmt.Fprintf(out, "%d created, %d updated, %d unchanged, %d deleted\n", len(res.Created), len(res.Updated), len(res.Unchanged), len(res.Deleted))
}

// decodedSpecCommand is a spec command on the objects of --specdir, which
// it decodes before the body runs.
func decodedSpecCommand(g *Globals, use, short string, body func(ctx context.Context, cmd *cobra.Command, st store.Store, dir string, set *spec.Set) error) *cobra.Command {
	var dir string
	cmd := command(g, use, short, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		set, err := spec.DecodeDir(dir)
		if err != nil {
			return specProblems(dir, err, cmd.ErrOrStderr())
		}
		return body(ctx, cmd, st, dir, set)
	})
	addSpecDir(cmd, &dir)
	return cmd
}

func newSpecDestroy(g *Globals) *cobra.Command {
	return decodedSpecCommand(g, "destroy", "Delete every object applied from a spec directory", func(ctx context.Context, cmd *cobra.Command, st store.Store, _ string, set *spec.Set) error {
		res, err := spec.Destroy(ctx, st, set)
		printSpecResult(cmd.OutOrStdout(), cmd.ErrOrStderr(), res)
		return err
	})
}

func newSpecList(g *Globals) *cobra.Command {
	return decodedSpecCommand(g, "list", "List the stored objects applied from a spec directory", func(ctx context.Context, cmd *cobra.Command, st store.Store, dir string, set *spec.Set) error {
		cfg := set.Config()
		if cfg == nil || cfg.UID == "" {
			return fmt.Errorf("%s has no %s: run `isotope spec init --specdir %s` first", dir, spec.DeploymentConfigFile, dir)
		}
		objs, err := spec.Owned(ctx, st, cfg.UID)
		if err != nil {
			return err
		}
		t := newTable(cmd.OutOrStdout(), "KIND", "NAME", "NAMESPACE")
		for _, o := range objs {
			t.row(v1.KindOf(o), o.GetName(), o.GetNamespace())
		}
		return t.flush()
	})
}
