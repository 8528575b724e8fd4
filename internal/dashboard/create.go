package dashboard

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// The create form makes what `isotope fn create --src FILE --url URL`
// makes: a Package whose source is a literal zip (the form's upload, or
// its inline code as one file), a Function and, with a URL, an
// HTTPTrigger. Bigger sources go through the CLI and the storage service.

type newForm struct {
	Envs                                               []*v1.Environment
	Name, Env, Entrypoint, URL, Method, Code, FileName string
}

const defaultCode = `package main

import (
	"fmt"
	"log"
	"net/http"
)

// Handler answers every request to the function; its log shows each one.
func Handler(w http.ResponseWriter, r *http.Request) {
	log.Printf("%s %s", r.Method, r.URL.Path)
	fmt.Fprintf(w, "Hello from Isotope! You asked for %s\n", r.URL.Path)
}
`

func (d *Dashboard) newForm(w http.ResponseWriter, r *http.Request, p *page) {
	f := &newForm{Entrypoint: "Handler", Method: http.MethodGet, Code: defaultCode, FileName: "handler.go"}
	d.renderNew(w, r, p, f, http.StatusOK)
}

func (d *Dashboard) renderNew(w http.ResponseWriter, r *http.Request, p *page, f *newForm, code int) {
	envs, _, err := store.ListAs[*v1.Environment](r.Context(), d.cfg.Store, store.ListOptions{})
	if err != nil {
		d.failStore(w, r, err)
		return
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].Namespace+"/"+envs[i].Name < envs[j].Namespace+"/"+envs[j].Name })
	f.Envs = envs
	p.Title, p.Data = "New function", f
	d.render(w, r, code, "new", p)
}

