package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
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
func (s *specFlags) save(cmd *cobra.Command, file string, objs ...v1.Object) (bool, error) {
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

// yamlDocuments renders objects as a multi-document YAML stream, without
// the fields a store fills in.
func yamlDocuments(objs ...v1.Object) ([]byte, error) {
	var buf bytes.Buffer
	for i, o := range objs {
		o = o.DeepCopyObject().(v1.Object)
		v1.SetTypeMeta(o)
		o.SetUID("")
		o.SetResourceVersion("")
		o.SetGeneration(0)
		b, err := yaml.Marshal(o)
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
