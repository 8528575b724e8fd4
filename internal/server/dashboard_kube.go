package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/auth/webguard"
	"isotope.dev/isotope/internal/dashboard"
	"isotope.dev/isotope/internal/executor/kubert"
	"isotope.dev/isotope/internal/router"
	isostatus "isotope.dev/isotope/internal/status"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
)

// The dashboard role: in Kubernetes mode there is no Isotope API process,
// so `isotope dashboard` serves what the API serves for it in embedded
// mode — the dashboard at /ui/ and the status report at /v2/status — over
// the kube-apiserver (kubestore), with traffic from the router Service's
// /_stats and archives from the storage service. Decision 0024.

// DashboardTokenEnv is where the dashboard role reads its token by
// default (the chart sets it from a Secret).
const DashboardTokenEnv = "ISOTOPE_DASHBOARD_TOKEN"

// DashboardOptions configure the dashboard role.
type DashboardOptions struct {
	KubeOptions
	Addr string
	// Token is asked for by the login form and required as a bearer
	// token by /v2/status. Empty locks the dashboard: nobody can log in
	// until one is given (a dashboard that can create functions is never
	// open to anyone who reaches it).
	Token string
	// RouterURL is the router Service, for stats and the invoke form.
	RouterURL string
	// APIHosts may be named in the Host header besides loopback names
	// and IP addresses (the Service's and an Ingress's names).
	APIHosts []string
}

// dashboardTokenHelp tells a user at the login form where the token is.
const dashboardTokenHelp = "the value of " + DashboardTokenEnv + " in the dashboard's pod, from the Secret the chart names (by default isotope-dashboard, key token)"

