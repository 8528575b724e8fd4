// Command build measures the go-wasm build as the platform runs it — the
// fetcher pulls the source package, the builder runs `isotope build
// go-wasm`, the fetcher zips and uploads the result to the storage
// service, all over HTTP on loopback — against a raw
// `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared` of the same
// source, with the same warm GOCACHE and GOMODCACHE.
//
//	go run ./bench/build [-n 5]      (the suite runs -n 3: bench.args)
//
// Each iteration edits the handler (a new constant), so both sides
// compile the function package and link, as after a user's edit; the
// standard library and the SDK come from the cache. It prints the median
// of n runs of each and the overhead (goal: at most 15 %).
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/fetcher"
	_ "isotope.dev/isotope/internal/gowasm" // registers the in-process go-wasm build
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/sdk"
)

func main() {
	n := flag.Int("n", 5, "measured runs of each side (after one warm-up run each)")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "bench/build:", err)
		os.Exit(1)
	}
}

func source(v int) string {
	return fmt.Sprintf(`package main

import (
	"fmt"
	"net/http"
)

const version = %d

func Handler(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello, version %%d\n", version)
}
`, v)
}

// packages is an in-memory Package getter: the bench measures the build
// path, not the store.
type packages struct {
	mu sync.Mutex
	m  map[string]*v1.Package
}

func (p *packages) Get(_ context.Context, kind, ns, name string) (v1.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pkg, ok := p.m[name]; ok {
		return pkg.DeepCopy(), nil
	}
	return nil, store.Errorf(store.ReasonNotFound, "package %s/%s not found", ns, name)
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(out))
}

