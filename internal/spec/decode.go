// Package spec reads, checks and applies a spec directory: the YAML (or
// JSON) resource documents that `isotope spec apply|validate|destroy`
// work on, in Fission's format so that existing Fission spec directories
// keep working.
//
// A directory holds resource documents (Environment, Package, Function,
// HTTPTrigger, TimeTrigger; apiVersion isotope.dev/v1 or fission.io/v1),
// one DeploymentConfig (fission-deployment-config.yaml, written by Init:
// the deployment's name and uid) and ArchiveUploadSpecs that packages name
// with archive://<name> URLs. Every object Apply writes carries the
// annotations fission-name and fission-uid (Fission's keys, so objects
// applied by Fission's CLI from the same directory are recognised);
// `apply --delete` and `destroy` act only on objects carrying this
// deployment's uid.
package spec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
)

// Spec-only kinds: they describe the deployment and are never stored.
const (
	KindDeploymentConfig  = "DeploymentConfig"
	KindArchiveUploadSpec = "ArchiveUploadSpec"
)

// DeploymentConfigFile is the file Init writes (Fission's name).
const DeploymentConfigFile = "fission-deployment-config.yaml"

// IgnoreFile lists, one glob per line, files and directories of a spec
// directory that DecodeDir skips (Fission's .specignore).
const IgnoreFile = ".specignore"

// MaxFileSize bounds one spec file; a spec directory holds descriptions,
// not the code itself.
const MaxFileSize = 16 << 20

// DeploymentConfig names a deployment: the set of objects applied from one
// spec directory. UID ties stored objects to it.
type DeploymentConfig struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
}

// ArchiveUploadSpec describes an archive built from local files at apply
// time. RootDir is relative to the spec directory's parent (the project
// directory) and may not leave it; include globs are relative to RootDir
// and may not leave it either, through ".." or a symlink (a spec
// directory may come from anyone). Include globs are resolved in RootDir; as in
// Fission (whose CLI archives with mholt/archiver), each matched file is
// stored under its base name and each matched directory under its base
// name with its whole tree: include ["src"] gives src/main.go, include
// ["src/*"] gives main.go. Exclude globs are matched against each entry's
// name, its base name and each of its parent directories.
type ArchiveUploadSpec struct {
	APIVersion string   `json:"apiVersion,omitempty"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name"`
	RootDir    string   `json:"rootdir,omitempty"`
	Include    []string `json:"include,omitempty"`
	Exclude    []string `json:"exclude,omitempty"`
}

// Document is one decoded document of a spec file. Exactly one of Object,
// DeploymentConfig and Archive is set.
type Document struct {
	File  string // the file's path as read
	Index int    // 1-based position among the file's non-empty documents
	Line  int    // line of File where the document starts
	Kind  string
	// Object is the typed resource, apiVersion normalised to isotope.dev/v1.
	Object           v1.Object
	DeploymentConfig *DeploymentConfig
	Archive          *ArchiveUploadSpec
}

// Name is the document's object name ("" when it has none).
func (d *Document) Name() string {
	switch {
	case d.Object != nil:
		return d.Object.GetName()
	case d.DeploymentConfig != nil:
		return d.DeploymentConfig.Name
	case d.Archive != nil:
		return d.Archive.Name
	}
	return ""
}

// KnownKinds lists the kinds a spec document may have.
func KnownKinds() []string {
	var out []string
	for _, k := range v1.Kinds() {
		out = append(out, k.Kind)
	}
	return append(out, KindDeploymentConfig, KindArchiveUploadSpec)
}

