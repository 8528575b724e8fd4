// Package status answers "what is deployed, is it healthy, what failed?"
// in one report: each function's environment, executor type, routes,
// timers, package build state, live instances, requests, errors and
// latency over the last 5 and 60 minutes, and last error. Resources come
// from the store; traffic and instances from the router's windowed stats
// (router.StatsPath), in-process in embedded mode and over HTTP in
// Kubernetes mode. The API serves it at Path; the dashboard and
// `isotope status` read it (decision 0018).
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/router"
	"isotope.dev/isotope/internal/store"
)

// Path is the API's status endpoint.
const Path = "/v2/status"

// Report is the platform at a glance.
type Report struct {
	Time time.Time `json:"time"`
	// StatsError says why traffic and instances are missing (the router
	// could not be reached); resources are still reported.
	StatsError string     `json:"statsError,omitempty"`
	Functions  []Function `json:"functions"`
}

// Function is one function's row.
type Function struct {
	Namespace    string   `json:"namespace"`
	Name         string   `json:"name"`
	Environment  string   `json:"environment"`
	ExecutorType string   `json:"executorType"`
	Routes       []string `json:"routes"` // "GET /hello", "* /api/..."
	Timers       []string `json:"timers"` // "nightly (0 3 * * *)"
	Package      string   `json:"package"`
	// BuildStatus is the package's: pending, running, succeeded, failed
	// or none; "missing" when the package does not exist.
	BuildStatus string `json:"buildStatus"`
	// Instances are live specialized instances (busy ones included).
	Instances    int                  `json:"instances"`
	Busy         int                  `json:"busy"`
	Last5m       router.Window        `json:"last5m"`
	Last60m      router.Window        `json:"last60m"`
	LastError    *router.LastError    `json:"lastError,omitempty"`
	Minutes      []router.MinutePoint `json:"minutes,omitempty"`
	CreationTime time.Time            `json:"creationTime"`
}

// Source gives the router's stats.
type Source interface {
	Stats(ctx context.Context) (*router.StatsReport, error)
}

// Options narrow a report.
type Options struct {
	// Namespace limits the report to one namespace ("" = all).
	Namespace string
	// Minutes keeps each function's per-minute series (for charts).
	Minutes bool
}

// Build makes a report from the store and the router's stats. A router
// that cannot be reached is reported in StatsError, not as a failure.
func Build(ctx context.Context, st store.Store, src Source, o Options) (*Report, error) {
	lo := store.ListOptions{Namespace: o.Namespace}
	fns, _, err := store.ListAs[*v1.Function](ctx, st, lo)
	if err != nil {
		return nil, err
	}
	pkgs, _, err := store.ListAs[*v1.Package](ctx, st, lo)
	if err != nil {
		return nil, err
	}
	trs, _, err := store.ListAs[*v1.HTTPTrigger](ctx, st, lo)
	if err != nil {
		return nil, err
	}
	tts, _, err := store.ListAs[*v1.TimeTrigger](ctx, st, lo)
	if err != nil {
		return nil, err
	}
	rep := &Report{Time: time.Now().UTC(), Functions: make([]Function, 0, len(fns))}
	var stats map[[2]string]router.FunctionStats
	if src != nil {
		sr, err := src.Stats(ctx)
		if err != nil {
			rep.StatsError = err.Error()
		} else {
			stats = make(map[[2]string]router.FunctionStats, len(sr.Functions))
			for _, f := range sr.Functions {
				stats[[2]string{f.Namespace, f.Name}] = f
			}
		}
	}
	pkgByKey := map[[2]string]*v1.Package{}
	for _, p := range pkgs {
		pkgByKey[[2]string{p.Namespace, p.Name}] = p
	}
	for _, fn := range fns {
		f := Function{
			Namespace: fn.Namespace, Name: fn.Name,
			Environment:  fn.Spec.Environment.Name,
			ExecutorType: string(fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType),
			Routes:       []string{},
			Timers:       []string{},
			Package:      fn.Spec.Package.PackageRef.Name,
			CreationTime: fn.CreationTimestamp.Time.UTC(),
		}
		if f.ExecutorType == "" {
			f.ExecutorType = string(v1.ExecutorTypePoolmgr)
		}
		pns := fn.Spec.Package.PackageRef.Namespace
		if pns == "" {
			pns = fn.Namespace
		}
		if p := pkgByKey[[2]string{pns, f.Package}]; p != nil {
			f.BuildStatus = string(p.Status.BuildStatus)
			if f.BuildStatus == "" {
				f.BuildStatus = string(v1.BuildStatusPending)
			}
		} else if f.Package != "" {
			f.BuildStatus = "missing"
		}
		for _, t := range trs {
			if t.Namespace == fn.Namespace && targets(t.Spec.FunctionReference, fn.Name) {
				f.Routes = append(f.Routes, Route(&t.Spec))
			}
		}
		for _, t := range tts {
			if t.Namespace == fn.Namespace && targets(t.Spec.FunctionReference, fn.Name) {
				f.Timers = append(f.Timers, fmt.Sprintf("%s (%s)", t.Name, t.Spec.Cron))
			}
		}
		sort.Strings(f.Routes)
		if s, ok := stats[[2]string{fn.Namespace, fn.Name}]; ok {
			f.Last5m, f.Last60m, f.LastError = s.Last5m, s.Last60m, s.LastError
			if s.Instances != nil {
				f.Instances, f.Busy = s.Instances.Live, s.Instances.Busy
			}
			if o.Minutes {
				f.Minutes = s.Minutes
			}
		}
		rep.Functions = append(rep.Functions, f)
	}
	sort.Slice(rep.Functions, func(i, j int) bool {
		a, b := rep.Functions[i], rep.Functions[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return rep, nil
}

// targets reports whether a trigger's function reference names fn: by
// name, or among a canary's weighted functions.
func targets(ref v1.FunctionReference, fn string) bool {
	if ref.Name == fn {
		return true
	}
	_, ok := ref.FunctionWeights[fn]
	return ok
}

// Route is a trigger as a user reads it: "GET,POST /hello", or
// "GET /api*" for a prefix (as `route list` shows it).
func Route(s *v1.HTTPTriggerSpec) string {
	path := s.RelativeURL
	if s.Prefix != nil && *s.Prefix != "" {
		path = *s.Prefix + "*"
	}
	return strings.Join(v1.RouteMethods(s), ",") + " " + s.Host + path
}

// Handler serves GET Path[?namespace=NS][&minutes=true] as JSON. Put it
// behind the API's authentication.
func Handler(st store.Store, src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		o := Options{Namespace: q.Get("namespace")}
		switch v := q.Get("minutes"); v {
		case "", "false":
		case "true":
			o.Minutes = true
		default:
			http.Error(w, fmt.Sprintf("query parameter \"minutes\": %q is not true or false", v), http.StatusBadRequest)
			return
		}
		if o.Namespace != "" {
			if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
				http.Error(w, fmt.Sprintf("query parameter \"namespace\": %q: %s", o.Namespace, strings.Join(msgs, "; ")), http.StatusBadRequest)
				return
			}
		}
		rep, err := Build(r.Context(), st, src, o)
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(rep)
	})
}
