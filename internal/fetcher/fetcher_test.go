package fetcher

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
)

// fakePackages is an in-memory PackageGetter standing in for the store
// (the bbolt store is another package's, and the fetcher only reads).
type fakePackages struct {
	mu   sync.Mutex
	pkgs map[string]*v1.Package
}

func (f *fakePackages) put(p *v1.Package) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pkgs == nil {
		f.pkgs = map[string]*v1.Package{}
	}
	f.pkgs[p.Namespace+"/"+p.Name] = p
}

func (f *fakePackages) Get(_ context.Context, kind, ns, name string) (v1.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pkgs[ns+"/"+name]; ok && kind == v1.KindPackage {
		return p.DeepCopy(), nil
	}
	return nil, store.Errorf(store.ReasonNotFound, "%s %s/%s not found", kind, ns, name)
}

// env is a fetcher and a real storage service, both on loopback.
type env struct {
	shared  string
	storage string // storage service base URL
	fetcher string // fetcher base URL
	pkgs    *fakePackages
	f       *Fetcher
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	backend, err := storagesvc.NewLocalBackend(t.TempDir(), storagesvc.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	quiet := slog.New(slog.DiscardHandler)
	mux := http.NewServeMux()
	mux.Handle("/", storagesvc.NewServer(backend, storagesvc.Options{Logger: quiet}))
	st := httptest.NewServer(mux)
	t.Cleanup(st.Close)

	e := &env{shared: filepath.Join(t.TempDir(), "packages"), storage: st.URL, pkgs: &fakePackages{}}
	cfg := Config{SharedDir: e.shared, Packages: e.pkgs, SecretDir: t.TempDir(), ConfigDir: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	e.f = New(cfg)
	fs := httptest.NewServer(e.f.Handler())
	t.Cleanup(fs.Close)
	e.fetcher = fs.URL
	return e
}

// post sends a raw JSON body and returns status and body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, _ := zw.Create(n)
		w.Write([]byte(files[n]))
	}
	zw.Close()
	return buf.Bytes()
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func (e *env) upload(t *testing.T, data []byte) string {
	t.Helper()
	res, err := storagesvc.NewClient(e.storage, "").Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "a.zip", nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.URL
}

func pkg(name string, src, deploy v1.Archive, status v1.BuildStatus) *v1.Package {
	return &v1.Package{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "7"},
		Spec:       v1.PackageSpec{Environment: v1.EnvironmentReference{Namespace: "default", Name: "go"}, Source: src, Deployment: deploy},
		Status:     v1.PackageStatus{BuildStatus: status},
	}
}

