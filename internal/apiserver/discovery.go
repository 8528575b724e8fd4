package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"runtime"
	"slices"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Discovery: what a client-go client (a generated clientset, a dynamic
// client with a RESTMapper from discovery, kubectl) reads before it
// makes its requests. Both resource groups, isotope.dev/v1 and
// fission.io/v1, hold the same objects; /api serves the core group with
// namespaces only (see core.go).

// KubeVersion is the Kubernetes API version /version reports: the one
// whose client libraries (k8s.io/apimachinery v0.37) this API follows.
const KubeVersion = "v1.37.0"

// groups are the resource groups served, isotope.dev first (preferred
// by tools that list groups).
var groups = []string{v1.Group, v1.FissionGroup}

// aggregatedType is the media type of aggregated discovery (an
// APIGroupDiscoveryList answer to /api and /apis in one request).
var aggregatedType = "application/json;g=" + apidiscoveryv2.SchemeGroupVersion.Group + ";v=" + apidiscoveryv2.SchemeGroupVersion.Version + ";as=APIGroupDiscoveryList"

// wantsAggregated reports whether the Accept header asks for aggregated
// discovery v2 (client-go asks for it first, then plain JSON). Anything
// else, v2beta1 included, gets the unaggregated answer, which every
// client falls back to.
func wantsAggregated(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "application/json" {
				continue
			}
			if params["g"] == apidiscoveryv2.SchemeGroupVersion.Group && params["v"] == apidiscoveryv2.SchemeGroupVersion.Version && params["as"] == "APIGroupDiscoveryList" {
				return true
			}
		}
	}
	return false
}

// serveDiscovery answers the discovery paths and reports whether path
// was one of them.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	var answer func() any
	switch {
	case p == "/version":
		answer = func() any {
			return &version.Info{
				Major: "1", Minor: strings.Split(KubeVersion, ".")[1],
				GitVersion: KubeVersion + "+isotope", Platform: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(),
			}
		}
	case p == "/api":
		answer = func() any {
			if wantsAggregated(r) {
				return aggregated(coreDiscovery())
			}
			return &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}}
		}
	case p == "/api/v1":
		answer = func() any { return resourceList("v1", coreResources()) }
	case p == "/apis":
		answer = func() any {
			if wantsAggregated(r) {
				var out []apidiscoveryv2.APIGroupDiscovery
				for _, g := range groups {
					out = append(out, groupDiscovery(g))
				}
				return aggregated(out...)
			}
			list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
			for _, g := range groups {
				list.Groups = append(list.Groups, *apiGroup(g))
			}
			return list
		}
	default:
		rest, ok := strings.CutPrefix(p, "/apis/")
		if !ok {
			return false
		}
		g, ver, _ := strings.Cut(rest, "/")
		if !slices.Contains(groups, g) || (ver != "" && ver != v1.Version) {
			return false // a resource path, or a 404 from parseRoute
		}
		if ver == "" {
			answer = func() any { return apiGroup(g) }
		} else {
			answer = func() any {
				rs := groupResources(g)
				if g == v1.FissionGroup {
					rs = append(rs, fissionOnlyResources()...)
				}
				return resourceList(g+"/"+v1.Version, rs)
			}
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		writeError(w, store.Errorf(store.ReasonMethodNotAllowed, "method %s is not allowed on %s (allowed: GET)", r.Method, r.URL.Path), route{})
		return true
	}
	v := answer()
	if _, ok := v.(*apidiscoveryv2.APIGroupDiscoveryList); ok {
		writeJSONType(w, http.StatusOK, aggregatedType, v)
	} else {
		writeJSON(w, http.StatusOK, v)
	}
	return true
}

func apiGroup(g string) *metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: g + "/" + v1.Version, Version: v1.Version}
	return &metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

func resourceList(gv string, rs []metav1.APIResource) *metav1.APIResourceList {
	return &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv, APIResources: rs}
}

// The verbs each resource answers. There is no patch and no
// deletecollection: clients that need them (kubectl apply, kubectl
// delete --all) are told so by discovery instead of by a 405.
var (
	resourceVerbs = metav1.Verbs{"create", "delete", "get", "list", "update", "watch"}
	statusVerbs   = metav1.Verbs{"get", "update"}
)

// groupResources lists the kinds of v1 as discovery resources: the
// plural is the resource name, the aliases are short names (kubectl get
// fn, env, pkg …), and kinds with a status have a status subresource.
func groupResources(g string) []metav1.APIResource {
	var out []metav1.APIResource
	for _, k := range groupKinds(g) {
		short := shortNames(k)
		out = append(out, metav1.APIResource{Name: k.Plural, SingularName: k.Singular, Namespaced: true, Kind: k.Kind, Verbs: resourceVerbs, ShortNames: short})
		if k.HasStatus {
			out = append(out, metav1.APIResource{Name: k.Plural + "/status", Namespaced: true, Kind: k.Kind, Verbs: statusVerbs})
		}
	}
	return out
}

