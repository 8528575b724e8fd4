// Package dashboard is Isotope's web dashboard, served by the API at
// /ui/: server-rendered html/template pages (readable without
// JavaScript) with a little vanilla JavaScript for live parts (log
// tails, refreshing numbers), all embedded in the binary. It shows what
// `isotope status` shows (package status), a function's code, triggers,
// logs and traffic, packages and their builds, environments and timers,
// and lets a user invoke a function, rebuild a package and create a
// function. Authentication, CSRF protection and sessions: session.go;
// decision 0018.
package dashboard

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"isotope.dev/isotope/internal/status"
	"isotope.dev/isotope/internal/store"
)

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// maxForm caps a form's body: the create form's upload is at most one
// literal archive (v1.ArchiveLiteralSizeLimit) plus its other fields.
const maxForm = 1 << 20

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the dashboard.
type Config struct {
	// Store holds the resources shown and created.
	Store store.Store
	// Stats are the router's windowed stats (status.Source); nil shows
	// no traffic.
	Stats status.Source
	// Token, when set, is asked for on the login page; "" needs no login.
	Token string
	// TokenHelp says on the login page where the token comes from; ""
	// names the API's (ISOTOPE_TOKEN, or the token file of the data dir).
	TokenHelp string
	// Logs serves function logs as the API's /v1/logs does (fnlog).
	Logs http.Handler
	// BuildLogs serves build logs as the API's /v1/buildlogs does.
	BuildLogs http.Handler
	// Download writes the archive at a storage URL to w.
	Download func(ctx context.Context, url string, w io.Writer) error
	// RouterURL is the router's base URL, for the invoke form.
	RouterURL string
	// RouterClient calls the router (router auth's transport, when on);
	// nil uses a plain client.
	RouterClient *http.Client
	Logger       *slog.Logger
}

// Dashboard is the /ui/ handler.
type Dashboard struct {
	cfg   Config
	log   *slog.Logger
	sess  *sessions
	tmpl  map[string]*template.Template
	mux   *http.ServeMux
	files http.Handler
}

// New returns the dashboard; mount it at Prefix.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Store == nil {
		return nil, errors.New("dashboard: Config.Store is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RouterClient == nil {
		cfg.RouterClient = &http.Client{}
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger, sess: newSessions(), tmpl: map[string]*template.Template{}}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", p)
		if err != nil {
			return nil, err
		}
		d.tmpl[name] = t
	}
	static, _ := fs.Sub(staticFS, "static")
	d.files = http.StripPrefix(Prefix+"static/", http.FileServerFS(static))

	m := http.NewServeMux()
	m.HandleFunc("GET /ui/{$}", d.authed(d.overview))
	m.HandleFunc("GET /ui/login", d.loginPage)
	m.HandleFunc("POST /ui/login", d.login)
	m.HandleFunc("POST /ui/logout", d.authed(d.logout))
	m.HandleFunc("GET /ui/functions/{ns}/{name}", d.authed(d.function))
	m.HandleFunc("POST /ui/functions/{ns}/{name}/invoke", d.authed(d.invoke))
	m.HandleFunc("GET /ui/functions/{ns}/{name}/logs", d.authed(d.functionLogs))
	m.HandleFunc("GET /ui/packages/{ns}/{name}", d.authed(d.pkg))
	m.HandleFunc("GET /ui/packages/{ns}/{name}/log", d.authed(d.buildLog))
	m.HandleFunc("POST /ui/packages/{ns}/{name}/rebuild", d.authed(d.rebuild))
	m.HandleFunc("GET /ui/environments", d.authed(d.environments))
	m.HandleFunc("GET /ui/timers", d.authed(d.timers))
	m.HandleFunc("GET /ui/new", d.authed(d.newForm))
	m.HandleFunc("POST /ui/new", d.authed(d.create))
	m.HandleFunc("GET /ui/static/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		d.files.ServeHTTP(w, r)
	})
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "no page "+r.URL.Path)
	})
	d.mux = m
	return d, nil
}

