// Package fnlog keeps the recent output of every function: the stdout and
// stderr of its instances (process output, WebAssembly stderr, host lines
// about traps and timeouts), one timestamped line at a time, in a bounded
// ring per function. Followers subscribe to new lines as they arrive.
//
// Nothing here touches the disk: the store is a window on what functions
// printed lately, as `kubectl logs` is for a pod, not an archive.
package fnlog

import (
	"strings"
	"sync"
	"time"
)

// Line is one line of a function's output.
type Line struct {
	Time   time.Time
	Stream string // "stdout", "stderr" or "host"
	Text   string // without the trailing newline
}

// String formats the line as the logs API serves it:
// "2026-01-02T15:04:05.123456789Z stderr message".
func (l Line) String() string {
	return l.Time.UTC().Format(time.RFC3339Nano) + " " + l.Stream + " " + l.Text
}

// Limits bound the store. Zero fields take the defaults.
type Limits struct {
	// MaxLines is the most lines kept per function (default 1000).
	MaxLines int
	// MaxBytes is the most text bytes kept per function (default 1 MiB).
	MaxBytes int
	// MaxLineBytes is the longest line kept; longer lines are split
	// (default 16 KiB).
	MaxLineBytes int
	// MaxFunctions is how many functions have a ring at once; past it the
	// ring written to least recently is dropped (default 10000).
	MaxFunctions int
	// SubscriberBuffer is how many lines a follower may fall behind before
	// lines are dropped for it (default 256).
	SubscriberBuffer int
}

func (l Limits) withDefaults() Limits {
	if l.MaxLines <= 0 {
		l.MaxLines = 1000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 20
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = 16 << 10
	}
	if l.MaxFunctions <= 0 {
		l.MaxFunctions = 10000
	}
	if l.SubscriberBuffer <= 0 {
		l.SubscriberBuffer = 256
	}
	return l
}

// Store holds the recent lines of every function. The zero value is not
// usable; call New. It is safe for concurrent use.
type Store struct {
	lim Limits
	now func() time.Time

	mu    sync.Mutex
	rings map[key]*ring
	seq   uint64 // write counter, for least-recently-written eviction
}

type key struct{ ns, name string }

// ring is one function's lines, oldest first, and its followers.
type ring struct {
	lines   []Line // circular: lines[head] is the oldest when full
	head    int
	n       int
	bytes   int
	lastSeq uint64
	subs    map[*Subscription]struct{}
}

// New returns an empty store.
func New(lim Limits) *Store {
	return &Store{lim: lim.withDefaults(), now: time.Now, rings: map[key]*ring{}}
}

// Append records one line of a function's output, splitting it when it
// is longer than MaxLineBytes. A trailing newline is dropped.
func (s *Store) Append(namespace, name, stream, text string) {
	text = strings.TrimSuffix(text, "\n")
	now := s.now()
	for {
		part := text
		if len(part) > s.lim.MaxLineBytes {
			part = text[:s.lim.MaxLineBytes]
		}
		s.add(namespace, name, Line{Time: now, Stream: stream, Text: part})
		text = text[len(part):]
		if text == "" {
			return
		}
	}
}

func (s *Store) add(namespace, name string, l Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{namespace, name}
	r := s.rings[k]
	if r == nil {
		if len(s.rings) >= s.lim.MaxFunctions {
			s.evictLocked()
		}
		r = &ring{lines: make([]Line, 0, 16)}
		s.rings[k] = r
	}
	s.seq++
	r.lastSeq = s.seq
	r.push(l, s.lim)
	for sub := range r.subs {
		sub.deliver(l)
	}
}

// evictLocked drops the ring written to least recently that nobody
// follows.
func (s *Store) evictLocked() {
	var oldest key
	var found bool
	var min uint64
	for k, r := range s.rings {
		if len(r.subs) > 0 {
			continue
		}
		if !found || r.lastSeq < min {
			oldest, min, found = k, r.lastSeq, true
		}
	}
	if found {
		delete(s.rings, oldest)
	}
}

func (r *ring) push(l Line, lim Limits) {
	for r.n > 0 && (r.n >= lim.MaxLines || r.bytes+len(l.Text) > lim.MaxBytes) {
		r.bytes -= len(r.lines[r.head].Text)
		r.lines[r.head] = Line{}
		r.head = (r.head + 1) % len(r.lines)
		r.n--
	}
	if r.n < len(r.lines) {
		// There is a free slot after the newest line.
		r.lines[(r.head+r.n)%len(r.lines)] = l
	} else if r.head == 0 && len(r.lines) < lim.MaxLines {
		r.lines = append(r.lines, l)
	} else {
		// Full backing array not starting at 0: unroll it, then append.
		unrolled := make([]Line, 0, min(2*len(r.lines)+1, lim.MaxLines))
		unrolled = append(unrolled, r.lines[r.head:]...)
		unrolled = append(unrolled, r.lines[:r.head]...)
		r.lines, r.head = append(unrolled, l), 0
	}
	r.n++
	r.bytes += len(l.Text)
}

// Tail returns up to n of the function's most recent lines, oldest first;
// n <= 0 returns every line kept.
func (s *Store) Tail(namespace, name string, n int) []Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailLocked(key{namespace, name}, n)
}

func (s *Store) tailLocked(k key, n int) []Line {
	r := s.rings[k]
	if r == nil {
		return nil
	}
	if n <= 0 || n > r.n {
		n = r.n
	}
	out := make([]Line, 0, n)
	for i := r.n - n; i < r.n; i++ {
		out = append(out, r.lines[(r.head+i)%len(r.lines)])
	}
	return out
}

// Forget drops a function's lines (e.g. when the function is deleted).
// Followers stay subscribed and see lines written afterwards.
func (s *Store) Forget(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{namespace, name}
	if r := s.rings[k]; r != nil {
		if len(r.subs) == 0 {
			delete(s.rings, k)
			return
		}
		r.lines, r.head, r.n, r.bytes = nil, 0, 0, 0
	}
}

// Subscription follows one function's new lines.
type Subscription struct {
	s       *Store
	k       key
	c       chan Line
	dropped uint64 // guarded by s.mu
	once    sync.Once
}

// Subscribe returns the function's n most recent lines (as Tail) and a
// subscription that receives every line written after them, with no gap
// and no duplicate. Close the subscription when done.
func (s *Store) Subscribe(namespace, name string, n int) ([]Line, *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{namespace, name}
	sub := &Subscription{s: s, k: k, c: make(chan Line, s.lim.SubscriberBuffer)}
	r := s.rings[k]
	if r == nil {
		if len(s.rings) >= s.lim.MaxFunctions {
			s.evictLocked()
		}
		r = &ring{}
		s.rings[k] = r
	}
	if r.subs == nil {
		r.subs = map[*Subscription]struct{}{}
	}
	r.subs[sub] = struct{}{}
	return s.tailLocked(k, n), sub
}

// C delivers new lines. It is closed by Close.
func (sub *Subscription) C() <-chan Line { return sub.c }

// Dropped returns how many lines were not delivered because the follower
// fell more than SubscriberBuffer lines behind.
func (sub *Subscription) Dropped() uint64 {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	return sub.dropped
}

// deliver is called with s.mu held.
func (sub *Subscription) deliver(l Line) {
	select {
	case sub.c <- l:
	default:
		sub.dropped++
	}
}

// Close ends the subscription and closes C.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		sub.s.mu.Lock()
		defer sub.s.mu.Unlock()
		if r := sub.s.rings[sub.k]; r != nil {
			delete(r.subs, sub)
		}
		close(sub.c)
	})
}
