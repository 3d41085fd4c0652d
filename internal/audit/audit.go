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
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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

// Report is the outcome of a verification.
type Report struct {
	Records int64
	// First is the first record's sequence number (1 for a whole log; more
	// for a pruned log, or an export that starts later).
	First int64
	// Anchored is set when First > 1 and the first record's link to the
	// records before it is signed: by a prune anchor in the store (Verify),
	// or because the first record is a checkpoint signing the record before
	// it, as after a prune (VerifyFile).
	Anchored bool
	// BrokenAt is the sequence number of the first record that fails, 0 when intact.
	BrokenAt int64
	Problem  string
	// Checkpoints is the number of signed checkpoints verified.
	Checkpoints int
	// LastCheckpoint is when the newest verified checkpoint was signed.
	LastCheckpoint time.Time
	// Unsigned counts records after the newest checkpoint (not yet covered
	// by a signature).
	Unsigned int64
}

// chain checks records one by one, in order.
type chain struct {
	rep  Report
	prev []byte
	keys map[string]ed25519.PublicKey
	// Hashes of records since the last checkpoint, which the next one may sign.
	recent      map[int64][]byte
	lastSig     []byte
	lastCkptSeq int64
	lastCkptAt  time.Time
	partial     bool // a partial export: the first record's prev hash is trusted
	// A log that starts after record 1 is accepted when anchor, a verified
	// prune anchor, names its first record; noAnchor says why there is none.
	anchor   *store.PruneAnchor
	noAnchor string
}

func newChain(keys map[string]ed25519.PublicKey, partial bool) *chain {
	return &chain{prev: genesisHash(), keys: keys, recent: map[int64][]byte{}, partial: partial}
}

func (c *chain) fail(seq int64, format string, args ...any) bool {
	c.rep.BrokenAt, c.rep.Problem = seq, fmt.Sprintf(format, args...)
	return false
}

// add checks r against the chain so far; false means broken (see rep).
func (c *chain) add(r *store.AuditRecord) bool {
	if c.rep.Records == 0 {
		c.rep.First = r.Seq
		switch {
		case c.partial:
			c.prev = r.PrevHash
		case r.Seq == 1:
		case c.anchor != nil && c.anchor.FirstSeq == r.Seq:
			if !bytes.Equal(r.PrevHash, c.anchor.PrevHash) {
				return c.fail(r.Seq, "record %d does not match the signed prune anchor (previous-hash mismatch): replaced", r.Seq)
			}
			c.prev = c.anchor.PrevHash
			c.rep.Anchored = true
		default:
			return c.fail(1, "record 1 is missing (the log starts at record %d%s): deleted", r.Seq, c.noAnchor)
		}
	} else if want := c.rep.First + c.rep.Records; r.Seq != want {
		return c.fail(want, "record %d is missing (next stored record is %d): deleted or reordered", want, r.Seq)
	}
	switch {
	case !bytes.Equal(r.PrevHash, c.prev):
		return c.fail(r.Seq, "record %d does not follow record %d (previous-hash mismatch): inserted, deleted or reordered", r.Seq, r.Seq-1)
	case !bytes.Equal(Hash(r), r.Hash):
		return c.fail(r.Seq, "record %d was modified after it was written (hash mismatch)", r.Seq)
	}
	if r.Type == TypeCheckpoint {
		if !c.checkpoint(r) {
			return false
		}
	} else {
		c.recent[r.Seq] = r.Hash
		c.rep.Unsigned++
	}
	c.prev = r.Hash
	c.rep.Records++
	return true
}

