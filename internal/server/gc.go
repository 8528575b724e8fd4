package server

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// ServerGCPercent is the collector's pace in the roles that serve
// requests (GOGC=400): a WAGI request instantiates its module afresh and
// allocates ~21 KB that die with it (wazero's call stack alone is 10
// KB), so with Go's default of 100 and a heap of a few tens of MB the
// collector and its sweeper take a third of the server's CPU. Decision
// 0023 gives the measurements.
const ServerGCPercent = 400

// memoryLimitShare is the part of the container's memory limit the Go
// heap may grow to before the collector runs regardless of GOGC.
const memoryLimitShare = 0.8

var tuneOnce sync.Once

// TuneGC sets the collector's pace for a serving process, once: GOGC=400
// unless the environment sets GOGC, and, unless GOMEMLIMIT is set, a soft
// memory limit at 80% of the cgroup's memory limit when there is one, so
// the slower pace never walks a pod into its OOM kill.
func TuneGC() {
	tuneOnce.Do(func() {
		if _, set := os.LookupEnv("GOGC"); !set {
			debug.SetGCPercent(ServerGCPercent)
		}
		if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
			if limit, ok := cgroupMemoryLimit(); ok {
				debug.SetMemoryLimit(int64(float64(limit) * memoryLimitShare))
			}
		}
	})
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup (v2,
// then v1); ok is false when there is none.
func cgroupMemoryLimit() (int64, bool) {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		return parseMemoryLimit(string(b))
	}
	return 0, false
}

// parseMemoryLimit reads a cgroup memory limit file's contents: "max"
// (v2) and v1's near-2^63 "unlimited" are no limit.
func parseMemoryLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
