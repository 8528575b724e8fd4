package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium
// package, which .ci/run installs) driven over the DevTools protocol by
// chromedp. Screenshots of every page go to $ISOTOPE_TEST_ARTIFACTS (or a
// temporary directory) and their paths are logged.

// chromiumPath finds Chromium, or skips the test naming the package.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ISOTOPE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("the browser tests need Chromium: apt-get install chromium (Debian), or set ISOTOPE_CHROMIUM to a Chrome binary")
	return ""
}

// browser is one headless Chromium with a tab, collecting console errors.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	errors    []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx, artifacts: os.Getenv("ISOTOPE_TEST_ARTIFACTS")}
	if b.artifacts == "" {
		b.artifacts = t.TempDir()
	}
	b.artifacts = filepath.Join(b.artifacts, "dashboard")
	if err := os.MkdirAll(b.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first run starts the browser and lives as long as ctx: no
	// deadline on it (chromedp.Run's rule).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// run runs actions under a deadline, failing the test on error.
func (b *browser) run(d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// text reads the text of the first element matching sel ("" if none).
func (b *browser) text(sel string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e?e.textContent.trim():""})()`, sel)))
	if err != nil {
		return ""
	}
	return s
}

// waitText polls until the text of sel satisfies ok.
func (b *browser) waitText(d time.Duration, what, sel string, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s := b.text(sel)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: %s is %q after %s", what, sel, s, d)
		}
		<-tick.C
	}
}

// shot saves a full-page screenshot as <artifacts>/<name>.png.
func (b *browser) shot(name string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG, not JPEG
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot: %s", p)
	return p
}

// consoleErrors fails the test on any console error seen so far.
func (b *browser) consoleErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("browser %s", e)
	}
}

// shareGoCache points a data dir's go-wasm build cache at the user's
// (gowasm's default), so only the first build on a machine compiles Go's
// standard library for wasip1.
func shareGoCache(t *testing.T, data string) {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		return
	}
	shared := filepath.Join(base, "isotope", "go-wasm")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shared, filepath.Join(data, "cache", "go")); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardBrowser logs in with the API token, creates a Go function
// from the form, watches its build log stream in while it builds,
// invokes it, follows its log, and sees the request counted on the
// overview; every page is screenshotted and no page may log a console
// error.
func TestDashboardBrowser(t *testing.T) {
	b := newBrowser(t)
	const token = "dashboard-test-token-0123456789"
	data := t.TempDir()
	shareGoCache(t, data)
	p := startPlatform(t, data, "--token", token)
	p.cliEnv = append(p.cliEnv, "ISOTOPE_TOKEN="+token)
	p.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")
	ui := p.api + "/ui/"

	// Log in: the overview sends a browser without a session to the form.
	b.run(30*time.Second, "open the overview", chromedp.Navigate(ui), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.shot("01-login")
	b.run(30*time.Second, "log in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#overview")))
	b.shot("02-overview-empty")

	// Create a function from the form with its default code.
	b.run(30*time.Second, "open the create form", chromedp.Navigate(ui+"new"), chromedp.WaitVisible(chromedp.CSS("#create")))
	b.run(10*time.Second, "fill the form",
		chromedp.SetValue(chromedp.CSS("#new-name"), "hello-ui"),
		chromedp.SetValue(chromedp.CSS("#new-url"), "/hello-ui"))
	b.shot("03-new-function")
	b.run(30*time.Second, "create", chromedp.Submit(chromedp.CSS("#create")), chromedp.WaitVisible(chromedp.CSS("#buildlog")))

	// The package page streams the build log while the build runs.
	live := false
	deadline := time.Now().Add(15 * time.Minute) // a cold machine compiles Go's standard library first
	tick := time.NewTicker(100 * time.Millisecond)
	for {
		st, log := b.text("#build-status"), b.text("#buildlog")
		if !live && (st == "running" || st == "pending") && strings.Contains(log, "go build") {
			live = true
			b.shot("04-package-building")
		}
		if st == "succeeded" && b.text("#building") == "" {
			break
		}
		if st == "failed" || time.Now().After(deadline) {
			b.shot("failed-build")
			t.Fatalf("build status %q, log:\n%s", st, log)
		}
		<-tick.C
	}
	tick.Stop()
	if !live {
		t.Errorf("never saw the build log while the package was building")
	}
	if log := b.text("#buildlog"); !strings.Contains(log, "built main.wasm") {
		t.Errorf("build log after the build:\n%s", log)
	}
	b.shot("05-package-succeeded")

	// The function page: its code, its triggers; invoke it.
	b.run(30*time.Second, "open the function", chromedp.Navigate(ui+"functions/default/hello-ui"), chromedp.WaitVisible(chromedp.CSS("#invoke")))
	if code := b.text("#code"); !strings.Contains(code, "func Handler(w http.ResponseWriter") {
		t.Errorf("code view shows %q", code)
	}
	b.run(10*time.Second, "fill the invoke form", chromedp.SetValue(chromedp.CSS("#invoke-path"), "/from-the-browser"))
	b.run(2*time.Minute, "invoke", chromedp.Click(chromedp.CSS("#invoke-send")), chromedp.WaitVisible(chromedp.CSS("#invoke-result")))
	if st := b.text("#invoke-status"); st != "200 OK" {
		t.Fatalf("invoke status %q; result: %s", st, b.text("#invoke-result"))
	}
	if body := b.text("#invoke-response"); !strings.Contains(body, "Hello from Isotope! You asked for /from-the-browser") {
		t.Errorf("invoke body %q", body)
	}
	if lat := b.text("#invoke-latency"); !strings.HasSuffix(lat, " ms") {
		t.Errorf("invoke latency %q", lat)
	}
	// The live log tail shows the function's own log line.
	b.waitText(60*time.Second, "function log", "#log", func(s string) bool { return strings.Contains(s, "GET /from-the-browser") })
	b.shot("06-function-invoked")

	// The overview counts the request (it refreshes itself).
	p.ok("timer", "create", "--name", "hourly", "--function", "hello-ui", "--cron", "@hourly")
	b.run(30*time.Second, "open the overview", chromedp.Navigate(ui), chromedp.WaitVisible(chromedp.CSS("#functions")))
	row := `tr[data-function="default/hello-ui"]`
	b.waitText(30*time.Second, "request counted", row+" td.req5", func(s string) bool { return s == "1" })
	if build := b.text(row + " .build"); build != "succeeded" {
		t.Errorf("overview build state %q", build)
	}
	b.shot("07-overview-counted")

	b.run(30*time.Second, "open environments", chromedp.Navigate(ui+"environments"), chromedp.WaitVisible(chromedp.CSS("#environments")))
	if env := b.text("#environments"); !strings.Contains(env, "isotope/go-wasm-builder") {
		t.Errorf("environments page: %q", env)
	}
	b.shot("08-environments")
	b.run(30*time.Second, "open timers", chromedp.Navigate(ui+"timers"), chromedp.WaitVisible(chromedp.CSS("#timers")))
	if tm := b.text("#timers"); !strings.Contains(tm, "@hourly") {
		t.Errorf("timers page: %q", tm)
	}
	b.shot("09-timers")

	// Log out: the next page asks for the token again.
	b.run(30*time.Second, "log out", chromedp.Navigate(ui), chromedp.WaitVisible(chromedp.CSS("#functions")),
		chromedp.Submit(chromedp.CSS(".logout")), chromedp.WaitVisible(chromedp.CSS("#login")))
	b.consoleErrors()
}
