package demo

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/demo/rig"
)

// Ack is an order the shop acknowledged to a customer.
type Ack struct {
	ID   string    `json:"id"`
	At   time.Time `json:"at"`   // when the acknowledgement arrived
	Addr string    `json:"addr"` // the address the resolver gave
}

// customers place orders through the resolver, one every 100 ms, and log
// each acknowledged one (id, time, address) to a file as it arrives. With
// inflight 1 an order waits for the one before (one customer); with more,
// up to that many are under way at once (several customers), so an outage
// is seen when the shop answers again, not when one customer's request to
// the old address times out.
type customers struct {
	ns       string
	inflight int
	wg       sync.WaitGroup
	log      *os.File
	mu       sync.Mutex
	acks     []Ack
	fails    int
	lastOK   time.Time
	cancel   context.CancelFunc
	done     chan struct{}
}

func startCustomers(ctx context.Context, ns, logPath string, inflight int) (*customers, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &customers{ns: ns, inflight: max(inflight, 1), log: f, cancel: cancel, done: make(chan struct{})}
	go c.loop(ctx)
	return c, nil
}

func (c *customers) loop(ctx context.Context) {
	defer close(c.done)
	defer c.wg.Wait()
	slots := make(chan struct{}, c.inflight)
	for i := 1; ctx.Err() == nil; i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c.wg.Add(1)
		go func(id string) {
			defer c.wg.Done()
			defer func() { <-slots }()
			c.order(ctx, id)
		}(fmt.Sprintf("order-%05d", i))
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *customers) order(ctx context.Context, id string) {
	addr, err := c.place(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.fails++
		return
	}
	// Taken under the lock: acks stay in the order of their times.
	a := Ack{ID: id, At: time.Now(), Addr: addr}
	c.acks = append(c.acks, a)
	fmt.Fprintf(c.log, "%s %s %s\n", a.ID, a.At.UTC().Format(time.RFC3339Nano), a.Addr)
}

// place resolves the shop's name through the customers' resolver (as a
// browser would, honouring its TTL) and posts one order.
func (c *customers) place(ctx context.Context, id string) (string, error) {
	ips, err := rig.Resolve(c.ns, resolverAddr)
	if err != nil {
		return "", err
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("no address for %s", ShopName)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = rig.HTTPIn(rctx, c.ns, "POST", "http://"+ips[0]+"/order?customer=demo&id="+id, "")
	return ips[0], err
}

func (c *customers) stop() {
	c.cancel()
	<-c.done
	c.log.Close()
}

func (c *customers) snapshot() ([]Ack, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Ack(nil), c.acks...), c.fails
}

// firstAfter is the first order acknowledged after t.
func (c *customers) firstAfter(t time.Time) (Ack, bool) { return c.firstAt(t, "") }

// firstAt is the first order acknowledged after t by addr ("": any).
func (c *customers) firstAt(t time.Time, addr string) (Ack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.acks {
		if a.At.After(t) && (addr == "" || a.Addr == addr) {
			return a, true
		}
	}
	return Ack{}, false
}
