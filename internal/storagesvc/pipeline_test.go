package storagesvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	v1 "isotope.dev/isotope/api/v1"
)

// hashCopy delivers every byte in order to both the writer and the hash,
// whatever the read sizes, and reports afterWrite totals that end at the
// size.
func TestHashCopyOrderAndHash(t *testing.T) {
	data := randomBytes(t, 5*copyBufSize+12345)
	for name, src := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"half":     iotest.HalfReader(bytes.NewReader(data)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		var out bytes.Buffer
		h := sha256.New()
		var last int64
		n, err := hashCopy(context.Background(), &out, src, h, func(w int64) { last = w })
		if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("%s: n %d err %v, copied equal: %v", name, n, err, bytes.Equal(out.Bytes(), data))
		}
		if hex.EncodeToString(h.Sum(nil)) != sha256Hex(data) || last != int64(len(data)) {
			t.Fatalf("%s: wrong hash or afterWrite total %d", name, last)
		}
	}
}

// failAfter is a writer that fails once it has taken limit bytes.
type failAfter struct {
	limit, n int
}

var errDiskBroke = errors.New("disk broke")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, errDiskBroke
	}
	f.n += len(p)
	return len(p), nil
}

// countingReader counts what was read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A write error stops the copy soon (the reading stage does not read the
// whole source) and is what hashCopy returns; a read error other than
// EOF is returned too, never taken for the end.
func TestHashCopyErrors(t *testing.T) {
	src := &countingReader{r: bytes.NewReader(make([]byte, 100*copyBufSize))}
	_, err := hashCopy(context.Background(), &failAfter{limit: 2 * copyBufSize}, src, sha256.New(), nil)
	if !errors.Is(err, errDiskBroke) {
		t.Fatalf("write error: %v", err)
	}
	if src.n > int64(2+pipeSlots+2)*int64(copyBufSize) {
		t.Fatalf("read %d bytes after the writer failed at %d", src.n, 2*copyBufSize)
	}

	cut := io.MultiReader(bytes.NewReader(make([]byte, copyBufSize+7)), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := hashCopy(context.Background(), io.Discard, cut, nil, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut source: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := hashCopy(ctx, io.Discard, bytes.NewReader(make([]byte, 10)), nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// fakeStorage is a fake storage service for client-side checks a real
// one never triggers: it reads the upload body (or not) and answers
// with the checksum it is told to.
func fakeStorage(t *testing.T, readBody bool, sum string) *Client {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readBody {
			io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(UploadResponse{ID: "/isotope/archives/x", Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: sum}})
	}))
	t.Cleanup(hs.Close)
	return NewClient(hs.URL, "")
}

// The client hashes what it sends in the same pass as sending it, and
// still refuses an answer whose checksum differs from its own.
func TestUploadRejectsChecksumMismatch(t *testing.T) {
	data := randomBytes(t, 3*copyBufSize+5)
	c := fakeStorage(t, true, strings.Repeat("0", 64))
	_, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "a.zip", nil)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), sha256Hex(data)) {
		t.Fatalf("mismatch: %v", err)
	}
	c = fakeStorage(t, true, sha256Hex(data))
	res, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "a.zip", nil)
	if err != nil || res.Checksum.Sum != sha256Hex(data) {
		t.Fatalf("matching answer: %+v %v", res, err)
	}
}

// An answer that comes before the archive was all sent is not taken for
// a stored archive.
func TestUploadRejectsEarlyAnswer(t *testing.T) {
	data := randomBytes(t, 64*copyBufSize) // well over the socket buffers
	c := fakeStorage(t, false, "")
	_, err := c.Upload(context.Background(), bytes.NewReader(data), int64(len(data)), "a.zip", nil)
	if err == nil || !strings.Contains(err.Error(), "before receiving the whole archive") {
		t.Fatalf("an upload answered before its body was read: %v", err)
	}
}

// A source that fails mid-upload is named as the cause.
func TestUploadSourceError(t *testing.T) {
	ts := newTestService(t, Options{})
	src := io.MultiReader(bytes.NewReader(make([]byte, 2*copyBufSize)), iotest.ErrReader(errDiskBroke))
	_, err := ts.client.Upload(context.Background(), src, int64(10*copyBufSize), "a.zip", nil)
	if !errors.Is(err, errDiskBroke) {
		t.Fatalf("source error: %v", err)
	}
	waitFor(t, "the partial upload to be removed", func() bool { return len(dirNames(t, ts.dir)) == 0 })
}
