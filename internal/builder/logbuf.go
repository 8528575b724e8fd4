package builder

import (
	"fmt"
	"sync"
)

// buildLog collects one build's output: a capped copy for the response
// (the head and the tail, with a marker where the middle was dropped, so
// both the command line and the final compiler errors survive) and a
// fan-out to live followers.
type buildLog struct {
	mu        sync.Mutex
	max       int
	head      []byte
	tail      []byte // ring of at most max/2 bytes, start at tailStart
	tailStart int
	dropped   int64
	followers map[*follower]struct{}
	done      chan struct{}
}

func newBuildLog(max int) *buildLog {
	return &buildLog{max: max, followers: map[*follower]struct{}{}, done: make(chan struct{})}
}

// Write appends p. It never fails and never blocks on followers.
func (l *buildLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appendCapped(p)
	for f := range l.followers {
		f.send(p)
	}
	return len(p), nil
}

func (l *buildLog) appendCapped(p []byte) {
	headMax := l.max - l.max/2
	if room := headMax - len(l.head); room > 0 {
		n := min(room, len(p))
		l.head = append(l.head, p[:n]...)
		p = p[n:]
	}
	tailMax := l.max / 2
	for len(p) > 0 && tailMax > 0 {
		if len(l.tail) < tailMax {
			n := min(tailMax-len(l.tail), len(p))
			l.tail = append(l.tail, p[:n]...)
			p = p[n:]
			continue
		}
		// Ring full: overwrite the oldest bytes.
		n := min(tailMax-l.tailStart, len(p))
		copy(l.tail[l.tailStart:], p[:n])
		l.tailStart = (l.tailStart + n) % tailMax
		l.dropped += int64(n)
		p = p[n:]
	}
	if tailMax == 0 {
		l.dropped += int64(len(p))
	}
}

// String returns the capped log.
func (l *buildLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked()
}

func (l *buildLog) snapshotLocked() string {
	out := make([]byte, 0, len(l.head)+len(l.tail)+80)
	out = append(out, l.head...)
	if l.dropped > 0 {
		out = fmt.Appendf(out, "\n... [%d bytes of build log truncated] ...\n", l.dropped)
	}
	out = append(out, l.tail[l.tailStart:]...)
	out = append(out, l.tail[:l.tailStart]...)
	return string(out)
}

// finish marks the build over and ends every follower.
func (l *buildLog) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return
	default:
	}
	close(l.done)
	for f := range l.followers {
		close(f.ch)
	}
	clear(l.followers)
}

// follower is one live reader of a running build's log.
type follower struct {
	ch      chan []byte
	skipped int64 // bytes not delivered because the reader was slow
}

func (f *follower) send(p []byte) {
	var msg []byte
	if f.skipped > 0 {
		msg = fmt.Appendf(msg, "\n... [%d bytes skipped: log reader too slow] ...\n", f.skipped)
	}
	msg = append(msg, p...)
	select {
	case f.ch <- msg:
		f.skipped = 0
	default:
		f.skipped += int64(len(p))
	}
}

// follow returns what was logged so far and a channel of later output,
// closed when the build ends. A reader that falls more than 256 writes
// behind loses output, told by a marker, rather than slowing the build.
func (l *buildLog) follow() (string, <-chan []byte, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := &follower{ch: make(chan []byte, 256)}
	select {
	case <-l.done:
		close(f.ch)
		return l.snapshotLocked(), f.ch, func() {}
	default:
	}
	l.followers[f] = struct{}{}
	return l.snapshotLocked(), f.ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.followers[f]; ok {
			delete(l.followers, f)
			close(f.ch)
		}
	}
}
