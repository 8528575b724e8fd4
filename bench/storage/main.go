// Command storage benchmarks the storage service: a large file (1 GiB by
// default) is uploaded and downloaded over loopback through the real
// client against the service running in a child process, whose peak RSS
// (VmHWM) is read from /proc; the throughput is compared with `cp` of the
// same file on the same disk, measured in the same run. Each figure is
// the median of -runs runs. Each run also reports the CPU time of client
// and service per phase, and times one core hashing the file's size:
// with the disk's fsync time that bounds what upload+download can reach
// (the "bound" row), so a missed goal can be told from a slow service.
//
//	make build && go run ./bench/storage -isotope bin/isotope [-size 1GiB] [-runs 3]
//
// -isotope defaults to $ISOTOPE_BIN (bench/run sets it to bin/isotope);
// without either, the program runs the service itself in a child process
// (same storagesvc.Server and LocalBackend, fewer moving parts). The suite
// runs 256 MiB (bench.args); the figure is -size 1GiB.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"isotope.dev/isotope/internal/storagesvc"
)

func main() {
	var size byteSize = 1 << 30
	flag.Var(&size, "size", "file size: bytes, or with a unit (256MiB, 1GiB)")
	runs := flag.Int("runs", 3, "runs; each figure is the median")
	dir := flag.String("dir", "", "work directory (default a new one under $TMPDIR); the copies and the archive live here, on one disk")
	isotope := flag.String("isotope", os.Getenv("ISOTOPE_BIN"), "path of the isotope binary; the service runs as `isotope storagesvc` (default $ISOTOPE_BIN; empty: this program serves it)")
	serve := flag.String("serve", "", "internal: serve the storage service on this address")
	serveDir := flag.String("serve-dir", "", "internal: archive directory for -serve and -serve-peer")
	servePeerAddr := flag.String("serve-peer", "", "internal: serve the plain net/http peer on this address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the client side (and, without -isotope, of the service to <file>.server)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "-cpuprofile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *servePeerAddr != "" {
		if err := servePeer(*servePeerAddr, *serveDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *serve != "" {
		if *cpuProfile != "" {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM)
			go func() { <-sig; pprof.StopCPUProfile(); os.Exit(0) }()
		}
		if err := runServer(*serve, *serveDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	profileServer = *cpuProfile
	if err := run(int64(size), *runs, *dir, *isotope); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/storage:", err)
		os.Exit(1)
	}
}

// runServer is the child process when no isotope binary is given.
func runServer(addr, dir string) error {
	b, err := storagesvc.NewLocalBackend(dir, storagesvc.LocalOptions{})
	if err != nil {
		return err
	}
	srv := storagesvc.NewServer(b, storagesvc.Options{MaxSize: 1 << 40, Logger: slog.New(slog.DiscardHandler)})
	return http.ListenAndServe(addr, srv)
}

// profileServer, when set, makes the self-served child write a CPU
// profile to <profileServer>.server.
var profileServer string

type sample struct {
	up, down, cp time.Duration
	cpSync       time.Duration // cp, then fsync of the copy
	// sha256 is how long one core takes to hash the file's size (from
	// memory, measured in the run): the floor under the upload's and the
	// download's times, since each hashes every byte before it ends.
	sha256 time.Duration
	hwmKB  int64
	// CPU time (user+system) spent by the client (this process) and by
	// the service during the upload and during the download: against the
	// wall time it says whether a run was CPU-bound.
	upCPU, downCPU cpuPair
	// The plain net/http peer's upload and download (peer.go).
	peerUp, peerDown time.Duration
}

func run(size int64, runs int, dir, isotope string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "isotope-bench-storage-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	src := filepath.Join(dir, "src.bin")
	fmt.Printf("writing a %d MiB random file in %s …\n", size>>20, dir)
	if err := writeRandomFile(src, size); err != nil {
		return err
	}
	var samples []sample
	for i := range runs {
		s, err := oneRun(dir, src, size, isotope)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("run %d: upload %v (CPU %v), download %v (CPU %v), cp %v, cp+fsync %v, sha256 %v, server VmHWM %d MB; plain net/http peer: upload %v, download %v\n", i+1,
			s.up.Round(time.Millisecond), s.upCPU, s.down.Round(time.Millisecond), s.downCPU,
			s.cp.Round(time.Millisecond), s.cpSync.Round(time.Millisecond), s.sha256.Round(time.Millisecond), s.hwmKB/1024,
			s.peerUp.Round(time.Millisecond), s.peerDown.Round(time.Millisecond))
		samples = append(samples, s)
	}
	secs := func(f func(sample) time.Duration) float64 {
		return median(samples, func(s sample) float64 { return f(s).Seconds() })
	}
	up := secs(func(s sample) time.Duration { return s.up })
	down := secs(func(s sample) time.Duration { return s.down })
	rt := secs(func(s sample) time.Duration { return s.up + s.down })
	cp := secs(func(s sample) time.Duration { return s.cp })
	cpSync := secs(func(s sample) time.Duration { return s.cpSync })
	hash := secs(func(s sample) time.Duration { return s.sha256 })
	peer := secs(func(s sample) time.Duration { return s.peerUp + s.peerDown })
	// The most upload+download can reach: the service hashes every byte
	// before the upload answers, and the upload is not done before the
	// disk has the file (its fsync, at best cp+fsync − cp when overlapped
	// with the transfer); the client hashes every byte before the
	// download returns. sha256 is sequential: one core per stream.
	boundUp := max(hash, cpSync-cp)
	hwm := median(samples, func(s sample) float64 { return float64(s.hwmKB) / 1024 })
	mb := float64(size) / 1e6
	server := "bench/storage child (storagesvc.Server)"
	if isotope != "" {
		server = "isotope storagesvc (" + isotope + ")"
	}
	fmt.Printf("\nstorage service: %s; file %d MiB; median of %d runs\n\n", server, size>>20, runs)
	fmt.Printf("%-36s %8s %8s %8s %12s\n", "", "seconds", "MB/s", "vs cp", "vs cp+fsync")
	row := func(name string, secs, bytesMoved float64) {
		rate := bytesMoved / secs
		fmt.Printf("%-36s %8.3f %8.0f %7.0f%% %11.0f%%\n", name, secs, rate, 100*rate/(mb/cp), 100*rate/(mb/cpSync))
	}
	row("cp (page cache only)", cp, mb)
	row("cp + fsync of the copy", cpSync, mb)
	row("upload (client → service, fsynced)", up, mb)
	row("download (service → client file)", down, mb)
	row("upload+download (2 copies)", rt, 2*mb)
	row("sha256 of the file, one core", hash, mb)
	fmt.Printf("%-36s %8.3f %8.0f %7.0f%% %11.0f%%\n", "bound: upload+download", boundUp+hash, 2*mb/(boundUp+hash),
		100*(2*mb/(boundUp+hash))/(mb/cp), 100*(2*mb/(boundUp+hash))/(mb/cpSync))
	goal := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	ratio := (2 * mb / rt) / (mb / cp)
	ratioSync := (2 * mb / rt) / (mb / cpSync)
	fmt.Printf("\nserver max RSS (VmHWM): %.1f MB (goal < 100 MB: %s)\n", hwm, goal(hwm < 100))
	fmt.Printf("upload+download vs cp: %.0f%% (goal ≥ 50%%: %s); vs cp+fsync (same durability): %.0f%%\n",
		100*ratio, goal(ratio >= 0.5), 100*ratioSync)
	ratioBound := (2 * mb / (boundUp + hash)) / (mb / cp)
	fmt.Printf("bound vs cp: %.0f%%: the upload cannot beat one sha256 pass or the disk (cp+fsync − cp), the download one sha256 pass\n",
		100*ratioBound)

	verdict := func(ok bool) string {
		if ok {
			return "(met)"
		}
		return "(MISSED)"
	}
	label := fmt.Sprintf("%d MiB", size>>20)
	fmt.Println()
	fmt.Printf("BENCH | storage upload+download vs cp (%s) | %.0f MB/s | %.0f MB/s | %.2f | info (cp returns before the disk has the copy)\n",
		label, 2*mb/rt, mb/cp, ratio)
	ratioPeer := peer / rt
	fmt.Printf("BENCH | storage upload+download vs plain net/http file server (%s) | %.0f MB/s | %.0f MB/s | %.2f | >= 0.80 %s\n",
		label, 2*mb/rt, 2*mb/peer, ratioPeer, verdict(ratioPeer >= 0.8))
	fmt.Printf("BENCH | storage upload+download vs cp+fsync (%s) | %.0f MB/s | %.0f MB/s | %.2f | info (same durability)\n",
		label, 2*mb/rt, mb/cpSync, ratioSync)
	fmt.Printf("BENCH | storage bound from sha256 and disk vs cp (%s) | %.0f MB/s | %.0f MB/s | %.2f | info (the most the goal row can reach)\n",
		label, 2*mb/(boundUp+hash), mb/cp, ratioBound)
	fmt.Printf("BENCH | storage server max RSS (%s) | %.1f MB | - | - | < 100 MB %s\n", label, hwm, verdict(hwm < 100))
	return nil
}

// byteSize is a -size flag: bytes, or a number with KiB, MiB, GiB (or
// KB, MB, GB, powers of ten).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 {
		return fmt.Errorf("want a positive size like 268435456, 256MiB or 1GiB, got %q", s)
	}
	*b = byteSize(v * mult)
	return nil
}

func median(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// oneRun starts a fresh service, uploads and downloads src, stops the
// service, and times `cp` of the same file.
func oneRun(dir, src string, size int64, isotope string) (sample, error) {
	var s sample
	archives := filepath.Join(dir, "archives")
	os.RemoveAll(archives)
	defer os.RemoveAll(archives)
	addr, err := freeAddr()
	if err != nil {
		return s, err
	}
	var cmd *exec.Cmd
	if isotope != "" {
		cmd = exec.Command(isotope, "storagesvc", "--addr", addr, "--dir", archives,
			"--max-size", strconv.FormatInt(2*size+1<<20, 10), "--prune-interval", "0")
	} else {
		self, err := os.Executable()
		if err != nil {
			return s, err
		}
		cmd = exec.Command(self, "-serve", addr, "-serve-dir", archives)
		if profileServer != "" {
			cmd.Args = append(cmd.Args, "-cpuprofile", profileServer+".server")
		}
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return s, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	client := storagesvc.NewClient("http://"+addr, "")
	hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
	err = client.WaitHealthy(hctx)
	hcancel()
	if err != nil {
		return s, fmt.Errorf("service did not come up: %w", err)
	}

	f, err := os.Open(src)
	if err != nil {
		return s, err
	}
	pid := cmd.Process.Pid
	cpu0 := cpuNow(pid)
	start := time.Now()
	// The file itself, as `isotope archive upload` passes it.
	res, err := client.Upload(ctx, f, size, "src.bin", nil)
	s.up = time.Since(start)
	cpu1 := cpuNow(pid)
	s.upCPU = cpu1.sub(cpu0)
	f.Close()
	if err != nil {
		return s, err
	}

	dst := filepath.Join(dir, "download.bin")
	out, err := os.Create(dst)
	if err != nil {
		return s, err
	}
	start = time.Now()
	err = client.Download(ctx, res.ID, out)
	s.down = time.Since(start)
	s.downCPU = cpuNow(pid).sub(cpu1)
	out.Close()
	os.Remove(dst)
	if err != nil {
		return s, err
	}
	if s.hwmKB, err = vmHWM(cmd.Process.Pid); err != nil {
		return s, err
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	os.RemoveAll(archives)

	cpDst := filepath.Join(dir, "cp.bin")
	start = time.Now()
	if out, err := exec.Command("cp", src, cpDst).CombinedOutput(); err != nil {
		return s, fmt.Errorf("cp: %v: %s", err, out)
	}
	s.cp = time.Since(start)
	err = fsyncFile(cpDst)
	s.cpSync = time.Since(start)
	os.Remove(cpDst)
	s.sha256 = timeSHA256(size)
	if err != nil {
		return s, err
	}
	s.peerUp, s.peerDown, err = peerRun(dir, src, size)
	return s, err
}

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// vmHWM is the peak resident set size of a process, in kB.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// cpuPair is CPU time used by the client (this process) and the service.
type cpuPair struct{ client, service time.Duration }

func cpuNow(pid int) cpuPair { return cpuPair{selfCPU(), procCPU(pid)} }

func (a cpuPair) sub(b cpuPair) cpuPair { return cpuPair{a.client - b.client, a.service - b.service} }

func (a cpuPair) String() string {
	return fmt.Sprintf("client %v + service %v", a.client.Round(time.Millisecond), a.service.Round(time.Millisecond))
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time so far, from
// /proc/<pid>/stat (in clock ticks of 10 ms), or 0 if unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at
	// the last ')': state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// timeSHA256 times one core hashing size bytes from a 1 MiB buffer in
// memory: what a transfer's hashing stage costs at best.
func timeSHA256(size int64) time.Duration {
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{2}).Read(buf)
	h := sha256.New()
	start := time.Now()
	for left := size; left > 0; left -= int64(len(buf)) {
		h.Write(buf[:min(int64(len(buf)), left)])
	}
	return time.Since(start)
}
