package kubetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// CompactEtcd compacts etcd's history up to its current revision, as the
// kube-apiserver's compactor does every few minutes, so tests can show
// what happens to watches from versions that are gone. It talks to etcd's
// JSON gateway on loopback and returns the revision compacted to.
func (e *Env) CompactEtcd(t testing.TB) int64 {
	t.Helper()
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	key := base64.StdEncoding.EncodeToString([]byte("/isotope-kubetest-probe"))
	if err := e.etcdCall("/v3/kv/range", map[string]any{"key": key}, &rng); err != nil {
		t.Fatalf("etcd range: %v", err)
	}
	rev, err := strconv.ParseInt(rng.Header.Revision, 10, 64)
	if err != nil {
		t.Fatalf("etcd revision %q: %v", rng.Header.Revision, err)
	}
	if err := e.etcdCall("/v3/kv/compaction", map[string]any{"revision": rev, "physical": true}, nil); err != nil {
		t.Fatalf("etcd compaction to %d: %v", rev, err)
	}
	e.compacted.Store(rev)
	return rev
}

// CompactedRevision is the revision CompactEtcd last compacted to, 0 if
// it was never called (the apiserver's own compactor runs only every 5
// minutes).
func (e *Env) CompactedRevision() int64 { return e.compacted.Load() }

func (e *Env) etcdCall(path string, body any, out any) error {
	u := e.env.ControlPlane.Etcd.URL
	if u == nil {
		return fmt.Errorf("etcd URL unknown")
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String()+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, respBody)
	}
	if out != nil {
		return json.Unmarshal(respBody, out)
	}
	return nil
}
