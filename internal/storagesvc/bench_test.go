package storagesvc

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRoundTrip uploads and downloads a 64 MiB archive of random
// bytes through the real client and server over loopback, in one
// process, to a file, and reports the CPU time both sides spent per
// round trip (cpu-ms/op) besides the wall time: on a shared machine the
// CPU figure is the steadier one. bench/storage measures the same path
// across processes against cp.
func BenchmarkRoundTrip(b *testing.B) {
	ts := newTestService(b, Options{MaxSize: 1 << 30})
	data := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{}).Read(data)
	out := filepath.Join(b.TempDir(), "download")
	ctx := context.Background()
	b.SetBytes(2 * int64(len(data)))
	var cpu time.Duration
	for b.Loop() {
		start := processCPU()
		res, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), "a.zip", nil)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if err := ts.client.Download(ctx, res.ID, f); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - start
		f.Close()
		os.Remove(out)
		if err := ts.client.Delete(ctx, res.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
