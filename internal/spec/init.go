package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
)

// Init creates dir (if needed) and writes its DeploymentConfig with a
// fresh uid. name defaults to the name of the directory dir is in (the
// project directory, as Fission does). An existing DeploymentConfig is
// never overwritten: its uid is what ties stored objects to the
// directory.
func Init(dir, name string) (*DeploymentConfig, error) {
	file := filepath.Join(dir, DeploymentConfigFile)
	if _, err := os.Stat(file); err == nil {
		return nil, fmt.Errorf("%s already exists; the spec directory is initialised", file)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if name == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		name = filepath.Base(filepath.Dir(abs))
	}
	cfg := &DeploymentConfig{APIVersion: v1.APIVersion, Kind: KindDeploymentConfig, Name: name, UID: uuid.NewString()}
	body, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	header := "# Written by `isotope spec init`. Do not change the uid: objects applied\n" +
		"# from this directory carry it (annotation fission-uid), and `spec apply\n" +
		"# --delete` and `spec destroy` find them by it.\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// O_EXCL: two concurrent inits cannot both write a uid.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(header + string(body)); err != nil {
		f.Close()
		return nil, err
	}
	return cfg, f.Close()
}
