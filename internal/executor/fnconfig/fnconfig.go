// Package fnconfig lays out a function's secrets and config maps as
// files, in Fission's layout: <dir>/secrets/<namespace>/<name>/<key> and
// <dir>/configs/<namespace>/<name>/<key>. Runtimes then show dir's two
// trees to the function at /secrets and /configs (WebAssembly: read-only
// preopened directories) or name them in SECRETS_DIR and CONFIGS_DIR
// (local processes). See docs/secrets-and-configmaps.md.
package fnconfig

import (
	"fmt"
	"os"
	"path"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "isotope.dev/isotope/api/v1"
)

// Subdirectories of an instance's configuration directory, which are
// also the guest paths of WebAssembly functions.
const (
	SecretsDir = "secrets"
	ConfigsDir = "configs"
)

// Write creates dir/secrets and dir/configs (both, even empty) and a
// file per key of each secret and config map. The files are read-only
// (0400) in read-only directories (0500) once written. Names and keys
// are checked again here, and every write goes through an os.Root at
// dir, so nothing is written outside it whatever a name holds.
func Write(dir string, secrets []*v1.Secret, cms []*v1.ConfigMap) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var dirs []string
	put := func(top, ns, name string, data map[string][]byte) error {
		for _, n := range []string{ns, name} {
			if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
				return fmt.Errorf("%s name %q: %s", top, n, msgs[0])
			}
		}
		d := path.Join(top, ns, name)
		if err := root.MkdirAll(d, 0o700); err != nil {
			return err
		}
		dirs = append(dirs, d, path.Join(top, ns))
		for k, v := range data {
			if msgs := validation.IsConfigMapKey(k); len(msgs) > 0 {
				return fmt.Errorf("%s %s/%s: key %q: %s", top, ns, name, k, msgs[0])
			}
			if err := root.WriteFile(path.Join(d, k), v, 0o400); err != nil {
				return err
			}
		}
		return nil
	}
	for _, top := range []string{SecretsDir, ConfigsDir} {
		if err := root.MkdirAll(top, 0o700); err != nil {
			return err
		}
	}
	for _, s := range secrets {
		if err := put(SecretsDir, s.Namespace, s.Name, s.Data); err != nil {
			return err
		}
	}
	for _, c := range cms {
		data := make(map[string][]byte, len(c.Data))
		for k, v := range c.Data {
			data[k] = []byte(v)
		}
		if err := put(ConfigsDir, c.Namespace, c.Name, data); err != nil {
			return err
		}
	}
	for _, d := range append(dirs, SecretsDir, ConfigsDir) {
		if err := root.Chmod(d, 0o500); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes a directory Write filled, making its read-only
// directories writable first.
func Remove(dir string) error {
	_ = chmodDirs(dir)
	return os.RemoveAll(dir)
}
