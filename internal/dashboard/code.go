package dashboard

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	v1 "isotope.dev/isotope/api/v1"
)

// The code view lists the files of a package's source archive (its
// deploy archive when it has no source) and shows one text file. Files
// are looked up by their exact name among the archive's entries: nothing
// is extracted, so a name like ../../etc/passwd names no file.

const (
	maxArchiveView = 32 << 20  // archives larger than this are not opened
	maxFileView    = 512 << 10 // text shown of one file
)

type codeView struct {
	Archive  string // "source" or "deploy"
	Files    []codeFile
	Selected string
	Text     string
	Note     string // why no text is shown
	Error    string // why no files are listed
	Missing  string // the file asked for is not in the archive
}

type codeFile struct {
	Name string
	Size uint64
}

// readCode reads pkg's archive and the file asked for ("" = the first
// text file).
func (d *Dashboard) readCode(ctx context.Context, pkg *v1.Package, file string) *codeView {
	cv := &codeView{Archive: "source"}
	a := pkg.Spec.Source
	if a.IsEmpty() {
		a, cv.Archive = pkg.Spec.Deployment, "deploy"
	}
	b, err := d.archiveBytes(ctx, a)
	if err != nil {
		cv.Error = err.Error()
		if file != "" {
			cv.Missing = "no file " + file + ": " + err.Error()
		}
		return cv
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		cv.Error = "the " + cv.Archive + " archive is not a zip file"
		return cv
	}
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		cv.Files = append(cv.Files, codeFile{Name: f.Name, Size: f.UncompressedSize64})
		byName[f.Name] = f
	}
	sort.Slice(cv.Files, func(i, j int) bool { return cv.Files[i].Name < cv.Files[j].Name })
	if file != "" && byName[file] == nil {
		cv.Missing = fmt.Sprintf("no file %q in the %s archive of package %s", file, cv.Archive, pkg.Name)
		return cv
	}
	pick := func(f *zip.File) bool {
		text, note := readText(f)
		cv.Selected, cv.Text, cv.Note = f.Name, text, note
		return note == ""
	}
	if file != "" {
		pick(byName[file])
		return cv
	}
	for _, cf := range cv.Files {
		if pick(byName[cf.Name]) {
			return cv
		}
	}
	cv.Selected, cv.Text, cv.Note = "", "", ""
	return cv
}

// readText returns a file's text, or a note saying why it is not shown.
func readText(f *zip.File) (string, string) {
	rc, err := f.Open()
	if err != nil {
		return "", "cannot read " + f.Name + ": " + err.Error()
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxFileView+1))
	if err != nil {
		return "", "cannot read " + f.Name + ": " + err.Error()
	}
	truncated := len(b) > maxFileView
	if truncated {
		b = b[:maxFileView]
	}
	if bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(trimPartialRune(b)) {
		return "", f.Name + " is a binary file"
	}
	if truncated {
		return string(b), "only the first 512 KiB are shown"
	}
	return string(b), ""
}

// trimPartialRune drops a rune cut in half by truncation.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

// archiveBytes returns an archive's bytes from its literal or its URL,
// checking its sha256 when it has one.
func (d *Dashboard) archiveBytes(ctx context.Context, a v1.Archive) ([]byte, error) {
	var b []byte
	switch {
	case len(a.Literal) > 0:
		b = a.Literal
	case a.URL != "":
		if d.cfg.Download == nil {
			return nil, errors.New("archives at URLs cannot be read here")
		}
		var buf limitedBuffer
		buf.max = maxArchiveView
		if err := d.cfg.Download(ctx, a.URL, &buf); err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, fmt.Errorf("the archive is larger than %d MiB; download it with isotope archive download", maxArchiveView>>20)
			}
			return nil, fmt.Errorf("download the archive: %v", err)
		}
		b = buf.Bytes()
	default:
		return nil, errors.New("the package has no archive")
	}
	if a.Checksum.Sum != "" {
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != a.Checksum.Sum {
			return nil, errors.New("the archive does not match its sha256 checksum")
		}
	}
	return b, nil
}

var errTooLarge = errors.New("too large")

// limitedBuffer is a bytes.Buffer that refuses to grow past max.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) > l.max {
		return 0, errTooLarge
	}
	return l.Buffer.Write(p)
}
