package spec

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	v1 "isotope.dev/isotope/api/v1"
)

// FuzzDecode feeds arbitrary bytes to the decoder (seed corpus in
// testdata/fuzz/FuzzDecode: valid and broken documents). Whatever the
// input: no panic; an error is located in the file; a decoded object
// survives Default (idempotently), Validate and whole-set validation.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./internal/spec
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Decode(bytes.NewReader(data), "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, d := range docs {
			if d.Object == nil {
				continue
			}
			obj := d.Object.DeepCopyObject().(v1.Object)
			v1.Default(obj)
			again := obj.DeepCopyObject().(v1.Object)
			v1.Default(again)
			if !equality.Semantic.DeepEqual(obj, again) {
				t.Fatalf("Default is not idempotent on %s %q", d.Kind, d.Name())
			}
			v1.Validate(obj)
		}
		Validate(&Set{Dir: "fuzz", Documents: docs})
	})
}
