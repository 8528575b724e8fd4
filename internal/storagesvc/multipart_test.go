package storagesvc

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"strings"
	"testing"
	"testing/iotest"
)

// formCase is a multipart body and what formReader must make of it.
type formCase struct {
	name     string
	body     string
	boundary string
	want     string // the uploadfile field's bytes
	wantErr  string // or an error containing this
}

func formCases() []formCase {
	b := "XyZb0undary"
	d := "--" + b
	return []formCase{
		{name: "plain", boundary: b,
			body: d + "\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"a.zip\"\r\n\r\nhello\r\n" + d + "--\r\n",
			want: "hello"},
		{name: "empty field", boundary: b,
			body: d + "\r\nContent-Disposition: form-data; name=\"uploadfile\"\r\n\r\n\r\n" + d + "--\r\n",
			want: ""},
		{name: "preamble and other fields first", boundary: b,
			body: "this is a preamble\r\n" + d + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n" +
				d + "\r\ncontent-disposition: form-data; name=\"uploadfile\"; filename=\"x\"\r\nContent-Type: application/zip\r\n\r\nDATA\r\n" + d + "--\r\n",
			want: "DATA"},
		{name: "boundary-like text inside the data", boundary: b,
			body: d + "\r\nContent-Disposition: form-data; name=\"uploadfile\"\r\n\r\n" +
				"a\r\n" + d + "X not a delimiter\r\n--" + b + "\r\r\n" + d + "--\r\n",
			want: "a\r\n" + d + "X not a delimiter\r\n--" + b + "\r"},
		{name: "padding after the delimiter", boundary: b,
			body: d + "\r\nContent-Disposition: form-data; name=\"uploadfile\"\r\n\r\nabc\r\n" + d + "  \r\nContent-Disposition: form-data; name=\"more\"\r\n\r\nz\r\n" + d + "--\r\n",
			want: "abc"},
		{name: "missing field", boundary: b,
			body:    d + "\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n" + d + "--\r\n",
			wantErr: "missing"},
		{name: "empty form", boundary: b, body: d + "--\r\n", wantErr: "missing"},
		{name: "no closing boundary", boundary: b,
			body:    d + "\r\nContent-Disposition: form-data; name=\"uploadfile\"\r\n\r\nthe body just stops",
			wantErr: "no closing boundary"},
		{name: "no boundary at all", boundary: b, body: "just some text", wantErr: "no opening boundary"},
		{name: "wrong disposition", boundary: b,
			body:    d + "\r\nContent-Disposition: attachment; name=\"uploadfile\"\r\n\r\nx\r\n" + d + "--\r\n",
			wantErr: "want form-data"},
		{name: "large other field", boundary: b,
			body:    d + "\r\nContent-Disposition: form-data; name=\"big\"\r\n\r\n" + strings.Repeat("x", maxOtherField+1) + "\r\n" + d + "--\r\n",
			wantErr: `field "big" is over`},
	}
}

func readField(r io.Reader, boundary string) (string, error) {
	part, err := newFormReader(r, boundary).field(FormField)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(part)
	return string(b), err
}

// Every case, read whole and one byte at a time (so delimiters are split
// across reads at every possible place).
func TestFormReaderCases(t *testing.T) {
	for _, c := range formCases() {
		for _, mode := range []string{"whole", "one byte", "half"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				var r io.Reader = strings.NewReader(c.body)
				switch mode {
				case "one byte":
					r = iotest.OneByteReader(r)
				case "half":
					r = iotest.HalfReader(r)
				}
				got, err := readField(r, c.boundary)
				if c.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), c.wantErr) {
						t.Fatalf("got %q, %v; want an error with %q", got, err, c.wantErr)
					}
					return
				}
				if err != nil || got != c.want {
					t.Fatalf("got %q, %v; want %q", got, err, c.want)
				}
			})
		}
	}
}

// The missing-field and cut-short cases are told apart by errors.Is: the
// server answers 400 for the first and "upload interrupted" for the second.
func TestFormReaderErrorKinds(t *testing.T) {
	_, err := readField(strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n"), "b")
	if !errors.Is(err, errNoField) {
		t.Fatalf("missing field: %v", err)
	}
	_, err = readField(strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"uploadfile\"\r\n\r\n123"), "b")
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, errMultipart) {
		t.Fatalf("cut short: %v", err)
	}
}

// Random archives framed by Go's own multipart writer (the client's, with
// its 60-hex-digit boundary) come back byte for byte, whatever the read
// sizes; the data is salted with CRLF and pieces of the delimiter.
func TestFormReaderMatchesMultipartWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		delim := "\r\n--" + mw.Boundary()
		n := rng.IntN(2*copyBufSize + 1000)
		data := make([]byte, n)
		rand.NewChaCha8([32]byte{byte(i)}).Read(data)
		for k := rng.IntN(20); k > 0 && n > 0; k-- { // near-delimiters
			at := rng.IntN(n)
			frag := delim[:1+rng.IntN(len(delim)-1)]
			copy(data[at:], frag)
		}
		if i%3 == 0 {
			mw.WriteField("name", "fn")
		}
		w, _ := mw.CreateFormFile(FormField, "a.zip")
		w.Write(data)
		if i%2 == 0 {
			mw.WriteField("after", "x")
		}
		mw.Close()
		var r io.Reader = bytes.NewReader(body.Bytes())
		if i%2 == 1 {
			r = &randomChunks{r: r, rng: rng}
		}
		got, err := readField(r, mw.Boundary())
		if err != nil || got != string(data) {
			t.Fatalf("case %d (%d bytes): got %d bytes, %v", i, n, len(got), err)
		}
	}
}

// randomChunks returns reads of random sizes, 1 byte to 100 KiB.
type randomChunks struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *randomChunks) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1+c.rng.IntN(min(len(p), 100<<10))]
	}
	return c.r.Read(p)
}

// Reads into small buffers still end exactly at the delimiter.
func TestFormReaderSmallReads(t *testing.T) {
	c := formCases()[3]
	part, err := newFormReader(strings.NewReader(c.body), c.boundary).field(FormField)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(iotest.OneByteReader(part))
	if err != nil || string(got) != c.want {
		t.Fatalf("got %q, %v", got, err)
	}
}
