package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The peer: the simplest correct file server over plain net/http, run
// as a child process like the service. An upload streams the body into
// a file and fsyncs it (io.Copy + Sync); a download is http.ServeContent.
// What it lacks against the storage service is what the comparison
// prices: no checksum on either side, no write-aside-and-rename, no size
// cap, no id, no Range/ETag bookkeeping beyond ServeContent's own.

// servePeer is the child process of the peer (flag -serve-peer).
func servePeer(addr, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, "file")
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			f, err := os.Create(p)
			if err == nil {
				_, err = io.Copy(f, r.Body)
				if serr := f.Sync(); err == nil {
					err = serr
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		case http.MethodGet:
			f, err := os.Open(p)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			defer f.Close()
			st, _ := f.Stat()
			http.ServeContent(w, r, "file", st.ModTime(), f)
		default:
			http.Error(w, "PUT or GET", http.StatusMethodNotAllowed)
		}
	}))
}

// peerRun uploads and downloads src through a fresh peer child.
func peerRun(dir, src string, size int64) (up, down time.Duration, err error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	files := filepath.Join(dir, "peer")
	defer os.RemoveAll(files)
	cmd := exec.Command(self, "-serve-peer", addr, "-serve-dir", files)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	url := "http://" + addr + "/file"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("peer did not come up: %w", err)
		}
		time.Sleep(10 * time.Millisecond) // poll resolution
	}

	f, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, f)
	if err != nil {
		return 0, 0, err
	}
	req.ContentLength = size
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	up = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("peer upload: %s", resp.Status)
	}

	dst := filepath.Join(dir, "peer-download.bin")
	defer os.Remove(dst)
	out, err := os.Create(dst)
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	start = time.Now()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(out, resp.Body)
	resp.Body.Close()
	down = time.Since(start)
	if err == nil && n != size {
		err = fmt.Errorf("peer download: %d bytes of %d", n, size)
	}
	return up, down, err
}
