// Package kubestore implements store.Store on the kube-apiserver, over
// Isotope's CRDs (deploy/crds), so that every role runs unchanged in
// Kubernetes mode. It uses controller-runtime's client with a static
// REST mapping of the five isotope.dev/v1 kinds (decision 0004).
//
// Semantics are those of the store contract; where the kube-apiserver
// differs, the store bridges it:
//   - Defaults and Fission's validation (v1.Default, v1.Validate) run
//     before every write, as in the embedded store; the CRD schema is a
//     second, server-side check. Either refusal is store.ReasonInvalid
//     with one Cause per field.
//   - The apiserver drops a status sent on create, so Create writes a
//     non-empty status (a package's defaulted build status) with a second
//     request through the status subresource; watchers see ADDED without
//     status, then MODIFIED.
//   - Custom resources refuse updates without a resourceVersion, so an
//     unconditional Update or UpdateStatus reads the current version and
//     retries on conflict.
//   - resourceVersions are etcd revisions: store-wide and increasing, but
//     shared with every other resource in the cluster, so consecutive
//     writes of this store need not have consecutive versions.
//   - Errors carry Isotope's messages (kind, namespace and name), not
//     the apiserver's.
package kubestore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Options configure a Store.
type Options struct {
	// Namespace, when set, confines the store to one Kubernetes
	// namespace: objects without a namespace go there, List and Watch of
	// "all namespaces" mean this one, and any other namespace is refused.
	// This is what a role running with a namespaced Role (not a
	// ClusterRole) needs. "" serves every namespace.
	Namespace string
	// CreateNamespaces makes Create create a missing namespace instead of
	// failing (the embedded store has no namespace objects; this gives
	// the same experience on a development cluster). Off in production,
	// where namespaces are the cluster admin's.
	CreateNamespaces bool
}

// Store is a store.Store on the kube-apiserver. It is safe for
// concurrent use and holds no resources besides HTTP connections.
type Store struct {
	c    client.WithWatch
	opts Options

	mu sync.Mutex
	// expired[kind] is the highest resourceVersion a watch of kind was
	// told (in its stream) is too old; a later Watch from it or anything
	// older answers ReasonExpired at once, so that a consumer that
	// re-watches from the version it last saw gets the error instead of
	// an endlessly closing stream.
	expired map[string]uint64
}

var _ store.Store = (*Store)(nil)

// NewScheme returns a scheme with Isotope's v1 kinds and the core kinds
// the store uses (Namespace).
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := v1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := corev1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// New returns a Store talking to the apiserver at cfg. The CRDs must be
// installed; the first request for a kind whose CRD is missing fails with
// an error saying so.
func New(cfg *rest.Config, opts Options) (*Store, error) {
	if cfg == nil {
		return nil, errors.New("kubestore: nil rest.Config")
	}
	if opts.Namespace != "" {
		if errs := validateNamespace(opts.Namespace); len(errs) > 0 {
			return nil, fmt.Errorf("kubestore: namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
		}
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme, Mapper: restMapper()})
	if err != nil {
		return nil, fmt.Errorf("kubestore: %w", err)
	}
	return &Store{c: c, opts: opts, expired: map[string]uint64{}}, nil
}

// restMapper maps Isotope's kinds (and Namespace, Secret, ConfigMap) without discovery: the
// store knows them, and a static mapping saves a round trip per start and
// works before the CRDs are established.
func restMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, k := range v1.Kinds() {
		if k.Core {
			gvk := corev1.SchemeGroupVersion.WithKind(k.Kind)
			m.AddSpecific(gvk, corev1.SchemeGroupVersion.WithResource(k.Plural), corev1.SchemeGroupVersion.WithResource(k.Singular), meta.RESTScopeNamespace)
			continue
		}
		gvk := v1.SchemeGroupVersion.WithKind(k.Kind)
		m.AddSpecific(gvk, v1.SchemeGroupVersion.WithResource(k.Plural), v1.SchemeGroupVersion.WithResource(k.Singular), meta.RESTScopeNamespace)
	}
	m.Add(corev1.SchemeGroupVersion.WithKind("Namespace"), meta.RESTScopeRoot)
	return m
}

// kindInfo resolves a kind name (or alias).
func kindInfo(kind string) (v1.KindInfo, error) {
	ki, err := v1.LookupKind(kind)
	if err != nil {
		return ki, &store.Error{Reason: store.ReasonBadRequest, Message: err.Error()}
	}
	return ki, nil
}

