package procrt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/fnconfig"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/tracing"
)

// proc is one local process instance.
// configDir holds the instance's secrets and configs trees.
func (p *proc) configDir() string { return filepath.Join(p.dir, "config") }

type proc struct {
	rt       *Runtime
	id       string
	env      *v1.Environment
	dir      string // instance directory, removed on Close
	userfunc string // stands for /userfunc
	addr     string // 127.0.0.1:port
	sock     string // the netns shim's socket, "" on the host network

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // set before exited closes
	out     *output

	specialized atomic.Bool
	broken      atomic.Bool
	closed      atomic.Bool
	closeOnce   sync.Once

	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

// loadRequest is Fission's FunctionLoadRequest (/v2/specialize body).
// FunctionMetadata has no JSON tag in Fission: the key is capitalised.
type loadRequest struct {
	FilePath         string             `json:"filepath"`
	FunctionName     string             `json:"functionName"`
	URL              string             `json:"url"`
	FunctionMetadata *metav1.ObjectMeta `json:"FunctionMetadata"`
	EnvVersion       int                `json:"envVersion"`
}

// Specialize implements instance.Instance: fetch the deploy archive into
// the instance directory, then POST the runtime's specialize endpoint,
// retrying while the connection is refused.
func (p *proc) Specialize(ctx context.Context, f instance.Function) error {
	if !p.specialized.CompareAndSwap(false, true) {
		return errors.New("instance is already specialized")
	}
	fn, env := f.Fn, p.env
	filename := "deployarchive"
	if env.Spec.Version == 1 {
		filename = "user"
	}
	if p.rt.cfg.Fetcher == nil {
		return errors.New("procrt: Config.Fetcher is nil")
	}
	if err := p.rt.cfg.Fetcher.FetchDeployment(ctx, f.Pkg, p.userfunc, filename, env.Spec.KeepArchive); err != nil {
		return fmt.Errorf("fetch deploy archive of package %s/%s: %w", f.Pkg.Namespace, f.Pkg.Name, err)
	}
	// As Fission's fetcher does before specializing: the secrets and
	// config maps as files (SECRETS_DIR, CONFIGS_DIR).
	if err := fnconfig.Write(p.configDir(), f.Secrets, f.ConfigMaps); err != nil {
		return fmt.Errorf("write the secrets and config maps of function %s/%s: %w", fn.Namespace, fn.Name, err)
	}
	// From now on the program's output is the function's.
	if p.rt.cfg.Logs != nil {
		p.out.attach(p.rt.cfg.Logs, fn.Namespace, fn.Name)
	}

	var (
		path, ctype string
		body        []byte
	)
	if env.Spec.Version == 1 {
		path, ctype = "/specialize", "text/plain"
	} else {
		meta := fn.ObjectMeta
		b, err := json.Marshal(loadRequest{
			FilePath:         filepath.Join(p.userfunc, filename),
			FunctionName:     fn.Spec.Package.FunctionName,
			URL:              "/",
			FunctionMetadata: &meta,
			EnvVersion:       env.Spec.Version,
		})
		if err != nil {
			return err
		}
		path, ctype, body = "/v2/specialize", "application/json", b
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return p.dial(ctx) }}}
	delay := 25 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", ctype)
		tracing.Inject(ctx, req.Header)
		res, err := client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
			res.Body.Close()
			if res.StatusCode >= 300 {
				return fmt.Errorf("runtime of environment %s/%s refused %s for function %s/%s: %s: %s",
					env.Namespace, env.Name, path, fn.Namespace, fn.Name, res.Status, bytes.TrimSpace(msg))
			}
			break
		}
		if !isDialError(err) {
			return fmt.Errorf("specialize (%s): %w", path, err)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("runtime of environment %s/%s exited during specialization (%v); its output: %s",
				env.Namespace, env.Name, p.waitErr, p.out.tailString())
		case <-ctx.Done():
			return fmt.Errorf("specialize (%s): %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
	p.setupProxy()
	return nil
}

func (p *proc) setupProxy() {
	p.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return p.dial(dctx)
		},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	p.proxy = &httputil.ReverseProxy{
		Director: func(r *http.Request) {
			r.URL.Scheme = "http"
			r.URL.Host = p.addr
			r.Host = p.addr
			if _, ok := r.Header["User-Agent"]; !ok {
				r.Header.Set("User-Agent", "") // keep an empty User-Agent empty
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &guardedBody{ReadCloser: r.Body}
			}
		},
		Transport: &dialRetry{rt: p.transport, exited: p.exited},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client left (or its deadline passed): not the
				// instance's fault.
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			p.broken.Store(true)
			p.rt.log.Warn("instance failed a request", "env", p.env.Namespace+"/"+p.env.Name, "instance", p.id, "err", err)
			http.Error(w, "function instance failed: "+err.Error(), http.StatusBadGateway)
		},
	}
}

// ServeHTTP implements instance.Instance by proxying to the program.
func (p *proc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.proxy == nil {
		http.Error(w, "instance is not specialized", http.StatusInternalServerError)
		return
	}
	if tracing.Enabled() {
		tracing.Call(w, r, "process.call", trace.SpanKindClient, []attribute.KeyValue{
			tracing.KeyRuntime.String("process"), tracing.KeyServerAddress.String(p.addr),
		}, p.proxy.ServeHTTP)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// guardedBody records whether the transport read any of the request
// body, so that a dial failure (nothing read) can be retried. Close is
// left to the server that owns the incoming body.
type guardedBody struct {
	io.ReadCloser
	read atomic.Bool
}

func (g *guardedBody) Read(b []byte) (int, error) {
	g.read.Store(true)
	return g.ReadCloser.Read(b)
}

func (g *guardedBody) Close() error { return nil }

// dialRetry retries a round trip that failed to connect, before any of
// the body was sent; every other error goes back unchanged.
type dialRetry struct {
	rt     http.RoundTripper
	exited <-chan struct{}
}

func (d *dialRetry) RoundTrip(r *http.Request) (*http.Response, error) {
	delay := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := d.rt.RoundTrip(r)
		if err == nil || attempt == 5 || !isDialError(err) {
			return res, err
		}
		if g, ok := r.Body.(*guardedBody); ok && g.read.Load() {
			return nil, err
		}
		select {
		case <-d.exited:
			return nil, err
		case <-r.Context().Done():
			return nil, err
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
