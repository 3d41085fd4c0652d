// Package audit is weir's write-ahead, hash-chained audit log.
//
// Every event is appended to one chain: each record carries the hash of the
// previous one, so an edited, deleted, inserted or reordered record breaks
// verification from that point on. The gateway appends a command's record
// and waits for it to be durable before it forwards the command; Writer
// batches appends from all sessions into one store transaction (group
// commit) so that this wait does not cap throughput.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// Event types.
const (
	TypeSessionStart = "session.start"
	TypeSessionEnd   = "session.end"
	TypeCommand      = "command"
	TypeResult       = "result"
	TypeAuthRefused  = "auth.refused"
	TypeTokenIssued  = "token.issued"
	TypeTokenRevoked = "token.revoked"
)

// Event is what a caller appends; the writer assigns its place in the chain.
type Event struct {
	Type      string
	Time      time.Time // set by Append when zero
	SessionID string
	Agent     string
	Target    string
	// Data is marshalled to JSON and covered by the hash.
	Data any
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// maxBatch bounds one store transaction.
const maxBatch = 1024

// Writer appends events to the chain in the store.
type Writer struct {
	st   store.Store
	in   chan *pending
	done chan struct{}

	// OnError, when set, is told of every failed batch (for the log).
	OnError func(error)

	mu     sync.Mutex // guards closed
	closed bool
}

type pending struct {
	rec  store.AuditRecord
	errc chan error
}

var pendingPool = sync.Pool{New: func() any { return &pending{errc: make(chan error, 1)} }}

// NewWriter continues the chain found in st.
func NewWriter(ctx context.Context, st store.Store) (*Writer, error) {
	if _, err := st.LastAudit(ctx); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading audit chain head: %w", err)
	}
	w := &Writer{st: st, in: make(chan *pending, maxBatch), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// genesisHash is the "previous hash" of the first record, fixed so that a
// deleted head is detectable.
func genesisHash() []byte {
	h := sha256.Sum256([]byte("weir audit chain v1"))
	return h[:]
}

// Append adds ev to the chain and returns once it is stored (or failed).
// A caller that gets an error must not forward the command it describes.
func (w *Writer) Append(ctx context.Context, ev Event) error {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	p := pendingPool.Get().(*pending)
	p.rec = store.AuditRecord{Time: ev.Time.UTC(), Type: ev.Type, SessionID: ev.SessionID, Agent: ev.Agent, Target: ev.Target, Data: data}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.in <- p
	w.mu.Unlock()
	select {
	case err = <-p.errc:
		p.rec = store.AuditRecord{}
		pendingPool.Put(p)
		return err
	case <-ctx.Done():
		// The record may still be written; the pending struct is abandoned
		// to the loop, which never blocks on errc (buffered).
		return ctx.Err()
	}
}

// Enqueue adds ev to the chain without waiting for it to be stored, for
// records written after the fact (results, notes). Errors are logged by the
// writer's loop, which cannot refuse anything any more.
func (w *Writer) Enqueue(ev Event) {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	p := &pending{rec: store.AuditRecord{Time: ev.Time.UTC(), Type: ev.Type, SessionID: ev.SessionID, Agent: ev.Agent, Target: ev.Target, Data: data}}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.in <- p
	}
}

// Close stops the writer after the queued events are written.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Writer) loop() {
	defer close(w.done)
	batch := make([]*pending, 0, maxBatch)
	recs := make([]store.AuditRecord, 0, maxBatch)
	for {
		p, ok := <-w.in
		if !ok {
			return
		}
		batch = append(batch[:0], p)
	drain:
		for len(batch) < maxBatch {
			select {
			case p, ok := <-w.in:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		recs = recs[:0]
		for _, p := range batch {
			recs = append(recs, p.rec)
		}
		err := w.st.AppendAudit(context.Background(), recs, genesisHash(), Hash)
		if err != nil {
			err = fmt.Errorf("audit store refused the record: %w", err)
		}
		if err != nil && w.OnError != nil {
			w.OnError(err)
		}
		for _, p := range batch {
			if p.errc != nil {
				p.errc <- err
			}
		}
	}
}

// AppendOne appends one event directly, for short-lived processes (the CLI)
// that have no Writer.
func AppendOne(ctx context.Context, st store.Store, ev Event) error {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	recs := []store.AuditRecord{{Time: ev.Time.UTC(), Type: ev.Type, SessionID: ev.SessionID, Agent: ev.Agent, Target: ev.Target, Data: data}}
	if err := st.AppendAudit(ctx, recs, genesisHash(), Hash); err != nil {
		return fmt.Errorf("writing audit record: %w", err)
	}
	return nil
}

// Hash computes a record's chain hash from its content and PrevHash.
func Hash(r *store.AuditRecord) []byte {
	h := sha256.New()
	var num [8]byte
	h.Write(r.PrevHash)
	binary.BigEndian.PutUint64(num[:], uint64(r.Seq))
	h.Write(num[:])
	binary.BigEndian.PutUint64(num[:], uint64(r.Time.UnixNano()))
	h.Write(num[:])
	for _, s := range [][]byte{[]byte(r.Type), []byte(r.SessionID), []byte(r.Agent), []byte(r.Target), r.Data} {
		binary.BigEndian.PutUint64(num[:], uint64(len(s)))
		h.Write(num[:])
		h.Write(s)
	}
	return h.Sum(nil)
}

// Report is the outcome of Verify.
type Report struct {
	Records int64
	// BrokenAt is the sequence number of the first record that fails, 0 when intact.
	BrokenAt int64
	Problem  string
}

// Verify walks the whole chain in st and reports the first break.
func Verify(ctx context.Context, st store.Store) (Report, error) {
	var rep Report
	prev := genesisHash()
	var after int64
	for {
		recs, err := st.ReadAudit(ctx, after, 5000)
		if err != nil {
			return rep, err
		}
		if len(recs) == 0 {
			return rep, nil
		}
		for i := range recs {
			r := &recs[i]
			want := after + 1
			switch {
			case r.Seq != want:
				rep.BrokenAt, rep.Problem = want, fmt.Sprintf("record %d is missing (next stored record is %d): deleted or reordered", want, r.Seq)
				return rep, nil
			case !bytes.Equal(r.PrevHash, prev):
				rep.BrokenAt, rep.Problem = r.Seq, fmt.Sprintf("record %d does not follow record %d (previous-hash mismatch): inserted, deleted or reordered", r.Seq, r.Seq-1)
				return rep, nil
			case !bytes.Equal(Hash(r), r.Hash):
				rep.BrokenAt, rep.Problem = r.Seq, fmt.Sprintf("record %d was modified after it was written (hash mismatch)", r.Seq)
				return rep, nil
			}
			prev, after = r.Hash, r.Seq
			rep.Records++
		}
	}
}
