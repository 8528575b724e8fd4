// Package store defines Isotope's resource store: the one seam between
// the controllers and where resources live. Implementations: bbolt
// (embedded mode, package boltstore), the API server's HTTP client
// (package client) and, in Kubernetes mode, the kube-apiserver.
//
// The contract follows the Kubernetes API: every write bumps a
// store-wide, monotonically increasing resourceVersion; an update whose
// resourceVersion is stale fails with a Conflict; a watch opened from a
// resourceVersion replays every change after it, in order.
package store

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	v1 "isotope.dev/isotope/api/v1"
)

// Reason classifies a store error; the API server maps it to an HTTP code.
type Reason string

const (
	ReasonNotFound      Reason = "NotFound"      // 404
	ReasonAlreadyExists Reason = "AlreadyExists" // 409
	ReasonConflict      Reason = "Conflict"      // 409
	ReasonInvalid       Reason = "Invalid"       // 400
	ReasonExpired       Reason = "Expired"       // 410: watch resourceVersion too old
	ReasonUnauthorized  Reason = "Unauthorized"  // 401
)

// Error is a store error with a reason and a message naming the object.
type Error struct {
	Reason  Reason
	Message string
	// Causes lists, for Invalid, each offending field path and why.
	Causes []Cause
}

// Cause is one invalid field.
type Cause struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given reason.
func Errorf(reason Reason, format string, args ...any) error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of err, or "" when err is not a store error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// IsNotFound, IsConflict, IsAlreadyExists and IsInvalid test an error's reason.
func IsNotFound(err error) bool      { return ReasonOf(err) == ReasonNotFound }
func IsConflict(err error) bool      { return ReasonOf(err) == ReasonConflict }
func IsAlreadyExists(err error) bool { return ReasonOf(err) == ReasonAlreadyExists }
func IsInvalid(err error) bool       { return ReasonOf(err) == ReasonInvalid }
func IsExpired(err error) bool       { return ReasonOf(err) == ReasonExpired }

// ListOptions narrows a List or a Watch.
type ListOptions struct {
	// Namespace limits results to one namespace; "" means all.
	Namespace string
	// LabelSelector limits results to matching objects; nil means all.
	LabelSelector labels.Selector
}

// WatchOptions says what a watch sees.
type WatchOptions struct {
	ListOptions
	// ResourceVersion: "" starts with the current state (an ADDED event
	// per existing object, then changes); a version replays every change
	// after it, or fails with ReasonExpired when it is too old.
	ResourceVersion string
}

// EventType is the type of a watch event.
type EventType string

const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	// Bookmark carries only a resourceVersion: everything up to it has
	// been sent. Sent after the initial ADDED events of a watch.
	Bookmark EventType = "BOOKMARK"
)

// Event is one change seen by a watch. For Deleted, Object is the last
// state with the deletion's resourceVersion.
type Event struct {
	Type   EventType
	Object v1.Object
}

// Watcher delivers events until Stop is called, its context ends or the
// store closes; then the channel is closed.
type Watcher interface {
	ResultChan() <-chan Event
	Stop()
}

// Store keeps resources. Kinds are v1 Kind names ("Function"). Objects
// passed in are not modified; returned objects are the caller's to keep.
type Store interface {
	// Get returns one object.
	Get(ctx context.Context, kind, namespace, name string) (v1.Object, error)
	// List returns matching objects, sorted by namespace then name, and
	// the store's resourceVersion at the time of the list.
	List(ctx context.Context, kind string, opts ListOptions) ([]v1.Object, string, error)
	// Create stores a new object. Defaults are applied and the object is
	// validated; it gets a uid, creationTimestamp, generation 1 and a
	// resourceVersion. A name taken in its namespace is AlreadyExists.
	Create(ctx context.Context, obj v1.Object) (v1.Object, error)
	// Update replaces an object's metadata (labels, annotations) and
	// spec. A non-empty resourceVersion must match the stored one, or the
	// update is a Conflict; an empty one updates unconditionally. For
	// kinds with a status, the stored status is kept. Generation is bumped
	// when the spec changes. An update that changes nothing returns the
	// stored object and writes nothing.
	Update(ctx context.Context, obj v1.Object) (v1.Object, error)
	// UpdateStatus replaces only the status, with the same concurrency
	// rule as Update.
	UpdateStatus(ctx context.Context, obj v1.Object) (v1.Object, error)
	// Delete removes an object. A non-empty resourceVersion is a
	// precondition, as for Update.
	Delete(ctx context.Context, kind, namespace, name, resourceVersion string) error
	// Watch streams changes of one kind.
	Watch(ctx context.Context, kind string, opts WatchOptions) (Watcher, error)
}