func (c *chain) checkpoint(r *store.AuditRecord) bool {
	var cp checkpointData
	if err := json.Unmarshal(r.Data, &cp); err != nil {
		return c.fail(r.Seq, "checkpoint record %d is malformed: %v", r.Seq, err)
	}
	key, ok := c.keys[cp.KeyID]
	if !ok {
		return c.fail(r.Seq, "checkpoint record %d is signed with key %q, which is not among the verification keys", r.Seq, cp.KeyID)
	}
	if !ed25519.Verify(key, checkpointMessage(cp.SignsSeq, cp.SignsHash, cp.PrevSignature), cp.Signature) {
		return c.fail(r.Seq, "checkpoint record %d has an invalid signature: the records it covers, or the checkpoint, were altered", r.Seq)
	}
	if c.rep.Records == 0 && c.partial && cp.SignsSeq == r.Seq-1 && bytes.Equal(cp.SignsHash, r.PrevHash) {
		c.rep.Anchored = true // the signature covers the first record's link
	}
	if c.lastSig != nil && !bytes.Equal(cp.PrevSignature, c.lastSig) {
		return c.fail(r.Seq, "checkpoint record %d does not chain to the previous checkpoint (record %d)", r.Seq, c.lastCkptSeq)
	}
	if h, ok := c.recent[cp.SignsSeq]; ok {
		if !bytes.Equal(h, cp.SignsHash) {
			return c.fail(cp.SignsSeq, "record %d differs from what checkpoint %d signed", cp.SignsSeq, r.Seq)
		}
	} else if cp.SignsSeq >= c.rep.First && cp.SignsSeq != 0 {
		return c.fail(r.Seq, "checkpoint record %d signs record %d, which is not between it and the previous checkpoint", r.Seq, cp.SignsSeq)
	}
	c.lastSig, c.lastCkptSeq, c.lastCkptAt = cp.Signature, r.Seq, cp.SignedAt
	c.rep.Checkpoints++
	c.rep.LastCheckpoint = cp.SignedAt
	c.rep.Unsigned = 0
	for seq := range c.recent {
		if seq <= cp.SignsSeq {
			delete(c.recent, seq)
		}
	}
	// Records between SignsSeq and the checkpoint are signed by the next one.
	c.rep.Unsigned = int64(len(c.recent))
	return true
}

// Verify walks the whole chain in st, checking every link and every signed
// checkpoint with keys, and that the newest checkpoint recorded outside the
// log is still in it (a truncated tail). A log that starts after record 1
// is accepted only when the store holds a prune anchor, validly signed with
// one of keys, for its first record and that record's previous hash.
func Verify(ctx context.Context, st store.Store, keys map[string]ed25519.PublicKey) (Report, error) {
	w := newStoreWalk(st, keys)
	err := w.verify(ctx)
	return w.c.rep, err
}

// storeWalk verifies a store's log incrementally: each run checks the
// records stored since the last one it saw.
type storeWalk struct {
	st    store.Store
	keys  map[string]ed25519.PublicKey
	c     *chain
	after int64
	// visit, when set, sees each record that verified, in order; restart
	// is called when the walk starts over.
	visit   func(*store.AuditRecord)
	restart func()
}

func newStoreWalk(st store.Store, keys map[string]ed25519.PublicKey) *storeWalk {
	return &storeWalk{st: st, keys: keys, c: newChain(keys, false)}
}

// verify runs the walk to the end of the log, then checks that the newest
// checkpoint recorded outside the log was seen. A broken chain is reported
// in w.c.rep, not as an error.
//
// The walk reads the log in pages; another process may prune it in
// between, and the next page then seems to skip records. So when the walk
// breaks and the log no longer starts where it did, it starts over (a
// few times at most): the result is always that of one whole walk.
func (w *storeWalk) verify(ctx context.Context) error {
	for restarts := 0; ; restarts++ {
		err := w.verifyToEnd(ctx)
		if err != nil || w.c.rep.BrokenAt == 0 || w.c.rep.First == 0 || restarts == 3 {
			return err
		}
		head, err := w.st.ReadAudit(ctx, 0, 1)
		if err != nil || len(head) == 0 || head[0].Seq == w.c.rep.First {
			return nil // a real break; a read error here says nothing more
		}
		w.c, w.after = newChain(w.keys, false), 0
		if w.restart != nil {
			w.restart()
		}
	}
}

