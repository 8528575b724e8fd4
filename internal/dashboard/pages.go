package dashboard

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/status"
	"isotope.dev/isotope/internal/store"
)

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, p *page) {
	rep, err := status.Build(r.Context(), d.cfg.Store, d.cfg.Stats, status.Options{})
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	p.Title, p.Data = "Overview", rep
	d.render(w, r, http.StatusOK, "overview", p)
}

// functionPage is the function page's data.
type functionPage struct {
	Fn      *v1.Function
	Status  status.Function
	Pkg     *v1.Package
	Code    *codeView
	Chart   chart
	Logs    string
	Invoke  *invokeResult
	Form    invokeForm
	Timers  []*v1.TimeTrigger
	Routes  []*v1.HTTPTrigger
	RouteOK bool
}

// names reads and checks the {ns} and {name} path values.
func (d *Dashboard) names(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		d.fail(w, r, http.StatusBadRequest, "namespace "+strconv.Quote(ns)+": "+strings.Join(msgs, "; "))
		return "", "", false
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		d.fail(w, r, http.StatusBadRequest, "name "+strconv.Quote(name)+": "+strings.Join(msgs, "; "))
		return "", "", false
	}
	return ns, name, true
}

func (d *Dashboard) function(w http.ResponseWriter, r *http.Request, p *page) {
	d.renderFunction(w, r, p, nil, invokeForm{Method: http.MethodGet, Path: "/"}, http.StatusOK)
}

func (d *Dashboard) renderFunction(w http.ResponseWriter, r *http.Request, p *page, res *invokeResult, form invokeForm, code int) {
	ns, name, ok := d.names(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	fn, err := store.GetAs[*v1.Function](ctx, d.cfg.Store, ns, name)
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	fp := &functionPage{Fn: fn, Invoke: res, Form: form}
	rep, err := status.Build(ctx, d.cfg.Store, d.cfg.Stats, status.Options{Namespace: ns, Minutes: true})
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	for _, f := range rep.Functions {
		if f.Name == name {
			fp.Status = f
		}
	}
	fp.Chart = newChart(fp.Status.Minutes)
	ref := fn.Spec.Package.PackageRef
	if ref.Namespace == "" {
		ref.Namespace = ns
	}
	if pkg, err := store.GetAs[*v1.Package](ctx, d.cfg.Store, ref.Namespace, ref.Name); err == nil {
		fp.Pkg = pkg
		fp.Code = d.readCode(ctx, pkg, r.URL.Query().Get("file"))
		if fp.Code.Missing != "" {
			d.fail(w, r, http.StatusNotFound, fp.Code.Missing)
			return
		}
	}
	trs, _, err := store.ListAs[*v1.HTTPTrigger](ctx, d.cfg.Store, store.ListOptions{Namespace: ns})
	if err == nil {
		for _, t := range trs {
			if t.Spec.FunctionReference.Name == name || t.Spec.FunctionReference.FunctionWeights[name] > 0 {
				fp.Routes = append(fp.Routes, t)
			}
		}
	}
	tts, _, err := store.ListAs[*v1.TimeTrigger](ctx, d.cfg.Store, store.ListOptions{Namespace: ns})
	if err == nil {
		for _, t := range tts {
			if t.Spec.FunctionReference.Name == name {
				fp.Timers = append(fp.Timers, t)
			}
		}
	}
	fp.Logs = d.recentLogs(r, ns, name)
	p.Title, p.Data, p.Active = "Function "+name, fp, "overview"
	d.render(w, r, code, "function", p)
}

// recentLogs is the function's last lines, for the page without
// JavaScript (the script then follows the log live).
func (d *Dashboard) recentLogs(r *http.Request, ns, name string) string {
	if d.cfg.Logs == nil {
		return ""
	}
	q := url.Values{"namespace": {ns}, "function": {name}, "recordcount": {"200"}}
	req := httptest.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/logs?"+q.Encode(), nil)
	rec := httptest.NewRecorder()
	d.cfg.Logs.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return ""
	}
	return rec.Body.String()
}

// functionLogs follows the function's log (fn logs -f's API).
func (d *Dashboard) functionLogs(w http.ResponseWriter, r *http.Request, _ *page) {
	ns, name, ok := d.names(w, r)
	if !ok {
		return
	}
	if d.cfg.Logs == nil {
		d.fail(w, r, http.StatusNotFound, "function logs are not served here")
		return
	}
	q := url.Values{"namespace": {ns}, "function": {name}, "follow": {"true"}, "recordcount": {"200"}}
	d.proxy(w, r, d.cfg.Logs, "/v1/logs?"+q.Encode())
}