// Decode reads every document of one YAML or JSON stream ("---"
// separates documents; empty documents are skipped). filename is used in
// errors only. All problems found are returned together as an ErrorList.
func Decode(r io.Reader, filename string) ([]Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: filename, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: filename, Err: fmt.Errorf("file is larger than %d bytes", MaxFileSize)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var (
		docs []Document
		errs ErrorList
	)
	n := 0
	for _, chunk := range splitDocuments(data) {
		if isBlank(chunk.text) {
			continue
		}
		n++
		d := Document{File: filename, Index: n, Line: chunk.line}
		if err := d.decode(chunk.text); err != nil {
			errs = append(errs, err...)
			continue
		}
		if d.Kind == "" { // a document that is YAML null
			n--
			continue
		}
		docs = append(docs, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}

type chunk struct {
	text []byte
	line int // 1-based line of its first byte
}

// splitDocuments cuts a YAML stream at "---" separator lines (and "..."
// end markers). Text after "--- " on a separator line belongs to the next
// document.
func splitDocuments(data []byte) []chunk {
	var (
		out   []chunk
		cur   bytes.Buffer
		start = 1
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), MaxFileSize+1)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		t := strings.TrimRight(l, "\r")
		if t == "..." { // document end marker
			out = append(out, chunk{text: bytes.Clone(cur.Bytes()), line: start})
			cur.Reset()
			start = line + 1
			continue
		}
		if t == "---" || strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "---\t") {
			out = append(out, chunk{text: bytes.Clone(cur.Bytes()), line: start})
			cur.Reset()
			start = line
			if rest := t[3:]; strings.TrimSpace(rest) != "" {
				cur.WriteString("   " + rest + "\n")
			} else {
				start = line + 1
			}
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	return append(out, chunk{text: cur.Bytes(), line: start})
}

// isBlank reports whether a document holds only whitespace and comments.
func isBlank(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlError makes a YAML error's line numbers file-absolute.
func yamlError(err error, firstLine int) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		return "line " + strconv.Itoa(n+firstLine-1)
	})
	return errors.New("invalid YAML: " + msg)
}

type typeMeta struct {
	APIVersion any `json:"apiVersion"`
	Kind       any `json:"kind"`
}

// decode fills d from one document's text.
func (d *Document) decode(text []byte) ErrorList {
	js, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		return ErrorList{d.wrap(yamlError(err, d.Line))}
	}
	js = bytes.TrimSpace(js)
	if string(js) == "null" {
		return nil
	}
	if len(js) == 0 || js[0] != '{' {
		return ErrorList{d.errorf("a document must be a mapping with apiVersion and kind")}
	}
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return ErrorList{d.wrap(err)}
	}
	kind, ok := tm.Kind.(string)
	if !ok || kind == "" {
		return ErrorList{d.errorf("kind is missing or not a string (known kinds: %s)", strings.Join(KnownKinds(), ", "))}
	}
	apiVersion, ok := tm.APIVersion.(string)
	if !ok && tm.APIVersion != nil {
		return ErrorList{d.errorf("apiVersion must be a string")}
	}
	var target any
	switch kind {
	case KindDeploymentConfig:
		d.DeploymentConfig = &DeploymentConfig{}
		target = d.DeploymentConfig
	case KindArchiveUploadSpec:
		d.Archive = &ArchiveUploadSpec{}
		target = d.Archive
	default:
		ki, err := v1.LookupKind(kind)
		if err != nil || ki.Kind != kind {
			return ErrorList{d.errorf("unknown kind %q (known kinds: %s)", kind, strings.Join(KnownKinds(), ", "))}
		}
		d.Object = ki.New()
		target = d.Object
	}
	d.Kind = kind
	switch apiVersion {
	case v1.APIVersion, v1.FissionAPIVersion:
	case "":
		// Fission writes ArchiveUploadSpec and DeploymentConfig without one.
		if d.Object != nil {
			return ErrorList{d.errorf("apiVersion is missing (want %s or %s)", v1.APIVersion, v1.FissionAPIVersion)}
		}
	default:
		return ErrorList{d.errorf("unsupported apiVersion %q (want %s or %s)", apiVersion, v1.APIVersion, v1.FissionAPIVersion)}
	}
	// Strict: case-sensitive field names, unknown and duplicate fields are
	// errors naming the field's path.
	strict, err := sigsjson.UnmarshalStrict(js, target)
	if err != nil {
		return ErrorList{d.wrap(cleanJSONError(err))}
	}
	var errs ErrorList
	for _, e := range strict {
		errs = append(errs, d.wrap(e))
	}
	if d.Object != nil {
		v1.SetTypeMeta(d.Object)
	}
	if d.DeploymentConfig != nil {
		d.DeploymentConfig.APIVersion = v1.APIVersion
	}
	if d.Archive != nil {
		d.Archive.APIVersion = v1.APIVersion
	}
	return errs
}