// listShared lists the shared directory (names only, sorted).
func listShared(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func fetchJSON(fetchType int, pkgName, url, storage, filename string, keep bool) string {
	return `{"fetchType":` + itoa(fetchType) + `,"package":{"name":"` + pkgName + `","namespace":"default","resourceVersion":"7"},` +
		`"url":"` + url + `","storagesvcurl":"` + storage + `","filename":"` + filename + `",` +
		`"secretList":[],"configMapList":[],"keeparchive":` + map[bool]string{true: "true", false: "false"}[keep] + `}`
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestFetchSourceLiteralAndURL(t *testing.T) {
	e := newEnv(t, nil)
	src := zipOf(t, map[string]string{"hello.go": "package main\n", "sub/data.txt": "data"})
	e.pkgs.put(pkg("lit", v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: src}, v1.Archive{}, v1.BuildStatusPending))
	url := e.upload(t, src)
	e.pkgs.put(pkg("byurl", v1.Archive{Type: v1.ArchiveTypeURL, URL: url, Checksum: v1.Checksum{Type: "sha256", Sum: sum(src)}}, v1.Archive{}, v1.BuildStatusPending))

	for _, name := range []string{"lit", "byurl"} {
		code, body := post(t, e.fetcher+"/fetch", fetchJSON(0, name, "", e.storage, name+"-abcdef", false))
		if code != http.StatusOK {
			t.Fatalf("fetch %s: %d %s", name, code, body)
		}
		got, err := os.ReadFile(filepath.Join(e.shared, name+"-abcdef", "sub", "data.txt"))
		if err != nil || string(got) != "data" {
			t.Fatalf("fetch %s: extracted file: %q, %v", name, got, err)
		}
	}
	// A second fetch of an existing target is a no-op 200, as in Fission.
	if code, body := post(t, e.fetcher+"/fetch", fetchJSON(0, "lit", "", e.storage, "lit-abcdef", false)); code != 200 {
		t.Fatalf("refetch: %d %s", code, body)
	}
	// keeparchive keeps the zip as a file.
	if code, body := post(t, e.fetcher+"/fetch", fetchJSON(0, "lit", "", e.storage, "kept", true)); code != 200 {
		t.Fatalf("keeparchive fetch: %d %s", code, body)
	}
	if b, err := os.ReadFile(filepath.Join(e.shared, "kept")); err != nil || !bytes.Equal(b, src) {
		t.Fatalf("keeparchive: file differs (%v)", err)
	}
	// fetchType 2 takes the url directly; a non-zip stays a file.
	plain := e.upload(t, []byte("just a file"))
	if code, body := post(t, e.fetcher+"/fetch", fetchJSON(2, "", plain, e.storage, "user", false)); code != 200 {
		t.Fatalf("url fetch: %d %s", code, body)
	}
	if b, _ := os.ReadFile(filepath.Join(e.shared, "user")); string(b) != "just a file" {
		t.Fatalf("url fetch wrote %q", b)
	}
	if got := strings.Join(listShared(t, e.shared), " "); got != "byurl-abcdef kept lit-abcdef user" {
		t.Errorf("shared dir holds %q (temp files left?)", got)
	}
}

func TestFetchRefusals(t *testing.T) {
	e := newEnv(t, nil)
	good := zipOf(t, map[string]string{"hello.go": "package main\n"})
	url := e.upload(t, good)
	e.pkgs.put(pkg("badsum", v1.Archive{Type: v1.ArchiveTypeURL, URL: url, Checksum: v1.Checksum{Type: "sha256", Sum: strings.Repeat("0", 64)}}, v1.Archive{}, v1.BuildStatusPending))
	e.pkgs.put(pkg("unbuilt", v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: good}, v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: good}, v1.BuildStatusPending))
	e.pkgs.put(pkg("built", v1.Archive{}, v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: good}, v1.BuildStatusSucceeded))
	e.pkgs.put(pkg("nobuild", v1.Archive{}, v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: good}, v1.BuildStatusNone))

	var slip bytes.Buffer
	zw := zip.NewWriter(&slip)
	w, _ := zw.Create("../../escaped.txt")
	w.Write([]byte("pwned"))
	zw.Close()
	e.pkgs.put(pkg("slip", v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: slip.Bytes()}, v1.Archive{}, v1.BuildStatusPending))

	cases := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"checksum mismatch", fetchJSON(0, "badsum", "", e.storage, "badsum-x", false), 422, "checksum mismatch"},
		{"deployment not built", fetchJSON(1, "unbuilt", "", e.storage, "unbuilt-x", false), 409, `buildstatus is "pending"`},
		{"zip slip", fetchJSON(0, "slip", "", e.storage, "slip-x", false), 422, `"../../escaped.txt"`},
		{"missing package", fetchJSON(0, "nope", "", e.storage, "nope-x", false), 404, "default/nope not found"},
		{"bad filename", fetchJSON(0, "built", "", e.storage, "../outside", false), 400, `filename "../outside"`},
		{"bad fetch type", fetchJSON(7, "built", "", e.storage, "x", false), 400, "fetchType 7"},
		{"not json", `{"fetchType":`, 400, "bad request body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := post(t, e.fetcher+"/fetch", c.body)
			if code != c.code || !strings.Contains(body, c.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, c.code, c.msg)
			}
		})
	}
	if got := listShared(t, e.shared); len(got) != 0 {
		t.Errorf("refused fetches left %v in the shared dir", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.shared), "escaped.txt")); !os.IsNotExist(err) {
		t.Errorf("zip slip wrote outside the shared dir")
	}
	for _, name := range []string{"built", "nobuild"} {
		if code, body := post(t, e.fetcher+"/fetch", fetchJSON(1, name, "", e.storage, name+"-d", false)); code != 200 {
			t.Errorf("deployment fetch of %s: %d %s", name, code, body)
		}
	}
}

