package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// The resource kinds (env, fn, pkg, route, timer) share the shape of
// their get, list, update and delete commands: the same flags, checks,
// error messages and output formats. The helpers here hold that shape
// once, so each kind's file says only what is its own: the summary
// lines, the table columns, its extra flags and filters.

// group is a command that only holds subcommands.
func group(use string, aliases []string, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Aliases: aliases, Short: short}
	cmd.AddCommand(subs...)
	return cmd
}

// command is a user command without arguments whose body gets a store
// client; its errors become one actionable line (see runE).
func command(g *Globals, use, short string, body func(ctx context.Context, cmd *cobra.Command, st store.Store) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: runE(g, body)}
}

// createCommand is a kind's `create`, with Fission's --spec and --dry
// (sf) that write the objects as YAML instead of creating them.
func createCommand(g *Globals, short string, sf *specFlags, body func(ctx context.Context, cmd *cobra.Command, st store.Store) error) *cobra.Command {
	cmd := command(g, "create", short, body)
	sf.addFlags(cmd)
	return cmd
}

// namedCommand is a command on one object named by --name, which it
// requires before the body runs.
func namedCommand(g *Globals, use, short, noun string, body func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error) *cobra.Command {
	var name string
	cmd := command(g, use, short, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		return body(ctx, cmd, st, name)
	})
	cmd.Flags().StringVar(&name, "name", "", noun+" name")
	return cmd
}

// kindOf is the Kind name of the object type T.
func kindOf[T v1.Object]() string {
	var zero T
	return v1.KindOf(zero)
}

// kindCommands makes the shared commands of the resource kind T.
type kindCommands[T v1.Object] struct {
	g    *Globals
	noun string // the kind as users say it ("environment"), in help and messages
}

// get is `get --name N [-o json|yaml]`: the whole object in JSON or YAML,
// or by default what describe writes (a summary).
func (k kindCommands[T]) get(use, short string, describe func(w io.Writer, obj T) error) *cobra.Command {
	var output string
	cmd := namedCommand(k.g, use, short, k.noun, func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		obj, err := store.GetAs[T](ctx, st, k.g.ns(), name)
		if err != nil {
			return err
		}
		if output != "" {
			return printObject(cmd.OutOrStdout(), obj, output)
		}
		return describe(cmd.OutOrStdout(), obj)
	})
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a summary)")
	return cmd
}

// listing is what is particular to a kind's `list`.
type listing[T v1.Object] struct {
	short   string
	headers []string         // table columns
	row     func(T) []string // one table row, a cell per header
	// check, when set, vets the kind's own flags before anything is read.
	check func() error
	// filter, when set, runs after the objects are read and returns which
	// of them to show (nil: all). It may read the store with opts, the
	// list's own namespace options.
	filter func(ctx context.Context, st store.Store, opts store.ListOptions) (func(T) bool, error)
	// wide, when set, prints -o wide: a table of the objects kept with
	// more facts than the default one.
	wide func(ctx context.Context, out io.Writer, kept []T, allNamespaces bool) error
}

// list is `list [-o json|yaml] [-A]`: a table, or a v1 List document. A
// kind adds its filter flags to the command returned.
func (k kindCommands[T]) list(l listing[T]) *cobra.Command {
	var output string
	var all bool
	cmd := command(k.g, "list", l.short, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		wide := output == formatWide && l.wide != nil
		if err := checkFormat(output); err != nil && !wide {
			if l.wide != nil {
				return fmt.Errorf("--output: unknown format %q (want json, yaml or wide)", output)
			}
			return err
		}
		if l.check != nil {
			if err := l.check(); err != nil {
				return err
			}
		}
		opts := listOpts(k.g, all)
		objs, rv, err := store.ListAs[T](ctx, st, opts)
		if err != nil {
			return err
		}
		var keep func(T) bool
		if l.filter != nil {
			if keep, err = l.filter(ctx, st, opts); err != nil {
				return err
			}
		}
		kept := make([]T, 0, len(objs))
		for _, o := range objs {
			if keep == nil || keep(o) {
				kept = append(kept, o)
			}
		}
		out := cmd.OutOrStdout()
		if wide {
			return l.wide(ctx, out, kept, all)
		}
		if output != "" {
			items := make([]v1.Object, len(kept))
			for i, o := range kept {
				items[i] = o
			}
			return printList(out, kindOf[T](), items, rv, output)
		}
		t := newTable(out, l.headers...)
		for _, o := range kept {
			t.row(l.row(o)...)
		}
		return t.flush()
	})
	formats := "json or yaml"
	if l.wide != nil {
		formats = "json, yaml or wide (more columns)"
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: "+formats+" (default: a table)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	return cmd
}

