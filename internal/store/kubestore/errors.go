package kubestore

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func validateNamespace(ns string) []string { return validation.IsDNS1123Label(ns) }

// mapError turns an apiserver error about object ns/name of kind ki into
// a *store.Error with the embedded store's reasons and messages. given is
// the resourceVersion the request carried, named in Conflict messages.
// Errors that are not API statuses (transport, context) pass through.
func mapError(err error, ki v1.KindInfo, ns, name, given string) error {
	var as apierrors.APIStatus
	if !errors.As(err, &as) {
		return err
	}
	st := as.Status()
	details := st.Details
	if details == nil {
		details = &metav1.StatusDetails{}
	}
	where := fmt.Sprintf("%s %q in namespace %q", ki.Kind, name, ns)
	switch {
	case name == "" && ns == "":
		where = ki.Plural + " in all namespaces" // a list or watch
	case name == "":
		where = fmt.Sprintf("%s in namespace %q", ki.Plural, ns)
	}
	switch {
	case apierrors.IsNotFound(err):
		switch {
		case details.Kind == "namespaces":
			return store.Errorf(store.ReasonNotFound, "%s: namespace %q not found", where, details.Name)
		case details.Name == "":
			// No object named: the path itself is unknown, so the CRD
			// is not installed.
			return store.Errorf(store.ReasonInternal, "the kube-apiserver does not serve %s/%s: are the CRDs in deploy/crds installed? (%s)", v1.APIVersion, ki.Plural, st.Message)
		}
		return store.Errorf(store.ReasonNotFound, "%s %q not found in namespace %q", ki.Kind, name, ns)
	case apierrors.IsAlreadyExists(err):
		return store.Errorf(store.ReasonAlreadyExists, "%s %q already exists in namespace %q", ki.Kind, name, ns)
	case apierrors.IsConflict(err):
		return store.Errorf(store.ReasonConflict,
			"operation cannot be fulfilled on %s: the object has been modified (resourceVersion %s given); read the latest version and try again",
			where, given)
	case apierrors.IsInvalid(err):
		e := &store.Error{Reason: store.ReasonInvalid}
		var parts []string
		for _, c := range details.Causes {
			e.Causes = append(e.Causes, store.Cause{Field: c.Field, Message: c.Message})
			parts = append(parts, c.Field+": "+c.Message)
		}
		if len(parts) == 0 {
			parts = append(parts, st.Message)
		}
		e.Message = fmt.Sprintf("%s %q is invalid: %s", ki.Kind, name, strings.Join(parts, ", "))
		return e
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		return store.Errorf(store.ReasonExpired, "%s: list again and watch from the list's resourceVersion (%s)", st.Message, ki.Plural)
	case apierrors.IsUnauthorized(err):
		return store.Errorf(store.ReasonUnauthorized, "kube-apiserver: %s", st.Message)
	case apierrors.IsBadRequest(err):
		return store.Errorf(store.ReasonBadRequest, "%s", st.Message)
	case apierrors.IsMethodNotSupported(err):
		return store.Errorf(store.ReasonMethodNotAllowed, "%s", st.Message)
	case apierrors.IsRequestEntityTooLargeError(err):
		return store.Errorf(store.ReasonTooLarge, "%s: %s", where, st.Message)
	case apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err):
		return store.Errorf(store.ReasonUnavailable, "kube-apiserver: %s", st.Message)
	}
	// Forbidden and the rest keep the apiserver's words.
	return fmt.Errorf("%s: %w", where, err)
}
