package apiserver_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

// send makes one request with an explicit Content-Type ("" sends none).
func (f *fixture) send(t *testing.T, method, path, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// A web page can POST text/plain, a form or multipart without a CORS
// preflight: writes in any of those (or with no type) are refused with
// 415, naming the header and the type to use, and store nothing. JSON and
// YAML are taken.
func TestWritesTakeOnlyJSONOrYAML(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{})
	env := `{"metadata":{"name":"pwn"},"spec":{"version":2,"runtime":{"image":"x","container":{"name":"x","command":["sh","-c","touch /tmp/pwned"]}}}}`
	for _, ct := range []string{
		"", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x", "application/octet-stream", "application/jsonp", "json", ";;;",
	} {
		for _, w := range []struct{ method, path string }{{"POST", base + "environments"}, {"PUT", base + "environments/pwn"}, {"PUT", base + "packages/p/status"}} {
			code, data := f.send(t, w.method, w.path, ct, env)
			st := status(t, code, data, http.StatusUnsupportedMediaType, store.ReasonUnsupportedMedia)
			if !causeFields(st)["Content-Type"] || !strings.Contains(st.Message, "application/json") {
				t.Errorf("%s %s with Content-Type %q: %+v does not name the header and the fix", w.method, w.path, ct, st)
			}
		}
	}
	if n := f.count(t, v1.KindEnvironment); n != 0 {
		t.Fatalf("%d environments stored from refused writes", n)
	}

	if code, data := f.send(t, "POST", base+"environments", "application/json; charset=utf-8", env); code != 201 {
		t.Fatalf("JSON with a charset: %d %s", code, data)
	}
	yml := "apiVersion: fission.io/v1\nkind: Environment\nmetadata:\n  name: from-yaml\nspec:\n  version: 2\n  runtime:\n    image: isotope/wasm-env\n"
	for i, ct := range []string{"application/yaml", "application/x-yaml", "text/yaml"} {
		body := strings.Replace(yml, "from-yaml", "from-yaml-"+string(rune('a'+i)), 1)
		if code, data := f.send(t, "POST", base+"environments", ct, body); code != 201 {
			t.Errorf("%s: %d %s", ct, code, data)
		}
	}
	code, data := f.send(t, "POST", base+"environments", "application/yaml", "metadata:\n  name: a\n  name: b\n")
	if st := status(t, code, data, 400, store.ReasonBadRequest); !strings.Contains(st.Message, "invalid YAML body") {
		t.Errorf("duplicate YAML key: %s", st.Message)
	}
	if n := f.count(t, v1.KindEnvironment); n != 4 {
		t.Errorf("%d environments stored, want 4", n)
	}
	// Deletes and reads carry no body and need no type.
	if code, data := f.send(t, "DELETE", base+"environments/pwn", "", ""); code != 200 {
		t.Errorf("DELETE without a Content-Type: %d %s", code, data)
	}
}

// A Package whose inline archive is a zip the fetcher would refuse is
// refused on create and update, naming the field and the entry.
func TestZipSlipLiteralRefused(t *testing.T) {
	f := newFixture(t, boltstore.Options{}, apiserver.Options{})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("../../.ssh/authorized_keys")
	w.Write([]byte("ssh-ed25519 AAAA attacker"))
	zw.Close()
	pkg := func(field string, lit []byte) string {
		b, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"name": "p"},
			"spec": map[string]any{"environment": map[string]any{"name": "go"},
				field: map[string]any{"type": "literal", "literal": lit}},
		})
		return string(b)
	}
	for _, field := range []string{"source", "deployment"} {
		code, data := f.call(t, "POST", base+"packages", pkg(field, buf.Bytes()))
		st := status(t, code, data, 400, store.ReasonBadRequest)
		if !causeFields(st)["spec."+field+".literal"] || !strings.Contains(st.Message, `"../../.ssh/authorized_keys"`) {
			t.Errorf("%s: %+v does not name the field and the entry", field, st)
		}
	}
	if n := f.count(t, v1.KindPackage); n != 0 {
		t.Fatalf("%d packages stored", n)
	}
	good := pkg("deployment", []byte("\x00asm\x01\x00\x00\x00"))
	if code, data := f.call(t, "POST", base+"packages", good); code != 201 {
		t.Fatalf("a wasm literal: %d %s", code, data)
	}
	code, data := f.call(t, "PUT", base+"packages/p", pkg("deployment", buf.Bytes()))
	status(t, code, data, 400, store.ReasonBadRequest)
}