func (w *storeWalk) verifyToEnd(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if ok, err := w.run(ctx); !ok || err != nil {
			return err
		}
		last, err := w.st.LastCheckpoint(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if w.c.lastCkptSeq >= last.Seq {
			return nil
		}
		if attempt == 0 {
			continue // a checkpoint appended after the walk ended: walk on
		}
		c := w.c
		c.rep.BrokenAt = c.rep.First + c.rep.Records
		c.rep.Problem = fmt.Sprintf("the log ends at record %d, but checkpoint record %d (signed %s) was written: the tail was truncated",
			c.rep.First+c.rep.Records-1, last.Seq, last.SignedAt.UTC().Format(time.RFC3339))
		return nil
	}
}

// run checks the records after w.after; false means broken (see w.c.rep).
func (w *storeWalk) run(ctx context.Context) (bool, error) {
	c := w.c
	if c.rep.BrokenAt != 0 {
		return false, nil
	}
	for {
		recs, err := w.st.ReadAudit(ctx, w.after, 5000)
		var corrupt *store.CorruptRecordError
		if errors.As(err, &corrupt) {
			c.rep.BrokenAt, c.rep.Problem = w.after+1, corrupt.Error()
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if len(recs) == 0 {
			return true, nil
		}
		for i := range recs {
			r := &recs[i]
			if c.rep.Records == 0 && r.Seq != 1 {
				if err := c.findAnchor(ctx, w.st, r.Seq); err != nil {
					return false, err
				}
			}
			if !c.add(r) {
				return false, nil
			}
			if w.visit != nil {
				w.visit(r)
			}
			w.after = r.Seq
		}
	}
}

// findAnchor looks for a validly signed prune anchor for a log that starts
// at record first.
func (c *chain) findAnchor(ctx context.Context, st store.Store, first int64) error {
	c.anchor = nil
	a, err := st.PruneAnchor(ctx, first)
	if errors.Is(err, store.ErrNotFound) {
		c.noAnchor = ", and no prune anchor names it"
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the prune anchor: %w", err)
	}
	key, ok := c.keys[a.KeyID]
	switch {
	case !ok:
		c.noAnchor = fmt.Sprintf("; its prune anchor is signed with key %q, which is not among the verification keys", a.KeyID)
	case !ed25519.Verify(key, pruneMessage(a.FirstSeq, a.PrevHash), a.Signature):
		c.noAnchor = "; its prune anchor has an invalid signature"
	default:
		c.anchor = &a
	}
	return nil
}

// VerifyFile verifies an exported log (or a copy of audit.jsonl) offline
// with the given public keys. An export that does not start at record 1 is
// checked from its first record on; Report.Anchored tells whether that
// first record is a checkpoint signing the link to the records before it
// (as a pruned log starts).
func VerifyFile(path string, keys map[string]ed25519.PublicKey) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	var c *chain
	for line := int64(1); ; line++ {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(bytes.TrimSpace(b)) > 0 {
				return c.orEmpty().brokenTail(line), nil
			}
			break
		}
		if err != nil {
			return Report{}, err
		}
		rec, derr := store.DecodeAuditLine(b[:len(b)-1])
		if derr != nil {
			rep := c.orEmpty().rep
			rep.BrokenAt, rep.Problem = rep.First+rep.Records, fmt.Sprintf("line %d is not a valid record: %v", line, derr)
			return rep, nil
		}
		if c == nil {
			c = newChain(keys, rec.Seq != 1)
		}
		if !c.add(&rec) {
			return c.rep, nil
		}
	}
	return c.orEmpty().rep, nil
}

func (c *chain) orEmpty() *chain {
	if c == nil {
		return newChain(nil, false)
	}
	return c
}

func (c *chain) brokenTail(line int64) Report {
	rep := c.rep
	rep.BrokenAt, rep.Problem = rep.First+rep.Records, fmt.Sprintf("line %d is cut off (no newline): the file was truncated", line)
	return rep
}
