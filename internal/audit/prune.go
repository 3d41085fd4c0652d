package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// ErrChainBroken is returned (wrapped) by Prune when the log does not
// verify: pruning would destroy the evidence.
var ErrChainBroken = errors.New("the audit chain does not verify")

// PruneReport is the outcome of a prune.
type PruneReport struct {
	// Removed is how many records were removed from the head of the log;
	// 0 when no signed checkpoint had only old enough records before it.
	Removed int64
	// First is the first remaining record: when Removed > 0, a signed
	// checkpoint.
	First int64
	// SelfSigned is set when that checkpoint signs the record right before
	// it, the last one removed: then the log file alone shows that its start
	// is signed (Report.Anchored from VerifyFile). A checkpoint written
	// while other records were appended signs an earlier one.
	SelfSigned bool
	// Anchor is the signed prune anchor saved in the store (zero when
	// nothing was removed).
	Anchor store.PruneAnchor
}

// pruneMessage is what a prune anchor's signature covers.
func pruneMessage(firstSeq int64, prevHash []byte) []byte {
	msg := []byte("weir audit prune v1\n")
	msg = strconv.AppendInt(msg, firstSeq, 10)
	msg = append(msg, '\n')
	return hex.AppendEncode(msg, prevHash)
}

// Prune removes the records older than before from the head of the log in
// st, keeping the rest verifiable:
//
//   - It verifies the whole chain first (with keys) and refuses to prune one
//     that does not verify (ErrChainBroken).
//   - It writes a fresh checkpoint (signed by signer), then cuts at the
//     newest checkpoint record C such that every record before C is older
//     than before and is covered by a signature (a checkpoint signs the
//     record before C, or a later one). Records from C on are kept, so the
//     log then starts with a signed checkpoint; records older than before
//     but after C stay until a later prune.
//   - Before cutting, it saves a prune anchor in the store, outside the log:
//     C's sequence number and previous hash, signed. Verify accepts a log
//     that starts after record 1 only with such an anchor.
//
// Nothing is written when even a fresh checkpoint could not be a cut (for
// one, when no record is older than before).
func Prune(ctx context.Context, st store.Store, signer Signer, keys map[string]ed25519.PublicKey, before time.Time) (PruneReport, error) {
	cut := &cutFinder{before: before, allOld: true}
	w := newStoreWalk(st, keys)
	w.visit = cut.visit
	w.restart = func() { *cut = cutFinder{before: before, allOld: true} }
	if err := w.verify(ctx); err != nil {
		return PruneReport{}, err
	}
	if err := brokenErr(&w.c.rep); err != nil {
		return PruneReport{}, err
	}
	rep := PruneReport{First: w.c.rep.First}
	if w.c.rep.Records == 0 || !cut.mayCut() {
		return rep, nil // nothing old enough
	}

	if err := Checkpoint(ctx, st, signer, time.Now()); err != nil {
		return rep, err
	}
	// Verify the fresh checkpoint (and whatever was appended meanwhile); it
	// is a candidate cut when every record before it is old enough.
	if err := w.verify(ctx); err != nil {
		return rep, err
	}
	if err := brokenErr(&w.c.rep); err != nil {
		return rep, err
	}
	c := cut.cut
	if c.seq == 0 {
		return rep, nil
	}

	kid, sig, err := signer.Sign(pruneMessage(c.seq, c.prevHash))
	if err != nil {
		return rep, fmt.Errorf("signing the prune anchor: %w", err)
	}
	if key, ok := keys[kid]; !ok || !ed25519.Verify(key, pruneMessage(c.seq, c.prevHash), sig) {
		// The pruned log would not verify with keys.
		return rep, fmt.Errorf("not pruning: the prune anchor signed with key %q does not verify with the verification keys", kid)
	}
	anchor := store.PruneAnchor{FirstSeq: c.seq, PrevHash: c.prevHash, Signature: sig, KeyID: kid, PrunedAt: time.Now().UTC(),
		Removed: c.seq - w.c.rep.First}
	// The anchor first: a crash before the cut leaves a whole log, which
	// verifies without it.
	if err := st.SavePruneAnchor(ctx, anchor); err != nil {
		return rep, fmt.Errorf("saving the prune anchor: %w", err)
	}
	removed, err := st.PruneAudit(ctx, c.seq, c.prevHash)
	if removed == 0 && err != nil {
		return rep, err
	}
	// err may still report a failure after the new file took the old one's
	// place (syncing the directory).
	return PruneReport{Removed: removed, First: c.seq, SelfSigned: c.selfSigned, Anchor: anchor}, err
}

func brokenErr(rep *Report) error {
	if rep.BrokenAt == 0 {
		return nil
	}
	return fmt.Errorf("not pruning: %w: broken at record %d: %s", ErrChainBroken, rep.BrokenAt, rep.Problem)
}

// cutFinder follows the verified records in order and finds the newest
// checkpoint that can start the pruned log: every record before it is
// older than the cut-off, and covered by a signature (some checkpoint signs
// the record before it or a later one, which links to it).
type cutFinder struct {
	before time.Time
	first  int64
	allOld bool  // every record seen so far is older than before
	signed int64 // the newest record a checkpoint signs

	cut     cutPoint   // the newest candidate whose prefix is signed
	pending []cutPoint // newer candidates whose prefix is not signed yet
}

type cutPoint struct {
	seq        int64 // the first record to keep, a checkpoint; 0 for none
	prevHash   []byte
	selfSigned bool // the checkpoint signs the record right before it
}

func (f *cutFinder) visit(r *store.AuditRecord) {
	if f.first == 0 {
		f.first = r.Seq
	}
	if r.Type == TypeCheckpoint {
		var cp checkpointData
		if json.Unmarshal(r.Data, &cp) != nil {
			return // cannot happen: the walk verified it
		}
		f.signed = max(f.signed, cp.SignsSeq)
		if f.allOld && r.Seq > f.first {
			self := cp.SignsSeq == r.Seq-1 && bytes.Equal(cp.SignsHash, r.PrevHash)
			f.pending = append(f.pending, cutPoint{seq: r.Seq, prevHash: r.PrevHash, selfSigned: self})
		}
	}
	i := 0
	for ; i < len(f.pending) && f.pending[i].seq-1 <= f.signed; i++ {
		f.cut = f.pending[i]
	}
	f.pending = f.pending[i:]
	if !r.Time.Before(f.before) {
		f.allOld = false
	}
}

// mayCut tells whether a fresh checkpoint could let something be removed.
func (f *cutFinder) mayCut() bool { return f.cut.seq != 0 || len(f.pending) > 0 || f.allOld }