func (d *Dashboard) create(w http.ResponseWriter, r *http.Request, p *page) {
	f := &newForm{
		Name:       strings.TrimSpace(r.PostFormValue("name")),
		Env:        strings.TrimSpace(r.PostFormValue("env")),
		Entrypoint: strings.TrimSpace(r.PostFormValue("entrypoint")),
		URL:        strings.TrimSpace(r.PostFormValue("url")),
		Method:     strings.ToUpper(strings.TrimSpace(r.PostFormValue("method"))),
		Code:       r.PostFormValue("code"),
		FileName:   strings.TrimSpace(r.PostFormValue("filename")),
	}
	again := func(code int, msg string) {
		p.Error = msg
		d.renderNew(w, r, p, f, code)
	}
	ns, env, ok := strings.Cut(f.Env, "/")
	if !ok {
		ns, env = v1.DefaultNamespace, f.Env
	}
	if f.Name == "" {
		again(http.StatusBadRequest, "name: give the function a name")
		return
	}
	if msgs := validation.IsDNS1123Subdomain(f.Name); len(msgs) > 0 {
		again(http.StatusBadRequest, fmt.Sprintf("name %q: %s", f.Name, strings.Join(msgs, "; ")))
		return
	}
	if env == "" {
		again(http.StatusBadRequest, "environment: choose one (create one with isotope env create)")
		return
	}
	ctx := r.Context()
	if _, err := store.GetAs[*v1.Environment](ctx, d.cfg.Store, ns, env); err != nil {
		again(http.StatusBadRequest, fmt.Sprintf("environment %q: %v", f.Env, err))
		return
	}
	if f.URL != "" && !strings.HasPrefix(f.URL, "/") {
		again(http.StatusBadRequest, fmt.Sprintf("route %q: a route URL starts with /", f.URL))
		return
	}
	src, msg := d.sourceArchive(r, f)
	if msg != "" {
		code := http.StatusBadRequest
		if strings.Contains(msg, "larger than") {
			code = http.StatusRequestEntityTooLarge
		}
		again(code, msg)
		return
	}
	pkg := &v1.Package{
		ObjectMeta: metav1.ObjectMeta{Name: packageName(f.Name), Namespace: ns},
		Spec:       v1.PackageSpec{Environment: v1.EnvironmentReference{Namespace: ns, Name: env}, Source: src},
		Status:     v1.PackageStatus{BuildStatus: v1.BuildStatusPending, LastUpdateTimestamp: nowMeta()},
	}
	v1.SetTypeMeta(pkg)
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: f.Name, Namespace: ns}}
	v1.SetTypeMeta(fn)
	fn.Spec.Environment = v1.EnvironmentReference{Namespace: ns, Name: env}
	fn.Spec.Package.FunctionName = f.Entrypoint
	fn.Spec.InvokeStrategy.StrategyType = v1.StrategyTypeExecution
	fn.Spec.InvokeStrategy.ExecutionStrategy.ExecutorType = v1.ExecutorTypePoolmgr
	var route *v1.HTTPTrigger
	if f.URL != "" {
		method := f.Method
		if method == "" {
			method = http.MethodGet
		}
		route = &v1.HTTPTrigger{ObjectMeta: metav1.ObjectMeta{Name: packageName(f.Name), Namespace: ns}}
		v1.SetTypeMeta(route)
		route.Spec.RelativeURL = f.URL
		route.Spec.Methods = []string{method}
		route.Spec.FunctionReference = v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: f.Name}
	}
	// Refuse a taken name before anything is stored.
	if _, err := store.GetAs[*v1.Function](ctx, d.cfg.Store, ns, f.Name); err == nil {
		again(http.StatusConflict, fmt.Sprintf("name: a function %q already exists in namespace %s", f.Name, ns))
		return
	}
	obj, err := d.cfg.Store.Create(ctx, pkg)
	if err != nil {
		again(codeOf(err), "package: "+err.Error())
		return
	}
	created := obj.(*v1.Package)
	fn.Spec.Package.PackageRef = v1.PackageRef{Namespace: ns, Name: created.Name, ResourceVersion: created.ResourceVersion}
	if _, err := d.cfg.Store.Create(ctx, fn); err != nil {
		_ = d.cfg.Store.Delete(context.WithoutCancel(ctx), v1.KindPackage, ns, created.Name, "")
		again(codeOf(err), "function: "+err.Error())
		return
	}
	if route != nil {
		if _, err := d.cfg.Store.Create(ctx, route); err != nil {
			// The function stands; say why its route does not.
			p.Error = "the function was created, but its route was refused: " + err.Error()
		}
	}
	// The package page follows the build live and links to the function.
	target := Prefix + "packages/" + ns + "/" + created.Name
	if p.Error != "" {
		d.renderFunction(w, r, p, nil, invokeForm{Method: http.MethodGet, Path: "/"}, http.StatusOK)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// sourceArchive zips the form's upload (used as is when it is a zip) or
// its inline code; it must fit a literal archive.
func (d *Dashboard) sourceArchive(r *http.Request, f *newForm) (v1.Archive, string) {
	var name string
	var data []byte
	if file, hdr, err := r.FormFile("file"); err == nil {
		defer file.Close()
		b, err := io.ReadAll(io.LimitReader(file, v1.ArchiveLiteralSizeLimit+1))
		if err != nil {
			return v1.Archive{}, "file: " + err.Error()
		}
		name, data = path.Base(strings.ReplaceAll(hdr.Filename, "\\", "/")), b
		f.FileName = name
	} else {
		name, data = f.FileName, []byte(f.Code)
		if name == "" {
			name = "handler.go"
		}
		if strings.TrimSpace(f.Code) == "" {
			return v1.Archive{}, "code: give the function's code, or upload a file"
		}
	}
	if name == "" || name == "." || name == "/" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, "..") {
		return v1.Archive{}, fmt.Sprintf("file name %q: give a plain file name such as handler.go", name)
	}
	if len(data) > v1.ArchiveLiteralSizeLimit {
		return v1.Archive{}, fmt.Sprintf("file %s is larger than %d KiB; create bigger functions with isotope fn create --src", name, v1.ArchiveLiteralSizeLimit>>10)
	}
	zipped := data
	if !strings.HasSuffix(strings.ToLower(name), ".zip") {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err == nil {
			_, err = w.Write(data)
		}
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return v1.Archive{}, "zip " + name + ": " + err.Error()
		}
		zipped = buf.Bytes()
	} else if _, err := zip.NewReader(bytes.NewReader(data), int64(len(data))); err != nil {
		return v1.Archive{}, fmt.Sprintf("file %s: not a zip archive: %v", name, err)
	}
	if len(zipped) > v1.ArchiveLiteralSizeLimit {
		return v1.Archive{}, fmt.Sprintf("file %s is larger than %d KiB zipped; create bigger functions with isotope fn create --src", name, v1.ArchiveLiteralSizeLimit>>10)
	}
	sum := sha256.Sum256(zipped)
	return v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: zipped,
		Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])}}, ""
}

// packageName is name with a random suffix, as the CLI names packages.
func packageName(name string) string {
	var b [4]byte
	rand.Read(b[:])
	if len(name) > 54 {
		name = strings.TrimRight(name[:54], "-.")
	}
	return name + "-" + hex.EncodeToString(b[:])
}

func nowMeta() metav1.Time { return metav1.Now() }

func codeOf(err error) int {
	switch {
	case store.IsAlreadyExists(err) || store.IsConflict(err):
		return http.StatusConflict
	case store.IsInvalid(err):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
