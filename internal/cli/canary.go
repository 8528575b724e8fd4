package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newCanaryCommand) }

// newCanaryCommand is `isotope canary` (Fission's `canary-config`):
// shift a route's traffic to a new function step by step, rolling back
// when it fails (docs/canary.md).
func newCanaryCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.CanaryConfig]{g: g, noun: "canary config"}
	return group("canary", []string{"canary-config", "canaryconfig"}, "Manage canary releases: move a route's traffic to a new function by steps",
		newCanaryCreate(g), k.get("get", "Show a canary config", describeCanary), newCanaryList(k), newCanaryUpdate(k), k.delete("Delete a canary config"))
}

type canaryOptions struct {
	name, trigger, newFn, oldFn, interval string
	step, threshold                       int
}

// addFlags adds Fission's flags: all on create, the tuning ones on update.
func (o *canaryOptions) addFlags(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "canary config name")
	if create {
		f.StringVar(&o.trigger, "httptrigger", "", "the route (HTTP trigger) whose traffic moves")
		f.StringVar(&o.newFn, "newfunction", "", "the function traffic moves to")
		f.StringVar(&o.oldFn, "oldfunction", "", "the function traffic moves from (and back to on failure)")
	}
	f.IntVar(&o.step, "increment-step", v1.DefaultCanaryWeightIncrement, "percent of traffic moved per step")
	f.StringVar(&o.interval, "increment-interval", v1.DefaultCanaryDuration, `time between steps, a Go duration ("2m", "30s")`)
	f.IntVar(&o.threshold, "failure-threshold", v1.DefaultCanaryFailureThreshold, "failure percentage of the new function in one interval above which traffic goes back")
	flagAliases(cmd, map[string]string{"step": "increment-step", "interval": "increment-interval", "threshold": "failure-threshold"})
}

// checkStep refuses a step the store would read as "unset" (0) and
// default.
func (o *canaryOptions) checkStep(cmd *cobra.Command) error {
	if changed(cmd, "increment-step") && (o.step < 1 || o.step > 100) {
		return fmt.Errorf("--increment-step %d: must be between 1 and 100", o.step)
	}
	return nil
}

func newCanaryCreate(g *Globals) *cobra.Command {
	o := &canaryOptions{}
	var sf specFlags
	cmd := createCommand(g, "Create a canary config", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		for _, f := range [][2]string{{"name", o.name}, {"httptrigger", o.trigger}, {"newfunction", o.newFn}, {"oldfunction", o.oldFn}} {
			if err := requireFlag(f[0], f[1]); err != nil {
				return err
			}
		}
		if err := o.checkStep(cmd); err != nil {
			return err
		}
		c := &v1.CanaryConfig{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns},
			Spec: v1.CanaryConfigSpec{
				Trigger: o.trigger, NewFunction: o.newFn, OldFunction: o.oldFn,
				WeightIncrement: o.step, WeightIncrementDuration: o.interval, FailureThreshold: o.threshold,
				FailureType: v1.FailureTypeStatusCode,
			},
		}
		v1.SetTypeMeta(c)
		if done, err := sf.save(cmd, "canaryconfig-"+o.name, c); done || err != nil {
			return err
		}
		if _, err := st.Get(ctx, v1.KindHTTPTrigger, ns, o.trigger); err != nil {
			if store.IsNotFound(err) {
				return fmt.Errorf("--httptrigger: route '%s' not found in namespace '%s'", o.trigger, ns)
			}
			return err
		}
		for _, f := range [][2]string{{"newfunction", o.newFn}, {"oldfunction", o.oldFn}} {
			if _, err := st.Get(ctx, v1.KindFunction, ns, f[1]); store.IsNotFound(err) {
				return fmt.Errorf("--%s: function '%s' not found in namespace '%s'", f[0], f[1], ns)
			} else if err != nil {
				return err
			}
		}
		if _, err := st.Create(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "canary config '%s' created: route '%s' moves from '%s' to '%s' by %d%% every %s\n",
			o.name, o.trigger, o.oldFn, o.newFn, o.step, o.interval)
		return nil
	})
	o.addFlags(cmd, true)
	return cmd
}

func describeCanary(w io.Writer, c *v1.CanaryConfig) error {
	s := newSummary(w)
	s.add("Name", c.Name)
	s.add("Namespace", c.Namespace)
	s.add("HTTPTrigger", c.Spec.Trigger)
	s.add("New function", c.Spec.NewFunction)
	s.add("Old function", c.Spec.OldFunction)
	s.add("Increment step", strconv.Itoa(c.Spec.WeightIncrement))
	s.add("Increment interval", c.Spec.WeightIncrementDuration)
	s.add("Failure threshold", strconv.Itoa(c.Spec.FailureThreshold)+"%")
	s.add("Failure type", string(c.Spec.FailureType))
	s.add("Status", string(c.Status.Status))
	return s.flush()
}

func newCanaryList(k kindCommands[*v1.CanaryConfig]) *cobra.Command {
	return k.list(listing[*v1.CanaryConfig]{
		short:   "List canary configs",
		headers: []string{"NAME", "TRIGGER", "FUNCTION-N", "FUNCTION-N-1", "WEIGHT-INCREMENT", "INTERVAL", "FAILURE-THRESHOLD", "FAILURE-TYPE", "STATUS", "NAMESPACE"},
		row: func(c *v1.CanaryConfig) []string {
			s := c.Spec
			return []string{c.Name, s.Trigger, s.NewFunction, s.OldFunction, strconv.Itoa(s.WeightIncrement), s.WeightIncrementDuration,
				strconv.Itoa(s.FailureThreshold), string(s.FailureType), string(c.Status.Status), c.Namespace}
		},
	})
}

func newCanaryUpdate(k kindCommands[*v1.CanaryConfig]) *cobra.Command {
	o := &canaryOptions{}
	check := func(ctx context.Context, cmd *cobra.Command, st store.Store) error { return o.checkStep(cmd) }
	cmd := k.update("Change a canary config's step, interval or threshold (only the flags given)", &o.name, check, func(cmd *cobra.Command, c *v1.CanaryConfig) error {
		s := &c.Spec
		assign(changed(cmd, "increment-step"), &s.WeightIncrement, o.step)
		assign(changed(cmd, "increment-interval"), &s.WeightIncrementDuration, o.interval)
		assign(changed(cmd, "failure-threshold"), &s.FailureThreshold, o.threshold)
		return nil
	})
	o.addFlags(cmd, false)
	return cmd
}