// checkKind returns the KindInfo of obj, which must be a known kind.
func checkKind(obj v1.Object) (v1.KindInfo, error) {
	if obj == nil || reflect.ValueOf(obj).IsNil() {
		return v1.KindInfo{}, store.Errorf(store.ReasonBadRequest, "nil object")
	}
	k := v1.KindOf(obj)
	if k == "" {
		return v1.KindInfo{}, store.Errorf(store.ReasonBadRequest, "unsupported object type %T", obj)
	}
	return kindInfo(k)
}

// namespace applies the store's scope to a requested namespace: ""
// becomes the scope's namespace (or def), another namespace than the
// scope's is refused.
func (s *Store) namespace(ns, def string) (string, error) {
	if s.opts.Namespace == "" {
		if ns == "" {
			return def, nil
		}
		return ns, nil
	}
	if ns == "" || ns == s.opts.Namespace {
		return s.opts.Namespace, nil
	}
	return "", &store.Error{
		Reason:  store.ReasonInvalid,
		Message: fmt.Sprintf("namespace %q is outside this store's namespace %q", ns, s.opts.Namespace),
		Causes:  []store.Cause{{Field: "metadata.namespace", Message: fmt.Sprintf("must be %q", s.opts.Namespace)}},
	}
}

func newList(ki v1.KindInfo) (client.ObjectList, error) {
	if ki.Core {
		return newCoreList(ki)
	}
	obj, err := v1Scheme.New(v1.SchemeGroupVersion.WithKind(ki.Kind + "List"))
	if err != nil {
		return nil, err
	}
	return obj.(client.ObjectList), nil
}

var v1Scheme = func() *runtime.Scheme {
	s, err := NewScheme()
	if err != nil {
		panic(err)
	}
	return s
}()

// items returns a typed list's items as v1.Objects with type meta set.
func items(list client.ObjectList) ([]v1.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]v1.Object, 0, len(objs))
	for _, o := range objs {
		vo := fromClient(o)
		if vo == nil {
			return nil, fmt.Errorf("list item %T is not an isotope object", o)
		}
		out = append(out, vo)
	}
	return out, nil
}

func sortObjects(objs []v1.Object) {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].GetNamespace() != objs[j].GetNamespace() {
			return objs[i].GetNamespace() < objs[j].GetNamespace()
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, kind, namespace, name string) (v1.Object, error) {
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, err
	}
	ns, err := s.namespace(namespace, v1.DefaultNamespace)
	if err != nil {
		return nil, err
	}
	obj := newClientObject(ki)
	if err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return nil, mapError(err, ki, ns, name, "")
	}
	return fromClient(obj), nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, kind string, opts store.ListOptions) ([]v1.Object, string, error) {
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, "", err
	}
	ns, err := s.namespace(opts.Namespace, "")
	if err != nil {
		return nil, "", err
	}
	list, err := newList(ki)
	if err != nil {
		return nil, "", err
	}
	if err := s.c.List(ctx, list, listOptions(ns, opts)...); err != nil {
		return nil, "", mapError(err, ki, ns, "", "")
	}
	objs, err := items(list)
	if err != nil {
		return nil, "", err
	}
	sortObjects(objs)
	return objs, list.GetResourceVersion(), nil
}

func listOptions(ns string, opts store.ListOptions) []client.ListOption {
	var lo []client.ListOption
	if ns != "" {
		lo = append(lo, client.InNamespace(ns))
	}
	if opts.LabelSelector != nil && !opts.LabelSelector.Empty() {
		lo = append(lo, client.MatchingLabelsSelector{Selector: opts.LabelSelector})
	}
	return lo
}

// prepare defaults and validates obj (the store's own copy). For
// statusOnly, only the status's problems count: the spec is not written.
func prepare(ki v1.KindInfo, obj v1.Object, statusOnly bool) error {
	v1.Default(obj)
	errs := v1.Validate(obj)
	if statusOnly {
		var st field.ErrorList
		for _, e := range errs {
			if strings.HasPrefix(e.Field, "status") {
				st = append(st, e)
			}
		}
		errs = st
	}
	if len(errs) > 0 {
		return store.InvalidError(ki.Kind, obj.GetName(), errs)
	}
	return nil
}

