package storagesvc

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func zipOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A zip the fetcher would refuse to extract is refused when uploaded,
// naming the entry, and nothing is kept; good zips and other files are
// stored as before.
func TestHostileZipRefusedOnUpload(t *testing.T) {
	ts := newTestService(t, Options{})
	ctx := context.Background()
	for _, bad := range []struct{ entry, why string }{
		{"../../../home/dev/.bashrc", `".."`},
		{"/etc/cron.d/evil", "absolute path"},
		{`..\evil.bat`, "backslash"},
	} {
		data := zipOf(t, "ok.txt", bad.entry)
		_, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), "slip.zip", nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(err.Error(), `"`+strings.ReplaceAll(bad.entry, `\`, `\\`)+`"`) || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("upload with entry %q: %v, want 400 naming the entry and %s", bad.entry, err, bad.why)
		}
	}
	if ids := mustList(t, ts.client); len(ids) != 0 {
		t.Fatalf("refused archives are listed: %v", ids)
	}
	waitFor(t, "an empty archive directory", func() bool { return len(dirNames(t, ts.dir)) == 0 })

	for name, data := range map[string][]byte{
		"good.zip":      zipOf(t, "main.go", "sub/x.txt"),
		"function.wasm": []byte("\x00asm\x01\x00\x00\x00"),
		"PK-prefixed":   []byte("PKnot a zip header"),
	} {
		if _, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), name, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if ids := mustList(t, ts.client); len(ids) != 3 {
		t.Errorf("%d archives stored, want 3", len(ids))
	}
}
