package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// ReactorABIVersion is the version of the request and response framing
// of docs/reactor-abi.md that this host writes and accepts.
const ReactorABIVersion = 1

// Meta keys the host passes to reactor guests next to the request.
const (
	MetaMatchedRoute = "matched_route"
	MetaFullURL      = "full_url"
	MetaScriptName   = "script_name"
	// MetaWarmup marks the host's warm-up request, sent once to each new
	// instance of an SDK-built module: the guest answers it without
	// running user code, so its first real request pays no first-use cost.
	MetaWarmup = "isotope_warmup"
)

// encodeRequest frames r for isotope_handle (docs/reactor-abi.md):
// u32 version, str method, str request-URI, str host, str remote address,
// str protocol, u32 n + n×(str name, str value) headers, u32 m + m×(str
// key, str value) meta, bytes body. Integers are little-endian u32; str and
// bytes are a u32 length then the bytes.
func encodeRequest(dst []byte, r *http.Request, opts InvokeOptions, body []byte) []byte {
	return encodeRequestMeta(dst, r, opts, body, false)
}

func encodeRequestMeta(dst []byte, r *http.Request, opts InvokeOptions, body []byte, warmup bool) []byte {
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	dst = binary.LittleEndian.AppendUint32(dst, ReactorABIVersion)
	dst = appendStr(dst, r.Method)
	dst = appendStr(dst, uri)
	dst = appendStr(dst, r.Host)
	dst = appendStr(dst, r.RemoteAddr)
	dst = appendStr(dst, r.Proto)
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	for k, vs := range r.Header {
		for _, v := range vs {
			dst = appendStr(dst, k)
			dst = appendStr(dst, v)
		}
	}
	w := ""
	if warmup {
		w = "1"
	}
	meta := [4][2]string{{MetaMatchedRoute, opts.MatchedRoute}, {MetaFullURL, opts.FullURL}, {MetaScriptName, opts.ScriptName}, {MetaWarmup, w}}
	m := 0
	for _, kv := range meta {
		if kv[1] != "" {
			m++
		}
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m))
	for _, kv := range meta {
		if kv[1] != "" {
			dst = appendStr(dst, kv[0])
			dst = appendStr(dst, kv[1])
		}
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

var errShort = errors.New("truncated")

type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.u32()
	if r.err != nil || uint64(len(r.b)) < uint64(n) {
		r.err = errShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// decodeResponse parses isotope_handle's answer: u32 version, u32 status,
// u32 n + n×(str name, str value) headers, bytes body. The body is copied
// out of guest memory.
func decodeResponse(b []byte) (*response, error) {
	r := &reader{b: b}
	if v := r.u32(); r.err == nil && v != ReactorABIVersion {
		return nil, fmt.Errorf("reactor response has ABI version %d, this host speaks %d", v, ReactorABIVersion)
	}
	status := int(r.u32())
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b))/8 {
		return nil, fmt.Errorf("reactor response claims %d headers in %d bytes", n, len(r.b))
	}
	h := make(http.Header, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		k := string(r.bytes())
		v := string(r.bytes())
		if r.err == nil {
			// validHeaderName forgives the spaces CGI allows around a
			// name; a frame's names must be exact.
			if k != strings.TrimSpace(k) || !validHeaderName(k) {
				return nil, fmt.Errorf("reactor response has invalid header name %q", truncate(k, 80))
			}
			h.Add(textproto.CanonicalMIMEHeaderKey(k), v)
		}
	}
	body := r.bytes()
	if r.err != nil {
		return nil, fmt.Errorf("reactor response is %w (%d bytes)", r.err, len(b))
	}
	if status == 0 {
		status = http.StatusOK
	}
	if status < 100 || status > 999 {
		return nil, fmt.Errorf("reactor response has invalid status %d", status)
	}
	return &response{status: status, header: h, body: append([]byte(nil), body...)}, nil
}

// EncodeRequestFrame returns the reactor ABI request frame of r, exactly as
// the host writes it into guest memory (for tools and benchmarks that call
// isotope_handle themselves).
func EncodeRequestFrame(r *http.Request, opts InvokeOptions, body []byte) []byte {
	return encodeRequest(nil, r, opts, body)
}