// statusOf returns obj.Status (nil when the kind has none) and whether it
// is the zero value.
func statusOf(obj v1.Object) (reflect.Value, bool) {
	f := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if !f.IsValid() {
		return f, true
	}
	return f, f.IsZero()
}

// Create implements store.Store. As in the embedded store, a status given
// on create (or defaulted) is kept; the apiserver drops it from the
// create itself, so it is written right after through the status
// subresource.
func (s *Store) Create(ctx context.Context, in v1.Object) (v1.Object, error) {
	ki, err := checkKind(in)
	if err != nil {
		return nil, err
	}
	obj := in.DeepCopyObject().(v1.Object)
	ns, err := s.namespace(obj.GetNamespace(), v1.DefaultNamespace)
	if err != nil {
		return nil, err
	}
	obj.SetNamespace(ns)
	obj.SetResourceVersion("")
	obj.SetUID("")
	obj.SetCreationTimestamp(metav1.Time{})
	obj.SetGeneration(0)
	obj.SetManagedFields(nil)
	if err := prepare(ki, obj, false); err != nil {
		return nil, err
	}
	if err := s.checkRoute(ctx, obj); err != nil {
		return nil, err
	}
	var status reflect.Value
	if st, zero := statusOf(obj); ki.HasStatus && !zero {
		status = reflect.New(st.Type()).Elem()
		status.Set(st)
	}
	co := toClient(obj)
	err = s.c.Create(ctx, co)
	if err != nil && s.opts.CreateNamespaces && isNamespaceNotFound(err, ns) {
		if err = s.createNamespace(ctx, ns); err == nil {
			co.SetResourceVersion("")
			err = s.c.Create(ctx, co)
		}
	}
	if err != nil {
		return nil, mapError(err, ki, ns, obj.GetName(), "")
	}
	obj = fromClient(co)
	if status.IsValid() {
		if obj, err = s.writeCreatedStatus(ctx, ki, obj, status); err != nil {
			return nil, err
		}
	}
	v1.SetTypeMeta(obj)
	return obj, nil
}

// writeCreatedStatus writes status onto a just-created object. If another
// writer got there first (its status is no longer empty), that status
// stands.
func (s *Store) writeCreatedStatus(ctx context.Context, ki v1.KindInfo, obj v1.Object, status reflect.Value) (v1.Object, error) {
	for range 5 {
		st, zero := statusOf(obj)
		if !zero {
			return obj, nil
		}
		st.Set(status)
		err := s.c.Status().Update(ctx, obj)
		if err == nil {
			return obj, nil
		}
		if !apierrors.IsConflict(err) {
			return nil, fmt.Errorf("%s %q created in namespace %q, but writing its status failed: %w",
				ki.Kind, obj.GetName(), obj.GetNamespace(), mapError(err, ki, obj.GetNamespace(), obj.GetName(), ""))
		}
		fresh := ki.New()
		if err := s.c.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
			return nil, mapError(err, ki, obj.GetNamespace(), obj.GetName(), "")
		}
		obj = fresh
	}
	return obj, nil
}

func isNamespaceNotFound(err error, ns string) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || !apierrors.IsNotFound(err) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Kind == "namespaces" && d.Name == ns
}

func (s *Store) createNamespace(ctx context.Context, ns string) error {
	err := s.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, in v1.Object) (v1.Object, error) {
	return s.update(ctx, in, false)
}

// UpdateStatus implements store.Store. Kinds without a status answer
// ReasonMethodNotAllowed, as in the embedded store.
func (s *Store) UpdateStatus(ctx context.Context, in v1.Object) (v1.Object, error) {
	return s.update(ctx, in, true)
}

// maxUnconditionalTries bounds the read-modify-write loop of an update
// without a resourceVersion under contention.
const maxUnconditionalTries = 20

