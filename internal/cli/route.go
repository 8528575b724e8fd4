package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { register(newRouteCommand) }

// newRouteCommand is `isotope route` (aliases httptrigger, ht).
func newRouteCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.HTTPTrigger]{g: g, noun: "route"}
	return group("route", []string{"httptrigger", "ht"}, "Manage HTTP routes to functions",
		newRouteCreate(g), k.get("get", "Show a route", describeRoute), newRouteList(k), newRouteUpdate(k), newRouteDelete(k))
}

// routeOptions are the flags of route create and route update.
type routeOptions struct {
	name, url, prefix, host   string
	functions, methods        []string
	weights                   []int
	keepPrefix, createIngress bool
}

func (o *routeOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "route name (default on create: a random UUID)")
	f.StringArrayVar(&o.functions, "function", nil, "function to call (repeat with --weight for a canary split)")
	f.IntSliceVar(&o.weights, "weight", nil, "percent of requests for each --function, in order (repeatable)")
	f.StringVar(&o.url, "url", "", "URL pattern, e.g. /users/{id}")
	f.StringVar(&o.prefix, "prefix", "", "URL prefix; every path under it matches")
	f.BoolVar(&o.keepPrefix, "keepprefix", false, "pass the prefix on to the function")
	f.StringArrayVar(&o.methods, "method", nil, "HTTP method (repeatable; default GET)")
	f.StringVar(&o.host, "host", "", "only requests for this Host")
	f.BoolVar(&o.createIngress, "createingress", false, "create an ingress (Kubernetes mode; accepted and recorded)")
}

// methodsOrGet upper-cases methods and defaults to GET, as Fission.
func methodsOrGet(methods []string) []string {
	if len(methods) == 0 {
		return []string{"GET"}
	}
	out := make([]string, 0, len(methods))
	for _, m := range methods {
		for _, part := range strings.Split(m, ",") {
			if part = strings.ToUpper(strings.TrimSpace(part)); part != "" && !slices.Contains(out, part) {
				out = append(out, part)
			}
		}
	}
	return out
}

// setRouteURL sets either the relative URL or the prefix, with a leading
// slash. On create one of them is required.
func setRouteURL(s *v1.HTTPTriggerSpec, url, prefix string, create bool) error {
	if url != "" && prefix != "" {
		return fmt.Errorf("give --url or --prefix, not both")
	}
	if create && url == "" && prefix == "" {
		return fmt.Errorf("--url or --prefix is required")
	}
	slash := func(p string) string {
		if !strings.HasPrefix(p, "/") {
			return "/" + p
		}
		return p
	}
	if url != "" {
		s.RelativeURL, s.Prefix = slash(url), nil
	}
	if prefix != "" {
		p := slash(prefix)
		s.RelativeURL, s.Prefix = "", &p
	}
	return nil
}

// routePath is what a route matches, for display.
func routePath(s *v1.HTTPTriggerSpec) string {
	if s.Prefix != nil && *s.Prefix != "" {
		return *s.Prefix + "*"
	}
	return s.RelativeURL
}

// functionRef builds a route's function reference: a name, or weights
// that must add up to 100 for a canary split.
func functionRef(functions []string, weights []int) (v1.FunctionReference, error) {
	switch {
	case len(functions) == 0:
		return v1.FunctionReference{}, fmt.Errorf("--function is required")
	case len(functions) == 1 && len(weights) <= 1:
		return v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: functions[0]}, nil
	case len(weights) != len(functions):
		return v1.FunctionReference{}, fmt.Errorf("--weight: give one weight per --function (%d functions, %d weights)", len(functions), len(weights))
	}
	ref := v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionWeights, FunctionWeights: map[string]int{}}
	sum := 0
	for i, fn := range functions {
		if weights[i] < 0 {
			return ref, fmt.Errorf("--weight: %d is negative", weights[i])
		}
		ref.FunctionWeights[fn] += weights[i]
		sum += weights[i]
	}
	if sum != 100 {
		return ref, fmt.Errorf("--weight: the weights add up to %d, not 100", sum)
	}
	return ref, nil
}

// checkFunctionsExist refuses a route to a function that does not exist.
func checkFunctionsExist(ctx context.Context, st store.Store, ns string, names []string) error {
	for _, n := range names {
		if _, err := st.Get(ctx, v1.KindFunction, ns, n); err != nil {
			if store.IsNotFound(err) {
				return fmt.Errorf("--function: function '%s' not found in namespace '%s'", n, ns)
			}
			return err
		}
	}
	return nil
}

func newRouteCreate(g *Globals) *cobra.Command {
	o := &routeOptions{}
	var sf specFlags
	cmd := createCommand(g, "Create a route", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		ns := g.ns()
		if o.name == "" {
			o.name = uuid.NewString()
		}
		r := &v1.HTTPTrigger{ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns}}
		v1.SetTypeMeta(r)
		if err := setRouteURL(&r.Spec, o.url, o.prefix, true); err != nil {
			return err
		}
		ref, err := functionRef(o.functions, o.weights)
		if err != nil {
			return err
		}
		r.Spec.FunctionReference = ref
		r.Spec.Methods = methodsOrGet(o.methods)
		r.Spec.KeepPrefix = o.keepPrefix
		r.Spec.Host = o.host
		r.Spec.CreateIngress = o.createIngress
		if done, err := sf.save(cmd, "route-"+o.name, r); done || err != nil {
			return err
		}
		if err := checkFunctionsExist(ctx, st, ns, o.functions); err != nil {
			return err
		}
		if _, err := st.Create(ctx, r); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "route '%s' created: %s %s -> %s\n", o.name, strings.Join(r.Spec.Methods, ","), routePath(&r.Spec), refString(r.Spec.FunctionReference))
		return nil
	})
	o.addFlags(cmd)
	return cmd
}

