package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// timedLog appends events at the given times; a zero time writes a
// checkpoint (signed a second after the previous record) instead.
func timedLog(t *testing.T, st store.Store, signer Signer, times []time.Time) {
	t.Helper()
	ctx := context.Background()
	var last time.Time
	for i, at := range times {
		if at.IsZero() {
			if err := Checkpoint(ctx, st, signer, last.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := AppendOne(ctx, st, Event{Type: TypeCommand, Time: at, SessionID: "s1", Data: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
		last = at
	}
}

func readAll(t *testing.T, st store.Store) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	var after int64
	for {
		recs, err := st.ReadAudit(context.Background(), after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func mustVerify(t *testing.T, st store.Store, keys map[string]ed25519.PublicKey) Report {
	t.Helper()
	rep, err := Verify(context.Background(), st, keys)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BrokenAt != 0 {
		t.Fatalf("chain broken: %+v", rep)
	}
	return rep
}

// The fixture: e1..e10 one minute apart, a checkpoint after e3, e6 and e9.
//
//	seq:  1  2  3  4  5  6  7  8  9 10 11 12 13
//	      e1 e2 e3 C  e4 e5 e6 C  e7 e8 e9 C  e10
func fixture(t *testing.T, st store.Store, signer Signer, t0 time.Time) {
	t.Helper()
	var times []time.Time
	for i := 1; i <= 10; i++ {
		times = append(times, t0.Add(time.Duration(i)*time.Minute))
		if i%3 == 0 {
			times = append(times, time.Time{})
		}
	}
	timedLog(t, st, signer, times)
}

func TestPruneRemovesSignedPrefix(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	fixture(t, st, signer, t0)
	before := t0.Add(7*time.Minute + 30*time.Second) // e1..e7 are older
	all := readAll(t, st)

	rep, err := Prune(ctx, st, signer, keys, before)
	if err != nil {
		t.Fatal(err)
	}
	// The newest checkpoint with only old records before it is record 8;
	// the one at 12 has e8 (newer) before it.
	if rep.Removed != 7 || rep.First != 8 || rep.Anchor.FirstSeq != 8 || rep.Anchor.Removed != 7 {
		t.Fatalf("prune report %+v", rep)
	}
	kept := readAll(t, st)
	if kept[0].Seq != 8 || kept[0].Type != TypeCheckpoint {
		t.Fatalf("first remaining record %+v", kept[0])
	}
	// Records 8..13, and the fresh checkpoint Prune wrote first.
	if n := len(kept); n != 7 || kept[n-1].Seq != 14 || kept[n-1].Type != TypeCheckpoint {
		t.Fatalf("kept %d records, last %+v", n, kept[n-1])
	}
	for i, r := range kept[:6] {
		if !bytes.Equal(r.Hash, all[7+i].Hash) {
			t.Fatalf("kept record %d differs from the original", r.Seq)
		}
	}
	for _, r := range all[:7] {
		if !r.Time.Before(before) {
			t.Fatalf("removed record %d is not older than the cut-off", r.Seq)
		}
	}

	vr := mustVerify(t, st, keys)
	if vr.First != 8 || vr.Records != 7 || !vr.Anchored || vr.Checkpoints != 3 || vr.Unsigned != 0 {
		t.Fatalf("verify after prune: %+v", vr)
	}
	a, err := st.PruneAnchor(ctx, 8)
	if err != nil || !bytes.Equal(a.PrevHash, all[6].Hash) || a.Removed != 7 || a.KeyID != "k1" {
		t.Fatalf("anchor %+v %v", a, err)
	}
	// The file alone verifies offline: it starts with a checkpoint that
	// signs the link to the removed records.
	fr, err := VerifyFile(path, keys)
	if err != nil || fr.BrokenAt != 0 || fr.First != 8 || fr.Records != 7 || !fr.Anchored {
		t.Fatalf("offline verify after prune: %+v %v", fr, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}

	// Appending goes on from the head; a second prune at the same cut-off
	// finds nothing more to remove (record 10, e8, is newer).
	if err := AppendOne(ctx, st, Event{Type: TypeCommand, Data: "after"}); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, path)
	rep, err = Prune(ctx, st, signer, keys, before)
	if err != nil || rep.Removed != 0 || rep.First != 8 {
		t.Fatalf("second prune: %+v %v", rep, err)
	}
	if fileSize(t, path) != size {
		t.Fatal("a prune that removed nothing wrote to the log")
	}

	// Pruning everything keeps the fresh checkpoint (and the log goes on).
	rep, err = Prune(ctx, st, signer, keys, time.Now().Add(time.Hour))
	if err != nil || rep.Removed != 8 || rep.First != 16 {
		t.Fatalf("prune all: %+v %v", rep, err)
	}
	if err := AppendOne(ctx, st, Event{Type: TypeCommand, Data: "after all"}); err != nil {
		t.Fatal(err)
	}
	vr = mustVerify(t, st, keys)
	if vr.First != 16 || vr.Records != 2 || !vr.Anchored || vr.Unsigned != 1 {
		t.Fatalf("verify after pruning all: %+v", vr)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A chain that does not verify is never pruned: that would destroy the
// evidence.
func TestPruneRefusesBrokenChain(t *testing.T) {
	tests := []struct {
		name string
		edit func(lines []string) []string
	}{
		{"edited record", func(l []string) []string { l[1] = strings.Replace(l[1], `{"i":1}`, `{"i":99}`, 1); return l }},
		{"deleted record", func(l []string) []string { return append(l[:4], l[5:]...) }},
		{"truncated tail", func(l []string) []string { return l[:9] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, path := newStore(t)
			signer, keys := newSigner(t)
			t0 := time.Now().Add(-24 * time.Hour)
			fixture(t, st, signer, t0)
			data, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			tampered := []byte(strings.Join(tc.edit(lines), "\n") + "\n")
			if err := os.WriteFile(path, tampered, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Prune(context.Background(), st, signer, keys, time.Now())
			if !errors.Is(err, ErrChainBroken) || rep.Removed != 0 {
				t.Fatalf("prune of a broken chain: %+v %v", rep, err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tampered) {
				t.Fatal("the tampered log was changed")
			}
		})
	}
}

// After a prune, the log's start is pinned by the signed anchor: removing
// or replacing the first remaining record, cutting the head without an
// anchor, or a forged anchor, are all detected.
func TestPrunedHeadTamperingDetected(t *testing.T) {
	prune := func(t *testing.T) (*store.SQLite, string, testSigner, map[string]ed25519.PublicKey) {
		st, path := newStore(t)
		signer, keys := newSigner(t)
		t0 := time.Now().Add(-24 * time.Hour)
		fixture(t, st, signer, t0)
		if rep, err := Prune(context.Background(), st, signer, keys, t0.Add(7*time.Minute+30*time.Second)); err != nil || rep.First != 8 {
			t.Fatalf("prune: %+v %v", rep, err)
		}
		return st, path, signer, keys
	}
	editLines := func(t *testing.T, path string, edit func([]string) []string) {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if err := os.WriteFile(path, []byte(strings.Join(edit(lines), "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	brokenWith := func(t *testing.T, st store.Store, keys map[string]ed25519.PublicKey, at int64, problem string) {
		t.Helper()
		rep, err := Verify(context.Background(), st, keys)
		if err != nil {
			t.Fatal(err)
		}
		if rep.BrokenAt != at || !strings.Contains(rep.Problem, problem) {
			t.Fatalf("got %+v, want broken at %d with %q", rep, at, problem)
		}
	}

	t.Run("first remaining record deleted", func(t *testing.T) {
		st, path, _, keys := prune(t)
		editLines(t, path, func(l []string) []string { return l[1:] })
		brokenWith(t, st, keys, 1, "record 1 is missing (the log starts at record 9, and no prune anchor names it)")
	})
	t.Run("two first records deleted", func(t *testing.T) {
		st, path, _, keys := prune(t)
		editLines(t, path, func(l []string) []string { return l[2:] })
		brokenWith(t, st, keys, 1, "record 1 is missing")
	})
	t.Run("first remaining record edited", func(t *testing.T) {
		st, path, _, keys := prune(t)
		editLines(t, path, func(l []string) []string {
			l[0] = strings.Replace(l[0], `"type":"checkpoint"`, `"type":"command"`, 1)
			return l
		})
		brokenWith(t, st, keys, 8, "modified")
	})
	t.Run("anchor with a bad signature", func(t *testing.T) {
		st, _, _, keys := prune(t)
		a, _ := st.PruneAnchor(context.Background(), 8)
		a.Signature[0] ^= 1
		if err := st.SavePruneAnchor(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		brokenWith(t, st, keys, 1, "invalid signature")
	})
	t.Run("anchor for another previous hash", func(t *testing.T) {
		st, _, signer, keys := prune(t)
		a, _ := st.PruneAnchor(context.Background(), 8)
		a.PrevHash = bytes.Repeat([]byte{7}, 32)
		_, a.Signature, _ = signer.Sign(pruneMessage(a.FirstSeq, a.PrevHash))
		if err := st.SavePruneAnchor(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		brokenWith(t, st, keys, 8, "does not match the signed prune anchor")
	})
	t.Run("other verification key", func(t *testing.T) {
		st, _, _, _ := prune(t)
		_, other := newSigner(t)
		brokenWith(t, st, other, 1, "invalid signature")
	})
	t.Run("head cut without prune", func(t *testing.T) {
		// Cutting at a checkpoint by hand, as a prune would, is not enough.
		st, path := newStore(t)
		signer, keys := newSigner(t)
		fixture(t, st, signer, time.Now().Add(-time.Hour))
		editLines(t, path, func(l []string) []string { return l[7:] })
		brokenWith(t, st, keys, 1, "record 1 is missing (the log starts at record 8, and no prune anchor names it)")
		// The file alone reads as a partial export.
		rep, err := VerifyFile(path, keys)
		if err != nil || rep.BrokenAt != 0 || rep.First != 8 || !rep.Anchored {
			t.Fatalf("offline: %+v %v", rep, err)
		}
	})
}

// A process that opened the store before the prune (the server, while the
// CLI prunes) keeps appending to the new file, before, during and after the
// rewrite; nothing it wrote is lost and the chain verifies.
func TestPruneWithAnotherAppender(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	fixture(t, st, signer, t0)

	st2, err := store.OpenSQLite(filepath.Dir(path), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	// st2 has the old file open, knows its head and has a read offset in it.
	if err := AppendOne(ctx, st2, Event{Type: TypeCommand, Data: "before"}); err != nil {
		t.Fatal(err)
	}
	old := readAll(t, st2)
	lastSeq := old[len(old)-1].Seq

	rep, err := Prune(ctx, st, signer, keys, t0.Add(7*time.Minute+30*time.Second))
	if err != nil || rep.Removed != 7 {
		t.Fatalf("prune: %+v %v", rep, err)
	}

	// st2's cached read offset belonged to the old file: it reads on from
	// lastSeq in the new one (Prune's fresh checkpoint).
	recs, err := st2.ReadAudit(ctx, lastSeq, 10)
	if err != nil || len(recs) != 1 || recs[0].Seq != lastSeq+1 || recs[0].Type != TypeCheckpoint {
		t.Fatalf("st2 reads after prune: %+v, %v", recs, err)
	}
	if err := AppendOne(ctx, st2, Event{Type: TypeCommand, Data: "after"}); err != nil {
		t.Fatal(err)
	}
	head, err := st2.LastAudit(ctx)
	if err != nil || string(head.Data) != `"after"` || head.Seq != lastSeq+2 {
		t.Fatalf("st2 head after prune: %+v %v", head, err)
	}
	for _, s := range []store.Store{st, st2} {
		if vr := mustVerify(t, s, keys); vr.First != 8 || vr.Records != head.Seq-7 {
			t.Fatalf("verify: %+v", vr)
		}
	}

	// Now concurrently: st2 and a Writer on st append while st prunes.
	w, err := NewWriter(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const n = 200
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := AppendOne(ctx, st2, Event{Type: TypeCommand, Data: fmt.Sprint("st2-", i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := w.Append(ctx, Event{Type: TypeCommand, Data: fmt.Sprint("w-", i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 5; i++ {
		if _, err := Prune(ctx, st, signer, keys, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	w.Close()
	// The head may be a checkpoint that raced the appends (it signs an
	// earlier record); Checkpoint signs nothing after a checkpoint, so add
	// an event for it to sign.
	if err := AppendOne(ctx, st, Event{Type: TypeCommand, Data: "quiet"}); err != nil {
		t.Fatal(err)
	}
	if err := Checkpoint(ctx, st, signer, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(ctx, st2, signer, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The last prune kept only the newest checkpoint; appends go on.
	if err := AppendOne(ctx, st2, Event{Type: TypeCommand, Data: "end"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.Store{st, st2} {
		vr := mustVerify(t, s, keys)
		if vr.Records != 2 || !vr.Anchored {
			t.Fatalf("verify after concurrent prunes: %+v", vr)
		}
	}
	if fr, err := VerifyFile(path, keys); err != nil || fr.BrokenAt != 0 || fr.Records != 2 {
		t.Fatalf("offline: %+v %v", fr, err)
	}
}

// Records are removed only when every record before the cut is older than
// the cut-off, even when event times are not in chain order.
func TestPruneNeverRemovesNewerRecords(t *testing.T) {
	t0 := time.Now().Add(-24 * time.Hour)
	before := t0.Add(time.Hour)
	old := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	newer := before.Add(time.Minute)
	tests := []struct {
		name    string
		times   []time.Time // zero: a checkpoint
		removed int64
	}{
		// A newer record before every checkpoint: nothing can go.
		{"newer first", []time.Time{old(1), newer, old(2), {}, old(3), {}}, 0},
		// Only the part before the newer record, up to a checkpoint.
		{"newer in the middle", []time.Time{old(1), old(2), {}, old(3), newer, old(4), {}, old(5), {}}, 2},
		// A cut-off exactly at a record's time keeps it.
		{"at the cut-off", []time.Time{old(1), {}, before, {}, old(2)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newStore(t)
			signer, keys := newSigner(t)
			timedLog(t, st, signer, tc.times)
			all := readAll(t, st)
			rep, err := Prune(context.Background(), st, signer, keys, before)
			if err != nil || rep.Removed != tc.removed {
				t.Fatalf("prune: %+v %v, want %d removed", rep, err, tc.removed)
			}
			kept := map[int64]bool{}
			for _, r := range readAll(t, st) {
				kept[r.Seq] = true
			}
			for _, r := range all {
				if !kept[r.Seq] && !r.Time.Before(before) {
					t.Fatalf("record %d (time %s) was removed", r.Seq, r.Time)
				}
			}
			mustVerify(t, st, keys)
		})
	}
}

// With nothing older than the cut-off, a prune writes nothing at all.
func TestPruneNothingOldIsNoop(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	t0 := time.Now().Add(-time.Hour)
	fixture(t, st, signer, t0)
	data, _ := os.ReadFile(path)
	rep, err := Prune(context.Background(), st, signer, keys, t0)
	if err != nil || rep.Removed != 0 || rep.First != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Fatal("the log was changed")
	}
	if _, err := st.PruneAnchor(context.Background(), 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("anchor: %v", err)
	}
	// An empty log too.
	empty, _ := newStore(t)
	if rep, err := Prune(context.Background(), empty, signer, keys, time.Now()); err != nil || rep.Removed != 0 {
		t.Fatalf("empty: %+v %v", rep, err)
	}
}

// A crash between saving the anchor and cutting the log, or while writing
// the new file, leaves a log that verifies, and the next prune works.
func TestPruneCrashLeftovers(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	fixture(t, st, signer, t0)
	all := readAll(t, st)
	// The anchor was saved, the log not cut yet.
	a := store.PruneAnchor{FirstSeq: 8, PrevHash: all[6].Hash, KeyID: "k1", PrunedAt: time.Now(), Removed: 7}
	_, a.Signature, _ = signer.Sign(pruneMessage(a.FirstSeq, a.PrevHash))
	if err := st.SavePruneAnchor(ctx, a); err != nil {
		t.Fatal(err)
	}
	// And a half-written new file.
	if err := os.WriteFile(path+".tmp", []byte(`{"seq":8,"ti`), 0o600); err != nil {
		t.Fatal(err)
	}
	if vr := mustVerify(t, st, keys); vr.First != 1 || vr.Anchored {
		t.Fatalf("verify: %+v", vr)
	}
	rep, err := Prune(ctx, st, signer, keys, t0.Add(7*time.Minute+30*time.Second))
	if err != nil || rep.Removed != 7 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if vr := mustVerify(t, st, keys); vr.First != 8 || !vr.Anchored {
		t.Fatalf("verify: %+v", vr)
	}
}

// pagedStore reads at most 3 records a page and runs hook before the
// second page: another process pruning while a verify walks the log.
type pagedStore struct {
	*store.SQLite
	calls int
	hook  func()
}

func (p *pagedStore) ReadAudit(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	if p.calls++; p.calls == 2 && p.hook != nil {
		p.hook()
	}
	return p.SQLite.ReadAudit(ctx, after, min(limit, 3))
}

// A verify (or a prune) that is walking the log when another process
// prunes it starts over instead of reporting the records it no longer
// finds as deleted.
func TestVerifyDuringPrune(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	fixture(t, st, signer, t0)
	st2, err := store.OpenSQLite(filepath.Dir(path), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	prune := func(before time.Time) func() {
		return func() {
			if _, err := Prune(ctx, st2, signer, keys, before); err != nil {
				t.Error(err)
			}
		}
	}

	ps := &pagedStore{SQLite: st, hook: prune(t0.Add(7*time.Minute + 30*time.Second))}
	if vr := mustVerify(t, ps, keys); vr.First != 8 || !vr.Anchored || ps.calls < 4 {
		t.Fatalf("verify during a prune: %+v after %d reads", vr, ps.calls)
	}

	ps = &pagedStore{SQLite: st, hook: prune(time.Now())}
	rep, err := Prune(ctx, ps, signer, keys, time.Now())
	if err != nil || rep.First != 14 || rep.Removed != 0 {
		t.Fatalf("prune during a prune: %+v %v", rep, err)
	}
	if vr := mustVerify(t, st, keys); vr.First != 14 || vr.Records != 1 {
		t.Fatalf("verify: %+v", vr)
	}
}

// The kept tail is copied without the append lock; what is appended while
// it is copied is carried over under the lock. The test holds the lock as
// an appender would, waits for the copy, appends, then lets the prune on.
func TestPruneCopiesRecordsAppendedDuringCopy(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	fixture(t, st, signer, t0)
	// Sign the head now, so that Prune's own checkpoint is a no-op and
	// Prune needs the lock only to cut.
	if err := Checkpoint(ctx, st, signer, time.Now()); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, st)
	data, _ := os.ReadFile(path)
	keptSize := int64(len(data)) - int64(len(strings.Join(strings.SplitAfter(string(data), "\n")[:7], "")))

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep PruneReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Prune(ctx, st, signer, keys, t0.Add(7*time.Minute+30*time.Second))
		done <- result{rep, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if fi, err := os.Stat(path + ".tmp"); err == nil && fi.Size() == keptSize {
			break
		}
		if time.Now().After(deadline) {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			t.Fatal("the kept tail was not copied while an append held the lock")
		}
	}
	// Append two records, as an appender holding the lock does.
	prev := all[len(all)-1]
	var buf []byte
	for i := 0; i < 2; i++ {
		r := store.AuditRecord{Seq: prev.Seq + 1, Time: time.Now().UTC(), Type: TypeCommand, Data: []byte(fmt.Sprintf(`"during copy %d"`, i)), PrevHash: prev.Hash}
		r.Hash = Hash(&r)
		buf = store.EncodeAuditLine(buf, &r)
		prev = r
	}
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("prune finished while the lock was held: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	r := <-done
	if r.err != nil || r.rep.Removed != 7 {
		t.Fatalf("prune: %+v %v", r.rep, r.err)
	}
	vr := mustVerify(t, st, keys)
	head, _ := st.LastAudit(ctx)
	if vr.First != 8 || head.Seq != prev.Seq || string(head.Data) != `"during copy 1"` || vr.Records != prev.Seq-7 {
		t.Fatalf("verify %+v, head %d %s", vr, head.Seq, head.Data)
	}
}

// staleStore's LastAudit returns the record before the head, as a
// checkpoint sees the chain when a record is appended while it signs.
type staleStore struct{ *store.SQLite }

func (s staleStore) LastAudit(ctx context.Context) (store.AuditRecord, error) {
	head, err := s.SQLite.LastAudit(ctx)
	if err != nil {
		return head, err
	}
	recs, err := s.SQLite.ReadAudit(ctx, head.Seq-2, 1)
	if err != nil || len(recs) == 0 {
		return head, err
	}
	return recs[0], nil
}

// A checkpoint that signs an earlier record than the one before it (it
// raced an append) can start the pruned log when a later checkpoint covers
// what is removed; the store's anchor signs the exact link, the file alone
// then verifies as a partial export.
func TestPruneAtCheckpointThatRacedAnAppend(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	ctx := context.Background()
	t0 := time.Now().Add(-24 * time.Hour)
	before := t0.Add(time.Hour)
	for i := 1; i <= 3; i++ {
		if err := AppendOne(ctx, st, Event{Type: TypeCommand, Time: t0.Add(time.Duration(i) * time.Minute), Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	// Record 4 signs record 2, not 3.
	if err := Checkpoint(ctx, staleStore{st}, signer, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := AppendOne(ctx, st, Event{Type: TypeCommand, Time: before.Add(time.Minute), Data: "newer"}); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, st)
	var cp checkpointData
	if json.Unmarshal(all[3].Data, &cp); all[3].Type != TypeCheckpoint || cp.SignsSeq != 2 {
		t.Fatalf("fixture: record 4 is %s signing %d", all[3].Type, cp.SignsSeq)
	}

	rep, err := Prune(ctx, st, signer, keys, before)
	if err != nil || rep.Removed != 3 || rep.First != 4 || rep.SelfSigned {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	vr := mustVerify(t, st, keys)
	if vr.First != 4 || !vr.Anchored || vr.Records != 3 {
		t.Fatalf("verify: %+v", vr)
	}
	fr, err := VerifyFile(path, keys)
	if err != nil || fr.BrokenAt != 0 || fr.First != 4 || fr.Anchored {
		t.Fatalf("offline: %+v %v", fr, err)
	}
}

// The cut rule on its own: the newest checkpoint with only old records
// before it, all of them covered by some checkpoint's signature.
func TestCutFinder(t *testing.T) {
	t0 := time.Now()
	oldT, newT := t0.Add(-time.Hour), t0.Add(time.Hour)
	ev := func(seq int64, at time.Time) store.AuditRecord {
		return store.AuditRecord{Seq: seq, Time: at, Type: TypeCommand, PrevHash: []byte{byte(seq - 1)}}
	}
	ck := func(seq, signs int64, at time.Time) store.AuditRecord {
		h := []byte{byte(signs)} // the records' hashes here: {seq}
		data, _ := json.Marshal(&checkpointData{SignsSeq: signs, SignsHash: h})
		return store.AuditRecord{Seq: seq, Time: at, Type: TypeCheckpoint, Data: data, PrevHash: []byte{byte(seq - 1)}}
	}
	tests := []struct {
		name string
		recs []store.AuditRecord
		cut  int64
		self bool
	}{
		{"self-signed", []store.AuditRecord{ev(1, oldT), ev(2, oldT), ck(3, 2, oldT), ev(4, newT), ck(5, 4, newT)}, 3, true},
		{"newest wins", []store.AuditRecord{ev(1, oldT), ck(2, 1, oldT), ev(3, oldT), ck(4, 3, oldT), ev(5, newT)}, 4, true},
		{"raced, covered later", []store.AuditRecord{ev(1, oldT), ev(2, oldT), ck(3, 1, oldT), ev(4, newT), ck(5, 4, newT)}, 3, false},
		{"raced, not covered", []store.AuditRecord{ev(1, oldT), ck(2, 1, oldT), ev(3, oldT), ev(4, oldT), ck(5, 3, oldT)}, 2, true},
		{"newer before any checkpoint", []store.AuditRecord{ev(1, oldT), ev(2, newT), ck(3, 2, oldT)}, 0, false},
		{"the first record is never the cut", []store.AuditRecord{ck(7, 6, oldT), ev(8, newT)}, 0, false},
		{"a newer checkpoint itself is kept", []store.AuditRecord{ev(1, oldT), ck(2, 1, newT), ev(3, oldT), ck(4, 3, oldT)}, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &cutFinder{before: t0, allOld: true}
			for i := range tc.recs {
				f.visit(&tc.recs[i])
			}
			if f.cut.seq != tc.cut || (tc.cut != 0 && f.cut.selfSigned != tc.self) {
				t.Fatalf("cut %+v, want %d (self-signed %v)", f.cut, tc.cut, tc.self)
			}
		})
	}
}
