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
	"time"
)

// result is one load run, as the load process reports it.
type result struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
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
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("load process: %v", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("load process output %q: %v", out, err)
	}
	return r, nil
}

// generate sends GETs from conc workers, each on its own keep-alive
// connection, cycling through urls, for warm (unmeasured) then dur.
func generate(urls []string, conc int, warm, dur time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var wg sync.WaitGroup
	startMeasure := time.Now().Add(warm)
	end := startMeasure.Add(dur)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			e := 0
			for i := w; ; i++ {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				resp, err := client.Get(urls[i%len(urls)])
				ok := err == nil
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
	return result{Requests: len(all), Errors: errs, Seconds: dur.Seconds(), P50us: pct(0.50), P99us: pct(0.99)}
}
