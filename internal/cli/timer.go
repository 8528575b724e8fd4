package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newTimerCommand) }

// newTimerCommand is `isotope timer` (aliases timetrigger, tt).
// `timer showschedule` comes from another file through registerSub.
func newTimerCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "timer",
		Aliases: []string{"timetrigger", "tt"},
		Short:   "Manage timers that call functions on a cron schedule",
	}
	cmd.AddCommand(newTimerCreate(g), newTimerGet(g), newTimerList(g), newTimerUpdate(g), newTimerDelete(g))
	return cmd
}

type timerOptions struct {
	name, cron, function, method, subpath string
}

func (o *timerOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "timer name (default on create: a random UUID)")
	f.StringVar(&o.cron, "cron", "", `schedule: cron with optional seconds ("*/5 * * * * *"), "@every 1m", "@hourly" …`)
	f.StringVar(&o.function, "function", "", "function to call")
	f.StringVar(&o.method, "method", "GET", "HTTP method of the call")
	f.StringVar(&o.subpath, "subpath", "", "path appended to the function's URL")
}

func newTimerCreate(g *Globals) *cobra.Command {
	o := &timerOptions{}
	var sf specFlags
	cmd := &cobra.Command{Use: "create", Short: "Create a timer", Args: cobra.NoArgs}
	o.addFlags(cmd)
	sf.addFlags(cmd)
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if err := requireFlag("cron", o.cron); err != nil {
			return err
		}
		if err := requireFlag("function", o.function); err != nil {
			return err
		}
		if o.name == "" {
			o.name = uuid.NewString()
		}
		t := &v1.TimeTrigger{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns},
			Spec: v1.TimeTriggerSpec{
				Cron:              o.cron,
				FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: o.function},
				Method:            strings.ToUpper(o.method),
				Subpath:           o.subpath,
			},
		}
		v1.SetTypeMeta(t)
		if done, err := sf.save(cmd, "timetrigger-"+o.name, t); done || err != nil {
			return err
		}
		if err := checkFunctionsExist(ctx, st, ns, []string{o.function}); err != nil {
			return err
		}
		if _, err := st.Create(ctx, t); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "timer '%s' created: '%s' calls function '%s'\n", o.name, o.cron, o.function)
		return nil
	})
	return cmd
}

func newTimerGet(g *Globals) *cobra.Command {
	var name, output string
	cmd := &cobra.Command{Use: "get", Short: "Show a timer", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&name, "name", "", "timer name")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a summary)")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		if err := checkFormat(output); err != nil {
			return err
		}
		t, err := store.GetAs[*v1.TimeTrigger](ctx, st, g.ns(), name)
		if err != nil {
			return err
		}
		if output != "" {
			return printObject(cmd.OutOrStdout(), t, output)
		}
		s := newSummary(cmd.OutOrStdout())
		s.add("Name", t.Name)
		s.add("Namespace", t.Namespace)
		s.add("Cron", t.Spec.Cron)
		s.add("Function", t.Spec.FunctionReference.Name)
		s.add("Method", t.Spec.Method)
		s.add("Subpath", t.Spec.Subpath)
		return s.flush()
	})
	return cmd
}

func newTimerList(g *Globals) *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{Use: "list", Short: "List timers", Args: cobra.NoArgs}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		objs, rv, err := st.List(ctx, v1.KindTimeTrigger, listOpts(g, all))
		if err != nil {
			return err
		}
		if output != "" {
			return printList(cmd.OutOrStdout(), v1.KindTimeTrigger, objs, rv, output)
		}
		tb := newTable(cmd.OutOrStdout(), "NAME", "CRON", "FUNCTION_NAME", "METHOD", "SUBPATH", "NAMESPACE")
		for _, o := range objs {
			t := o.(*v1.TimeTrigger)
			tb.row(t.Name, t.Spec.Cron, t.Spec.FunctionReference.Name, t.Spec.Method, t.Spec.Subpath, t.Namespace)
		}
		return tb.flush()
	})
	return cmd
}

func newTimerUpdate(g *Globals) *cobra.Command {
	o := &timerOptions{}
	cmd := &cobra.Command{Use: "update", Short: "Change a timer (only the flags given)", Args: cobra.NoArgs}
	o.addFlags(cmd)
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if err := requireFlag("name", o.name); err != nil {
			return err
		}
		if changed(cmd, "function") {
			if err := checkFunctionsExist(ctx, st, ns, []string{o.function}); err != nil {
				return err
			}
		}
		return updateObject(ctx, st, v1.KindTimeTrigger, ns, o.name, func(obj v1.Object) error {
			s := &obj.(*v1.TimeTrigger).Spec
			if changed(cmd, "cron") {
				s.Cron = o.cron
			}
			if changed(cmd, "function") {
				s.FunctionReference = v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: o.function}
			}
			if changed(cmd, "method") {
				s.Method = strings.ToUpper(o.method)
			}
			if changed(cmd, "subpath") {
				s.Subpath = o.subpath
			}
			return nil
		}, func(changed bool) { reportUpdate(cmd, "timer", o.name, changed) })
	})
	return cmd
}

func newTimerDelete(g *Globals) *cobra.Command {
	var name string
	var ignoreNotFound bool
	cmd := &cobra.Command{Use: "delete", Short: "Delete a timer", Args: cobra.NoArgs}
	cmd.Flags().StringVar(&name, "name", "", "timer name")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignorenotfound", false, "succeed when the timer does not exist")
	cmd.RunE = runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		err := st.Delete(ctx, v1.KindTimeTrigger, g.ns(), name, "")
		if store.IsNotFound(err) && ignoreNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "timer '%s' deleted\n", name)
		return nil
	})
	return cmd
}
