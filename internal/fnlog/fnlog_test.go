package fnlog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func texts(ls []Line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

func TestRingKeepsNewestLinesWithinLineAndByteLimits(t *testing.T) {
	s := New(Limits{MaxLines: 3, MaxBytes: 100})
	for i := range 5 {
		s.Append("default", "f", "stdout", fmt.Sprintf("line %d\n", i))
	}
	if got := strings.Join(texts(s.Tail("default", "f", 0)), ","); got != "line 2,line 3,line 4" {
		t.Fatalf("tail = %q", got)
	}
	if got := strings.Join(texts(s.Tail("default", "f", 2)), ","); got != "line 3,line 4" {
		t.Fatalf("tail 2 = %q", got)
	}
	// Byte limit: 10-byte lines in a 25-byte ring keep two.
	b := New(Limits{MaxLines: 100, MaxBytes: 25})
	for i := range 4 {
		b.Append("ns", "g", "stderr", fmt.Sprintf("0123456789%d", i)[:10])
	}
	if got := len(b.Tail("ns", "g", 0)); got != 2 {
		t.Fatalf("byte-bounded ring kept %d lines, want 2", got)
	}
	if got := s.Tail("default", "other", 0); got != nil {
		t.Fatalf("unknown function has lines: %v", got)
	}
}

func TestRingWrapsAfterByteEvictions(t *testing.T) {
	s := New(Limits{MaxLines: 5, MaxBytes: 12})
	var want []string
	for i := range 40 {
		txt := strings.Repeat(string(rune('a'+i%26)), 1+i%5)
		s.Append("n", "f", "stdout", txt)
		want = append(want, txt)
		// Reference: newest lines fitting both limits.
		var keep []string
		bytes := 0
		for j := len(want) - 1; j >= 0 && len(keep) < 5 && bytes+len(want[j]) <= 12; j-- {
			keep = append([]string{want[j]}, keep...)
			bytes += len(want[j])
		}
		if got := strings.Join(texts(s.Tail("n", "f", 0)), ","); got != strings.Join(keep, ",") {
			t.Fatalf("after %d appends: %q, want %q", i+1, got, strings.Join(keep, ","))
		}
	}
}

func TestWriterSplitsLinesAndLongLines(t *testing.T) {
	s := New(Limits{MaxLineBytes: 8})
	w := s.Writer("default", "f", "stderr")
	io.WriteString(w, "hel")
	io.WriteString(w, "lo\r\nwor")
	io.WriteString(w, "ld\nabcdefghijkl")
	w.Close()
	got := texts(s.Tail("default", "f", 0))
	want := []string{"hello", "world", "abcdefgh", "ijkl"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines = %q, want %q", got, want)
	}
	for _, l := range s.Tail("default", "f", 0) {
		if l.Stream != "stderr" || l.Time.IsZero() {
			t.Fatalf("line %+v lacks stream or time", l)
		}
	}
}

func TestLeastRecentlyWrittenFunctionIsEvicted(t *testing.T) {
	s := New(Limits{MaxFunctions: 2})
	s.Append("d", "a", "stdout", "1")
	s.Append("d", "b", "stdout", "2")
	s.Append("d", "a", "stdout", "3")
	s.Append("d", "c", "stdout", "4")
	if s.Tail("d", "b", 0) != nil || len(s.Tail("d", "a", 0)) != 2 || len(s.Tail("d", "c", 0)) != 1 {
		t.Fatal("the least recently written ring (b) should have been evicted")
	}
}

func TestSubscribeSeesEveryLaterLineOnce(t *testing.T) {
	s := New(Limits{SubscriberBuffer: 1000})
	s.Append("d", "f", "stdout", "old")
	past, sub := s.Subscribe("d", "f", 10)
	defer sub.Close()
	if len(past) != 1 || past[0].Text != "old" {
		t.Fatalf("past = %v", past)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := s.Writer("d", "f", "stdout")
			for i := range 100 {
				fmt.Fprintf(w, "g%d-%d\n", g, i)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for len(seen) < 400 {
		select {
		case l := <-sub.C():
			if seen[l.Text] {
				t.Fatalf("duplicate %q", l.Text)
			}
			seen[l.Text] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of 400 lines", len(seen))
		}
	}
	if sub.Dropped() != 0 {
		t.Fatalf("dropped %d", sub.Dropped())
	}
}

func TestSlowSubscriberDropsInsteadOfBlockingWriters(t *testing.T) {
	s := New(Limits{SubscriberBuffer: 2})
	_, sub := s.Subscribe("d", "f", 0)
	for i := range 10 {
		s.Append("d", "f", "stdout", fmt.Sprint(i))
	}
	if sub.Dropped() != 8 {
		t.Fatalf("dropped = %d, want 8", sub.Dropped())
	}
	sub.Close()
	sub.Close() // idempotent
}

func TestHandlerServesTailAndValidatesQuery(t *testing.T) {
	s := New(Limits{})
	for i := range 30 {
		s.Append("default", "hello", "stderr", fmt.Sprintf("msg %d", i))
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	res, err := http.Get(srv.URL + "/v1/logs?function=hello&recordcount=20")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if res.StatusCode != 200 || len(lines) != 20 {
		t.Fatalf("status %d, %d lines:\n%s", res.StatusCode, len(lines), body)
	}
	f := strings.SplitN(lines[0], " ", 3)
	if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || !strings.HasSuffix(f[0], "Z") || f[1] != "stderr" || f[2] != "msg 10" {
		t.Fatalf("first line %q is not \"<time>Z stderr msg 10\"", lines[0])
	}

	for _, q := range []string{"", "function=x&recordcount=-1", "function=x&follow=maybe"} {
		res, err := http.Get(srv.URL + "/v1/logs?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("%q: status %d, want 400", q, res.StatusCode)
		}
		if !strings.Contains(string(b), "function") && !strings.Contains(string(b), "recordcount") && !strings.Contains(string(b), "follow") {
			t.Fatalf("%q: error %q names no parameter", q, b)
		}
	}
}

func TestHandlerFollowStreamsNewLines(t *testing.T) {
	s := New(Limits{})
	s.Append("ns1", "f", "stdout", "before")
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/logs?namespace=ns1&function=f&follow=true", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	readLine := func() string {
		t.Helper()
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimSuffix(l, "\n")
	}
	if l := readLine(); !strings.HasSuffix(l, " stdout before") {
		t.Fatalf("first line %q", l)
	}
	// The follower is subscribed once the headers and history arrived.
	w := s.Writer("ns1", "f", "stderr")
	fmt.Fprintln(w, "after 1")
	fmt.Fprintln(w, "after 2")
	if l := readLine(); !strings.HasSuffix(l, " stderr after 1") {
		t.Fatalf("streamed line %q", l)
	}
	if l := readLine(); !strings.HasSuffix(l, " stderr after 2") {
		t.Fatalf("streamed line %q", l)
	}
	cancel()
	// The handler unsubscribes when the client leaves.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.rings[key{"ns1", "f"}].subs)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("follower still subscribed after the client left")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
