package mqtrigger

import (
	"context"
	"hash/fnv"
	"sync"
)

// dispatcher hands messages to a fixed set of workers. A message's key
// picks its worker, so messages with one key are handled in order; a
// worker's channel is unbuffered, so deliver blocks until that worker
// is free: nothing queues in memory beyond the one message being
// delivered.
type dispatcher struct {
	workers []chan Message
	wg      sync.WaitGroup
}

func newDispatcher(ctx context.Context, n int, handle func(context.Context, Message)) *dispatcher {
	d := &dispatcher{workers: make([]chan Message, n)}
	for i := range d.workers {
		ch := make(chan Message)
		d.workers[i] = ch
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case m, ok := <-ch:
					if !ok {
						return
					}
					handle(ctx, m)
				}
			}
		}()
	}
	return d
}

// deliver waits until m's worker takes it, or ctx ends.
func (d *dispatcher) deliver(ctx context.Context, m Message) error {
	h := fnv.New32a()
	h.Write([]byte(m.Key))
	ch := d.workers[h.Sum32()%uint32(len(d.workers))]
	select {
	case ch <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop ends the workers once they finish the message in hand; the
// caller has stopped delivering.
func (d *dispatcher) stop() {
	for _, ch := range d.workers {
		close(ch)
	}
	d.wg.Wait()
}
