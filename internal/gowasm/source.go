package gowasm

import (
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// wrapperFile is the file the builder adds to the user's package.
const wrapperFile = "isotope_generated_main.go"

// sdkImportName is the wrapper's name for the SDK import: unlikely to
// collide with a package-level name of the user's.
const sdkImportName = "isotopeguestsdk"

// copySource copies the user's source (a .go file, or a directory) into
// work and returns the directory holding the package: a single file is
// copied into work itself; a directory whose only content is one
// directory (a zip of a folder) is descended into.
func copySource(src, work string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src, errors.Unwrap(err))
	}
	if !st.IsDir() {
		name := filepath.Base(src)
		if !strings.HasSuffix(name, ".go") {
			// Fission's fetcher names a single-file source after the
			// package, without an extension.
			name = "function.go"
		}
		return work, copyFile(src, filepath.Join(work, name), 0o644)
	}
	for {
		next, ok, err := soleSubdir(src)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		src = next
	}
	return work, copyTree(src, work)
}

// soleSubdir reports whether dir holds no go.mod and no .go file, only
// one directory (ignoring dot files and __MACOSX), and returns it.
func soleSubdir(dir string) (string, bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", false, err
	}
	var sub string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || n == "__MACOSX" {
			continue
		}
		if !e.IsDir() || sub != "" {
			return "", false, nil
		}
		sub = n
	}
	if sub == "" {
		return "", false, nil
	}
	return filepath.Join(dir, sub), true, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "__MACOSX") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, target, info.Mode().Perm()|0o600)
		}
		return nil // sockets, devices: not source
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// findHandlers parses the package in dir as the wasip1/wasm build sees
// it and returns the names of its top-level functions of type
// func(http.ResponseWriter, *http.Request), sorted. The package must be
// main and must not declare main, which the wrapper provides.
func findHandlers(dir string) ([]string, error) {
	ctxt := build.Default
	ctxt.GOOS, ctxt.GOARCH, ctxt.CgoEnabled = "wasip1", "wasm", false
	ctxt.Dir = dir
	pkg, err := ctxt.ImportDir(dir, 0)
	if err != nil {
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil, errors.New("no Go source files for GOOS=wasip1 GOARCH=wasm at the top of the source package")
		}
		return nil, fmt.Errorf("reading the source package: %w", err)
	}
	if pkg.Name != "main" {
		return nil, fmt.Errorf("the source is package %s; a function must be package main (as for Fission's Go environment)", pkg.Name)
	}
	fset := token.NewFileSet()
	var names []string
	for _, name := range pkg.GoFiles {
		if name == wrapperFile {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err // the go parser's own message, with file:line:col
		}
		httpName := importName(f, "net/http")
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv != nil {
				continue
			}
			if fd.Name.Name == "main" {
				pos := fset.Position(fd.Pos())
				return nil, fmt.Errorf("%s:%d: func main is declared; remove it: the go-wasm builder provides main and registers your handlers", name, pos.Line)
			}
			if httpName != "" && isHandlerFunc(fd, httpName) {
				names = append(names, fd.Name.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no handler found: the package needs a top-level func with the signature func(w http.ResponseWriter, r *http.Request), e.g. func Handler")
	}
	sort.Strings(names)
	return names, nil
}

// importName is the name under which f imports path, or "" if it does
// not (or imports it with _ or .).
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil || p != path {
			continue
		}
		if imp.Name == nil {
			return path[strings.LastIndex(path, "/")+1:]
		}
		if imp.Name.Name == "_" || imp.Name.Name == "." {
			return ""
		}
		return imp.Name.Name
	}
	return ""
}

// isHandlerFunc reports whether fd is func(<http>.ResponseWriter, *<http>.Request)
// with no results and no type parameters.
func isHandlerFunc(fd *ast.FuncDecl, httpName string) bool {
	t := fd.Type
	if t.TypeParams != nil && len(t.TypeParams.List) > 0 || t.Results != nil && len(t.Results.List) > 0 {
		return false
	}
	var params []ast.Expr
	for _, field := range t.Params.List {
		n := max(len(field.Names), 1)
		for range n {
			params = append(params, field.Type)
		}
	}
	if len(params) != 2 {
		return false
	}
	star, ok := params[1].(*ast.StarExpr)
	return ok && isSelector(params[0], httpName, "ResponseWriter") && isSelector(star.X, httpName, "Request")
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// wrapperSource is the generated file: it registers every handler by
// name and declares the empty main a c-shared wasip1 build needs.
func wrapperSource(handlers []string) []byte {
	var b strings.Builder
	b.WriteString("// Code generated by isotope build go-wasm. DO NOT EDIT.\n\npackage main\n\n")
	fmt.Fprintf(&b, "import %s %q\n\nfunc init() {\n", sdkImportName, sdkPackage)
	for _, h := range handlers {
		fmt.Fprintf(&b, "\t%s.Register(%q, %s)\n", sdkImportName, h, h)
	}
	b.WriteString("}\n\nfunc main() {}\n")
	return []byte(b.String())
}