func (s *Store) update(ctx context.Context, in v1.Object, status bool) (v1.Object, error) {
	ki, err := checkKind(in)
	if err != nil {
		return nil, err
	}
	if status && !ki.HasStatus {
		return nil, store.Errorf(store.ReasonMethodNotAllowed, "%s has no status", ki.Kind)
	}
	obj := in.DeepCopyObject().(v1.Object)
	ns, err := s.namespace(obj.GetNamespace(), v1.DefaultNamespace)
	if err != nil {
		return nil, err
	}
	obj.SetNamespace(ns)
	if !status && ki.HasStatus {
		// The apiserver keeps the stored status on update; clear the
		// caller's so that validation does not judge what is not written.
		st, _ := statusOf(obj)
		st.Set(reflect.Zero(st.Type()))
	}
	if err := prepare(ki, obj, status); err != nil {
		return nil, err
	}
	if !status {
		if err := s.checkRoute(ctx, obj); err != nil {
			return nil, err
		}
	}
	if ki.Core {
		return s.updateCore(ctx, ki, obj)
	}
	write := func(o v1.Object) error {
		if status {
			return s.c.Status().Update(ctx, o)
		}
		return s.c.Update(ctx, o)
	}
	given := obj.GetResourceVersion()
	if given != "" {
		if err := write(obj); err != nil {
			return nil, mapError(err, ki, ns, obj.GetName(), given)
		}
		v1.SetTypeMeta(obj)
		return obj, nil
	}
	// Unconditional: custom resources require a resourceVersion, so use
	// the current one and retry if another write slips in between.
	for range maxUnconditionalTries {
		cur := ki.New()
		if err := s.c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
			return nil, mapError(err, ki, ns, obj.GetName(), "")
		}
		try := obj.DeepCopyObject().(v1.Object)
		try.SetResourceVersion(cur.GetResourceVersion())
		err := write(try)
		if err == nil {
			v1.SetTypeMeta(try)
			return try, nil
		}
		if !apierrors.IsConflict(err) {
			return nil, mapError(err, ki, ns, obj.GetName(), "")
		}
	}
	return nil, store.Errorf(store.ReasonConflict, "operation cannot be fulfilled on %s %q in namespace %q: it kept changing under %d unconditional update attempts",
		ki.Kind, obj.GetName(), ns, maxUnconditionalTries)
}

// checkRoute refuses an HTTPTrigger that would answer the same requests
// as another one (v1.RouteConflict) in the namespaces this store sees.
// The kube-apiserver has no such check, so two writers racing each other
// (or kubectl, which bypasses this store) can still store a pair; the
// router then serves one of them, as before.
func (s *Store) checkRoute(ctx context.Context, obj v1.Object) error {
	tr, ok := obj.(*v1.HTTPTrigger)
	if !ok {
		return nil
	}
	others, _, err := store.ListAs[*v1.HTTPTrigger](ctx, s, store.ListOptions{})
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Namespace == tr.Namespace && o.Name == tr.Name {
			continue
		}
		if what := v1.RouteConflict(&tr.Spec, &o.Spec); what != "" {
			return store.RouteTaken(tr, o, what)
		}
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) error {
	ki, err := kindInfo(kind)
	if err != nil {
		return err
	}
	ns, err := s.namespace(namespace, v1.DefaultNamespace)
	if err != nil {
		return err
	}
	obj := newClientObject(ki)
	obj.SetNamespace(ns)
	obj.SetName(name)
	var opts []client.DeleteOption
	if resourceVersion != "" {
		rv := resourceVersion
		opts = append(opts, client.Preconditions{ResourceVersion: &rv})
	}
	if err := s.c.Delete(ctx, obj, opts...); err != nil {
		return mapError(err, ki, ns, name, resourceVersion)
	}
	return nil
}

// updateCore updates a Secret or ConfigMap: obj's data, type and
// metadata over the stored object, keeping what v1 does not model
// (keepUnmodelled). With a resourceVersion the write is conditional on
// it; without, it is retried on conflict like the other kinds.
func (s *Store) updateCore(ctx context.Context, ki v1.KindInfo, obj v1.Object) (v1.Object, error) {
	ns, name, given := obj.GetNamespace(), obj.GetName(), obj.GetResourceVersion()
	for range maxUnconditionalTries {
		cur := newClientObject(ki)
		if err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cur); err != nil {
			return nil, mapError(err, ki, ns, name, "")
		}
		next := toClient(obj)
		keepUnmodelled(next, cur)
		if given == "" {
			next.SetResourceVersion(cur.GetResourceVersion())
		}
		err := s.c.Update(ctx, next)
		if err == nil {
			return fromClient(next), nil
		}
		if given != "" || !apierrors.IsConflict(err) {
			return nil, mapError(err, ki, ns, name, given)
		}
	}
	return nil, store.Errorf(store.ReasonConflict, "operation cannot be fulfilled on %s %q in namespace %q: it kept changing under %d unconditional update attempts",
		ki.Kind, name, ns, maxUnconditionalTries)
}
