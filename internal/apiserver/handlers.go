package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/archive"
	"isotope.dev/isotope/internal/store"
)

// serve runs one parsed API request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route) {
	if rt.fissionOnly != nil {
		serveFissionOnly(w, rt)
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	switch rt.verb {
	case "list", "watch":
		sel, err := store.ParseSelector(q.Get("labelSelector"))
		if err != nil {
			writeError(w, err, rt)
			return
		}
		lo := store.ListOptions{Namespace: rt.namespace, LabelSelector: sel}
		if rt.verb == "watch" {
			s.watch(w, r, rt, store.WatchOptions{ListOptions: lo, ResourceVersion: q.Get("resourceVersion")})
			return
		}
		objs, rv, err := s.st.List(ctx, rt.ki.Kind, lo)
		if err != nil {
			writeError(w, err, rt)
			return
		}
		writeJSON(w, http.StatusOK, newList(rt, rv, objs))
	case "get":
		obj, err := s.st.Get(ctx, rt.ki.Kind, rt.namespace, rt.name)
		respond(w, http.StatusOK, obj, err, rt)
	case "create":
		obj, err := s.decodeBody(w, r, rt)
		if err != nil {
			writeError(w, err, rt)
			return
		}
		rt.name = obj.GetName()
		out, err := s.st.Create(ctx, obj)
		respond(w, http.StatusCreated, out, err, rt)
	case "update", "updatestatus":
		obj, err := s.decodeBody(w, r, rt)
		if err != nil {
			writeError(w, err, rt)
			return
		}
		var out v1.Object
		if rt.verb == "update" {
			out, err = s.st.Update(ctx, obj)
		} else {
			out, err = s.st.UpdateStatus(ctx, obj)
		}
		respond(w, http.StatusOK, out, err, rt)
	case "delete":
		rv, err := s.deletePrecondition(w, r, rt)
		if err != nil {
			writeError(w, err, rt)
			return
		}
		if err := s.st.Delete(ctx, rt.ki.Kind, rt.namespace, rt.name, rv); err != nil {
			writeError(w, err, rt)
			return
		}
		writeJSON(w, http.StatusOK, &metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusSuccess, Code: http.StatusOK,
			Details: &metav1.StatusDetails{Kind: rt.ki.Kind, Name: rt.name},
		})
	}
}

func respond(w http.ResponseWriter, code int, obj v1.Object, err error, rt route) {
	if err != nil {
		writeError(w, err, rt)
		return
	}
	writeJSON(w, code, rt.out(obj))
}

// out is obj as the route's group shows it: objects are stored as
// isotope.dev/v1 and answered on /apis/fission.io/v1 with Fission's
// apiVersion, on a copy (the store may share obj with other readers).
func (rt route) out(obj v1.Object) v1.Object {
	if obj == nil || rt.apiVersion == "" || obj.GetObjectKind().GroupVersionKind().GroupVersion().String() == rt.apiVersion {
		return obj
	}
	c := obj.DeepCopyObject().(v1.Object)
	gv, _ := schema.ParseGroupVersion(rt.apiVersion)
	c.GetObjectKind().SetGroupVersionKind(gv.WithKind(v1.KindOf(c)))
	return c
}

// deletePrecondition is the resourceVersion a delete must match: the
// ?resourceVersion= query, or the preconditions of a DeleteOptions body
// as client-go sends them (a uid precondition is checked against the
// stored object and pins its resourceVersion).
func (s *Server) deletePrecondition(w http.ResponseWriter, r *http.Request, rt route) (string, error) {
	rv := r.URL.Query().Get("resourceVersion")
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		return "", store.Errorf(store.ReasonBadRequest, "reading the DeleteOptions body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return rv, nil
	}
	var opts metav1.DeleteOptions
	if err := json.Unmarshal(data, &opts); err != nil {
		return "", jsonError(data, err)
	}
	if opts.Preconditions == nil {
		return rv, nil
	}
	if p := opts.Preconditions.ResourceVersion; p != nil && *p != "" {
		if rv != "" && rv != *p {
			return "", badField("preconditions.resourceVersion", fmt.Sprintf("%q disagrees with ?resourceVersion=%s", *p, rv))
		}
		rv = *p
	}
	if p := opts.Preconditions.UID; p != nil && *p != "" {
		obj, err := s.st.Get(r.Context(), rt.ki.Kind, rt.namespace, rt.name)
		if err != nil {
			return "", err
		}
		if obj.GetUID() != *p {
			return "", store.Errorf(store.ReasonConflict, "precondition failed: uid in precondition %s, uid of %s %s/%s is %s", *p, rt.ki.Kind, rt.namespace, rt.name, obj.GetUID())
		}
		if rv == "" {
			rv = obj.GetResourceVersion()
		}
	}
	return rv, nil
}