// cleanJSONError drops Go type names from a type mismatch, keeping the
// field path: `json: cannot unmarshal string into Go struct field
// EnvironmentSpec.spec.version of type int` becomes `spec.version: cannot
// use a string where a number is expected`.
func cleanJSONError(err error) error {
	m := jsonTypeError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return fmt.Errorf("%s: cannot use a %s where %s is expected", m[2], m[1], goTypeName(m[3]))
}

var jsonTypeError = regexp.MustCompile(`^json: cannot unmarshal (.+) into Go struct field [A-Za-z0-9_]+\.(\S+) of type (\S+)$`)

// goTypeName describes a Go type the way a YAML author thinks of it.
func goTypeName(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "[]uint8"):
		return "a base64 string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	if i := strings.LastIndex(t, "."); i >= 0 {
		t = t[i+1:]
	}
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string", strings.HasSuffix(t, "Type"), strings.HasSuffix(t, "Status"), t == "AllowedFunctionsPerContainer":
		return "a string"
	case t == "bool":
		return "a boolean"
	}
	return "a mapping"
}

// Set is a decoded spec directory.
type Set struct {
	// Dir is the spec directory; ArchiveUploadSpecs resolve relative to
	// its parent.
	Dir string
	// Documents in file (lexical) then document order.
	Documents []Document
}

// Config returns the DeploymentConfig, or nil when the set has none.
func (s *Set) Config() *DeploymentConfig {
	for i := range s.Documents {
		if c := s.Documents[i].DeploymentConfig; c != nil {
			return c
		}
	}
	return nil
}

// Objects returns the resource documents, in the set's order.
func (s *Set) Objects() []*Document {
	var out []*Document
	for i := range s.Documents {
		if s.Documents[i].Object != nil {
			out = append(out, &s.Documents[i])
		}
	}
	return out
}

// Archive returns the ArchiveUploadSpec called name, or nil.
func (s *Set) Archive(name string) *ArchiveUploadSpec {
	for i := range s.Documents {
		if a := s.Documents[i].Archive; a != nil && a.Name == name {
			return a
		}
	}
	return nil
}

// DecodeDir reads every *.yaml, *.yml and *.json file under dir
// (recursively, in lexical order), skipping hidden files and directories
// and whatever the directory's .specignore globs match. All problems of
// all files are returned together.
func DecodeDir(dir string) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	ignore, err := readIgnore(filepath.Join(dir, IgnoreFile))
	if err != nil {
		return nil, err
	}
	set := &Set{Dir: dir}
	var errs ErrorList
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(de.Name(), ".") || ignore.match(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		docs, derr := Decode(f, p)
		f.Close()
		if derr != nil {
			var l ErrorList
			var e *Error
			switch {
			case errors.As(derr, &l):
				errs = append(errs, l...)
			case errors.As(derr, &e):
				errs = append(errs, e)
			default:
				errs = append(errs, &Error{File: p, Err: derr})
			}
		}
		set.Documents = append(set.Documents, docs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

type ignoreList []string

func readIgnore(file string) (ignoreList, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out ignoreList
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/")
		if _, err := path.Match(l, ""); err != nil {
			return nil, fmt.Errorf("%s:%d: bad glob %q: %v", file, i+1, l, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// match reports whether a slash-separated path relative to the spec
// directory, or its base name, matches an ignore glob.
func (l ignoreList) match(rel string) bool {
	for _, g := range l {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
		if ok, _ := path.Match(g, path.Base(rel)); ok {
			return true
		}
	}
	return false
}
