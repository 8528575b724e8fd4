package isotope

import (
	"encoding/binary"
	"io"
	"maps"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"testing"
)

// The guest's half of the reactor ABI (docs/reactor-abi.md): it decodes
// requests and encodes responses. The host's half is fuzzed in
// internal/wasm.

// requestFrame frames a request per the document, headers and meta in
// sorted order.
func requestFrame(method, uri, host, remote, proto string, h http.Header, md map[string]string, body []byte) []byte {
	var b []byte
	str := func(s string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint32(b, abiVersion)
	str(method)
	str(uri)
	str(host)
	str(remote)
	str(proto)
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			str(k)
			str(v)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(md)))
	for _, k := range slices.Sorted(maps.Keys(md)) {
		str(k)
		str(md[k])
	}
	str(string(body))
	return b
}

// seenRequest is what a handler can observe of a decoded request.
type seenRequest struct {
	method, uri, host, remote, proto string
	header                           http.Header
	meta                             map[string]string
	body                             string
}

func see(t *testing.T, r *http.Request) seenRequest {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]string{}
	m := metaOf(r)
	for k, v := range map[string]string{metaMatchedRoute: m.matchedRoute, metaFullURL: m.fullURL, metaScriptName: m.scriptName} {
		if v != "" {
			md[k] = v
		}
	}
	if m.warmup {
		md[metaWarmup] = "1"
	}
	return seenRequest{r.Method, r.RequestURI, r.Host, r.RemoteAddr, r.Proto, r.Header, md, string(b)}
}

// FuzzDecodeRequestFrame feeds arbitrary bytes to the SDK's request
// decoder and to handleFrame, the whole isotope_handle path. Whatever the
// host sends: no panic; handleFrame answers a well-formed response frame
// (500 for a malformed request); and a request that decodes, framed
// again, decodes to the same request.
//
//	go test -run '^$' -fuzz FuzzDecodeRequestFrame -fuzztime 60s ./sdk/go
func FuzzDecodeRequestFrame(f *testing.F) {
	f.Add(requestFrame("GET", "/a%20b?x=1", "example.com", "10.0.0.1:5555", "HTTP/1.1", http.Header{"X-A": {"1", "2"}}, map[string]string{"matched_route": "/a/..."}, []byte("body")))
	f.Add(requestFrame("", "", "", "", "", nil, nil, nil))
	f.Add(requestFrame("POST", "*", "h", "r", "bogus", nil, map[string]string{"isotope_warmup": "1"}, nil))
	f.Add(requestFrame("GET", "http://other/x", "h", "r", "HTTP/2.0", http.Header{"": {""}}, map[string]string{"unknown": "ignored"}, []byte{0, 1}))
	f.Add(binary.LittleEndian.AppendUint32(nil, 2))
	f.Add(append(binary.LittleEndian.AppendUint32(nil, 1), 0xff, 0xff, 0xff, 0xff)) // lying method length
	f.Add(frame("GET", "/", [][2]string{{"K", "V"}}, nil, "")[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		reset(t)
		Register("Handler", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(w, r.Body)
			w.Header().Set("X-Path", r.URL.Path)
		})
		d := decode(t, handleFrame(nil, b)) // fails the test on a malformed response
		if d.status < 100 || d.status > 999 {
			t.Fatalf("handleFrame answered status %d", d.status)
		}

		req, err := decodeRequest(b)
		if err != nil {
			return
		}
		first := see(t, req)
		again, err := decodeRequest(requestFrame(first.method, first.uri, first.host, first.remote, first.proto, first.header, first.meta, []byte(first.body)))
		if err != nil {
			t.Fatalf("re-framed request does not decode: %v", err)
		}
		if second := see(t, again); !reflect.DeepEqual(first, second) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", first, second)
		}
	})
}

// FuzzResponseFrameRoundTrip encodes arbitrary responses as the SDK does
// and decodes them per the document: status, every header value in order
// per name, and body come back unchanged with no trailing bytes.
//
//	go test -run '^$' -fuzz FuzzResponseFrameRoundTrip -fuzztime 60s ./sdk/go
func FuzzResponseFrameRoundTrip(f *testing.F) {
	f.Add(uint32(200), "Content-Type", "text/plain", "X-A", "1", []byte("hello"))
	f.Add(uint32(0), "", "", "", "", []byte(nil))
	f.Add(uint32(0xffffffff), "K", "v\r\n", "K", "w", []byte{0})
	f.Fuzz(func(t *testing.T, status uint32, k1, v1, k2, v2 string, body []byte) {
		h := http.Header{}
		h[k1] = append(h[k1], v1)
		h[k2] = append(h[k2], v2)
		r := &reader{b: encodeResponse(nil, int(status), h, body)}
		if v := r.u32(); v != abiVersion {
			t.Fatalf("version %d", v)
		}
		gotStatus := r.u32()
		got := http.Header{}
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			k := r.str()
			got[k] = append(got[k], r.str()) // as sent: no canonicalization
		}
		gotBody := r.str()
		if r.err != nil || len(r.b) != 0 {
			t.Fatalf("malformed response frame: %v, %d bytes left", r.err, len(r.b))
		}
		if gotStatus != status || !reflect.DeepEqual(got, h) || gotBody != string(body) {
			t.Fatalf("round trip: got %d %v %q, want %d %v %q", gotStatus, got, gotBody, status, h, body)
		}
	})
}

// TestDecodeRequestLyingLengths: a frame claiming more headers, meta or
// bytes than it holds is refused without allocating for the claim.
func TestDecodeRequestLyingLengths(t *testing.T) {
	u32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	head := requestFrame("GET", "/", "h", "r", "HTTP/1.1", nil, nil, nil)
	head = head[:len(head)-12] // up to the header count
	for name, b := range map[string][]byte{
		"method length": u32(u32(nil, 1), 0xffffffff),
		"header count":  u32(head, 0xffffffff),
		"meta count":    u32(u32(head, 0), 0xffffffff),
		"body length":   u32(u32(u32(head, 0), 0), 0xffffffff),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decodeRequest(b)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: a lying frame was accepted", name)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%s: decoding %d bytes allocated %d bytes", name, len(b), grew)
		}
	}
}
