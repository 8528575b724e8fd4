package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() {
	register(newSecretCommand)
	register(newConfigMapCommand)
}

// newSecretCommand is `isotope secret`: named values functions read as
// files under /secrets/<namespace>/<name>/ (docs/secrets-and-configmaps.md).
func newSecretCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.Secret]{g: g, noun: "secret"}
	return group("secret", []string{"secrets"}, "Manage secrets that functions read as files",
		newConfigCreate(g, k.noun, func(ns, name string, data map[string][]byte) v1.Object {
			return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
		}),
		newSecretGet(k),
		k.list(listing[*v1.Secret]{
			short:   "List secrets (names and keys, never values)",
			headers: []string{"NAME", "KEYS", "NAMESPACE", "AGE"},
			row: func(s *v1.Secret) []string {
				return []string{s.Name, strings.Join(slices.Sorted(maps.Keys(s.Data)), ","), s.Namespace, age(s.CreationTimestamp)}
			},
		}),
		newConfigUpdate(k, func(s *v1.Secret) *map[string][]byte { return &s.Data }),
		k.delete("Delete a secret"))
}

// newConfigMapCommand is `isotope configmap` (alias cm): named values
// functions read as files under /configs/<namespace>/<name>/.
func newConfigMapCommand(g *Globals) *cobra.Command {
	k := kindCommands[*v1.ConfigMap]{g: g, noun: "configmap"}
	return group("configmap", []string{"configmaps", "cm"}, "Manage config maps that functions read as files",
		newConfigCreate(g, k.noun, func(ns, name string, data map[string][]byte) v1.Object {
			return &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: textData(data)}
		}),
		k.get("get", "Show a config map", describeConfigMap),
		k.list(listing[*v1.ConfigMap]{
			short:   "List config maps",
			headers: []string{"NAME", "KEYS", "NAMESPACE", "AGE"},
			row: func(c *v1.ConfigMap) []string {
				return []string{c.Name, strings.Join(slices.Sorted(maps.Keys(c.Data)), ","), c.Namespace, age(c.CreationTimestamp)}
			},
		}),
		newConfigUpdate(k, func(c *v1.ConfigMap) *map[string][]byte {
			// ConfigMap text is edited as bytes and written back.
			b := map[string][]byte{}
			for key, v := range c.Data {
				b[key] = []byte(v)
			}
			return &b
		}),
		k.delete("Delete a config map"))
}

func textData(data map[string][]byte) map[string]string {
	if data == nil {
		return nil
	}
	out := make(map[string]string, len(data))
	for k, v := range data {
		out[k] = string(v)
	}
	return out
}

func age(t metav1.Time) string {
	if t.IsZero() {
		return ""
	}
	return metav1.Now().Sub(t.Time).Round(1e9).String()
}

// dataFlags are kubectl's --from-literal key=value and --from-file
// [key=]path.
type dataFlags struct {
	literals, files []string
}

func (d *dataFlags) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&d.literals, "from-literal", nil, "a key and its value, key=value (repeatable)")
	f.StringArrayVar(&d.files, "from-file", nil, "a file whose content is a value: path (key: its base name) or key=path (repeatable)")
}

// read returns the data the flags give. Keys are checked by the store;
// a file is read up to the size limit, so a huge one fails fast naming it.
func (d *dataFlags) read() (map[string][]byte, error) {
	data := map[string][]byte{}
	put := func(flag, key string, v []byte) error {
		if _, dup := data[key]; dup {
			return fmt.Errorf("--%s: key %q is given twice", flag, key)
		}
		data[key] = v
		return nil
	}
	for _, l := range d.literals {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--from-literal %q: want key=value", l)
		}
		if err := put("from-literal", k, []byte(v)); err != nil {
			return nil, err
		}
	}
	for _, f := range d.files {
		k, path, ok := strings.Cut(f, "=")
		if !ok {
			k, path = filepath.Base(f), f
		}
		if k == "" || path == "" {
			return nil, fmt.Errorf("--from-file %q: want path or key=path", f)
		}
		b, err := readCapped(path, v1.MaxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("--from-file %s: %w", path, err)
		}
		if err := put("from-file", k, b); err != nil {
			return nil, err
		}
	}
	return data, nil
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than the limit of %d bytes", limit)
	}
	return b, nil
}