func TestUpload(t *testing.T) {
	e := newEnv(t, nil)
	deploy := filepath.Join(e.shared, "src-qwerty")
	if err := os.MkdirAll(deploy, 0o755); err != nil {
		t.Fatal(err)
	}
	wasm := bytes.Repeat([]byte("\x00asm"), 1000)
	os.WriteFile(filepath.Join(deploy, "main.wasm"), wasm, 0o644)

	code, body := post(t, e.fetcher+"/upload", `{"filename":"src-qwerty","storagesvcurl":"`+e.storage+`","archivepackage":true}`)
	if code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	// The exact JSON keys of Fission's ArchiveUploadResponse.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 || raw["archiveDownloadUrl"] == nil || raw["checksum"] == nil {
		t.Fatalf("response keys: %s", body)
	}
	var resp ArchiveUploadResponse
	json.Unmarshal([]byte(body), &resp)
	if resp.Checksum.Type != "sha256" || len(resp.Checksum.Sum) != 64 {
		t.Fatalf("checksum: %+v", resp.Checksum)
	}
	if !strings.HasPrefix(resp.ArchiveDownloadURL, e.storage+"/v1/archive?id=") {
		t.Fatalf("download url %q", resp.ArchiveDownloadURL)
	}
	// The stored bytes are a zip with main.wasm at its root, matching the sum.
	r, err := http.Get(resp.ArchiveDownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if sum(data) != resp.Checksum.Sum {
		t.Fatalf("stored archive sha256 %s, response says %s", sum(data), resp.Checksum.Sum)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil || len(zr.File) != 1 || zr.File[0].Name != "main.wasm" {
		t.Fatalf("deploy archive: %v %v", err, zr)
	}
	// The local DEPLOY_PKG is gone, and no temp zip is left.
	if got := listShared(t, e.shared); len(got) != 0 {
		t.Errorf("shared dir after upload: %v", got)
	}

	// Errors: missing file, directory without archivepackage, bad name.
	os.MkdirAll(deploy, 0o755)
	for _, c := range []struct{ body, msg string }{
		{`{"filename":"gone","storagesvcurl":"` + e.storage + `","archivepackage":true}`, "does not exist"},
		{`{"filename":"src-qwerty","storagesvcurl":"` + e.storage + `","archivepackage":false}`, "is a directory"},
		{`{"filename":"/etc","storagesvcurl":"` + e.storage + `","archivepackage":true}`, "not a plain name"},
		{`{"filename":"src-qwerty","storagesvcurl":"","archivepackage":true}`, "storagesvcurl is empty"},
	} {
		if code, body := post(t, e.fetcher+"/upload", c.body); code < 400 || !strings.Contains(body, c.msg) {
			t.Errorf("upload %s: %d %q, want error with %q", c.body, code, body, c.msg)
		}
	}
}

// fakeRuntime records specialize calls, standing in for a language
// runtime (the real wasm-env is another package's).
type fakeRuntime struct {
	mu     sync.Mutex
	path   string
	ctype  string
	body   []byte
	status int
}

func (f *fakeRuntime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.path, f.ctype, f.body = r.URL.Path, r.Header.Get("Content-Type"), b
	status := f.status
	f.mu.Unlock()
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	io.WriteString(w, "runtime says hi")
}

func TestSpecialize(t *testing.T) {
	rt := &fakeRuntime{}
	rts := httptest.NewServer(rt)
	defer rts.Close()
	e := newEnv(t, func(c *Config) { c.RuntimeURL = rts.URL })
	deploy := zipOf(t, map[string]string{"main.wasm": "\x00asm"})
	e.pkgs.put(pkg("fn", v1.Archive{}, v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: deploy, Checksum: v1.Checksum{Type: "sha256", Sum: sum(deploy)}}, v1.BuildStatusSucceeded))

	body := `{"FetchReq":` + fetchJSON(1, "fn", "", e.storage, "deployarchive", false) +
		`,"LoadReq":{"filepath":"` + filepath.Join(e.shared, "deployarchive") + `","functionName":"Handler","url":"/","FunctionMetadata":{"name":"hello","namespace":"default","uid":"u-1"},"envVersion":2}}`
	if code, msg := post(t, e.fetcher+"/specialize", body); code != 200 {
		t.Fatalf("specialize: %d %s", code, msg)
	}
	if _, err := os.Stat(filepath.Join(e.shared, "deployarchive", "main.wasm")); err != nil {
		t.Fatalf("deploy archive not fetched: %v", err)
	}
	rt.mu.Lock()
	if rt.path != "/v2/specialize" || rt.ctype != "application/json" {
		t.Fatalf("runtime got %s %s", rt.path, rt.ctype)
	}
	var load map[string]json.RawMessage
	json.Unmarshal(rt.body, &load)
	var keys []string
	for k := range load {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "FunctionMetadata,envVersion,filepath,functionName,url" {
		t.Fatalf("load request keys %s (%s)", got, rt.body)
	}
	if !strings.Contains(string(load["FunctionMetadata"]), `"uid":"u-1"`) {
		t.Errorf("FunctionMetadata not passed through: %s", load["FunctionMetadata"])
	}
	rt.mu.Unlock()

	// v1 runtimes: /specialize with an empty text/plain body.
	body = strings.Replace(body, `"envVersion":2`, `"envVersion":1`, 1)
	if code, msg := post(t, e.fetcher+"/specialize", body); code != 200 {
		t.Fatalf("v1 specialize: %d %s", code, msg)
	}
	rt.mu.Lock()
	if rt.path != "/specialize" || rt.ctype != "text/plain" || len(rt.body) != 0 {
		t.Errorf("v1 runtime got %s %s %q", rt.path, rt.ctype, rt.body)
	}
	rt.status = 500
	rt.mu.Unlock()

	// A runtime error is the specialize's error, with the runtime's words.
	code, msg := post(t, e.fetcher+"/specialize", body)
	if code != 500 || !strings.Contains(msg, "runtime says hi") {
		t.Errorf("failing runtime: %d %q", code, msg)
	}
}

func TestReadinessAndUnreachableRuntime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens here now: every dial is refused
	e := newEnv(t, func(c *Config) { c.RuntimeURL = dead })
	e.pkgs.put(pkg("fn", v1.Archive{}, v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: []byte("plain")}, v1.BuildStatusSucceeded))

	get := func(path string) int {
		resp, err := http.Get(e.fetcher + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 || get("/readiness-healthz") != 200 || get("/version") != 200 {
		t.Fatal("health endpoints not 200 before any specialization")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var req FunctionSpecializeRequest
	json.Unmarshal([]byte(`{"FetchReq":`+fetchJSON(1, "fn", "", e.storage, "user", false)+`,"LoadReq":{"envVersion":2}}`), &req)
	err = e.f.SpecializeOnStartup(ctx, req)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("specialize against a dead runtime: %v", err)
	}
	if get("/readiness-healthz") != http.StatusServiceUnavailable {
		t.Error("readiness is 200 although specialize-on-startup failed")
	}
}

// fakeSecrets stands in for Kubernetes Secrets and ConfigMaps, which the
// embedded mode does not have.
type fakeSecrets struct{}

func (fakeSecrets) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	return map[string][]byte{"password": []byte("s3cret")}, nil
}
func (fakeSecrets) ConfigMap(_ context.Context, ns, name string) (map[string]string, error) {
	return map[string]string{"mode": "fast"}, nil
}

