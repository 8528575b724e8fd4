// Package client is a store.Store over the API server's HTTP API
// (package apiserver): what the CLI and the roles that run apart from the
// store use. Errors come back as *store.Error with the server's reason,
// message and causes, so store.IsConflict, store.IsNotFound and friends
// work remotely exactly as they do on the embedded store.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

const apiPrefix = "/apis/" + v1.APIVersion

// Client talks to an Isotope API server. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client

	// WatchIdleTimeout closes a watch stream that has delivered nothing,
	// not even the server's heartbeat newline, for this long (default
	// 45s, several server heartbeats); the watcher's channel then closes
	// and the consumer watches again.
	WatchIdleTimeout time.Duration
}

var _ store.Store = (*Client)(nil)

// New returns a client for the API server at baseURL (for example
// "http://127.0.0.1:8889"). token, if non-empty, is sent as a bearer
// token. hc nil means a client without an overall timeout (watches are
// long-lived); per-call deadlines come from the contexts passed in.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, hc: hc, WatchIdleTimeout: 45 * time.Second}
}

func kindInfo(kind string) (v1.KindInfo, error) {
	ki, err := v1.LookupKind(kind)
	if err != nil {
		return ki, &store.Error{Reason: store.ReasonBadRequest, Message: err.Error()}
	}
	return ki, nil
}

func orDefault(ns string) string {
	if ns == "" {
		return v1.DefaultNamespace
	}
	return ns
}

// collectionPath is the path of a kind in a namespace, or in all
// namespaces when ns is "".
func collectionPath(ki v1.KindInfo, ns string) string {
	if ns == "" {
		return apiPrefix + "/" + ki.Plural
	}
	return apiPrefix + "/namespaces/" + url.PathEscape(ns) + "/" + ki.Plural
}

func itemPath(ki v1.KindInfo, ns, name string) (string, error) {
	if name == "" {
		return "", &store.Error{Reason: store.ReasonBadRequest, Message: ki.Kind + ": a name is required",
			Causes: []store.Cause{{Field: "metadata.name", Message: "Required value"}}}
	}
	return collectionPath(ki, orDefault(ns)) + "/" + url.PathEscape(name), nil
}

// request builds an API request.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do runs a request and decodes a 2xx JSON answer into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	req, err := c.request(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &netError{base: c.base, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(req, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("isotope API %s %s: decoding answer: %w", method, req.URL.Path, err)
	}
	return nil
}

// reasonsByCode guesses a reason for answers that carry no Status.
var reasonsByCode = map[int]store.Reason{
	http.StatusBadRequest:            store.ReasonBadRequest,
	http.StatusUnauthorized:          store.ReasonUnauthorized,
	http.StatusForbidden:             store.ReasonForbidden,
	http.StatusNotFound:              store.ReasonNotFound,
	http.StatusMethodNotAllowed:      store.ReasonMethodNotAllowed,
	http.StatusConflict:              store.ReasonConflict,
	http.StatusGone:                  store.ReasonExpired,
	http.StatusRequestEntityTooLarge: store.ReasonTooLarge,
	http.StatusUnsupportedMediaType:  store.ReasonUnsupportedMedia,
	http.StatusInternalServerError:   store.ReasonInternal,
	http.StatusServiceUnavailable:    store.ReasonUnavailable,
}

// decodeError turns a non-2xx answer into a *store.Error: from its
// Kubernetes Status when it has one, else from the code and body.
func decodeError(req *http.Request, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st metav1.Status
	if json.Unmarshal(data, &st) == nil && st.Kind == "Status" && st.Message != "" {
		e := &store.Error{Reason: store.Reason(st.Reason), Message: st.Message}
		if e.Reason == "" {
			e.Reason = reasonsByCode[resp.StatusCode]
		}
		if st.Details != nil {
			for _, c := range st.Details.Causes {
				e.Causes = append(e.Causes, store.Cause{Field: c.Field, Message: c.Message})
			}
		}
		return e
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return &store.Error{
		Reason:  reasonsByCode[resp.StatusCode],
		Message: fmt.Sprintf("isotope API %s %s: %s: %s", req.Method, req.URL.Path, resp.Status, msg),
	}
}

// decodeObject reads one object of kind ki.
func decodeObject(ki v1.KindInfo, data []byte) (v1.Object, error) {
	obj := ki.New()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", ki.Kind, err)
	}
	v1.SetTypeMeta(obj)
	return obj, nil
}

