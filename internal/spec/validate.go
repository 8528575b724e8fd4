package spec

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "isotope.dev/isotope/api/v1"
)

// Validate checks a set without touching any store: every object through
// v1.Default and v1.Validate, names unique per kind and namespace, exactly
// one DeploymentConfig, well-formed ArchiveUploadSpecs, and every
// archive:// URL naming one of them. References to environments,
// packages and functions that are not in the set are not errors (they may
// already exist); each is reported as a warning.
func Validate(set *Set) (warnings []string, err error) {
	_, warnings, err = prepare(set, "")
	return warnings, err
}

// item is a resource document ready to apply: its object is a defaulted,
// validated copy.
type item struct {
	doc *Document
	obj v1.Object
}

type objKey struct{ kind, namespace, name string }

func keyOf(obj v1.Object) objKey {
	return objKey{v1.KindOf(obj), obj.GetNamespace(), obj.GetName()}
}

func (k objKey) String() string { return fmt.Sprintf("%s %s/%s", k.kind, k.namespace, k.name) }

// prepare validates the set and returns its objects, defaulted, sorted in
// dependency order (v1.Kinds order, then set order). Objects without a
// namespace get namespace (or "default").
func prepare(set *Set, namespace string) ([]item, []string, error) {
	var (
		errs     ErrorList
		warnings []string
		items    []item
		configs  []*Document
		archives = map[string]*Document{}
	)
	for i := range set.Documents {
		d := &set.Documents[i]
		switch {
		case d.DeploymentConfig != nil:
			configs = append(configs, d)
			c := d.DeploymentConfig
			if c.Name == "" {
				errs = append(errs, d.wrap(field.Required(field.NewPath("name"), "")))
			}
			if c.UID == "" {
				errs = append(errs, d.wrap(field.Required(field.NewPath("uid"), "the deployment's uid ties applied objects to this directory; `isotope spec init` writes one")))
			}
		case d.Archive != nil:
			errs = append(errs, validateArchiveSpec(d)...)
			if prev, dup := archives[d.Archive.Name]; dup && d.Archive.Name != "" {
				errs = append(errs, d.errorf("duplicate ArchiveUploadSpec %q (also in %s document %d)", d.Archive.Name, prev.File, prev.Index))
			} else {
				archives[d.Archive.Name] = d
			}
		case d.Object != nil:
			obj := d.Object.DeepCopyObject().(v1.Object)
			if obj.GetNamespace() == "" && namespace != "" {
				obj.SetNamespace(namespace)
			}
			v1.Default(obj)
			for _, fe := range v1.ValidateWith(obj, v1.ValidateOptions{AllowArchiveURLs: true}) {
				errs = append(errs, d.wrap(fe))
			}
			items = append(items, item{doc: d, obj: obj})
		}
	}
	switch {
	case len(configs) == 0:
		errs = append(errs, &Error{File: set.Dir, Err: fmt.Errorf("no %s document; run `isotope spec init --specdir %s` to create %s", KindDeploymentConfig, set.Dir, DeploymentConfigFile)})
	case len(configs) > 1:
		for _, d := range configs[1:] {
			errs = append(errs, d.errorf("a second %s (the first is in %s document %d)", KindDeploymentConfig, configs[0].File, configs[0].Index))
		}
	}

	order := map[string]int{}
	for i, k := range v1.Kinds() {
		order[k.Kind] = i
	}
	sort.SliceStable(items, func(i, j int) bool {
		return order[v1.KindOf(items[i].obj)] < order[v1.KindOf(items[j].obj)]
	})

	seen := map[objKey]*Document{}
	for _, it := range items {
		k := keyOf(it.obj)
		if prev, dup := seen[k]; dup {
			errs = append(errs, it.doc.errorf("duplicate %s (also in %s document %d)", k, prev.File, prev.Index))
			continue
		}
		seen[k] = it.doc
	}
	has := func(kind, ns, name string) bool { _, ok := seen[objKey{kind, ns, name}]; return ok }
	external := func(it item, kind, ns, name string) {
		if name != "" && !has(kind, ns, name) {
			warnings = append(warnings, fmt.Sprintf("%s %s %q refers to %s %s/%s, which is not in the specs; it must already exist",
				locate(it.doc), v1.KindOf(it.obj), it.obj.GetName(), kind, ns, name))
		}
	}
	for _, it := range items {
		switch o := it.obj.(type) {
		case *v1.Package:
			external(it, v1.KindEnvironment, o.Spec.Environment.Namespace, o.Spec.Environment.Name)
			for _, a := range []struct {
				f   string
				arc v1.Archive
			}{{"source", o.Spec.Source}, {"deployment", o.Spec.Deployment}} {
				name, ok := archiveRef(a.arc.URL)
				if ok && archives[name] == nil {
					errs = append(errs, it.doc.wrap(field.NotFound(field.NewPath("spec", a.f, "url"), a.arc.URL)))
				}
			}
		case *v1.Function:
			if o.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType != v1.ExecutorTypeContainer {
				external(it, v1.KindEnvironment, o.Spec.Environment.Namespace, o.Spec.Environment.Name)
				external(it, v1.KindPackage, o.Spec.Package.PackageRef.Namespace, o.Spec.Package.PackageRef.Name)
			}
		case *v1.HTTPTrigger:
			external(it, v1.KindFunction, o.Namespace, o.Spec.FunctionReference.Name)
			for _, name := range slices.Sorted(maps.Keys(o.Spec.FunctionReference.FunctionWeights)) {
				external(it, v1.KindFunction, o.Namespace, name)
			}
		case *v1.TimeTrigger:
			external(it, v1.KindFunction, o.Namespace, o.Spec.FunctionReference.Name)
		case *v1.MessageQueueTrigger:
			external(it, v1.KindFunction, o.Namespace, o.Spec.FunctionReference.Name)
		}
	}
	if len(errs) > 0 {
		return nil, warnings, errs
	}
	return items, warnings, nil
}

func locate(d *Document) string { return fmt.Sprintf("%s: document %d:", d.File, d.Index) }

// archiveRef returns the ArchiveUploadSpec name of an archive:// URL.
func archiveRef(raw string) (string, bool) {
	if !strings.HasPrefix(raw, "archive://") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false
	}
	return u.Host, true
}

func validateArchiveSpec(d *Document) ErrorList {
	a := d.Archive
	var errs ErrorList
	if a.Name == "" {
		errs = append(errs, d.wrap(field.Required(field.NewPath("name"), "")))
	} else if strings.ContainsAny(a.Name, "/\\ :") {
		errs = append(errs, d.wrap(field.Invalid(field.NewPath("name"), a.Name, "must not contain '/', '\\', ':' or spaces (it is the host part of archive://<name>)")))
	}
	if len(a.Include) == 0 {
		errs = append(errs, d.wrap(field.Required(field.NewPath("include"), "at least one glob of files to put in the archive")))
	}
	if a.RootDir != "" {
		if err := checkRootDir(a.RootDir); err != nil {
			errs = append(errs, d.wrap(field.Invalid(field.NewPath("rootdir"), a.RootDir, err.Error())))
		}
	}
	for i, g := range a.Include {
		err := checkGlob(g)
		if err == nil {
			err = checkInclude(g)
		}
		if err != nil {
			errs = append(errs, d.wrap(field.Invalid(field.NewPath("include").Index(i), g, err.Error())))
		}
	}
	for i, g := range a.Exclude {
		if err := checkGlob(g); err != nil {
			errs = append(errs, d.wrap(field.Invalid(field.NewPath("exclude").Index(i), g, err.Error())))
		}
	}
	return errs
}