// refString renders a function reference: "hello" or "a:90,b:10".
func refString(ref v1.FunctionReference) string {
	if ref.Type != v1.FunctionReferenceTypeFunctionWeights {
		return ref.Name
	}
	names := make([]string, 0, len(ref.FunctionWeights))
	for n := range ref.FunctionWeights {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = n + ":" + strconv.Itoa(ref.FunctionWeights[n])
	}
	return strings.Join(names, ",")
}

// routeMethods merges Fission's legacy method with methods.
func routeMethods(s *v1.HTTPTriggerSpec) []string {
	m := append([]string{}, s.Methods...)
	if s.Method != "" && !slices.Contains(m, s.Method) {
		m = append(m, s.Method)
	}
	return m
}

// describeRoute is the summary `route get` prints.
func describeRoute(w io.Writer, r *v1.HTTPTrigger) error {
	s := newSummary(w)
	s.add("Name", r.Name)
	s.add("Namespace", r.Namespace)
	s.add("Methods", strings.Join(routeMethods(&r.Spec), ","))
	s.add("URL", routePath(&r.Spec))
	s.add("Keep prefix", strconv.FormatBool(r.Spec.KeepPrefix))
	s.add("Host", r.Spec.Host)
	s.add("Function", refString(r.Spec.FunctionReference))
	return s.flush()
}

func newRouteList(k kindCommands[*v1.HTTPTrigger]) *cobra.Command {
	var function string
	cmd := k.list(listing[*v1.HTTPTrigger]{
		short:   "List routes",
		headers: []string{"NAME", "METHOD", "URL", "FUNCTION(s)", "HOST", "KEEPPREFIX", "NAMESPACE"},
		row: func(r *v1.HTTPTrigger) []string {
			return []string{r.Name, strings.Join(routeMethods(&r.Spec), ","), routePath(&r.Spec), refString(r.Spec.FunctionReference),
				r.Spec.Host, strconv.FormatBool(r.Spec.KeepPrefix), r.Namespace}
		},
		filter: func(context.Context, store.Store, store.ListOptions) (func(*v1.HTTPTrigger) bool, error) {
			if function == "" {
				return nil, nil
			}
			return func(r *v1.HTTPTrigger) bool { return routeCalls(r, function) }, nil
		},
	})
	cmd.Flags().StringVar(&function, "function", "", "only routes to this function")
	return cmd
}

// routeCalls reports whether a route sends requests to fn.
func routeCalls(r *v1.HTTPTrigger, fn string) bool {
	ref := r.Spec.FunctionReference
	if ref.Type == v1.FunctionReferenceTypeFunctionWeights {
		_, ok := ref.FunctionWeights[fn]
		return ok
	}
	return ref.Name == fn
}

func newRouteUpdate(k kindCommands[*v1.HTTPTrigger]) *cobra.Command {
	o := &routeOptions{}
	check := func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if changed(cmd, "function") {
			return checkFunctionsExist(ctx, st, k.g.ns(), o.functions)
		}
		return nil
	}
	cmd := k.update("Change a route (only the flags given)", &o.name, check, func(cmd *cobra.Command, r *v1.HTTPTrigger) error {
		s := &r.Spec
		if err := setRouteURL(s, o.url, o.prefix, false); err != nil {
			return err
		}
		if changed(cmd, "function") || changed(cmd, "weight") {
			fns := o.functions
			if !changed(cmd, "function") { // new weights for the same functions
				if s.FunctionReference.Type != v1.FunctionReferenceTypeFunctionWeights {
					fns = []string{s.FunctionReference.Name}
				} else {
					return fmt.Errorf("--weight: give the --function list the weights apply to")
				}
			}
			ref, err := functionRef(fns, o.weights)
			if err != nil {
				return err
			}
			s.FunctionReference = ref
		}
		if changed(cmd, "method") {
			s.Methods, s.Method = methodsOrGet(o.methods), ""
		}
		assign(changed(cmd, "keepprefix"), &s.KeepPrefix, o.keepPrefix)
		assign(changed(cmd, "host"), &s.Host, o.host)
		assign(changed(cmd, "createingress"), &s.CreateIngress, o.createIngress)
		return nil
	})
	o.addFlags(cmd)
	return cmd
}

func newRouteDelete(k kindCommands[*v1.HTTPTrigger]) *cobra.Command {
	var name, function string
	var ignoreNotFound bool
	cmd := command(k.g, "delete", "Delete a route, or every route to a function", func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if (name == "") == (function == "") {
			return fmt.Errorf("give --name or --function")
		}
		names := []string{name}
		if function != "" {
			routes, _, err := store.ListAs[*v1.HTTPTrigger](ctx, st, store.ListOptions{Namespace: k.g.ns()})
			if err != nil {
				return err
			}
			names = nil
			for _, r := range routes {
				if routeCalls(r, function) {
					names = append(names, r.Name)
				}
			}
		}
		for _, n := range names {
			if _, err := k.deleteOne(ctx, st, cmd.OutOrStdout(), n, ignoreNotFound || function != ""); err != nil {
				return err
			}
		}
		return nil
	})
	cmd.Flags().StringVar(&name, "name", "", "route name")
	cmd.Flags().StringVar(&function, "function", "", "delete every route to this function")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignorenotfound", false, "succeed when the route does not exist")
	return cmd
}
