package server

import "testing"

func TestParseMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"max\n", 0, false},
		{"536870912\n", 536870912, true},
		{"9223372036854771712\n", 0, false}, // cgroup v1's "unlimited"
		{"", 0, false},
		{"garbage", 0, false},
		{"-1", 0, false},
	} {
		got, ok := parseMemoryLimit(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
