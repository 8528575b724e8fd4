package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/spec"
)

// specFlags are Fission's --spec and --dry on create commands: instead of
// creating objects, write their YAML into the spec directory (for `spec
// apply`) or print it.
type specFlags struct {
	spec    bool
	dry     bool
	specDir string
}

func (s *specFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&s.spec, "spec", false, "write the YAML into --specdir instead of creating")
	cmd.Flags().StringVar(&s.specDir, "specdir", "specs", "spec directory for --spec")
	cmd.Flags().BoolVar(&s.dry, "dry", false, "print the YAML instead of creating")
}

// save handles --spec and --dry: it reports done when it wrote or printed
// the objects (and the caller must not create them). file is the spec
// file's name without extension (env-NAME, function-NAME …).
func (s *specFlags) save(cmd *cobra.Command, file string, objs ...any) (bool, error) {
	if !s.spec && !s.dry {
		return false, nil
	}
	doc, err := yamlDocuments(objs...)
	if err != nil {
		return true, err
	}
	if s.dry {
		_, err := cmd.OutOrStdout().Write(doc)
		return true, err
	}
	if err := os.MkdirAll(s.specDir, 0o755); err != nil {
		return true, fmt.Errorf("--specdir: %w", err)
	}
	path := filepath.Join(s.specDir, file+".yaml")
	if _, err := os.Stat(path); err == nil {
		return true, fmt.Errorf("--spec: %s already exists; remove it or edit it", path)
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		return true, fmt.Errorf("--spec: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "saved %s\n", path)
	return true, nil
}

// yamlDocuments renders objects (v1 objects and spec documents such as
// ArchiveUploadSpecs) as a multi-document YAML stream, without the fields
// a store fills in.
func yamlDocuments(docs ...any) ([]byte, error) {
	var buf bytes.Buffer
	for i, d := range docs {
		if o, ok := d.(v1.Object); ok {
			o = o.DeepCopyObject().(v1.Object)
			v1.SetTypeMeta(o)
			o.SetUID("")
			o.SetResourceVersion("")
			o.SetGeneration(0)
			d = o
		}
		b, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// archive makes a package archive for a create command. With --spec, one
// local file or directory becomes an ArchiveUploadSpec called name and
// the archive refers to it as archive://name, so the spec directory holds
// no code and `spec apply` zips the current files each time. Anything
// else (a .zip, several files or globs, a URL, --code, or no --spec) is
// made as makeArchive makes it.
func (s *specFlags) archive(ctx context.Context, g *Globals, cmd *cobra.Command, req archiveRequest, name string) (v1.Archive, *spec.ArchiveUploadSpec, error) {
	p := ""
	if len(req.paths) == 1 {
		p = req.paths[0]
	}
	if !s.spec || req.raw || p == "" || isURL(p) || strings.ContainsAny(p, "*?[") || strings.EqualFold(filepath.Ext(p), ".zip") {
		a, err := makeArchive(ctx, g, req, cmd.ErrOrStderr())
		return a, nil, err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return v1.Archive{}, nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return v1.Archive{}, nil, fmt.Errorf("--%s: %w", req.flag, err)
	}
	dir, include := filepath.Dir(abs), filepath.Base(abs)
	if st.IsDir() {
		dir, include = abs, "*" // the directory's contents at the archive's root
	}
	// RootDir is relative to the spec directory's parent, which `spec
	// apply` confines archives to (so the project can move, and a spec
	// directory cannot reach files outside its project).
	specAbs, err := filepath.Abs(s.specDir)
	if err != nil {
		return v1.Archive{}, nil, err
	}
	project := filepath.Dir(specAbs)
	rel, err := filepath.Rel(project, dir)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return v1.Archive{}, nil, fmt.Errorf("--%s: %s is outside the project directory %s (the spec directory's parent); "+
			"spec files may only archive files inside it: move the files there, or give a .zip", req.flag, p, project)
	}
	rootDir := filepath.ToSlash(rel)
	doc := &spec.ArchiveUploadSpec{APIVersion: v1.APIVersion, Kind: spec.KindArchiveUploadSpec, Name: name, RootDir: rootDir, Include: []string{include}}
	return v1.Archive{Type: v1.ArchiveTypeURL, URL: "archive://" + name}, doc, nil
}
