package gateway

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// SessionPool keeps one session per token and target for front ends whose
// requests each carry the token (the HTTP ones: Blob, the Azure proxy), so
// a token's traffic there is one session however many requests it makes,
// as a PostgreSQL connection is. A pooled session ends when the gateway
// ends it (token revoked or expired), when no request has been in flight
// for the pool's idle time, or when the pool closes.
type SessionPool struct {
	g    *Gateway
	idle time.Duration
	now  func() time.Time

	authMu sync.Mutex // one Authenticate at a time, so a burst opens one session
	mu     sync.Mutex
	m      map[string]*pooled

	stop chan struct{}
	wg   sync.WaitGroup
}

type pooled struct {
	s        *Session
	last     atomic.Int64 // unix nanos of the last release
	inflight atomic.Int32
}

// NewSessionPool starts a pool; idle <= 0 means 5 minutes, now nil the
// wall clock. Close it to end its sessions.
func (g *Gateway) NewSessionPool(idle time.Duration, now func() time.Time) *SessionPool {
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	p := &SessionPool{g: g, idle: idle, now: now, m: map[string]*pooled{}, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.reap()
	return p
}

// Acquire returns the live session of req's token (req.Token, or req.TokenID
// when the front end proved possession of a key derived from it) on
// req.Target, opening one through Authenticate (verified and audited) when
// there is none. The session counts as in use until release is called.
func (p *SessionPool) Acquire(ctx context.Context, req AuthRequest) (s *Session, release func(), err error) {
	key := poolKey(req)
	get := func() *pooled {
		p.mu.Lock()
		defer p.mu.Unlock()
		e := p.m[key]
		if e == nil {
			return nil
		}
		select {
		case <-e.s.Done():
			return nil // ended by the gateway: verify the token again
		default:
		}
		if !p.now().Before(e.s.Claims.Expiry()) {
			return nil
		}
		e.inflight.Add(1)
		return e
	}
	e := get()
	if e == nil {
		p.authMu.Lock()
		defer p.authMu.Unlock()
		if e = get(); e == nil {
			s, err := p.g.Authenticate(ctx, req)
			if err != nil {
				return nil, nil, err
			}
			e = &pooled{s: s}
			e.inflight.Add(1)
			p.mu.Lock()
			old := p.m[key]
			p.m[key] = e
			p.mu.Unlock()
			if old != nil {
				old.s.End(old.s.Reason())
			}
		}
	}
	return e.s, func() {
		e.last.Store(p.now().UnixNano())
		e.inflight.Add(-1)
	}, nil
}

func poolKey(req AuthRequest) string {
	if req.Token == "" && req.TokenID != "" {
		return req.Protocol + "\x00" + req.Target + "\x00id\x00" + req.TokenID
	}
	sum := sha256.Sum256([]byte(req.Token))
	return req.Protocol + "\x00" + req.Target + "\x00" + string(sum[:])
}

// Len is the number of pooled sessions.
func (p *SessionPool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// Close stops the reaper and ends every pooled session.
func (p *SessionPool) Close() {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	all := p.m
	p.m = map[string]*pooled{}
	p.mu.Unlock()
	for _, e := range all {
		e.s.End("weir is shutting down")
	}
}

func (p *SessionPool) reap() {
	defer p.wg.Done()
	t := time.NewTicker(min(p.idle/4, 15*time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.sweep()
	}
}

// sweep ends sessions the gateway ended and those idle with nothing in flight.
func (p *SessionPool) sweep() {
	now := p.now().UnixNano()
	type ending struct {
		s      *Session
		reason string
	}
	var ends []ending
	p.mu.Lock()
	for k, e := range p.m {
		select {
		case <-e.s.Done():
			ends = append(ends, ending{e.s, e.s.Reason()})
			delete(p.m, k)
			continue
		default:
		}
		if e.inflight.Load() == 0 && now-e.last.Load() > int64(p.idle) {
			ends = append(ends, ending{e.s, "idle"})
			delete(p.m, k)
		}
	}
	p.mu.Unlock()
	for _, e := range ends {
		e.s.End(e.reason)
	}
}
