package store

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "isotope.dev/isotope/api/v1"
)

// More reasons, used by the API server for requests that never reach a
// store and by the client to report them.
const (
	ReasonBadRequest       Reason = "BadRequest"            // 400: malformed body or parameters
	ReasonMethodNotAllowed Reason = "MethodNotAllowed"      // 405
	ReasonForbidden        Reason = "Forbidden"             // 403: refused whoever asks (webguard)
	ReasonTooLarge         Reason = "RequestEntityTooLarge" // 413
	ReasonUnsupportedMedia Reason = "UnsupportedMediaType"  // 415
	ReasonInternal         Reason = "InternalError"         // 500
	ReasonUnavailable      Reason = "ServiceUnavailable"    // 503: shutting down
)

// IsUnauthorized tests an error's reason.
func IsUnauthorized(err error) bool { return ReasonOf(err) == ReasonUnauthorized }

// InvalidError turns validation errors into an Invalid *Error with one
// Cause per field error and the message
// `<Kind> "<name>" is invalid: <causes>`.
func InvalidError(kind, name string, errs field.ErrorList) *Error {
	e := &Error{Reason: ReasonInvalid}
	for _, fe := range errs {
		e.Causes = append(e.Causes, Cause{Field: fe.Field, Message: fe.ErrorBody()})
	}
	e.Message = fmt.Sprintf("%s %q is invalid: %v", kind, name, errs.ToAggregate())
	return e
}

// ParseSelector parses a Kubernetes label selector ("app=x,tier!=db");
// "" selects everything (nil). A malformed selector is an Invalid error
// naming the labelSelector parameter.
func ParseSelector(s string) (labels.Selector, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, &Error{
			Reason:  ReasonInvalid,
			Message: fmt.Sprintf("invalid label selector %q: %v", s, err),
			Causes:  []Cause{{Field: "labelSelector", Message: err.Error()}},
		}
	}
	return sel, nil
}

// Matches reports whether obj passes the namespace and label filters of
// opts.
func (o ListOptions) Matches(obj v1.Object) bool {
	if o.Namespace != "" && obj.GetNamespace() != o.Namespace {
		return false
	}
	if o.LabelSelector != nil && !o.LabelSelector.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	return true
}

// kindOfType returns the Kind name of the object type T.
func kindOfType[T v1.Object]() string {
	var zero T
	return v1.KindOf(zero)
}

// GetAs is Get with a typed result: store.GetAs[*v1.Function](ctx, s, ns, name).
func GetAs[T v1.Object](ctx context.Context, s Store, namespace, name string) (T, error) {
	var zero T
	obj, err := s.Get(ctx, kindOfType[T](), namespace, name)
	if err != nil {
		return zero, err
	}
	t, ok := obj.(T)
	if !ok {
		return zero, fmt.Errorf("store returned %T, want %T", obj, zero)
	}
	return t, nil
}

// ListAs is List with typed results.
func ListAs[T v1.Object](ctx context.Context, s Store, opts ListOptions) ([]T, string, error) {
	objs, rv, err := s.List(ctx, kindOfType[T](), opts)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		t, ok := o.(T)
		if !ok {
			var zero T
			return nil, "", fmt.Errorf("store returned %T, want %T", o, zero)
		}
		out = append(out, t)
	}
	return out, rv, nil
}

// RouteTaken is the AlreadyExists error (409) for an HTTPTrigger whose
// route another trigger already serves; what is v1.RouteConflict's
// description of the shared route.
func RouteTaken(tr, other *v1.HTTPTrigger, what string) *Error {
	msg := fmt.Sprintf("HTTPTrigger %s/%s: %s is already routed by HTTPTrigger %s/%s; "+
		"change or delete that trigger first, or choose another URL, method or host",
		tr.Namespace, tr.Name, what, other.Namespace, other.Name)
	field := "spec.relativeurl"
	if tr.Spec.Prefix != nil && *tr.Spec.Prefix != "" {
		field = "spec.prefix"
	}
	return &Error{Reason: ReasonAlreadyExists, Message: msg, Causes: []Cause{{Field: field, Message: msg}}}
}
