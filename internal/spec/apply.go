package spec

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Annotations Apply puts on every object it writes. They are Fission's
// keys (fission-name, fission-uid), so a spec directory applied with
// Fission's CLI and then with Isotope's (or the other way round) is one
// deployment, not two.
const (
	AnnotationDeploymentName = "fission-name"
	AnnotationDeploymentUID  = "fission-uid"
)

// ApplyOptions adjusts Apply.
type ApplyOptions struct {
	// Delete removes stored objects that carry this deployment's uid but
	// are no longer in the set.
	Delete bool
	// Namespace is given to objects whose document names none ("" means
	// "default").
	Namespace string
	// Uploader stores archives larger than v1.ArchiveLiteralSizeLimit;
	// without one such an archive is an error.
	Uploader Uploader
	// AllowConflicts lets Apply take over objects of the same name that
	// another deployment (or a plain `create`) made; otherwise they are
	// an error and nothing is written.
	AllowConflicts bool
}

// Ref names a stored object.
type Ref struct{ Kind, Namespace, Name string }

func (r Ref) String() string { return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name) }

func refOf(obj v1.Object) Ref { return Ref{v1.KindOf(obj), obj.GetNamespace(), obj.GetName()} }

// Result says what Apply or Destroy did, object by object, in the order
// it was done.
type Result struct {
	Created, Updated, Unchanged, Deleted []Ref
	// Warnings are references to objects outside the set and other
	// things worth telling the user that did not stop the apply.
	Warnings []string
}

type action int

const (
	actCreate action = iota
	actUpdate
	actNone
)

type step struct {
	it          item
	desired     v1.Object
	existing    v1.Object
	act         action
	resetStatus bool // a package whose source changed goes back to pending
}

// Apply makes the store hold the set's objects, in dependency order
// (environments, packages, functions, triggers), each annotated with the
// deployment's name and uid. It creates what is missing and updates only
// what differs in spec, labels or annotations, so applying an unchanged
// set again writes nothing and reports every object unchanged.
//
// Everything that can be checked is checked before the first write: the
// set's validity, archives (built, inlined or uploaded), and that no
// object of the same name belongs to another deployment. Package
// archive://<name> URLs are replaced by the ArchiveUploadSpec's zip,
// inline when it is at most 256 KiB, else uploaded through
// opts.Uploader; an unchanged archive keeps its checksum and so its
// package stays unchanged. A package whose source (or build command, or
// environment) changed gets its build status reset to pending.
func Apply(ctx context.Context, st store.Store, set *Set, opts ApplyOptions) (Result, error) {
	items, warnings, err := prepare(set, opts.Namespace)
	res := Result{Warnings: warnings}
	if err != nil {
		return res, err
	}
	cfg := set.Config()

	steps, err := plan(ctx, st, set, cfg, items, opts)
	if err != nil {
		return res, err
	}
	for _, s := range steps {
		ref := refOf(s.desired)
		switch s.act {
		case actNone:
			res.Unchanged = append(res.Unchanged, ref)
		case actCreate:
			if _, err := st.Create(ctx, s.desired); err != nil {
				return res, s.it.doc.wrap(err)
			}
			res.Created = append(res.Created, ref)
		case actUpdate:
			s.desired.SetResourceVersion(s.existing.GetResourceVersion())
			updated, err := st.Update(ctx, s.desired)
			if err != nil {
				return res, s.it.doc.wrap(err)
			}
			if s.resetStatus {
				p := updated.(*v1.Package)
				p.Status = v1.PackageStatus{BuildStatus: v1.BuildStatusPending, LastUpdateTimestamp: metav1.Now()}
				if _, err := st.UpdateStatus(ctx, p); err != nil {
					return res, s.it.doc.wrap(err)
				}
			}
			res.Updated = append(res.Updated, ref)
		}
	}
	if !opts.Delete {
		return res, nil
	}
	keep := map[Ref]bool{}
	for _, s := range steps {
		keep[refOf(s.desired)] = true
	}
	deleted, err := deleteOwned(ctx, st, cfg.UID, func(r Ref) bool { return !keep[r] })
	res.Deleted = deleted
	return res, err
}

