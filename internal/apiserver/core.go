package apiserver

import (
	"net/http"
	"slices"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// The core group (/api/v1) holds only namespaces, read-only. Isotope's
// namespaces are not objects: a namespace exists as soon as a resource
// names it, so every valid namespace name answers GET, and the list
// holds "default" and every namespace that holds a resource. Clients
// that check their namespace before working in it (kubectl, Fission's
// CLI in some commands) pass; pods, services, secrets and config maps
// are 404s, as on a cluster where they are not served.

const coreNamespaces = "/api/v1/namespaces"

func coreResources() []metav1.APIResource {
	return []metav1.APIResource{{Name: "namespaces", SingularName: "namespace", Kind: "Namespace", Verbs: metav1.Verbs{"get", "list"}, ShortNames: []string{"ns"}}}
}

func coreDiscovery() apidiscoveryv2.APIGroupDiscovery {
	return apidiscoveryv2.APIGroupDiscovery{Versions: []apidiscoveryv2.APIVersionDiscovery{{
		Version: "v1", Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
		Resources: []apidiscoveryv2.APIResourceDiscovery{{
			Resource: "namespaces", SingularResource: "namespace", Scope: apidiscoveryv2.ScopeCluster,
			ResponseKind: &metav1.GroupVersionKind{Version: "v1", Kind: "Namespace"},
			Verbs:        metav1.Verbs{"get", "list"}, ShortNames: []string{"ns"},
		}},
	}}}
}

// serveCore answers /api/v1/... other than discovery and reports whether
// the path was under /api/v1/.
func (s *Server) serveCore(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/")
	if !ok {
		return false
	}
	name, isNS := strings.CutPrefix(strings.TrimSuffix(rest, "/"), "namespaces")
	name = strings.TrimPrefix(name, "/")
	if !isNS || strings.Contains(name, "/") {
		writeError(w, store.Errorf(store.ReasonNotFound, "the server could not find the requested resource %s: Isotope serves only namespaces in the core API", r.URL.Path), route{})
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		writeError(w, store.Errorf(store.ReasonMethodNotAllowed, "method %s is not allowed on %s (allowed: GET): namespaces exist as soon as a resource names them", r.Method, r.URL.Path), route{})
		return true
	}
	if q := r.URL.Query().Get("watch"); q == "true" || q == "1" {
		writeError(w, store.Errorf(store.ReasonMethodNotAllowed, "namespaces cannot be watched here"), route{})
		return true
	}
	if name != "" {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			writeError(w, store.Errorf(store.ReasonNotFound, "namespaces %q not found: %s", name, strings.Join(msgs, "; ")), route{})
			return true
		}
		writeJSON(w, http.StatusOK, namespace(name))
		return true
	}
	names := []string{metav1.NamespaceDefault}
	for _, k := range v1.Kinds() {
		objs, _, err := s.st.List(r.Context(), k.Kind, store.ListOptions{})
		if err != nil {
			writeError(w, err, route{})
			return true
		}
		for _, o := range objs {
			if !slices.Contains(names, o.GetNamespace()) {
				names = append(names, o.GetNamespace())
			}
		}
	}
	slices.Sort(names)
	list := &corev1.NamespaceList{TypeMeta: metav1.TypeMeta{Kind: "NamespaceList", APIVersion: "v1"}}
	for _, n := range names {
		list.Items = append(list.Items, *namespace(n))
	}
	writeJSON(w, http.StatusOK, list)
	return true
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
}
