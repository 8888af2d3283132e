package blob

import "context"

// Semaphore caps the number of calls in flight to the wrapped backend, so a
// caller that fans out (a restore reading hundreds of packs) cannot open
// hundreds of connections to the service.
type Semaphore struct {
	Backend
	slots chan struct{}
}

// NewSemaphore wraps b with at most n concurrent calls.
func NewSemaphore(b Backend, n int) *Semaphore {
	return &Semaphore{Backend: b, slots: make(chan struct{}, n)}
}

func (s *Semaphore) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Semaphore) release() { <-s.slots }

// Put waits for a slot, then uploads.
func (s *Semaphore) Put(ctx context.Context, name string, data []byte) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.Backend.Put(ctx, name, data)
}

// Get waits for a slot, then reads.
func (s *Semaphore) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return s.Backend.Get(ctx, name, off, n)
}

// Stat waits for a slot, then looks the object up.
func (s *Semaphore) Stat(ctx context.Context, name string) (Info, error) {
	if err := s.acquire(ctx); err != nil {
		return Info{}, err
	}
	defer s.release()
	return s.Backend.Stat(ctx, name)
}

// Delete waits for a slot, then deletes.
func (s *Semaphore) Delete(ctx context.Context, name string) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.Backend.Delete(ctx, name)
}

// List takes no slot: fn runs inside the listing and often calls back into
// the same backend (list index files, then Get each), and a listing holding
// slots while its callbacks wait for one would deadlock once all slots were
// held by listings. Listings are few and light next to data transfers.
func (s *Semaphore) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return s.Backend.List(ctx, prefix, fn)
}