// proxy serves an in-process handler of the API at target, streaming.
func (d *Dashboard) proxy(w http.ResponseWriter, r *http.Request, h http.Handler, target string) {
	req := r.Clone(r.Context())
	u, _ := url.Parse(target)
	req.URL, req.RequestURI = u, target
	req.Header.Set("Cache-Control", "no-store")
	h.ServeHTTP(w, req)
}

type pkgPage struct {
	Pkg       *v1.Package
	Functions []string
	Building  bool
	CanBuild  bool
}

func (d *Dashboard) pkg(w http.ResponseWriter, r *http.Request, p *page) {
	ns, name, ok := d.names(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	pkg, err := store.GetAs[*v1.Package](ctx, d.cfg.Store, ns, name)
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	pp := &pkgPage{Pkg: pkg, CanBuild: !pkg.Spec.Source.IsEmpty()}
	switch pkg.Status.BuildStatus {
	case v1.BuildStatusPending, v1.BuildStatusRunning, "":
		pp.Building = pp.CanBuild
	}
	if fns, _, err := store.ListAs[*v1.Function](ctx, d.cfg.Store, store.ListOptions{Namespace: ns}); err == nil {
		for _, f := range fns {
			if f.Spec.Package.PackageRef.Name == name {
				pp.Functions = append(pp.Functions, f.Name)
			}
		}
	}
	p.Title, p.Data, p.Active = "Package "+name, pp, "overview"
	d.render(w, r, http.StatusOK, "package", p)
}

// buildLog follows a package's build log (pkg info's and fn create's API).
func (d *Dashboard) buildLog(w http.ResponseWriter, r *http.Request, _ *page) {
	ns, name, ok := d.names(w, r)
	if !ok {
		return
	}
	if d.cfg.BuildLogs == nil {
		d.fail(w, r, http.StatusNotFound, "build logs are not served here")
		return
	}
	q := url.Values{"namespace": {ns}, "name": {name}, "follow": {"true"}}
	d.proxy(w, r, d.cfg.BuildLogs, "/v1/buildlogs?"+q.Encode())
}

// rebuild sets a package with source back to pending, as `pkg rebuild
// --force` does; a build already under way is left alone.
func (d *Dashboard) rebuild(w http.ResponseWriter, r *http.Request, _ *page) {
	ns, name, ok := d.names(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	pkg, err := store.GetAs[*v1.Package](ctx, d.cfg.Store, ns, name)
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	if pkg.Spec.Source.IsEmpty() {
		d.fail(w, r, http.StatusBadRequest, "package "+name+" has no source archive: there is nothing to build")
		return
	}
	switch pkg.Status.BuildStatus {
	case v1.BuildStatusPending, v1.BuildStatusRunning:
	default:
		pkg.Status = v1.PackageStatus{BuildStatus: v1.BuildStatusPending, LastUpdateTimestamp: nowMeta()}
		if _, err := d.cfg.Store.UpdateStatus(ctx, pkg); err != nil {
			d.failStore(w, r, err)
			return
		}
	}
	http.Redirect(w, r, Prefix+"packages/"+ns+"/"+name, http.StatusSeeOther)
}

type envRow struct {
	Env       *v1.Environment
	Functions int
}

func (d *Dashboard) environments(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	envs, _, err := store.ListAs[*v1.Environment](ctx, d.cfg.Store, store.ListOptions{})
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	fns, _, err := store.ListAs[*v1.Function](ctx, d.cfg.Store, store.ListOptions{})
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	count := map[[2]string]int{}
	for _, f := range fns {
		count[[2]string{f.Namespace, f.Spec.Environment.Name}]++
	}
	rows := make([]envRow, 0, len(envs))
	for _, e := range envs {
		rows = append(rows, envRow{Env: e, Functions: count[[2]string{e.Namespace, e.Name}]})
	}
	p.Title, p.Data = "Environments", rows
	d.render(w, r, http.StatusOK, "environments", p)
}

func (d *Dashboard) timers(w http.ResponseWriter, r *http.Request, p *page) {
	tts, _, err := store.ListAs[*v1.TimeTrigger](r.Context(), d.cfg.Store, store.ListOptions{})
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	sort.Slice(tts, func(i, j int) bool { return tts[i].Namespace+"/"+tts[i].Name < tts[j].Namespace+"/"+tts[j].Name })
	p.Title, p.Data = "Timers", tts
	d.render(w, r, http.StatusOK, "timers", p)
}

// formatMs prints milliseconds with three significant digits.
func formatMs(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
}
