package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// result is one load run, as the load process reports it.
type result struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	// All counts every request answered, the warm-up's too; the CPU
	// times (this process's, the load process's) cover the same span.
	All       int           `json:"all"`
	ServerCPU time.Duration `json:"-"`
	LoadCPU   time.Duration `json:"-"`
}

// cpuPerRequest is the servers' CPU time per request answered.
func (r result) cpuPerRequest() time.Duration {
	return r.ServerCPU / time.Duration(max(r.All, 1))
}

func (r result) rps() float64 { return float64(r.Requests) / r.Seconds }

// median picks the run with the median throughput.
func median(rs []result) result {
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool { return s[i].rps() < s[j].rps() })
	return s[len(s)/2]
}

// loadProcess runs this program with -load in a child process.
func loadProcess(urls []string, conc int, warm, dur time.Duration) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self, "-load", strings.Join(urls, ","), "-c", fmt.Sprint(conc),
		"-warmup", warm.String(), "-d", dur.String())
	cmd.Stderr = os.Stderr
	before := selfCPU()
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("load process: %v", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("load process output %q: %v", out, err)
	}
	r.ServerCPU = selfCPU() - before
	r.LoadCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// generate sends GETs from conc workers, each on its own keep-alive
// connection, cycling through urls, for warm (unmeasured) then dur.
func generate(urls []string, conc int, warm, dur time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var all []time.Duration
	errs, total := 0, 0
	var wg sync.WaitGroup
	startMeasure := time.Now().Add(warm)
	end := startMeasure.Add(dur)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			e, all1 := 0, 0
			for i := w; ; i++ {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				resp, err := client.Get(urls[i%len(urls)])
				ok := err == nil
				all1++
				if ok {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == 200
				}
				if t0.Before(startMeasure) {
					continue
				}
				if !ok {
					e++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			total += all1
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds())
	}
	return result{Requests: len(all), Errors: errs, Seconds: dur.Seconds(), P50us: pct(0.50), P99us: pct(0.99), All: total}
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
