// Command build measures the built-in builds as the platform runs them —
// the fetcher pulls the source package, the builder runs the build
// command (`isotope build go-wasm`, `c-wasm`, `rust-wasm`), the fetcher
// zips and uploads the result to the storage service, all over HTTP on
// loopback — against the raw compiler command of the same source in the
// same run:
//
//   - go-wasm: `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`
//     with the same warm GOCACHE and GOMODCACHE;
//
//   - c-wasm: the clang command the builder runs, on examples/hello-c;
//
//   - rust-wasm: the cargo build the builder runs, on examples/hello-rust
//     (a fresh target directory on both sides, as in the builder).
//
//     go run ./bench/build [-n 5] [-lang go,c,rust]    (the suite runs -n 3: bench.args)
//
// Each iteration edits the source (a new constant for Go, a new comment
// line for C and Rust), so both sides compile it again, as after a
// user's edit. One unmeasured warm-up iteration, then the median of n of
// each side and the ratio (goal: at most 1.15), and an info row with the
// CPU time (user+system of this process and the compilers) of each side,
// which a busy machine disturbs less than the wall time. A language
// whose toolchain is not installed gets a row saying so instead of
// figures.
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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
)

func main() {
	n := flag.Int("n", 5, "measured runs of each side (after one warm-up run each)")
	langs := flag.String("lang", "go,c,rust", "comma-separated builds to measure: go, c, rust")
	flag.Parse()
	var cases []buildCase
	for _, l := range strings.Split(*langs, ",") {
		c, ok := allCases[strings.TrimSpace(l)]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench/build: -lang %q: unknown (go, c, rust)\n", l)
			os.Exit(2)
		}
		cases = append(cases, c)
	}
	if err := run(*n, cases); err != nil {
		fmt.Fprintln(os.Stderr, "bench/build:", err)
		os.Exit(1)
	}
}

// A buildCase is one built-in builder measured against its raw compiler
// command (cases.go).
type buildCase struct {
	name    string // "c-wasm": the row's name
	command string // the builder's build command
	rawName string // the baseline, as the row names it: "raw clang"
	// prepare finds the toolchain; an error skips the case, saying why.
	prepare func() error
	// source is the function's source at version v (file name → text).
	source func(v int) map[string]string
	// raw times the raw compiler command on source(v) written into dir.
	raw func(dir string, v int) (time.Duration, error)
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

// platform is the storage service, fetcher and builder, each on its own
// loopback port.
type platform struct {
	storage, fetcher, builder string
	pkgs                      *packages
}

type phases struct{ fetch, build, upload, total time.Duration }

// pipeline builds files with command the way the builder manager does:
// fetch the source into the shared directory, build, upload the zipped
// artifact, clean up.
func (p *platform) pipeline(name string, files map[string]string, command string) (phases, error) {
	var ph phases
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for fn, body := range files {
		w, _ := zw.Create(fn)
		io.WriteString(w, body)
	}
	zw.Close()
	p.pkgs.mu.Lock()
	p.pkgs.m[name] = &v1.Package{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:   v1.PackageSpec{Source: v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: zbuf.Bytes()}},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusRunning}}
	p.pkgs.mu.Unlock()

	start := time.Now()
	src := name + "-abcdef"
	fetchReq := fetcher.FunctionFetchRequest{FetchType: fetcher.FetchSource,
		Package: metav1.ObjectMeta{Name: name, Namespace: "default"}, Filename: src}
	if err := call(p.fetcher+"/fetch", fetchReq, nil); err != nil {
		return ph, err
	}
	ph.fetch = time.Since(start)
	t := time.Now()
	var bresp builder.PackageBuildResponse
	if err := call(p.builder+"/", builder.PackageBuildRequest{SrcPkgFilename: src, Command: command}, &bresp); err != nil {
		return ph, fmt.Errorf("%w\n%s", err, bresp.BuildLogs)
	}
	ph.build = time.Since(t)
	t = time.Now()
	var uresp fetcher.ArchiveUploadResponse
	if err := call(p.fetcher+"/upload", fetcher.ArchiveUploadRequest{Filename: bresp.ArtifactFilename,
		StorageSvcURL: p.storage, ArchivePackage: true}, &uresp); err != nil {
		return ph, err
	}
	ph.upload = time.Since(t)
	req, _ := http.NewRequest(http.MethodDelete, p.builder+"/clean?name="+src, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ph, err
	}
	resp.Body.Close()
	ph.total = time.Since(start)
	return ph, nil
}

func run(n int, cases []buildCase) error {
	tmp, err := os.MkdirTemp("", "isotope-bench-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	quiet := slog.New(slog.DiscardHandler)

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
		Env: append([]string{"ISOTOPE_GO_CACHE=" + filepath.Join(tmp, "gocache")}, goCaches()...)}).Handler())
	defer bsrv.Close()
	p := &platform{storage: storage.URL, fetcher: fsrv.URL, builder: bsrv.URL, pkgs: pkgs}

	var rows []string
	for _, c := range cases {
		row, err := measure(p, c, n, tmp)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		rows = append(rows, row)
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}

