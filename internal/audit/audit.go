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

// maxBatch bounds one store append.
const maxBatch = 4096

// asyncDelay is how long a record appended with Enqueue may wait for a
// durable append to ride along with.
const asyncDelay = 20 * time.Millisecond

// Writer appends events to the chain in the store.
//
// It is a leader-based group commit: the caller of Append that finds no
// write in progress writes the whole queue itself (its own record and
// whatever others queued meanwhile) and wakes the others; callers that
// arrive during a write queue up for the next one. At low concurrency this
// costs no goroutine hand-off; under load, one store append serves many
// commands. Records from Enqueue (results, notes) never start a write of
// their own unless asyncDelay passes without one.
type Writer struct {
	st store.Store

	// OnError, when set, is told of every failed append (for the log).
	OnError func(error)

	mu      sync.Mutex
	queue   []*pending
	spare   []*pending
	writing bool
	closed  bool
	idle    *sync.Cond // signalled when a write ends (Close waits on it)

	stop chan struct{}
	done chan struct{}
}

type pending struct {
	rec  store.AuditRecord
	errc chan error // nil for Enqueue'd records
}

var pendingPool = sync.Pool{New: func() any { return &pending{errc: make(chan error, 1)} }}

// NewWriter continues the chain found in st.
func NewWriter(ctx context.Context, st store.Store) (*Writer, error) {
	if _, err := st.LastAudit(ctx); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading audit chain head: %w", err)
	}
	w := &Writer{st: st, stop: make(chan struct{}), done: make(chan struct{})}
	w.idle = sync.NewCond(&w.mu)
	go w.flushLoop()
	return w, nil
}

// genesisHash is the "previous hash" of the first record, fixed so that a
// deleted head is detectable.
func genesisHash() []byte {
	h := sha256.Sum256([]byte("weir audit chain v1"))
	return h[:]
}

func newRecord(ev *Event) (store.AuditRecord, error) {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("encoding audit event: %w", err)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return store.AuditRecord{Time: ev.Time.UTC(), Type: ev.Type, SessionID: ev.SessionID, Agent: ev.Agent, Target: ev.Target, Data: data}, nil
}

// Append adds ev to the chain and returns once it is stored (or failed).
// A caller that gets an error must not forward the command it describes.
func (w *Writer) Append(ctx context.Context, ev Event) error {
	rec, err := newRecord(&ev)
	if err != nil {
		return err
	}
	p := pendingPool.Get().(*pending)
	p.rec = rec
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.queue = append(w.queue, p)
	if w.writing {
		w.mu.Unlock()
		select {
		case err = <-p.errc:
		case <-ctx.Done():
			// The record may still be written; p is abandoned to the
			// writer, which never blocks on errc (buffered).
			return ctx.Err()
		}
	} else {
		w.lead() // unlocks w.mu
		err = <-p.errc
	}
	p.rec = store.AuditRecord{}
	pendingPool.Put(p)
	return err
}

// Enqueue adds ev to the chain without waiting for it to be stored, for
// records written after the fact (results, notes). A failure is reported
// to OnError: nothing can be refused any more.
func (w *Writer) Enqueue(ev Event) {
	rec, err := newRecord(&ev)
	if err != nil {
		if w.OnError != nil {
			w.OnError(err)
		}
		return
	}
	w.mu.Lock()
	if !w.closed {
		w.queue = append(w.queue, &pending{rec: rec})
	}
	w.mu.Unlock()
}

// lead writes queued records until the queue is empty. Called with w.mu
// held and w.writing false; returns with w.mu released.
func (w *Writer) lead() {
	w.writing = true
	var recs []store.AuditRecord
	for len(w.queue) > 0 {
		batch := w.queue
		if len(batch) > maxBatch {
			batch = batch[:maxBatch]
		}
		rest := w.queue[len(batch):]
		w.queue = append(w.spare[:0], rest...)
		w.mu.Unlock()

		recs = recs[:0]
		for _, p := range batch {
			recs = append(recs, p.rec)
		}
		err := w.st.AppendAudit(context.Background(), recs, genesisHash(), Hash)
		if err != nil {
			err = fmt.Errorf("audit store refused the record: %w", err)
			if w.OnError != nil {
				w.OnError(err)
			}
		}
		for i, p := range batch {
			if p.errc != nil {
				p.errc <- err
			}
			batch[i] = nil
		}
		w.mu.Lock()
		w.spare = batch[:0]
	}
	w.writing = false
	w.idle.Broadcast()
	w.mu.Unlock()
}

// flushLoop writes Enqueue'd records that found no durable append to ride
// along with.
func (w *Writer) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(asyncDelay)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		if w.writing || len(w.queue) == 0 {
			w.mu.Unlock()
			continue
		}
		w.lead()
	}
}

// Close writes what is queued and stops the writer.
func (w *Writer) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.stop)
	for w.writing {
		w.idle.Wait()
	}
	if len(w.queue) > 0 {
		w.lead()
	} else {
		w.mu.Unlock()
	}
	<-w.done
}

// AppendOne appends one event directly, for short-lived processes (the CLI)
// that have no Writer.
func AppendOne(ctx context.Context, st store.Store, ev Event) error {
	rec, err := newRecord(&ev)
	if err != nil {
		return err
	}
	recs := []store.AuditRecord{rec}
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
		var corrupt *store.CorruptRecordError
		if errors.As(err, &corrupt) {
			rep.BrokenAt, rep.Problem = after+1, corrupt.Error()
			return rep, nil
		}
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