// RunDashboard serves the dashboard and the status report on o.Addr
// until ctx ends.
func RunDashboard(ctx context.Context, o DashboardOptions) error {
	guard, err := webguard.New(o.APIHosts)
	if err != nil {
		return err
	}
	if o.RouterURL == "" {
		return errors.New("--router: give the router Service's URL (e.g. http://isotope-router)")
	}
	r, err := o.connect()
	if err != nil {
		return err
	}
	stop, err := r.startTracing(ctx, "dashboard")
	if err != nil {
		return err
	}
	defer stop()
	if o.Token == "" {
		// Locked: a random token nobody is told.
		o.Token = randomToken()
		r.log.Warn("no token given: the dashboard is locked (nobody can log in) until " + DashboardTokenEnv + " or --token is set")
	}
	h, err := KubeDashboardHandler(r.store, o, r.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	r.log.Info("dashboard listening", "addr", ln.Addr().String(), "router", o.RouterURL, "storage", o.StorageURL)
	return ServeHTTP(ctx, ln, guard.Handler(h), func() { r.log.Info("dashboard shutting down") })
}

// KubeDashboardHandler is the dashboard role's handler over st: /ui/,
// /v2/status (behind o.Token as a bearer token) and /healthz. It is
// RunDashboard without the listener and the web guard.
func KubeDashboardHandler(st store.Store, o DashboardOptions, log *slog.Logger) (http.Handler, error) {
	if o.Token == "" {
		return nil, errors.New("dashboard: a token is required")
	}
	routerURL := strings.TrimRight(o.RouterURL, "/")
	stats := &router.StatsClient{URL: routerURL}
	archives := storagesvc.NewClient(o.StorageURL, "")
	ui, err := dashboard.New(dashboard.Config{
		Store:     st,
		Stats:     stats,
		Token:     o.Token,
		TokenHelp: dashboardTokenHelp,
		Logs:      podLogsNotice(st),
		BuildLogs: storedBuildLog(st),
		Download: func(ctx context.Context, rawURL string, w io.Writer) error {
			id, err := archiveID(rawURL)
			if err != nil {
				return err
			}
			if o.StorageURL == "" {
				return errors.New("the storage service's URL is not known here (--storage-url)")
			}
			return archives.Download(ctx, id, w)
		},
		RouterURL: routerURL,
		Logger:    log.With("role", "dashboard"),
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(isostatus.Path, requireToken(o.Token, isostatus.Handler(st, stats)))
	mux.Handle(dashboard.Prefix, ui)
	mux.Handle("GET /ui", http.RedirectHandler(dashboard.Prefix, http.StatusMovedPermanently))
	mux.Handle("GET /{$}", http.RedirectHandler(dashboard.Prefix, http.StatusSeeOther))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return mux, nil
}

// archiveID is the storage service's id in an archive URL. The code view
// downloads by id from --storage-url only: a Package's URL may name the
// storage service by another address (a port-forward the CLI used), and
// a URL elsewhere is never fetched from inside the cluster.
func archiveID(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err == nil && u.Path == storagesvc.ArchivePath && u.Query().Get("id") != "" {
		return u.Query().Get("id"), nil
	}
	return "", fmt.Errorf("the archive %q is not in the storage service (want …%s?id=…); the dashboard opens only those on Kubernetes", rawURL, storagesvc.ArchivePath)
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// podLogsNotice stands in for the API's /v1/logs: in Kubernetes mode a
// function's output is its pods' container log, which the dashboard does
// not collect. It answers, for the function page's log box, how to read
// it with kubectl.
func podLogsNotice(st store.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ns, name := q.Get("namespace"), q.Get("function")
		podNS := ns
		if fn, err := store.GetAs[*v1.Function](r.Context(), st, ns, name); err == nil &&
			fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType != v1.ExecutorTypeNewdeploy && fn.Spec.Environment.Namespace != "" {
			// Pool pods live with their environment.
			podNS = fn.Spec.Environment.Namespace
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Function logs are not shown on Kubernetes: the function's output is the log of its pods, which the dashboard does not collect.\n"+
			"Read it with:\n  kubectl logs -n %s -l %s=%s,%s=%s --all-containers --prefix --tail=200\n",
			podNS, kubert.LabelFunctionName, name, kubert.LabelFunctionNamespace, ns)
	})
}

// storedBuildLog stands in for the API's /v1/buildlogs: in Kubernetes
// mode the builder manager stores a build's log in the Package's status
// when the build ends. A finished build answers that log; following a
// pending or running one says so, waits (a watch on the namespace's
// Packages) for the build to end and then sends the log, so the package
// page reloads with it.
func storedBuildLog(st store.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ns, name, follow := q.Get("namespace"), q.Get("name"), q.Get("follow") == "true"
		ctx := r.Context()
		pkg, err := store.GetAs[*v1.Package](ctx, st, ns, name)
		if err != nil {
			code := http.StatusInternalServerError
			if store.IsNotFound(err) {
				code = http.StatusNotFound
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if buildEnded(pkg) || !follow {
			io.WriteString(w, pkg.Status.BuildLog)
			return
		}
		io.WriteString(w, "Building in the cluster: the builder manager stores the build's log when the build ends; it appears here then.\n")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		wt, err := st.Watch(ctx, v1.KindPackage, store.WatchOptions{ListOptions: store.ListOptions{Namespace: ns}})
		if err != nil {
			fmt.Fprintf(w, "cannot follow the build: %v\n", err)
			return
		}
		defer wt.Stop()
		for ev := range wt.ResultChan() {
			p, ok := ev.Object.(*v1.Package)
			if !ok || p.Name != name {
				continue
			}
			if ev.Type == store.Deleted {
				io.WriteString(w, "The package was deleted.\n")
				return
			}
			if buildEnded(p) {
				io.WriteString(w, "\n"+p.Status.BuildLog)
				return
			}
		}
	})
}

// buildEnded reports whether a package's build is over (or it has none).
func buildEnded(p *v1.Package) bool {
	switch p.Status.BuildStatus {
	case v1.BuildStatusPending, v1.BuildStatusRunning, "":
		return false
	}
	return true
}
