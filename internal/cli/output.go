package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
)

// Output formats accepted by -o on reads.
const (
	formatDefault = ""
	formatJSON    = "json"
	formatYAML    = "yaml"
	formatWide    = "wide"
)

// checkFormat refuses an -o value other than json or yaml.
func checkFormat(format string) error {
	switch strings.ToLower(format) {
	case formatDefault, formatJSON, formatYAML:
		return nil
	}
	return fmt.Errorf("--output: unknown format %q (want json or yaml)", format)
}

// printObject writes one whole object (apiVersion and kind included) as
// JSON or YAML.
func printObject(w io.Writer, obj v1.Object, format string) error {
	if obj.GetObjectKind().GroupVersionKind().Kind == "" {
		v1.SetTypeMeta(obj)
	}
	return encode(w, obj, format)
}

// objectList is a v1 List of any kind: what `list -o json|yaml` prints,
// shaped like the typed EnvironmentList, FunctionList … documents.
type objectList struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   listMeta    `json:"metadata"`
	Items      []v1.Object `json:"items"`
}

type listMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// printList writes objects of one kind as a v1 List in JSON or YAML.
func printList(w io.Writer, kind string, objs []v1.Object, resourceVersion, format string) error {
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind == "" {
			v1.SetTypeMeta(o)
		}
	}
	if objs == nil {
		objs = []v1.Object{}
	}
	return encode(w, objectList{
		APIVersion: v1.APIVersion,
		Kind:       kind + "List",
		Metadata:   listMeta{ResourceVersion: resourceVersion},
		Items:      objs,
	}, format)
}

func encode(w io.Writer, v any, format string) error {
	switch strings.ToLower(format) {
	case formatJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case formatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return checkFormat(format)
}

// table prints aligned columns, one header row and then one row per item.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		// A tab or newline inside a cell would break the alignment.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// summary prints "Key: value" lines aligned on the colon, for the human
// form of `get`.
type summary struct {
	tw *tabwriter.Writer
}

func newSummary(w io.Writer) *summary {
	return &summary{tw: tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)}
}

func (s *summary) add(key, value string) {
	if value == "" {
		value = "-"
	}
	fmt.Fprintf(s.tw, "%s:\t%s\n", key, value)
}

func (s *summary) flush() error { return s.tw.Flush() }

// mapString renders a map as sorted k=v pairs separated by commas.
func mapString(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