// ServeHTTP serves the dashboard's pages.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Pages are this server's own: no framing, no foreign scripts, and
	// the session cookie never goes with a cross-site request.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	}
	d.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title  string
	CSRF   string
	Login  bool // a token is configured: show log out
	Active string
	Data   any
	Error  string
	Help   string // the login page's word on where the token comes from
}

// authed serves h to a browser with a session: an authenticated one
// when a token is configured. Others are sent to the login page
// (GET) or refused (POST). POSTs must carry the session's CSRF token.
func (d *Dashboard) authed(h func(http.ResponseWriter, *http.Request, *page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ss := d.sess.get(r)
		ok := ss != nil && (ss.authed || d.cfg.Token == "")
		if !ok {
			if r.Method != http.MethodGet {
				d.fail(w, r, http.StatusUnauthorized, "not logged in: log in at "+Prefix+"login")
				return
			}
			if d.cfg.Token == "" {
				id = d.sess.start(w, r, false)
			} else {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
		}
		if r.Method == http.MethodPost {
			if code, msg := parseForm(r); code != 0 {
				d.fail(w, r, code, msg)
				return
			}
			if !d.sess.checkCSRF(r, id) {
				d.fail(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
				return
			}
		}
		h(w, r, &page{CSRF: d.sess.csrf(id), Login: d.cfg.Token != ""})
	}
}

// parseForm reads a POST's form (URL-encoded or multipart, at most
// maxForm bytes); a failure is a status and a message.
func parseForm(r *http.Request) (int, string) {
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(maxForm)
	} else {
		err = r.ParseForm()
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "the form is larger than 1 MiB; upload bigger sources with the CLI (isotope fn create --src)"
	case err != nil:
		return http.StatusBadRequest, "unreadable form: " + err.Error()
	}
	return 0, ""
}

// equalToken compares tokens in constant time.
func equalToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	id, ss := d.sess.get(r)
	if ss == nil {
		id = d.sess.start(w, r, false)
	}
	if d.cfg.Token == "" || (ss != nil && ss.authed) {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "login", &page{Title: "Log in", CSRF: d.sess.csrf(id), Data: safeNext(r.URL.Query().Get("next")), Help: d.cfg.TokenHelp})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if code, msg := parseForm(r); code != 0 {
		d.fail(w, r, code, msg)
		return
	}
	id, ss := d.sess.get(r)
	if ss == nil || !d.sess.checkCSRF(r, id) {
		d.fail(w, r, http.StatusForbidden, "missing or wrong CSRF token: reload the login page and try again")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if d.cfg.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	tok := strings.TrimSpace(r.PostFormValue("token"))
	if !equalToken(tok, d.cfg.Token) {
		help := d.cfg.TokenHelp
		if help == "" {
			help = "give the API token (ISOTOPE_TOKEN, or the token file in the server's data dir)"
		}
		d.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Log in", CSRF: d.sess.csrf(id), Data: next, Help: d.cfg.TokenHelp,
			Error: "wrong token: " + help})
		return
	}
	d.sess.end(w, r, id)
	d.sess.start(w, r, true)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ *page) {
	id, _ := d.sess.get(r)
	d.sess.end(w, r, id)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

// render executes a page template into a buffer first, so a template
// error is a clean 500 rather than half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	t := d.tmpl[name]
	if p.Active == "" {
		p.Active = name
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		d.log.Error("dashboard template", "page", name, "err", err)
		http.Error(w, "internal error rendering "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// fail answers an error page (or text for scripts).
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		d.render(w, r, code, "error", &page{Title: http.StatusText(code), Error: msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

// failStore answers a store error with its status: 404 for not found,
// 409 for conflicts, 400 for invalid objects, else 500.
func (d *Dashboard) failStore(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case store.IsNotFound(err):
		code = http.StatusNotFound
	case store.IsAlreadyExists(err) || store.IsConflict(err):
		code = http.StatusConflict
	case store.IsInvalid(err):
		code = http.StatusBadRequest
	}
	d.fail(w, r, code, err.Error())
}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Truncate(time.Second).String() + " ago"
	},
	"ms": func(v float64) string {
		if v == 0 {
			return "–"
		}
		return formatMs(v)
	},
	"join": strings.Join,
	"methods": func() []string {
		return []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	},
}
