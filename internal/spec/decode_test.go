package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
)

// writeFiles creates files (path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func decodeString(t *testing.T, s string) ([]Document, error) {
	t.Helper()
	return Decode(strings.NewReader(s), "specs/fn.yaml")
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got none", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("want an error containing\n  %s\ngot\n  %s", p, err)
		}
	}
}

const fnDoc = `apiVersion: isotope.dev/v1
kind: Function
metadata:
  name: hello
spec:
  environment:
    name: go
  package:
    packageref:
      name: hello-pkg
    functionName: Handler
  InvokeStrategy:
    ExecutionStrategy:
      ExecutorType: newdeploy
      MinScale: 2
      MaxScale: 1
`

func TestDecodeMultiDocumentAndFissionAPIVersion(t *testing.T) {
	docs, err := decodeString(t, `# leading comment
---
apiVersion: fission.io/v1
kind: Environment
metadata:
  name: go
spec:
  version: 3
  runtime:
    image: isotope/wasm-env
---
# only a comment

---
apiVersion: isotope.dev/v1
kind: HTTPTrigger
metadata: {name: r}
spec:
  relativeurl: /hello
  functionref: {type: name, name: hello}
--- {"apiVersion": "isotope.dev/v1", "kind": "TimeTrigger", "metadata": {"name": "t"}, "spec": {"cron": "@every 5s", "functionref": {"name": "hello"}}}
---
kind: ArchiveUploadSpec
name: src-Abc
include: ["*.go"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 4 {
		t.Fatalf("got %d documents, want 4", len(docs))
	}
	env, ok := docs[0].Object.(*v1.Environment)
	if !ok || env.Spec.Runtime.Image != "isotope/wasm-env" || env.APIVersion != v1.APIVersion || env.Kind != "Environment" {
		t.Fatalf("environment: %#v", docs[0].Object)
	}
	if docs[0].Index != 1 || docs[0].Line != 3 || docs[1].Index != 2 || docs[1].Line != 15 {
		t.Errorf("document positions: %d@%d, %d@%d", docs[0].Index, docs[0].Line, docs[1].Index, docs[1].Line)
	}
	if tt := docs[2].Object.(*v1.TimeTrigger); tt.Spec.Cron != "@every 5s" {
		t.Errorf("time trigger on the separator line: %+v", tt.Spec)
	}
	if a := docs[3].Archive; a == nil || a.Name != "src-Abc" || a.Include[0] != "*.go" {
		t.Errorf("archive upload spec: %+v", docs[3])
	}
}

func TestDecodeJSON(t *testing.T) {
	docs, err := Decode(strings.NewReader(`{"apiVersion":"isotope.dev/v1","kind":"Package","metadata":{"name":"p"},
	  "spec":{"environment":{"name":"go"},"deployment":{"type":"literal","literal":"aGVsbG8="}}}`), "p.json")
	if err != nil {
		t.Fatal(err)
	}
	if p := docs[0].Object.(*v1.Package); string(p.Spec.Deployment.Literal) != "hello" {
		t.Fatalf("literal %q", p.Spec.Deployment.Literal)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown field", strings.Replace(fnDoc, "  environment:", "  enviroment:\n    name: x\n  environment:", 1),
			[]string{`specs/fn.yaml: document 1 (Function "hello"): unknown field "spec.enviroment"`}},
		{"field names are case-sensitive", strings.Replace(fnDoc, "InvokeStrategy:", "invokeStrategy:", 1),
			[]string{`unknown field "spec.invokeStrategy"`}},
		{"duplicate field", fnDoc + "  functionTimeout: 1\n  functionTimeout: 2\n",
			[]string{"document 1", "functionTimeout"}},
		{"unknown kind", "apiVersion: isotope.dev/v1\nkind: Lambda\nmetadata: {name: x}\n",
			[]string{`document 1: unknown kind "Lambda" (known kinds: Secret, ConfigMap, Environment, Package, Function, HTTPTrigger, TimeTrigger, MessageQueueTrigger, CanaryConfig, DeploymentConfig, ArchiveUploadSpec)`}},
		{"kind case", "apiVersion: isotope.dev/v1\nkind: function\nmetadata: {name: x}\n", []string{`unknown kind "function"`}},
		{"no kind", "apiVersion: isotope.dev/v1\nmetadata: {name: x}\n", []string{"kind is missing", "known kinds: Secret, ConfigMap, Environment"}},
		{"no apiVersion", "kind: Function\nmetadata: {name: x}\n", []string{"(Function): apiVersion is missing"}},
		{"other apiVersion", "apiVersion: apps/v1\nkind: Function\n", []string{`unsupported apiVersion "apps/v1"`}},
		{"bad YAML line", "apiVersion: isotope.dev/v1\nkind: Function\n---\napiVersion: isotope.dev/v1\nkind: Function\nmetadata:\n  name: [x\n",
			[]string{"specs/fn.yaml: document 2: invalid YAML: yaml: line 7"}},
		{"tab indentation", "apiVersion: isotope.dev/v1\nkind: Function\nmetadata:\n\tname: x\n", []string{"invalid YAML", "line 4"}},
		{"not a mapping", "- a\n- b\n", []string{"document 1: a document must be a mapping"}},
		{"type mismatch", "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: e}\nspec:\n  version: three\n",
			[]string{`(Environment "e"): spec.version: cannot use a string where a number is expected`}},
		{"list expected", "apiVersion: isotope.dev/v1\nkind: HTTPTrigger\nmetadata: {name: e}\nspec:\n  methods: GET\n",
			[]string{"spec.methods: cannot use a string where a list is expected"}},
		{"errors from every document", "apiVersion: isotope.dev/v1\nkind: Nope\n---\napiVersion: isotope.dev/v1\nkind: Nada\n",
			[]string{`document 1: unknown kind "Nope"`, `document 2: unknown kind "Nada"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeString(t, tc.doc)
			wantErr(t, err, tc.want...)
			var e *Error
			if !errors.As(err, &e) || e.File != "specs/fn.yaml" || e.Doc == 0 {
				t.Errorf("error is not located: %#v", e)
			}
		})
	}
}

func TestDecodeDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "specs")
	writeFiles(t, dir, map[string]string{
		"env.yaml":           "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: go}\nspec: {version: 3, runtime: {image: x}}\n",
		"sub/fn.yml":         "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: b}\nspec: {version: 3, runtime: {image: x}}\n",
		"c.json":             `{"apiVersion":"isotope.dev/v1","kind":"Environment","metadata":{"name":"c"},"spec":{"version":1,"runtime":{"image":"x"}}}`,
		"README.md":          "not a spec",
		".hidden.yaml":       "garbage: [",
		"ignored.yaml":       "garbage: [",
		"drafts/x.yaml":      "garbage: [",
		"old/a.yaml":         "garbage: [",
		IgnoreFile:           "# comments and blanks are skipped\n\nignored.yaml\ndrafts/\n/old\n",
		DeploymentConfigFile: "kind: DeploymentConfig\nname: demo\nuid: \"1234\"\n",
	})
	set, err := DecodeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range set.Documents {
		names = append(names, d.Kind+"/"+d.Name())
	}
	if got := strings.Join(names, " "); got != "Environment/c Environment/go DeploymentConfig/demo Environment/b" {
		t.Fatalf("documents: %s", got)
	}
	if c := set.Config(); c == nil || c.UID != "1234" {
		t.Fatalf("config %+v", c)
	}

	writeFiles(t, dir, map[string]string{"bad.yaml": "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: x}\nspec: {version: 3, runtime: {image: x}, extra: 1}\n",
		"bad2.yaml": "a: [\n"})
	_, err = DecodeDir(dir)
	wantErr(t, err, filepath.Join(dir, "bad.yaml")+`: document 1 (Environment "x"): unknown field "spec.extra"`,
		filepath.Join(dir, "bad2.yaml")+": document 1: invalid YAML")

	if _, err := DecodeDir(filepath.Join(dir, "env.yaml")); err == nil {
		t.Error("a file accepted as a spec directory")
	}
	writeFiles(t, dir, map[string]string{IgnoreFile: "[\n"})
	_, err = DecodeDir(dir)
	wantErr(t, err, ".specignore:1: bad glob")
}

const validSet = `apiVersion: isotope.dev/v1
kind: Environment
metadata: {name: go}
spec: {version: 3, runtime: {image: isotope/wasm-env}, builder: {image: isotope/go-wasm-builder}}
---
apiVersion: isotope.dev/v1
kind: Package
metadata: {name: hello-pkg}
spec:
  environment: {name: go}
  source: {type: url, url: "archive://hello-src"}
---
` + fnDoc + `---
apiVersion: isotope.dev/v1
kind: HTTPTrigger
metadata: {name: hello}
spec:
  relativeurl: /hello
  functionref: {name: hello}
---
kind: ArchiveUploadSpec
name: hello-src
include: ["src/*.go"]
`

func TestValidateSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "specs")
	writeFiles(t, dir, map[string]string{
		"fn.yaml":            validSet,
		DeploymentConfigFile: "kind: DeploymentConfig\nname: demo\nuid: u-1\n",
	})
	set, err := DecodeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Validate(set)
	wantErr(t, err, filepath.Join(dir, "fn.yaml")+`: document 3 (Function "hello"): spec.InvokeStrategy.ExecutionStrategy.MaxScale: Invalid value: 1: must be >= MinScale`)

	writeFiles(t, dir, map[string]string{"fn.yaml": strings.Replace(validSet, "MaxScale: 1", "MaxScale: 3", 1)})
	set, err = DecodeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Validate(set)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("valid set: %v, warnings %q", err, warnings)
	}

	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"duplicate", map[string]string{"more.yaml": "apiVersion: fission.io/v1\nkind: Environment\nmetadata: {name: go, namespace: default}\nspec: {version: 3, runtime: {image: x}}\n"},
			[]string{"more.yaml: document 1 (Environment \"go\"): duplicate Environment default/go (also in ", "fn.yaml document 1)"}},
		{"no config", map[string]string{DeploymentConfigFile: "# removed\n"}, []string{"no DeploymentConfig document; run `isotope spec init"}},
		{"two configs", map[string]string{"more.yaml": "kind: DeploymentConfig\nname: x\nuid: \"y\"\n"}, []string{"a second DeploymentConfig"}},
		{"config uid", map[string]string{DeploymentConfigFile: "kind: DeploymentConfig\nname: demo\n"}, []string{`(DeploymentConfig "demo"): uid: Required value`}},
		{"archive missing", map[string]string{"fn.yaml": strings.Replace(validSet, "name: hello-src", "name: other", 1)},
			[]string{`(Package "hello-pkg"): spec.source.url: Not found: "archive://hello-src"`}},
		{"archive spec", map[string]string{"more.yaml": "kind: ArchiveUploadSpec\nname: a/b\n"},
			[]string{`(ArchiveUploadSpec "a/b"): name: Invalid value`, "include: Required value"}},
		{"archive dup", map[string]string{"more.yaml": "kind: ArchiveUploadSpec\nname: hello-src\ninclude: [x]\n"}, []string{`duplicate ArchiveUploadSpec "hello-src"`}},
		{"bad name", map[string]string{"more.yaml": "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: My_Env}\nspec: {version: 3, runtime: {image: x}}\n"},
			[]string{`(Environment "My_Env"): metadata.name: Invalid value: "My_Env"`}},
		{"bad cron", map[string]string{"more.yaml": "apiVersion: isotope.dev/v1\nkind: TimeTrigger\nmetadata: {name: t}\nspec: {cron: '* * *', functionref: {name: hello}}\n"},
			[]string{`(TimeTrigger "t"): spec.cron: Invalid value: "* * *": expected 5 to 6 fields, found 3`}},
		{"missing required", map[string]string{"more.yaml": "apiVersion: isotope.dev/v1\nkind: Function\nmetadata: {name: f2}\nspec: {environment: {name: go}}\n"},
			[]string{`(Function "f2"): spec.package.packageref.name: Required value`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "specs")
			writeFiles(t, d, map[string]string{
				"fn.yaml":            strings.Replace(validSet, "MaxScale: 1", "MaxScale: 3", 1),
				DeploymentConfigFile: "kind: DeploymentConfig\nname: demo\nuid: u-1\n",
			})
			writeFiles(t, d, tc.files)
			set, err := DecodeDir(d)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Validate(set)
			wantErr(t, err, tc.want...)
		})
	}
}

func TestValidateWarnsAboutExternalReferences(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml": strings.Replace(fnDoc, "MaxScale: 1", "MaxScale: 3", 1) +
			"---\napiVersion: isotope.dev/v1\nkind: HTTPTrigger\nmetadata: {name: r}\nspec: {prefix: /api, functionref: {type: function-weights, functionweights: {hello: 50, other: 50}}}\n",
		"c.yaml": "kind: DeploymentConfig\nname: demo\nuid: u\n",
	})
	set, err := DecodeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := Validate(set)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(warnings, "\n")
	for _, w := range []string{`Function "hello" refers to Environment default/go`, `Function "hello" refers to Package default/hello-pkg`,
		`HTTPTrigger "r" refers to Function default/other`} {
		if !strings.Contains(got, w) {
			t.Errorf("warnings lack %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "Function default/hello,") || strings.Count(got, "\n") != 2 {
		t.Errorf("unexpected warnings:\n%s", got)
	}
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "myproject", "specs")
	cfg, err := Init(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "myproject" || len(cfg.UID) != 36 {
		t.Fatalf("config %+v", cfg)
	}
	set, err := DecodeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Config(); got == nil || *got != *cfg {
		t.Fatalf("read back %+v, want %+v", got, cfg)
	}
	if _, err := Init(dir, "other"); err == nil {
		t.Fatal("a second Init overwrote the uid")
	}
	cfg2, err := Init(t.TempDir(), "named")
	if err != nil || cfg2.Name != "named" || cfg2.UID == cfg.UID {
		t.Fatalf("second deployment: %+v %v", cfg2, err)
	}
}
