package wasm

import (
	"encoding/binary"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"slices"
	"testing"
)

// The host's half of the reactor ABI (docs/reactor-abi.md): it encodes
// requests and decodes responses. The guest's half is fuzzed in sdk/go.

// testFrame writes reactor ABI frames for tests, from the document rather
// than from the host's encoder.
type testFrame []byte

func (b testFrame) u32(v uint32) testFrame { return binary.LittleEndian.AppendUint32(b, v) }
func (b testFrame) str(s string) testFrame { return append(b.u32(uint32(len(s))), s...) }

// encodeTestResponse frames a response with its headers in sorted order.
func encodeTestResponse(status int, h http.Header, body []byte) []byte {
	b := testFrame(nil).u32(ReactorABIVersion).u32(uint32(status))
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = b.u32(uint32(n))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			b = b.str(k).str(v)
		}
	}
	return b.str(string(body))
}

// FuzzDecodeResponseFrame feeds arbitrary bytes to the host's decoder of
// a guest's answer. Whatever a guest returns: no panic; an error, or a
// response with a status in 100..999 and valid header names; and that
// response, framed again, decodes to itself (decode is a left inverse of
// encode on everything it accepts).
//
//	go test -run '^$' -fuzz FuzzDecodeResponseFrame -fuzztime 60s ./internal/wasm
func FuzzDecodeResponseFrame(f *testing.F) {
	f.Add(encodeTestResponse(200, http.Header{"Content-Type": {"text/plain"}}, []byte("hello")))
	f.Add(encodeTestResponse(0, nil, nil))
	f.Add(encodeTestResponse(404, http.Header{"X-A": {"1", "2"}, "X-B": {""}}, []byte("not found")))
	f.Add(encodeTestResponse(1000, nil, nil))
	f.Add(encodeTestResponse(200, http.Header{"Bad Name": {"x"}}, nil))
	f.Add([]byte(testFrame(nil).u32(2).u32(200).u32(0).u32(0)))
	f.Add([]byte(testFrame(nil).u32(1).u32(200).u32(0xffffffff)))                 // lying header count
	f.Add([]byte(testFrame(nil).u32(1).u32(200).u32(0).u32(0xffffffff)))          // lying body length
	f.Add([]byte(testFrame(nil).u32(1).u32(200).u32(1).u32(0xfffffff0).str("x"))) // lying name length
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := decodeResponse(b)
		if err != nil {
			return
		}
		if resp.status < 100 || resp.status > 999 {
			t.Fatalf("status %d outside 100..999", resp.status)
		}
		for k := range resp.header {
			if !isToken(k) {
				t.Fatalf("invalid header name %q", k)
			}
		}
		again, err := decodeResponse(encodeTestResponse(resp.status, resp.header, resp.body))
		if err != nil {
			t.Fatalf("re-encoded response does not decode: %v", err)
		}
		if again.status != resp.status || !reflect.DeepEqual(again.header, resp.header) || string(again.body) != string(resp.body) {
			t.Fatalf("round trip changed the response: %+v, then %+v", resp, again)
		}
	})
}

// decodedRequest is a request frame as a guest reads it.
type decodedRequest struct {
	method, uri, host, remote, proto string
	header                           map[string][]string
	meta                             map[string]string
	body                             string
}

// decodeTestRequest reads a request frame per the document and fails on a
// malformed one.
func decodeTestRequest(b []byte) (d decodedRequest, err error) {
	r := &reader{b: b}
	if v := r.u32(); v != ReactorABIVersion {
		return d, errors.New("bad version")
	}
	str := func() string { return string(r.bytes()) }
	d.method, d.uri, d.host, d.remote, d.proto = str(), str(), str(), str(), str()
	d.header, d.meta = map[string][]string{}, map[string]string{}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		k, v := str(), str()
		d.header[k] = append(d.header[k], v)
	}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		k, v := str(), str()
		d.meta[k] = v
	}
	d.body = str()
	if r.err == nil && len(r.b) != 0 {
		return d, errors.New("trailing bytes")
	}
	return d, r.err
}

// FuzzRequestFrameRoundTrip encodes arbitrary requests as the host does
// and decodes them as the document says a guest must: every field, every
// header value (in order per name) and the non-empty meta come back
// unchanged, and the frame has no trailing bytes.
//
//	go test -run '^$' -fuzz FuzzRequestFrameRoundTrip -fuzztime 60s ./internal/wasm
func FuzzRequestFrameRoundTrip(f *testing.F) {
	f.Add("GET", "/a%20b?x=1", "example.com", "10.0.0.1:5555", "HTTP/1.1", "X-A", "1", "X-A", "2", "/hello/...", "https://edge/hello/x", "/hello", []byte("body"))
	f.Add("", "", "", "", "", "", "", "", "", "", "", "", []byte(nil))
	f.Add("POST", "*", "h", "r", "HTTP/2.0", "k\x00", "v\r\n", "K2", "", "", "", "", []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, method, uri, host, remote, proto, k1, v1, k2, v2, route, full, script string, body []byte) {
		h := http.Header{}
		h[k1] = append(h[k1], v1)
		h[k2] = append(h[k2], v2)
		r := &http.Request{Method: method, RequestURI: uri, URL: &url.URL{Path: "/"}, Host: host, RemoteAddr: remote, Proto: proto, Header: h}
		opts := InvokeOptions{MatchedRoute: route, FullURL: full, ScriptName: script}
		got, err := decodeTestRequest(encodeRequest(nil, r, opts, body))
		if err != nil {
			t.Fatalf("host frame does not decode: %v", err)
		}
		wantURI := uri
		if uri == "" {
			wantURI = "/"
		}
		wantMeta := map[string]string{}
		for k, v := range map[string]string{MetaMatchedRoute: route, MetaFullURL: full, MetaScriptName: script} {
			if v != "" {
				wantMeta[k] = v
			}
		}
		want := decodedRequest{method, wantURI, host, remote, proto, h, wantMeta, string(body)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

// TestDecodeResponseLyingLengths: a frame that claims more headers or
// bytes than it holds is refused without allocating for the claim.
func TestDecodeResponseLyingLengths(t *testing.T) {
	for name, b := range map[string][]byte{
		"header count": testFrame(nil).u32(1).u32(200).u32(0xffffffff).str("k").str("v"),
		"body length":  testFrame(nil).u32(1).u32(200).u32(0).u32(0xffffffff),
		"name length":  testFrame(nil).u32(1).u32(200).u32(1).u32(0xfffffff0).str("x"),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decodeResponse(b)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: a lying frame was accepted", name)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%s: decoding %d bytes allocated %d bytes", name, len(b), grew)
		}
	}
}