func TestSecretsAndConfigMaps(t *testing.T) {
	withList := func(e *env, filename string) string {
		return strings.Replace(strings.Replace(fetchJSON(2, "", e.upload(t, []byte("x")), e.storage, filename, false),
			`"secretList":[]`, `"secretList":[{"namespace":"default","name":"db"}]`, 1),
			`"configMapList":[]`, `"configMapList":[{"namespace":"default","name":"cfg"}]`, 1)
	}
	var secretDir, configDir string
	e := newEnv(t, func(c *Config) { c.Secrets = fakeSecrets{}; secretDir, configDir = c.SecretDir, c.ConfigDir })
	if code, body := post(t, e.fetcher+"/fetch", withList(e, "a")); code != 200 {
		t.Fatalf("fetch with secrets: %d %s", code, body)
	}
	if b, err := os.ReadFile(filepath.Join(secretDir, "default", "db", "password")); err != nil || string(b) != "s3cret" {
		t.Errorf("secret file: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(configDir, "default", "cfg", "mode")); err != nil || string(b) != "fast" {
		t.Errorf("configmap file: %q %v", b, err)
	}

	// Without a source the lists are accepted and nothing is written.
	e2 := newEnv(t, func(c *Config) { secretDir = c.SecretDir })
	if code, body := post(t, e2.fetcher+"/fetch", withList(e2, "a")); code != 200 {
		t.Fatalf("fetch with secrets, no source: %d %s", code, body)
	}
	n := 0
	filepath.WalkDir(secretDir, func(string, fs.DirEntry, error) error { n++; return nil })
	if n != 1 {
		t.Errorf("secret dir written without a secret source")
	}
}
