// Package migrate copies a Fission installation's resources into
// Isotope's: every fission.io/v1 Environment, Package, Function,
// HTTPTrigger and TimeTrigger of a cluster becomes the isotope.dev/v1
// object of the same namespace and name (`isotope migrate fission`).
//
// The field names are the same, so the copy is the object with another
// apiVersion and without what the apiserver owns (uid, resourceVersion,
// timestamps, managed fields, owner references). It is one-shot and
// idempotent: an object already migrated and unchanged is left alone, a
// changed one is updated, and a Function's packageref.resourceversion is
// rewritten to its migrated Package's. A Package's build status is
// copied when it is created only: after that Isotope's builder manager
// owns it. Fission's objects are never changed.
package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Options says what to migrate and whether to write.
type Options struct {
	// Namespace limits the migration to one namespace; "" is all.
	Namespace string
	// Apply writes; without it the plan is only printed (a dry run),
	// each object still checked against Isotope's validation.
	Apply bool
}

// Action is what happens to one object.
type Action string

const (
	Create    Action = "create"
	Update    Action = "update"
	Unchanged Action = "unchanged"
	Invalid   Action = "invalid"
	Skipped   Action = "skipped" // a Fission kind Isotope does not have
)

// Result counts the actions; Failed lists the objects not migrated.
type Result struct {
	Counts map[Action]int
	Failed []string
}

// Fission migrates from src (a client of the cluster with Fission's
// CRDs) into dst (Isotope's store on the same or another cluster),
// writing one line per object to out.
func Fission(ctx context.Context, src dynamic.Interface, dst store.Store, opts Options, out io.Writer) (*Result, error) {
	res := &Result{Counts: map[Action]int{}}
	verb := map[Action]string{Create: "would create", Update: "would update"}
	if opts.Apply {
		verb = map[Action]string{Create: "created", Update: "updated"}
	}
	pkgRV := map[string]string{} // ns/name of a migrated Package -> its isotope resourceVersion
	for _, ki := range v1.Kinds() {
		if ki.Core {
			continue // Secrets and ConfigMaps are core/v1 on both sides
		}
		list, err := src.Resource(gvr(ki.Plural)).Namespace(opts.Namespace).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			fmt.Fprintf(out, "%s: no fission.io/v1 %s in this cluster (CRD absent)\n", ki.Kind, ki.Plural)
			continue
		}
		if err != nil {
			return res, fmt.Errorf("listing fission.io/v1 %s: %w", ki.Plural, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			id := ki.Kind + " " + u.GetNamespace() + "/" + u.GetName()
			act, rv, err := migrateOne(ctx, dst, ki, u, pkgRV, opts.Apply)
			res.Counts[act]++
			switch {
			case err != nil:
				res.Failed = append(res.Failed, id)
				fmt.Fprintf(out, "%s: %s: %v\n", id, act, err)
			case act == Unchanged:
				fmt.Fprintf(out, "%s: unchanged\n", id)
			default:
				fmt.Fprintf(out, "%s: %s\n", id, verb[act])
			}
			if ki.Kind == v1.KindPackage && rv != "" {
				pkgRV[u.GetNamespace()+"/"+u.GetName()] = rv
			}
		}
	}
	for _, k := range v1.FissionOnlyKinds {
		list, err := src.Resource(gvr(k.Plural)).Namespace(opts.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue // CRD absent, or not readable: nothing to say
		}
		for _, u := range list.Items {
			res.Counts[Skipped]++
			fmt.Fprintf(out, "%s %s/%s: skipped: %s in Isotope\n", u.GetKind(), u.GetNamespace(), u.GetName(), k.Why)
		}
	}
	return res, nil
}

func gvr(plural string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: v1.FissionGroup, Version: v1.Version, Resource: plural}
}

// migrateOne converts u and creates or updates its Isotope copy (only
// checks it when !apply). rv is the copy's resourceVersion (for
// Packages, so Functions can name it).
func migrateOne(ctx context.Context, dst store.Store, ki v1.KindInfo, u *unstructured.Unstructured, pkgRV map[string]string, apply bool) (Action, string, error) {
	want, err := convert(ki, u)
	if err != nil {
		return Invalid, "", err
	}
	if fn, ok := want.(*v1.Function); ok {
		ref := &fn.Spec.Package.PackageRef
		ns := ref.Namespace
		if ns == "" {
			ns = fn.Namespace
		}
		if rv, ok := pkgRV[ns+"/"+ref.Name]; ok {
			ref.ResourceVersion = rv
		}
	}
	cur, err := dst.Get(ctx, ki.Kind, want.GetNamespace(), want.GetName())
	switch {
	case store.IsNotFound(err):
		v1.Default(want)
		if errs := v1.Validate(want); len(errs) > 0 {
			return Invalid, "", errs.ToAggregate()
		}
		if !apply {
			return Create, "", nil
		}
		out, err := dst.Create(ctx, want)
		if err != nil {
			return Invalid, "", err
		}
		return Create, out.GetResourceVersion(), nil
	case err != nil:
		return Invalid, "", err
	}
	// Compare what migration owns: labels, annotations and spec, after
	// the defaults the store applies.
	v1.Default(want)
	if sameContent(cur, want) {
		return Unchanged, cur.GetResourceVersion(), nil
	}
	if errs := v1.Validate(want); len(errs) > 0 {
		return Invalid, "", errs.ToAggregate()
	}
	if !apply {
		return Update, cur.GetResourceVersion(), nil
	}
	want.SetResourceVersion(cur.GetResourceVersion())
	want.SetUID(cur.GetUID())
	out, err := dst.Update(ctx, want)
	if err != nil {
		return Invalid, "", err
	}
	return Update, out.GetResourceVersion(), nil
}

// convert decodes a Fission object as the Isotope kind: the same JSON
// with Isotope's apiVersion, without the fields the apiserver owns. A
// field Isotope does not know is an error naming it.
func convert(ki v1.KindInfo, u *unstructured.Unstructured) (v1.Object, error) {
	c := u.DeepCopy()
	c.SetAPIVersion(v1.APIVersion)
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "ownerReferences", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	data, err := json.Marshal(c.Object)
	if err != nil {
		return nil, err
	}
	obj := ki.New()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			return nil, fmt.Errorf("%w: Isotope's %s has no such field; remove it from the Fission object or migrate it by hand", err, ki.Kind)
		}
		return nil, err
	}
	v1.SetTypeMeta(obj)
	return obj, nil
}

// sameContent reports whether a and b agree on labels, annotations and
// spec.
func sameContent(a, b v1.Object) bool {
	spec := func(o v1.Object) any {
		f := reflect.ValueOf(o).Elem().FieldByName("Spec")
		if !f.IsValid() {
			return nil
		}
		return f.Interface()
	}
	return equalMaps(a.GetLabels(), b.GetLabels()) && equalMaps(a.GetAnnotations(), b.GetAnnotations()) && reflect.DeepEqual(normal(spec(a)), normal(spec(b)))
}

func equalMaps(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// normal round-trips v through JSON so that nil and empty, and the
// apiserver's defaulting of nested Kubernetes types, compare equal.
func normal(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		return v
	}
	return out
}
