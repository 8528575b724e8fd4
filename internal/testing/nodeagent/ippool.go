package nodeagent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// ipPool hands out pod addresses 127.0.x.y (x 1..254, y 1..254; Linux
// routes all of 127/8 to lo, 127.0.0.x is left to everything else). Test
// binaries run in parallel, each with its own agent, so an address is
// held by an flock on a file in a machine-wide directory: the kernel
// releases it when the holder exits, however it exits.
type ipPool struct {
	dir string

	mu   sync.Mutex
	held map[string]*os.File
}

func newIPPool(dir string) (*ipPool, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("node agent: address lock directory: %w", err)
	}
	return &ipPool{dir: dir, held: map[string]*os.File{}}, nil
}

const poolSize = 254 * 254

// allocate returns a free address, starting at a random point so that
// agents rarely contend for the same one.
func (p *ipPool) allocate() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := rand.IntN(poolSize)
	for n := range poolSize {
		i := (start + n) % poolSize
		ip := fmt.Sprintf("127.0.%d.%d", i/254+1, i%254+1)
		if _, mine := p.held[ip]; mine {
			continue
		}
		f, err := os.OpenFile(filepath.Join(p.dir, ip), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return "", fmt.Errorf("node agent: lock address %s: %w", ip, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			return "", fmt.Errorf("node agent: lock address %s: %w", ip, err)
		}
		p.held[ip] = f
		return ip, nil
	}
	return "", errors.New("node agent: no free pod address in 127.0.1.1-127.0.254.254")
}

// release gives ip back (closing the file drops the lock).
func (p *ipPool) release(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.held[ip]; ok {
		f.Close()
		delete(p.held, ip)
	}
}