// outgoing returns a copy of obj with its type meta set, for a request body.
func outgoing(obj v1.Object) (v1.KindInfo, v1.Object, error) {
	k := v1.KindOf(obj)
	if k == "" {
		return v1.KindInfo{}, nil, store.Errorf(store.ReasonBadRequest, "unsupported object type %T", obj)
	}
	ki, err := kindInfo(k)
	if err != nil {
		return ki, nil, err
	}
	cp := obj.DeepCopyObject().(v1.Object)
	v1.SetTypeMeta(cp)
	if cp.GetNamespace() == "" {
		cp.SetNamespace(v1.DefaultNamespace)
	}
	return ki, cp, nil
}

// Get implements store.Store.
func (c *Client) Get(ctx context.Context, kind, namespace, name string) (v1.Object, error) {
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, err
	}
	path, err := itemPath(ki, namespace, name)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &raw); err != nil {
		return nil, err
	}
	return decodeObject(ki, raw)
}

// List implements store.Store.
func (c *Client) List(ctx context.Context, kind string, opts store.ListOptions) ([]v1.Object, string, error) {
	ki, err := kindInfo(kind)
	if err != nil {
		return nil, "", err
	}
	q := url.Values{}
	if opts.LabelSelector != nil && !opts.LabelSelector.Empty() {
		q.Set("labelSelector", opts.LabelSelector.String())
	}
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := c.do(ctx, http.MethodGet, collectionPath(ki, opts.Namespace), q, nil, &list); err != nil {
		return nil, "", err
	}
	out := make([]v1.Object, 0, len(list.Items))
	for _, raw := range list.Items {
		obj, err := decodeObject(ki, raw)
		if err != nil {
			return nil, "", err
		}
		out = append(out, obj)
	}
	return out, list.Metadata.ResourceVersion, nil
}

// Create implements store.Store.
func (c *Client) Create(ctx context.Context, obj v1.Object) (v1.Object, error) {
	ki, body, err := outgoing(obj)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, collectionPath(ki, body.GetNamespace()), nil, body, &raw); err != nil {
		return nil, err
	}
	return decodeObject(ki, raw)
}

// Update implements store.Store.
func (c *Client) Update(ctx context.Context, obj v1.Object) (v1.Object, error) {
	return c.put(ctx, obj, "")
}

// UpdateStatus implements store.Store.
func (c *Client) UpdateStatus(ctx context.Context, obj v1.Object) (v1.Object, error) {
	return c.put(ctx, obj, "/status")
}

func (c *Client) put(ctx context.Context, obj v1.Object, sub string) (v1.Object, error) {
	ki, body, err := outgoing(obj)
	if err != nil {
		return nil, err
	}
	path, err := itemPath(ki, body.GetNamespace(), body.GetName())
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPut, path+sub, nil, body, &raw); err != nil {
		return nil, err
	}
	return decodeObject(ki, raw)
}

// Delete implements store.Store.
func (c *Client) Delete(ctx context.Context, kind, namespace, name, resourceVersion string) error {
	ki, err := kindInfo(kind)
	if err != nil {
		return err
	}
	path, err := itemPath(ki, namespace, name)
	if err != nil {
		return err
	}
	q := url.Values{}
	if resourceVersion != "" {
		q.Set("resourceVersion", resourceVersion)
	}
	return c.do(ctx, http.MethodDelete, path, q, nil, nil)
}