// ListMeta carries the store's resourceVersion at the time of a list.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion"`
}

// listOut is a list answer: {"apiVersion", "kind": "<Kind>List",
// "metadata": {"resourceVersion"}, "items": [...]}.
type listOut struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ListMeta    `json:"metadata"`
	Items      []v1.Object `json:"items"`
}

func newList(rt route, rv string, objs []v1.Object) listOut {
	items := make([]v1.Object, len(objs))
	for i, o := range objs {
		items[i] = rt.out(o)
	}
	return listOut{APIVersion: rt.apiVersion, Kind: rt.ki.Kind + "List", Metadata: ListMeta{ResourceVersion: rv}, Items: items}
}

// watchEventOut is one line of a watch stream.
type watchEventOut struct {
	Type   store.EventType `json:"type"`
	Object v1.Object       `json:"object"`
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, rt route, opts store.WatchOptions) {
	ctx := r.Context()
	select {
	case <-s.stopping:
		writeError(w, store.Errorf(store.ReasonUnavailable, "the API server is shutting down"), rt)
		return
	default:
	}
	if ts := r.URL.Query().Get("timeoutSeconds"); ts != "" {
		n, err := strconv.Atoi(ts)
		if err != nil || n <= 0 {
			writeError(w, store.Errorf(store.ReasonBadRequest, "timeoutSeconds %q: must be a positive integer", ts), rt)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(n)*time.Second)
		defer cancel()
	}
	wt, err := s.st.Watch(ctx, rt.ki.Kind, opts)
	if err != nil {
		writeError(w, err, rt)
		return
	}
	defer wt.Stop()
	s.metrics.watches.Inc()
	defer s.metrics.watches.Dec()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a watch outlives the listener's write timeout
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	enc := json.NewEncoder(w) // one event per line
	heartbeat := time.NewTicker(s.opts.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case ev, ok := <-wt.ResultChan():
			if !ok {
				return
			}
			if enc.Encode(watchEventOut{Type: ev.Type, Object: rt.out(ev.Object)}) != nil || rc.Flush() != nil {
				return
			}
			heartbeat.Reset(s.opts.HeartbeatInterval)
		case <-heartbeat.C:
			if _, err := w.Write([]byte("\n")); err != nil || rc.Flush() != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		}
	}
}

// decodeBody reads the request's object: JSON of the route's kind, with
// apiVersion isotope.dev/v1 or fission.io/v1 (normalised to the former),
// and a namespace and name that agree with the URL (filled from it when
// empty).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, rt route) (v1.Object, error) {
	isYAML, err := bodyFormat(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, store.Errorf(store.ReasonTooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return nil, store.Errorf(store.ReasonBadRequest, "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, store.Errorf(store.ReasonBadRequest, "request body is empty: expected a JSON %s", rt.ki.Kind)
	}
	if isYAML {
		if data, err = yaml.YAMLToJSONStrict(data); err != nil {
			return nil, store.Errorf(store.ReasonBadRequest, "invalid YAML body: %v", err)
		}
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, jsonError(data, err)
	}
	switch tm.APIVersion {
	case "", v1.APIVersion, v1.FissionAPIVersion:
	default:
		return nil, badField("apiVersion", fmt.Sprintf("apiVersion %q is not served here: use %s (or %s)", tm.APIVersion, v1.APIVersion, v1.FissionAPIVersion))
	}
	if tm.Kind != "" && tm.Kind != rt.ki.Kind {
		return nil, badField("kind", fmt.Sprintf("body kind %q does not match the path's kind %q", tm.Kind, rt.ki.Kind))
	}
	obj := rt.ki.New()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, jsonError(data, err)
	}
	v1.SetTypeMeta(obj)
	switch ns := obj.GetNamespace(); {
	case ns == "":
		obj.SetNamespace(rt.namespace)
	case ns != rt.namespace:
		return nil, badField("metadata.namespace", fmt.Sprintf("the body's namespace %q does not match the URL's %q", ns, rt.namespace))
	}
	if rt.verb != "updatestatus" { // a status write keeps the stored spec
		if err := checkLiteralArchives(obj); err != nil {
			return nil, err
		}
	}
	if rt.name != "" {
		switch n := obj.GetName(); {
		case n == "":
			obj.SetName(rt.name)
		case n != rt.name:
			return nil, badField("metadata.name", fmt.Sprintf("the body's name %q does not match the URL's %q", n, rt.name))
		}
	}
	return obj, nil
}

