package images_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"isotope.dev/isotope/internal/images"
)

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The chart's default image references are what make images names and
// tags: image.repository is the isotope image, every runtimeImages entry
// one of the images, and the tag (the chart's appVersion) DefaultTag.
// (deploy/helm's render test checks where the chart uses them.)
func TestChartDefaultsNameTheImages(t *testing.T) {
	root, err := images.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(root, "deploy", "helm", "isotope")
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	readYAML(t, filepath.Join(chart, "Chart.yaml"), &meta)
	if meta.AppVersion != images.DefaultTag {
		t.Errorf("Chart.yaml appVersion %q, internal/images.DefaultTag %q: keep them equal", meta.AppVersion, images.DefaultTag)
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
		RuntimeImages map[string]string `json:"runtimeImages"`
	}
	readYAML(t, filepath.Join(chart, "values.yaml"), &values)
	if want := images.DefaultPrefix + "/isotope"; values.Image.Repository != want || values.Image.Tag != "" {
		t.Errorf("values image %s:%s, want %s with the appVersion as tag", values.Image.Repository, values.Image.Tag, want)
	}
	if len(values.RuntimeImages) == 0 {
		t.Fatal("values.yaml has no runtimeImages")
	}
	for key, repo := range values.RuntimeImages {
		name, ok := strings.CutPrefix(repo, images.DefaultPrefix+"/")
		if _, known := images.Lookup(name); !ok || !known {
			t.Errorf("runtimeImages.%s = %s, which make images does not build (images: %v)", key, repo, images.Names())
		}
	}
}

// The examples' environments name Isotope's images with the tag make
// images gives them, so their specs apply on a cluster as they are.
func TestExamplesNameTaggedImages(t *testing.T) {
	root, err := images.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "*", "specs", "*.yaml"))
	checked := 0
	for _, f := range files {
		var env struct {
			Kind string `json:"kind"`
			Spec struct {
				Runtime struct{ Image string } `json:"runtime"`
				Builder struct{ Image string } `json:"builder"`
			} `json:"spec"`
		}
		readYAML(t, f, &env)
		if env.Kind != "Environment" {
			continue
		}
		for _, ref := range []string{env.Spec.Runtime.Image, env.Spec.Builder.Image} {
			repo, tag, _ := strings.Cut(ref, ":")
			name, ours := strings.CutPrefix(repo, images.DefaultPrefix+"/")
			if _, known := images.Lookup(name); !ours || !known {
				continue
			}
			checked++
			if tag != images.DefaultTag {
				t.Errorf("%s: image %s, want %s:%s (untagged is :latest on a cluster, always pulled)", f, ref, repo, images.DefaultTag)
			}
		}
	}
	if checked == 0 {
		t.Error("no example environment names an Isotope image")
	}
}
