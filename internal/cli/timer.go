package cli

import (
	"context"
	"fmt"
	"io"
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
	k := kindCommands[*v1.TimeTrigger]{g: g, noun: "timer"}
	return group("timer", []string{"timetrigger", "tt"}, "Manage timers that call functions on a cron schedule",
		newTimerCreate(g), k.get("get", "Show a timer", describeTimer), newTimerList(k), newTimerUpdate(k), k.delete("Delete a timer"))
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
	cmd := createCommand(g, "Create a timer", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
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
	o.addFlags(cmd)
	return cmd
}

// describeTimer is the summary `timer get` prints.
func describeTimer(w io.Writer, t *v1.TimeTrigger) error {
	s := newSummary(w)
	s.add("Name", t.Name)
	s.add("Namespace", t.Namespace)
	s.add("Cron", t.Spec.Cron)
	s.add("Function", t.Spec.FunctionReference.Name)
	s.add("Method", t.Spec.Method)
	s.add("Subpath", t.Spec.Subpath)
	return s.flush()
}

func newTimerList(k kindCommands[*v1.TimeTrigger]) *cobra.Command {
	return k.list(listing[*v1.TimeTrigger]{
		short:   "List timers",
		headers: []string{"NAME", "CRON", "FUNCTION_NAME", "METHOD", "SUBPATH", "NAMESPACE"},
		row: func(t *v1.TimeTrigger) []string {
			return []string{t.Name, t.Spec.Cron, t.Spec.FunctionReference.Name, t.Spec.Method, t.Spec.Subpath, t.Namespace}
		},
	})
}

func newTimerUpdate(k kindCommands[*v1.TimeTrigger]) *cobra.Command {
	o := &timerOptions{}
	check := func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if changed(cmd, "function") {
			return checkFunctionsExist(ctx, st, k.g.ns(), []string{o.function})
		}
		return nil
	}
	cmd := k.update("Change a timer (only the flags given)", &o.name, check, func(cmd *cobra.Command, t *v1.TimeTrigger) error {
		s := &t.Spec
		assign(changed(cmd, "cron"), &s.Cron, o.cron)
		assign(changed(cmd, "function"), &s.FunctionReference, v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: o.function})
		assign(changed(cmd, "method"), &s.Method, strings.ToUpper(o.method))
		assign(changed(cmd, "subpath"), &s.Subpath, o.subpath)
		return nil
	})
	o.addFlags(cmd)
	return cmd
}