// listOpts lists the command's namespace, or every namespace.
func listOpts(g *Globals, all bool) store.ListOptions {
	if all {
		return store.ListOptions{}
	}
	return store.ListOptions{Namespace: g.ns()}
}

// update is `update --name N …`: it reads the object, lets mutate apply
// the flags given and writes it back (retrying on a conflict), then says
// whether anything changed. *name is the --name flag, which the kind
// registers with its other flags on the command returned; check, when
// set, runs before the object is read.
func (k kindCommands[T]) update(short string, name *string, check func(ctx context.Context, cmd *cobra.Command, st store.Store) error, mutate func(cmd *cobra.Command, obj T) error) *cobra.Command {
	return command(k.g, "update", short, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", *name); err != nil {
			return err
		}
		if check != nil {
			if err := check(ctx, cmd, st); err != nil {
				return err
			}
		}
		return updateObject(ctx, st, kindOf[T](), k.g.ns(), *name, func(obj v1.Object) error {
			return mutate(cmd, obj.(T))
		}, func(changed bool) {
			reportUpdate(cmd, k.noun, *name, changed)
		})
	})
}

// updateObject reads an object, lets mutate change it and writes it back
// with the read resourceVersion, retrying when someone else wrote in
// between. done learns whether anything changed.
func updateObject(ctx context.Context, st store.Store, kind, ns, name string, mutate func(v1.Object) error, done func(changed bool)) error {
	for attempt := 0; ; attempt++ {
		obj, err := st.Get(ctx, kind, ns, name)
		if err != nil {
			return err
		}
		rv := obj.GetResourceVersion()
		if err := mutate(obj); err != nil {
			return err
		}
		updated, err := st.Update(ctx, obj)
		if store.IsConflict(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return err
		}
		if done != nil {
			done(updated.GetResourceVersion() != rv)
		}
		return nil
	}
}

func reportUpdate(cmd *cobra.Command, what, name string, changed bool) {
	if changed {
		fmt.Fprintf(cmd.OutOrStdout(), "%s '%s' updated\n", what, name)
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "%s '%s' unchanged\n", what, name)
	}
}

// delete is `delete --name N [--ignorenotfound]`.
func (k kindCommands[T]) delete(short string) *cobra.Command {
	var ignoreNotFound bool
	cmd := namedCommand(k.g, "delete", short, k.noun, func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error {
		_, err := k.deleteOne(ctx, st, cmd.OutOrStdout(), name, ignoreNotFound)
		return err
	})
	cmd.Flags().BoolVar(&ignoreNotFound, "ignorenotfound", false, "succeed when the "+k.noun+" does not exist")
	return cmd
}

// deleteOne deletes the named object of the command's namespace and says
// so on w. An object that does not exist is an error, unless missingOK:
// then deleteOne prints nothing and reports missing.
func (k kindCommands[T]) deleteOne(ctx context.Context, st store.Store, w io.Writer, name string, missingOK bool) (missing bool, err error) {
	err = st.Delete(ctx, kindOf[T](), k.g.ns(), name, "")
	if store.IsNotFound(err) && missingOK {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "%s '%s' deleted\n", k.noun, name)
	return false, nil
}
