package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Helpers of the fault and load tests: processes seen through /proc, the
// store file checked with bbolt, and uploads paused mid-body.

// pid is the server's process id.
func (p *platform) pid() int { return p.cmd.Process.Pid }

// procStat reads state, parent and process group of pid from
// /proc/<pid>/stat; ok is false when the process is gone.
func procStat(pid int) (state byte, ppid, pgid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	return f[0][0], ppid, pgid, true
}

// procAlive reports whether pid is a running (not zombie) process.
func procAlive(pid int) bool {
	state, _, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procs returns the live processes whose command line contains substr
// or whose parent or process group is one of groups.
func procs(substr string, groups ...int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !procAlive(pid) {
			continue
		}
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		_, ppid, pgid, _ := procStat(pid)
		match := substr != "" && strings.Contains(cmdline, substr)
		for _, g := range groups {
			match = match || ppid == g || pgid == g
		}
		if match {
			out[pid] = cmdline
		}
	}
	return out
}

// memory is a process's resident set: now and at its peak.
type memory struct{ RSS, HWM int64 } // KiB

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB, VmHWM %.1f MiB", float64(m.RSS)/1024, float64(m.HWM)/1024)
}

// memoryOf reads VmRSS and VmHWM from /proc/<pid>/status.
func memoryOf(t *testing.T, pid int) memory {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read memory of pid %d: %v", pid, err)
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "VmHWM":
			m.HWM = n
		}
	}
	return m
}

// checkStoreFile runs bbolt's consistency check over the store of a
// stopped server: every page reachable once, free list sound.
func checkStoreFile(t *testing.T, dataDir string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dataDir, "isotope.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the store after the kill: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []string
		for e := range tx.Check() {
			errs = append(errs, e.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt check: %s", strings.Join(errs, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("store after the kill is inconsistent: %v", err)
	}
}

// fileSum is the lowercase hex sha256 of a file.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// uploaded is one archive stored through `isotope archive upload`.
type uploaded struct {
	ID       string `json:"id"`
	Checksum struct {
		Sum string `json:"sum"`
	} `json:"checksum"`
}

// upload stores a file of size pseudo-random bytes with the CLI.
func (p *platform) upload(t *testing.T, dir, name string, size int) uploaded {
	t.Helper()
	path := writeFile(t, dir, name, pseudoRandom(size, name))
	var u uploaded
	if err := json.Unmarshal([]byte(p.ok("archive", "upload", "--name", path, "-o", "json")), &u); err != nil || u.ID == "" {
		t.Fatalf("archive upload -o json: %v", err)
	}
	if want := fileSum(t, path); u.Checksum.Sum != want {
		t.Fatalf("upload of %s: checksum %s, want %s", name, u.Checksum.Sum, want)
	}
	return u
}

// pseudoRandom is size incompressible bytes derived from seed.
func pseudoRandom(size int, seed string) []byte {
	out := make([]byte, 0, size+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < size {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:size]
}

// archiveIDs is `isotope archive list -o json`.
func (p *platform) archiveIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	if err := json.Unmarshal([]byte(p.ok("archive", "list", "-o", "json")), &ids); err != nil {
		t.Fatalf("archive list -o json: %v", err)
	}
	return ids
}

// tempFiles lists the uploads in progress in the archive directory.
func tempFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dataDir, "archives", ".tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pausedUpload opens POST /v1/archive for an archive of size bytes, sends
// the multipart head and the first sent bytes, and leaves the rest
// unsent: an upload stuck mid-body. Closing the connection ends it.
func pausedUpload(t *testing.T, api string, size, sent int) net.Conn {
	t.Helper()
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if _, err := mw.CreateFormFile("uploadfile", "big.bin"); err != nil {
		t.Fatal(err)
	}
	preamble := append([]byte(nil), head.Bytes()...)
	trailerLen := len("\r\n--" + mw.Boundary() + "--\r\n")
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/archive HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nX-File-Size: %d\r\nContent-Length: %d\r\n\r\n",
		u.Host, mw.FormDataContentType(), size, len(preamble)+size+trailerLen)
	if _, err := conn.Write(preamble); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(pseudoRandom(sent, "paused")); err != nil {
		t.Fatal(err)
	}
	return conn
}

// getURL is a plain GET: status and body, or 0 when the server is down.
func getURL(u string) (int, string) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