func run(n int) error {
	tmp, err := os.MkdirTemp("", "isotope-bench-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	caches := []string{"GOCACHE=" + goEnv("GOCACHE"), "GOMODCACHE=" + goEnv("GOMODCACHE")}
	quiet := slog.New(slog.DiscardHandler)

	// Storage service, fetcher and builder, each on its own loopback port.
	backend, err := storagesvc.NewLocalBackend(filepath.Join(tmp, "archives"), storagesvc.LocalOptions{})
	if err != nil {
		return err
	}
	defer backend.Close()
	storage := httptest.NewServer(storagesvc.NewServer(backend, storagesvc.Options{Logger: quiet}))
	defer storage.Close()
	shared := filepath.Join(tmp, "packages")
	os.MkdirAll(shared, 0o755)
	pkgs := &packages{m: map[string]*v1.Package{}}
	fsrv := httptest.NewServer(fetcher.New(fetcher.Config{SharedDir: shared, Packages: pkgs}).Handler())
	defer fsrv.Close()
	bsrv := httptest.NewServer(builder.New(builder.Config{SharedDir: shared,
		Env: append([]string{"ISOTOPE_GO_CACHE=" + filepath.Join(tmp, "gocache")}, caches...)}).Handler())
	defer bsrv.Close()

	type phases struct{ fetch, build, upload, total time.Duration }
	pipeline := func(v int) (phases, error) {
		var ph phases
		var zbuf bytes.Buffer
		zw := zip.NewWriter(&zbuf)
		w, _ := zw.Create("hello.go")
		io.WriteString(w, source(v))
		zw.Close()
		name := fmt.Sprintf("hello-%d", v)
		pkgs.mu.Lock()
		pkgs.m[name] = &v1.Package{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:   v1.PackageSpec{Source: v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: zbuf.Bytes()}},
			Status: v1.PackageStatus{BuildStatus: v1.BuildStatusRunning}}
		pkgs.mu.Unlock()

		start := time.Now()
		src := name + "-abcdef"
		fetchReq := fetcher.FunctionFetchRequest{FetchType: fetcher.FetchSource,
			Package: metav1.ObjectMeta{Name: name, Namespace: "default"}, Filename: src}
		if err := call(fsrv.URL+"/fetch", fetchReq, nil); err != nil {
			return ph, err
		}
		ph.fetch = time.Since(start)
		t := time.Now()
		var bresp builder.PackageBuildResponse
		if err := call(bsrv.URL+"/", builder.PackageBuildRequest{SrcPkgFilename: src, Command: "isotope build go-wasm"}, &bresp); err != nil {
			return ph, fmt.Errorf("%w\n%s", err, bresp.BuildLogs)
		}
		ph.build = time.Since(t)
		t = time.Now()
		var uresp fetcher.ArchiveUploadResponse
		if err := call(fsrv.URL+"/upload", fetcher.ArchiveUploadRequest{Filename: bresp.ArtifactFilename,
			StorageSvcURL: storage.URL, ArchivePackage: true}, &uresp); err != nil {
			return ph, err
		}
		ph.upload = time.Since(t)
		req, _ := http.NewRequest(http.MethodDelete, bsrv.URL+"/clean?name="+src, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ph, err
		}
		resp.Body.Close()
		ph.total = time.Since(start)
		return ph, nil
	}

	// The raw side builds the same files gowasm generates: the handler,
	// the registering wrapper, go.mod and the SDK module.
	raw := func(v int) (time.Duration, error) {
		dir := filepath.Join(tmp, fmt.Sprintf("raw-%d", v))
		if err := sdk.WriteGoModule(filepath.Join(dir, ".isotope-sdk")); err != nil {
			return 0, err
		}
		files := map[string]string{
			"hello.go": source(v),
			"isotope_generated_main.go": "package main\n\nimport isotopeguestsdk \"isotope.dev/isotope/sdk/go\"\n\n" +
				"func init() {\n\tisotopeguestsdk.Register(\"Handler\", Handler)\n}\n\nfunc main() {}\n",
			"go.mod": "module function\n\ngo 1.24\n\nrequire isotope.dev/isotope v0.0.0\n\nreplace isotope.dev/isotope => ./.isotope-sdk\n",
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", filepath.Join(dir, "out", "main.wasm"), ".")
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), caches...), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("raw go build: %v\n%s", err, out)
		}
		d := time.Since(start)
		os.RemoveAll(dir)
		return d, nil
	}

	var raws, totals, fetches, builds, uploads []time.Duration
	version := int(time.Now().UnixNano() % 1e9) // never seen by the cache before
	for i := 0; i <= n; i++ {
		version += 2
		ph, err := pipeline(version)
		if err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		r, err := raw(version + 1)
		if err != nil {
			return err
		}
		if i == 0 {
			continue // warm-up: fills the caches with this machine's SDK build
		}
		raws, totals = append(raws, r), append(totals, ph.total)
		fetches, builds, uploads = append(fetches, ph.fetch), append(builds, ph.build), append(uploads, ph.upload)
	}
	mr, mt := median(raws), median(totals)
	fmt.Printf("go-wasm build, edit-and-rebuild, warm caches, median of %d\n", n)
	fmt.Printf("  raw go build (wasip1, c-shared)        %8.0f ms   runs %v\n", ms(mr), list(raws))
	fmt.Printf("  fetcher+builder+upload over HTTP       %8.0f ms   runs %v\n", ms(mt), list(totals))
	fmt.Printf("    fetch %.0f ms, build %.0f ms, upload %.0f ms (medians)\n", ms(median(fetches)), ms(median(builds)), ms(median(uploads)))
	over := float64(mt-mr) / float64(mr) * 100
	verdict := "within"
	if over > 15 {
		verdict = "OVER"
	}
	fmt.Printf("  overhead %+.1f %% (%s the 15 %% goal)\n", over, verdict)
	met := "(met)"
	if over > 15 {
		met = "(MISSED)"
	}
	fmt.Printf("\nBENCH | go-wasm build via fetcher+builder+storage (median of %d) | %.0f ms | %.0f ms raw go build | %.2f | <= 1.15 %s\n",
		n, ms(mt), ms(mr), float64(mt)/float64(mr), met)
	return nil
}

func call(url string, in, out any) error {
	body, _ := json.Marshal(in)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(b, out)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func list(d []time.Duration) string {
	var parts []string
	for _, x := range d {
		parts = append(parts, fmt.Sprintf("%.0f", ms(x)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