// measure runs one case: a warm-up iteration, then n of the pipeline and
// n of the raw command, interleaved.
func measure(p *platform, c buildCase, n int, tmp string) (string, error) {
	title := fmt.Sprintf("%s build via fetcher+builder+storage (median of %d)", c.name, n)
	if err := c.prepare(); err != nil {
		fmt.Printf("%s: skipped: %v\n", c.name, err)
		return fmt.Sprintf("BENCH | %s | - | - | - | info (skipped: %s)", title, oneLine(err)), nil
	}
	var raws, totals, fetches, builds, uploads, rawCPU, totalCPU []time.Duration
	version := int(time.Now().UnixNano() % 1e9) // never seen by a cache before
	for i := 0; i <= n; i++ {
		version += 2
		var ph phases
		var r time.Duration
		var pcpu, rcpu time.Duration
		pipeline := func() (err error) {
			before := cpuTime()
			ph, err = p.pipeline(fmt.Sprintf("%s-%d", c.name, version), c.source(version), c.command)
			pcpu = cpuTime() - before
			if err != nil {
				err = fmt.Errorf("pipeline: %w", err)
			}
			return err
		}
		raw := func() (err error) {
			dir := filepath.Join(tmp, fmt.Sprintf("raw-%s-%d", c.name, version+1))
			defer os.RemoveAll(dir)
			before := cpuTime()
			r, err = c.raw(dir, version+1)
			rcpu = cpuTime() - before
			return err
		}
		// Each side goes first every other iteration, so neither always
		// finds the page cache (or a neighbour's load) the other left.
		first, second := pipeline, raw
		if i%2 == 1 {
			first, second = raw, pipeline
		}
		if err := first(); err != nil {
			return "", err
		}
		if err := second(); err != nil {
			return "", err
		}
		if i == 0 {
			continue // warm-up: caches, the builder's toolchain probes
		}
		raws, totals = append(raws, r), append(totals, ph.total)
		rawCPU, totalCPU = append(rawCPU, rcpu), append(totalCPU, pcpu)
		fetches, builds, uploads = append(fetches, ph.fetch), append(builds, ph.build), append(uploads, ph.upload)
	}
	mr, mt := median(raws), median(totals)
	fmt.Printf("%s build, edit-and-rebuild, median of %d\n", c.name, n)
	fmt.Printf("  %-38s %8.0f ms   runs %v\n", c.rawName, ms(mr), list(raws))
	fmt.Printf("  %-38s %8.0f ms   runs %v\n", "fetcher+builder+upload over HTTP", ms(mt), list(totals))
	fmt.Printf("    fetch %.0f ms, build %.0f ms, upload %.0f ms (medians)\n", ms(median(fetches)), ms(median(builds)), ms(median(uploads)))
	mrc, mtc := median(rawCPU), median(totalCPU)
	fmt.Printf("  CPU time (user+system, this process and its children): raw %.0f ms %v, pipeline %.0f ms %v\n",
		ms(mrc), list(rawCPU), ms(mtc), list(totalCPU))
	ratio := float64(mt) / float64(mr)
	fmt.Printf("  overhead %+.1f %% (CPU time %+.1f %%)\n\n", (ratio-1)*100, (float64(mtc)/float64(mrc)-1)*100)
	met := "(met)"
	if ratio > 1.15 {
		met = "(MISSED)"
	}
	return fmt.Sprintf("BENCH | %s | %.0f ms | %.0f ms %s | %.2f | <= 1.15 %s\n"+
		"BENCH | %s build CPU time (median of %d) | %.0f ms | %.0f ms %s | %.2f | info (user+system of the build and its compilers: steadier than wall time on a busy machine)",
		title, ms(mt), ms(mr), c.rawName, ratio, met,
		c.name, n, ms(mtc), ms(mrc), c.rawName, float64(mtc)/float64(mrc)), nil
}

// cpuTime is the user and system time of this process (the fetcher,
// builder and storage service, and builds run in-process) and of its
// children that ended (compilers).
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// oneLine is err's message on one line, without the table's separator.
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	return strings.ReplaceAll(s, "|", "/")
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

// writeFiles writes files (slash-separated names) under dir.
func writeFiles(dir string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readExample reads files of examples/<dir> (the bench runs from the
// repository root).
func readExample(dir string, names ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("examples", dir, filepath.FromSlash(n)))
		if err != nil {
			return nil, fmt.Errorf("the example's source (run from the repository root): %w", err)
		}
		out[n] = string(b)
	}
	return out, nil
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