// bodyFormat reads a write's Content-Type: JSON or YAML, nothing else.
// Refusing the content types a web page may send without a CORS
// preflight (text/plain, multipart/form-data, form encoding) keeps even
// a same-site page that slipped past package webguard from writing.
func bodyFormat(r *http.Request) (isYAML bool, err error) {
	ct := r.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	switch {
	case perr != nil && ct != "":
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return false, nil
	case mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml" || mt == "text/x-yaml":
		return true, nil
	}
	if ct == "" {
		ct = "none"
	} else {
		ct = strconv.Quote(ct)
	}
	msg := fmt.Sprintf("Content-Type %s is not accepted: send the object as application/json (or application/yaml)", ct)
	return false, &store.Error{Reason: store.ReasonUnsupportedMedia, Message: msg, Causes: []store.Cause{{Field: "Content-Type", Message: msg}}}
}

// checkLiteralArchives refuses a Package whose inline source or deploy
// archive is a zip the fetcher would refuse to extract, naming the field
// and the entry, so that it is refused now rather than at the first
// request (the CLI inlines archives of up to 256 KiB).
func checkLiteralArchives(obj v1.Object) error {
	pkg, ok := obj.(*v1.Package)
	if !ok {
		return nil
	}
	for _, a := range []struct {
		field string
		data  []byte
	}{{"spec.source.literal", pkg.Spec.Source.Literal}, {"spec.deployment.literal", pkg.Spec.Deployment.Literal}} {
		if !archive.HasZipMagic(a.data) {
			continue
		}
		if err := archive.CheckReader(bytes.NewReader(a.data), int64(len(a.data)), a.field, archive.Limits{}); err != nil {
			var ee *archive.EntryError
			if !errors.As(err, &ee) {
				return err
			}
			return badField(a.field, err.Error())
		}
	}
	return nil
}

func badField(field, msg string) error {
	return &store.Error{Reason: store.ReasonBadRequest, Message: msg, Causes: []store.Cause{{Field: field, Message: msg}}}
}

// jsonError describes a JSON decoding error with its position.
func jsonError(data []byte, err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, the offending one included.
		return store.Errorf(store.ReasonBadRequest, "invalid JSON body at %s: %v", position(data, max(syn.Offset-1, 0)), err)
	case errors.As(err, &typ):
		msg := fmt.Sprintf("invalid JSON body at %s: field %s: cannot use %s as %s", position(data, typ.Offset), typ.Field, typ.Value, typ.Type)
		return &store.Error{Reason: store.ReasonBadRequest, Message: msg, Causes: []store.Cause{{Field: typ.Field, Message: msg}}}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return store.Errorf(store.ReasonBadRequest, "invalid JSON body: unexpected end of input at %s", position(data, int64(len(data))))
	}
	// Unknown fields and the like carry no offset.
	return store.Errorf(store.ReasonBadRequest, "invalid JSON body: %v", err)
}

// position renders a 0-based byte offset as "line L, column C (byte N)",
// lines and columns counted from 1.
func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, off)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	writeJSONType(w, code, "application/json", v)
}

func writeJSONType(w http.ResponseWriter, code int, contentType string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, fmt.Errorf("encoding response: %w", err), route{})
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(code)
	_, _ = w.Write(append(data, '\n'))
}