// plan reads the store and decides every write; it writes nothing to the
// store (it may upload archives).
func plan(ctx context.Context, st store.Store, set *Set, cfg *DeploymentConfig, items []item, opts ApplyOptions) ([]step, error) {
	var errs ErrorList
	built := map[string]*builtArchive{}
	for _, it := range items {
		p, ok := it.obj.(*v1.Package)
		if !ok {
			continue
		}
		for _, arc := range []v1.Archive{p.Spec.Source, p.Spec.Deployment} {
			name, ok := archiveRef(arc.URL)
			if !ok || built[name] != nil {
				continue
			}
			b, err := buildArchive(set.Dir, set.Archive(name))
			if err != nil {
				errs = append(errs, archiveDoc(set, name).wrap(err))
				continue
			}
			built[name] = b
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	up := &archiveResolver{ctx: ctx, built: built, uploader: opts.Uploader, uploaded: map[string]string{}}
	var steps []step
	for _, it := range items {
		desired := it.obj.DeepCopyObject().(v1.Object)
		clearSystemMeta(desired)
		ann := maps.Clone(desired.GetAnnotations())
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationDeploymentName] = cfg.Name
		ann[AnnotationDeploymentUID] = cfg.UID
		desired.SetAnnotations(ann)

		existing, err := st.Get(ctx, v1.KindOf(desired), desired.GetNamespace(), desired.GetName())
		switch {
		case store.IsNotFound(err):
			existing = nil
		case err != nil:
			return nil, it.doc.wrap(err)
		default:
			if owner := existing.GetAnnotations()[AnnotationDeploymentUID]; owner != cfg.UID && !opts.AllowConflicts {
				errs = append(errs, it.doc.errorf("%s already exists and is not part of deployment %q (its %s annotation is %q); delete it or allow conflicts",
					refOf(desired), cfg.Name, AnnotationDeploymentUID, owner))
				continue
			}
			v1.Default(existing)
		}
		s := step{it: it, desired: desired, existing: existing, act: actCreate}
		if p, ok := desired.(*v1.Package); ok {
			var old *v1.Package
			if existing != nil {
				old = existing.(*v1.Package)
			}
			if err := up.resolve(p, old); err != nil {
				errs = append(errs, it.doc.wrap(err))
				continue
			}
			if old != nil {
				s.resetStatus = keepBuildOutput(p, old)
			}
		}
		if f, ok := desired.(*v1.Function); ok && existing != nil {
			// The builder manager bumps this when the package is rebuilt.
			if ref := &f.Spec.Package.PackageRef; ref.ResourceVersion == "" {
				ref.ResourceVersion = existing.(*v1.Function).Spec.Package.PackageRef.ResourceVersion
			}
		}
		v1.Default(desired)
		for _, fe := range v1.Validate(desired) {
			errs = append(errs, it.doc.wrap(fe))
		}
		if existing != nil {
			s.act = actNone
			if !sameObject(desired, existing) {
				s.act = actUpdate
			}
		}
		steps = append(steps, s)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return steps, nil
}

func archiveDoc(set *Set, name string) *Document {
	for i := range set.Documents {
		if a := set.Documents[i].Archive; a != nil && a.Name == name {
			return &set.Documents[i]
		}
	}
	return &Document{File: set.Dir}
}

// clearSystemMeta drops what the store assigns, should a document (say,
// one exported with `get -o yaml`) carry it.
func clearSystemMeta(obj v1.Object) {
	obj.SetUID("")
	obj.SetResourceVersion("")
	obj.SetGeneration(0)
	obj.SetCreationTimestamp(metav1.Time{})
	obj.SetManagedFields(nil)
}

// keepBuildOutput carries over the deployment archive the builder made
// for a package whose source is unchanged (the spec names only the
// source), and reports whether the package must be rebuilt.
func keepBuildOutput(desired, existing *v1.Package) (rebuild bool) {
	d, e := &desired.Spec, &existing.Spec
	sourceChanged := !equality.Semantic.DeepEqual(d.Source, e.Source) ||
		d.BuildCommand != e.BuildCommand || d.Environment != e.Environment
	if !d.Source.IsEmpty() && d.Deployment.IsEmpty() && !sourceChanged {
		d.Deployment = e.Deployment
	}
	return sourceChanged && !d.Source.IsEmpty()
}

// sameObject compares what Apply owns: spec, labels and annotations.
func sameObject(a, b v1.Object) bool {
	return equalMaps(a.GetLabels(), b.GetLabels()) &&
		equalMaps(a.GetAnnotations(), b.GetAnnotations()) &&
		equality.Semantic.DeepEqual(specOf(a), specOf(b))
}

func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

func specOf(obj v1.Object) any {
	switch o := obj.(type) {
	case *v1.Environment:
		return &o.Spec
	case *v1.Package:
		return &o.Spec
	case *v1.Function:
		return &o.Spec
	case *v1.HTTPTrigger:
		return &o.Spec
	case *v1.TimeTrigger:
		return &o.Spec
	case *v1.MessageQueueTrigger:
		return &o.Spec
	}
	return obj
}

// archiveResolver turns archive:// URLs into real archives, uploading
// each distinct archive (by checksum) at most once per apply.
type archiveResolver struct {
	ctx      context.Context
	built    map[string]*builtArchive
	uploader Uploader
	uploaded map[string]string // sha256 → URL
}

func (r *archiveResolver) resolve(p, old *v1.Package) error {
	var oldSrc, oldDep *v1.Archive
	if old != nil {
		oldSrc, oldDep = &old.Spec.Source, &old.Spec.Deployment
	}
	if err := r.resolveOne(&p.Spec.Source, oldSrc, "spec.source.url"); err != nil {
		return err
	}
	return r.resolveOne(&p.Spec.Deployment, oldDep, "spec.deployment.url")
}

func (r *archiveResolver) resolveOne(a, old *v1.Archive, fieldPath string) error {
	name, ok := archiveRef(a.URL)
	if !ok {
		return nil
	}
	b := r.built[name]
	sum := v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: b.sum}
	if len(b.data) <= v1.ArchiveLiteralSizeLimit {
		*a = v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: b.data, Checksum: sum}
		return nil
	}
	// Unchanged since the last apply: keep the stored copy, upload nothing.
	if old != nil && old.Type == v1.ArchiveTypeURL && old.URL != "" && old.Checksum.Sum == b.sum {
		*a = *old.DeepCopy()
		return nil
	}
	url, done := r.uploaded[b.sum]
	if !done {
		if r.uploader == nil {
			return fmt.Errorf("%s: archive %q is %d bytes, more than the %d a package holds inline, and there is no storage service to upload it to",
				fieldPath, name, len(b.data), v1.ArchiveLiteralSizeLimit)
		}
		u, got, err := r.uploader.Upload(r.ctx, b.upload, bytes.NewReader(b.data), int64(len(b.data)))
		if err != nil {
			return fmt.Errorf("%s: uploading archive %q: %w", fieldPath, name, err)
		}
		if got != "" && got != b.sum {
			return fmt.Errorf("%s: uploading archive %q: storage computed sha256 %s, want %s", fieldPath, name, got, b.sum)
		}
		url = u
		r.uploaded[b.sum] = url
	}
	*a = v1.Archive{Type: v1.ArchiveTypeURL, URL: url, Checksum: sum}
	return nil
}

