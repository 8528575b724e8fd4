package wasm

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseCGIResponse feeds arbitrary guest stdout to the WAGI response
// parser (seeds below and in testdata/fuzz/FuzzParseCGIResponse). Whatever
// a guest prints, there is no panic, and the parser returns either an
// error the host answers itself (500 for output that is not CGI at all,
// 502 for malformed CGI) with a message, or a response whose status is in
// 100..999, whose header names are RFC 9110 tokens, whose values hold no
// CR or LF (so nothing a guest prints can split the host's response), and
// whose body is exactly the bytes after the header block.
//
//	go test -run '^$' -fuzz FuzzParseCGIResponse -fuzztime 60s ./internal/wasm
func FuzzParseCGIResponse(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\n\nhello\n",
		"Content-Type: text/plain\r\n\r\nhello",
		"Status: 404 Not Found\nContent-Type: text/plain\n\nnope",
		"Location: /elsewhere\n\n",
		"Location: /x\nStatus: 301\n\n",
		"X-Only: 1\n\nbody",
		"Status: 99\n\n",
		"Status: 1000\n\n",
		"Status: abc\n\n",
		"Status:\n\n",
		"Content-Type text/plain\n\n",
		"Bad Name: x\nContent-Type: a\n\n",
		": empty\n\n",
		"Content-Type: a\nX-A: 1\nX-A: 2\n\nbody\n\nmore",
		"Content-Type: a\nX-Inject: a\rSet-Cookie: x\n\n",
		"Content-Type: a",
		"\n\nbody only",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		resp, herr := parseCGIResponse(out)
		if herr != nil {
			if resp != nil {
				t.Fatalf("both a response and an error %v", herr)
			}
			if herr.status != http.StatusBadGateway && herr.status != http.StatusInternalServerError {
				t.Fatalf("error status %d (%s), want 500 or 502", herr.status, herr.msg)
			}
			if herr.msg == "" {
				t.Fatal("error without a message")
			}
			return
		}
		if resp.status < 100 || resp.status > 999 {
			t.Fatalf("status %d outside 100..999", resp.status)
		}
		for k, vs := range resp.header {
			if !isToken(k) {
				t.Fatalf("invalid header name %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %s value %q holds CR or LF", k, v)
				}
			}
		}
		if !bytes.HasSuffix(out, resp.body) {
			t.Fatalf("body %q is not the tail of the output", resp.body)
		}
		head := out[:len(out)-len(resp.body)]
		if len(resp.body) > 0 && !bytes.HasSuffix(head, []byte("\n")) {
			t.Fatalf("body %q does not start after a line end", resp.body)
		}
	})
}

// isToken reports whether s is an RFC 9110 token (a valid field name),
// written independently of the parser's own check.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
