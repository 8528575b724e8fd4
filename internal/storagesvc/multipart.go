package storagesvc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// formReader finds one field of a multipart/form-data body (RFC 7578,
// with the framing of RFC 2046) and streams that field's bytes.
//
// mime/multipart would do, but it reads through a 4 KiB peek buffer:
// every byte of a large archive is copied twice more than needed and
// the boundary is searched for 4 KiB at a time. Here the body is read
// through one large buffer, the boundary is searched for with one
// bytes.Index over everything buffered, and each byte is copied out
// once, straight into the caller's buffer.
type formReader struct {
	br *bufio.Reader
	// dashBoundary is "--" + boundary: a line holding it opens the first
	// part; delim is CRLF + dashBoundary: it ends every part.
	dashBoundary, delim []byte
}

// Limits on what surrounds the field: what a form sends besides the
// archive is small, and none of it may be used to make the server read
// without bound.
const (
	maxPreamble    = 64 << 10 // bytes before the first boundary
	maxPartHeaders = 64       // header lines of one part
	maxOtherField  = 64 << 10 // bytes of a field that is not the archive
)

// errMultipart is the cause of every malformed-body error.
var errMultipart = errors.New("multipart body")

func newFormReader(r io.Reader, boundary string) *formReader {
	return &formReader{
		br:           bufio.NewReaderSize(r, copyBufSize),
		dashBoundary: []byte("--" + boundary),
		delim:        []byte("\r\n--" + boundary),
	}
}

// field skips to the part whose form name is name and returns a reader
// of its bytes, which ends (io.EOF) at the part's closing boundary. Other
// parts before it are read and dropped (each at most maxOtherField
// bytes). A body without such a part is an error wrapping errNoField.
func (f *formReader) field(name string) (io.Reader, error) {
	if err := f.skipPreamble(); err != nil {
		return nil, err
	}
	for {
		partName, err := f.partHeaders()
		if err != nil {
			return nil, err
		}
		body := &partReader{f: f}
		if partName == name {
			return body, nil
		}
		n, err := io.Copy(io.Discard, io.LimitReader(body, maxOtherField+1))
		switch {
		case err != nil:
			return nil, err
		case n > maxOtherField:
			return nil, fmt.Errorf("%w: field %q is over %d bytes (only %q may be large)", errMultipart, partName, maxOtherField, name)
		}
		last, err := f.afterDelimiter()
		if err != nil {
			return nil, err
		}
		if last {
			return nil, errNoField
		}
	}
}

// errNoField: the form has no part of the wanted name.
var errNoField = errors.New("multipart field is missing")

// skipPreamble reads up to and including the first boundary line.
func (f *formReader) skipPreamble() error {
	read := 0
	for {
		line, err := f.br.ReadSlice('\n')
		read += len(line)
		if err == bufio.ErrBufferFull || read > maxPreamble {
			return fmt.Errorf("%w: no boundary in the first %d bytes", errMultipart, maxPreamble)
		}
		trimmed := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(trimmed, f.dashBoundary) && err == nil {
			return nil
		}
		if bytes.HasPrefix(trimmed, f.dashBoundary) && bytes.Equal(trimmed[len(f.dashBoundary):], []byte("--")) {
			return errNoField // an empty form
		}
		if err != nil {
			return fmt.Errorf("%w: no opening boundary: %w", errMultipart, unexpected(err))
		}
	}
}

// partHeaders reads one part's header block and returns the part's form
// name (the name parameter of its Content-Disposition).
func (f *formReader) partHeaders() (string, error) {
	var name string
	for i := 0; ; i++ {
		if i > maxPartHeaders {
			return "", fmt.Errorf("%w: a part has over %d header lines", errMultipart, maxPartHeaders)
		}
		line, err := f.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return "", fmt.Errorf("%w: a part header line is over %d bytes", errMultipart, f.br.Size())
		}
		if err != nil {
			return "", fmt.Errorf("%w: part headers: %w", errMultipart, unexpected(err))
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return name, nil
		}
		key, value, ok := strings.Cut(string(line), ":")
		if !ok {
			return "", fmt.Errorf("%w: malformed part header %q", errMultipart, line)
		}
		if strings.EqualFold(strings.TrimSpace(key), "Content-Disposition") {
			disp, params, err := mime.ParseMediaType(strings.TrimSpace(value))
			if err != nil || disp != "form-data" {
				return "", fmt.Errorf("%w: part Content-Disposition %q: want form-data with a name", errMultipart, strings.TrimSpace(value))
			}
			name = params["name"]
		}
	}
}

// afterDelimiter reads the rest of a boundary line once a part's reader
// has ended, and reports whether it closed the form ("--").
func (f *formReader) afterDelimiter() (last bool, err error) {
	line, err := f.br.ReadSlice('\n')
	if bytes.HasPrefix(line, []byte("--")) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: after a boundary: %w", errMultipart, unexpected(err))
	}
	return false, nil
}

// unexpected turns io.EOF inside a form into io.ErrUnexpectedEOF: the
// body ended before the form did.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// partReader yields one part's bytes: everything up to the next
// delimiter (CRLF "--" boundary, followed by "--", white space or a line
// end). It consumes the delimiter itself, not what follows on its line.
type partReader struct {
	f    *formReader
	done bool
}

func (p *partReader) Read(out []byte) (int, error) {
	if p.done {
		return 0, io.EOF
	}
	if len(out) == 0 {
		return 0, nil
	}
	f := p.f
	delim := f.delim
	need := len(delim) + 2 // a delimiter and the two bytes that confirm it
	// Refill when little is buffered: Peek of the whole buffer reads
	// until it is full or the body ends.
	var rerr error
	if f.br.Buffered() < max(need, len(out)) {
		_, rerr = f.br.Peek(f.br.Size())
		if rerr == bufio.ErrBufferFull {
			rerr = nil
		}
	}
	// Look no further than the bytes that could go out now: what is
	// not copied out is searched again by the next read.
	buf, _ := f.br.Peek(min(f.br.Buffered(), len(out)+need-1))
	// safe is how many bytes surely belong to the part; end is where
	// the part ends within buf (-1: not in buf).
	safe, end := 0, -1
	from := 0
	for {
		i := bytes.Index(buf[from:], delim)
		if i < 0 {
			// A delimiter could still begin in the last need-1 bytes.
			safe = max(from, len(buf)-need+1)
			break
		}
		i += from
		if i+need > len(buf) {
			safe = i // cannot tell yet; wait for more bytes
			break
		}
		if endsDelimiter(buf[i+len(delim):]) {
			safe, end = i, i
			break
		}
		from = i + 1 // the boundary string inside other text: data
	}
	if rerr != nil && end < 0 && (safe == 0 || rerr != io.EOF) {
		// The body ended (or failed) with no delimiter in what is left.
		return 0, fmt.Errorf("%w: the part has no closing boundary: %w", errMultipart, unexpected(rerr))
	}
	n := copy(out, buf[:safe])
	f.br.Discard(n)
	if end >= 0 && n == end {
		f.br.Discard(len(delim))
		p.done = true
	}
	return n, nil
}

// endsDelimiter reports whether the two bytes after a delimiter confirm
// it: "--" (the form's end), a line end, or the white space RFC 2046
// allows before it. Anything else means the boundary string was only
// part of the data.
func endsDelimiter(after []byte) bool {
	switch {
	case after[0] == '-':
		return after[1] == '-'
	case after[0] == '\r':
		return after[1] == '\n'
	default:
		return after[0] == '\n' || after[0] == ' ' || after[0] == '\t'
	}
}