// Destroy deletes every stored object that carries the set's deployment
// uid, triggers first and environments last.
func Destroy(ctx context.Context, st store.Store, set *Set) (Result, error) {
	cfg := set.Config()
	if cfg == nil || cfg.UID == "" {
		return Result{}, &Error{File: set.Dir, Err: fmt.Errorf("no %s with a uid: nothing identifies this deployment's objects", KindDeploymentConfig)}
	}
	deleted, err := deleteOwned(ctx, st, cfg.UID, func(Ref) bool { return true })
	return Result{Deleted: deleted}, err
}

// Owned lists the stored objects of deployment uid, in dependency order.
func Owned(ctx context.Context, st store.Store, uid string) ([]v1.Object, error) {
	var out []v1.Object
	for _, k := range v1.Kinds() {
		objs, _, err := st.List(ctx, k.Kind, store.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.GetAnnotations()[AnnotationDeploymentUID] == uid {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

// deleteOwned deletes, in reverse dependency order, the objects of
// deployment uid that drop selects.
func deleteOwned(ctx context.Context, st store.Store, uid string, drop func(Ref) bool) ([]Ref, error) {
	owned, err := Owned(ctx, st, uid)
	if err != nil {
		return nil, err
	}
	var deleted []Ref
	for _, o := range slices.Backward(owned) {
		r := refOf(o)
		if !drop(r) {
			continue
		}
		err := st.Delete(ctx, r.Kind, r.Namespace, r.Name, o.GetResourceVersion())
		if err != nil && !store.IsNotFound(err) {
			return deleted, fmt.Errorf("deleting %s: %w", r, err)
		}
		deleted = append(deleted, r)
	}
	return deleted, nil
}
