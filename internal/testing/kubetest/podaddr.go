package kubetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
)

// ServePod stands in for a pod's containers without a node: it picks a
// loopback address of its own (127.x.y.z, so several such pods keep
// Fission's fixed ports), serves handler(ip, port) on each of ports
// there until the test ends, and returns the address, which a fake
// kubelet then reports as the pod's IP.
func ServePod(t testing.TB, ports []int, handler func(ip string, port int) http.Handler) string {
	t.Helper()
	for range 20 {
		ip := fmt.Sprintf("127.%d.%d.%d", 200+rand.IntN(50), rand.IntN(256), 1+rand.IntN(250))
		var ls []net.Listener
		for _, port := range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) < len(ports) {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		for i, l := range ls {
			srv := &http.Server{Handler: handler(ip, ports[i])}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
		}
		return ip
	}
	t.Fatalf("no free loopback address with ports %s", strings.Trim(fmt.Sprint(ports), "[]"))
	return ""
}