func newConfigCreate(g *Globals, noun string, build func(ns, name string, data map[string][]byte) v1.Object) *cobra.Command {
	var name string
	var d dataFlags
	var sf specFlags
	cmd := createCommand(g, "Create a "+noun+" from --from-literal and --from-file", &sf, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if err := requireFlag("name", name); err != nil {
			return err
		}
		data, err := d.read()
		if err != nil {
			return err
		}
		obj := build(g.ns(), name, data)
		v1.SetTypeMeta(obj)
		if done, err := sf.save(cmd, noun+"-"+name, obj); done || err != nil {
			return err
		}
		if _, err := st.Create(ctx, obj); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s '%s' created\n", noun, name)
		return nil
	})
	cmd.Flags().StringVar(&name, "name", "", noun+" name")
	d.addFlags(cmd)
	return cmd
}

// newConfigUpdate is `update --name N`: --from-literal and --from-file
// set keys (adding or replacing), --remove-key removes them.
func newConfigUpdate[T v1.Object](k kindCommands[T], dataOf func(T) *map[string][]byte) *cobra.Command {
	var name string
	var d dataFlags
	var remove []string
	cmd := k.update("Set or remove keys of a "+k.noun, &name, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
		if len(d.literals)+len(d.files)+len(remove) == 0 {
			return errors.New("nothing to update: give --from-literal, --from-file or --remove-key")
		}
		return nil
	}, func(cmd *cobra.Command, obj T) error {
		set, err := d.read()
		if err != nil {
			return err
		}
		data := *dataOf(obj)
		if data == nil {
			data = map[string][]byte{}
		}
		for _, key := range remove {
			if _, ok := data[key]; !ok {
				return fmt.Errorf("--remove-key: %s '%s' has no key %q", k.noun, name, key)
			}
			delete(data, key)
		}
		maps.Copy(data, set)
		switch o := any(obj).(type) {
		case *v1.Secret:
			o.Data = data
		case *v1.ConfigMap:
			o.Data = textData(data)
		}
		return nil
	})
	cmd.Flags().StringVar(&name, "name", "", k.noun+" name")
	cmd.Flags().StringArrayVar(&remove, "remove-key", nil, "a key to remove (repeatable)")
	d.addFlags(cmd)
	return cmd
}

// newSecretGet is `secret get`: keys and sizes, values only with --show.
func newSecretGet(k kindCommands[*v1.Secret]) *cobra.Command {
	var output string
	var show bool
	cmd := namedCommand(k.g, "get", "Show a secret's keys (values with --show)", k.noun, func(ctx context.Context, cmd *cobra.Command, st store.Store, name string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		if output != "" && !show {
			return errors.New("--output prints the secret's values: add --show to print them")
		}
		s, err := store.GetAs[*v1.Secret](ctx, st, k.g.ns(), name)
		if err != nil {
			return err
		}
		if output != "" {
			return printObject(cmd.OutOrStdout(), s, output)
		}
		sum := newSummary(cmd.OutOrStdout())
		sum.add("Name", s.Name)
		sum.add("Namespace", s.Namespace)
		for _, key := range slices.Sorted(maps.Keys(s.Data)) {
			v := strconv.Itoa(len(s.Data[key])) + " bytes"
			if show {
				v = string(s.Data[key])
			}
			sum.add("  "+key, v)
		}
		return sum.flush()
	})
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml, with --show (default: a summary)")
	cmd.Flags().BoolVar(&show, "show", false, "print the values")
	return cmd
}

func describeConfigMap(w io.Writer, c *v1.ConfigMap) error {
	s := newSummary(w)
	s.add("Name", c.Name)
	s.add("Namespace", c.Namespace)
	for _, key := range slices.Sorted(maps.Keys(c.Data)) {
		s.add("  "+key, c.Data[key])
	}
	return s.flush()
}

// warnMissingConfig warns, as Fission's CLI does, about secrets and
// config maps fn names that do not exist yet: the function is created,
// and its instances fail to specialize, naming the missing one, until it
// exists.
func warnMissingConfig(ctx context.Context, st store.Store, w io.Writer, fn *v1.Function) {
	check := func(kind, flag, ns, name string) {
		if ns == "" {
			ns = fn.Namespace
		}
		if _, err := st.Get(ctx, kind, ns, name); store.IsNotFound(err) {
			fmt.Fprintf(w, "warning: --%s: %s '%s' not found in namespace '%s'; the function cannot start until it exists\n", flag, flag, name, ns)
		}
	}
	for _, r := range fn.Spec.Secrets {
		check(v1.KindSecret, "secret", r.Namespace, r.Name)
	}
	for _, r := range fn.Spec.ConfigMaps {
		check(v1.KindConfigMap, "configmap", r.Namespace, r.Name)
	}
}
