package apiserver

import (
	"context"
	"errors"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"isotope.dev/isotope/internal/store"
)

// codes maps store reasons to HTTP status codes. Invalid is 400 (the
// kube-apiserver uses 422) so that every refused input is a 400.
var codes = map[store.Reason]int{
	store.ReasonNotFound:         http.StatusNotFound,
	store.ReasonAlreadyExists:    http.StatusConflict,
	store.ReasonConflict:         http.StatusConflict,
	store.ReasonInvalid:          http.StatusBadRequest,
	store.ReasonBadRequest:       http.StatusBadRequest,
	store.ReasonExpired:          http.StatusGone,
	store.ReasonUnauthorized:     http.StatusUnauthorized,
	store.ReasonMethodNotAllowed: http.StatusMethodNotAllowed,
	store.ReasonTooLarge:         http.StatusRequestEntityTooLarge,
	store.ReasonForbidden:        http.StatusForbidden,
	store.ReasonUnsupportedMedia: http.StatusUnsupportedMediaType,
	store.ReasonInternal:         http.StatusInternalServerError,
	store.ReasonUnavailable:      http.StatusServiceUnavailable,
}

// StatusOf converts an error to the Kubernetes Status answered for it:
// a *store.Error keeps its reason, message and causes; anything else is
// a 500 InternalError (or 504 Timeout when the request's context ended).
func StatusOf(err error, kind, name string) *metav1.Status {
	st := &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  err.Error(),
	}
	var se *store.Error
	switch {
	case errors.As(err, &se):
		st.Reason = metav1.StatusReason(se.Reason)
		st.Code = int32(http.StatusInternalServerError)
		if c, ok := codes[se.Reason]; ok {
			st.Code = int32(c)
		}
		if kind != "" || name != "" || len(se.Causes) > 0 {
			st.Details = &metav1.StatusDetails{Kind: kind, Name: name}
			for _, c := range se.Causes {
				st.Details.Causes = append(st.Details.Causes, metav1.StatusCause{Field: c.Field, Message: c.Message})
			}
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		st.Reason, st.Code = metav1.StatusReasonTimeout, http.StatusGatewayTimeout
	default:
		st.Reason, st.Code = metav1.StatusReasonInternalError, http.StatusInternalServerError
	}
	return st
}

func writeError(w http.ResponseWriter, err error, rt route) {
	kind := ""
	if rt.known {
		kind = rt.ki.Kind
	}
	st := StatusOf(err, kind, rt.name)
	writeJSON(w, int(st.Code), st)
}