// groupKinds are the kinds group g serves: all of them on isotope.dev;
// on fission.io, not Secret and ConfigMap, which Fission's clients read
// as core/v1 objects.
func groupKinds(g string) []v1.KindInfo {
	ks := v1.Kinds()
	if g == v1.FissionGroup {
		ks = slices.DeleteFunc(ks, func(k v1.KindInfo) bool { return k.Core })
	}
	return ks
}

// shortNames are a kind's aliases but its plural forms (env, not envs).
func shortNames(k v1.KindInfo) []string {
	var short []string
	for _, a := range k.Aliases {
		if !strings.HasSuffix(a, "s") {
			short = append(short, a)
		}
	}
	return short
}

// groupDiscovery is groupResources in the aggregated form.
func groupDiscovery(g string) apidiscoveryv2.APIGroupDiscovery {
	var rs []apidiscoveryv2.APIResourceDiscovery
	for _, k := range groupKinds(g) {
		short := shortNames(k)
		rd := apidiscoveryv2.APIResourceDiscovery{
			Resource: k.Plural, SingularResource: k.Singular, Scope: apidiscoveryv2.ScopeNamespace,
			ResponseKind: &metav1.GroupVersionKind{Group: g, Version: v1.Version, Kind: k.Kind},
			Verbs:        resourceVerbs, ShortNames: short,
		}
		if k.HasStatus {
			rd.Subresources = []apidiscoveryv2.APISubresourceDiscovery{{
				Subresource:  "status",
				ResponseKind: &metav1.GroupVersionKind{Group: g, Version: v1.Version, Kind: k.Kind},
				Verbs:        statusVerbs,
			}}
		}
		rs = append(rs, rd)
	}
	if g == v1.FissionGroup {
		for _, k := range v1.FissionOnlyKinds {
			rs = append(rs, apidiscoveryv2.APIResourceDiscovery{
				Resource: k.Plural, SingularResource: k.Singular, Scope: apidiscoveryv2.ScopeNamespace,
				ResponseKind: &metav1.GroupVersionKind{Group: g, Version: v1.Version, Kind: k.Kind},
				Verbs:        metav1.Verbs{"get", "list"},
			})
		}
	}
	return apidiscoveryv2.APIGroupDiscovery{
		ObjectMeta: metav1.ObjectMeta{Name: g},
		Versions:   []apidiscoveryv2.APIVersionDiscovery{{Version: v1.Version, Resources: rs, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}},
	}
}

func aggregated(gs ...apidiscoveryv2.APIGroupDiscovery) *apidiscoveryv2.APIGroupDiscoveryList {
	return &apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: apidiscoveryv2.SchemeGroupVersion.String()},
		Items:    gs,
	}
}

// fissionOnly finds a Fission kind Isotope lacks by its plural, singular
// or Kind name.
func fissionOnly(name string) (v1.FissionOnlyKind, bool) {
	for _, k := range v1.FissionOnlyKinds {
		if strings.EqualFold(name, k.Kind) || name == k.Plural || name == k.Singular {
			return k, true
		}
	}
	return v1.FissionOnlyKind{}, false
}

// serveFissionOnly answers a request for a Fission kind Isotope lacks:
// a list is empty (so Fission's spec apply, which lists every kind, goes
// on), a get is 404, and anything else is refused with the reason.
func serveFissionOnly(w http.ResponseWriter, rt route) {
	k := rt.fissionOnly
	switch rt.verb {
	case "list":
		writeJSON(w, http.StatusOK, listOut{APIVersion: rt.apiVersion, Kind: k.Kind + "List", Metadata: ListMeta{ResourceVersion: "0"}, Items: []v1.Object{}})
	case "get":
		writeError(w, store.Errorf(store.ReasonNotFound, "%s %q not found: Isotope has no %s objects (%s)", k.Kind, rt.name, k.Kind, k.Why), rt)
	default:
		writeError(w, &store.Error{Reason: store.ReasonBadRequest, Message: fmt.Sprintf("Isotope does not implement fission.io/v1 %s (%s): it lists none and stores none", k.Kind, k.Why), Causes: []store.Cause{{Field: "kind", Message: k.Why}}}, rt)
	}
}

// fissionOnlyResources are the discovery entries of those kinds:
// readable (always empty), not writable.
func fissionOnlyResources() []metav1.APIResource {
	var out []metav1.APIResource
	for _, k := range v1.FissionOnlyKinds {
		out = append(out, metav1.APIResource{Name: k.Plural, SingularName: k.Singular, Namespaced: true, Kind: k.Kind, Verbs: metav1.Verbs{"get", "list"}})
	}
	return out
}
