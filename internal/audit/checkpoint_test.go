package audit

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

type testSigner struct {
	priv ed25519.PrivateKey
}

func (s testSigner) Sign(msg []byte) (string, []byte, error) {
	return "k1", ed25519.Sign(s.priv, msg), nil
}

func newSigner(t *testing.T) (testSigner, map[string]ed25519.PublicKey) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return testSigner{priv}, map[string]ed25519.PublicKey{"k1": pub}
}

// writeLog appends n events, checkpointing after every `every`.
func writeLog(t *testing.T, st store.Store, signer Signer, n, every int) {
	t.Helper()
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		if err := AppendOne(ctx, st, Event{Type: TypeCommand, SessionID: "s1", Data: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
		if i%every == 0 {
			if err := Checkpoint(ctx, st, signer, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCheckpointsVerify(t *testing.T) {
	st, _ := newStore(t)
	signer, keys := newSigner(t)
	writeLog(t, st, signer, 10, 3)
	// A second checkpoint with nothing new is not written.
	if err := Checkpoint(context.Background(), st, signer, time.Now()); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(context.Background(), st, keys)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BrokenAt != 0 || rep.Checkpoints != 4 || rep.Records != 14 || rep.Unsigned != 0 {
		t.Fatalf("report %+v", rep)
	}
	// Another key does not verify them.
	_, other := newSigner(t)
	rep, _ = Verify(context.Background(), st, other)
	if rep.BrokenAt == 0 || !strings.Contains(rep.Problem, "invalid signature") {
		t.Fatalf("foreign key accepted: %+v", rep)
	}
}

// Truncating the tail (records and the checkpoints after them, with the
// hash chain still consistent) is caught by the checkpoint kept outside
// the log.
func TestTruncatedTailDetected(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	writeLog(t, st, signer, 9, 3)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	if err := os.WriteFile(path, []byte(strings.Join(lines[:5], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(context.Background(), st, keys)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BrokenAt == 0 || !strings.Contains(rep.Problem, "tail was truncated") {
		t.Fatalf("truncation not detected: %+v", rep)
	}
}

// An exported file verifies offline with the public key alone, whole or
// from a later record on; an edit in it is caught.
func TestVerifyFileOffline(t *testing.T) {
	st, path := newStore(t)
	signer, keys := newSigner(t)
	writeLog(t, st, signer, 12, 4)
	rep, err := VerifyFile(path, keys)
	if err != nil || rep.BrokenAt != 0 || rep.Checkpoints != 3 || rep.First != 1 {
		t.Fatalf("whole file: %+v %v", rep, err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	partial := filepath.Join(t.TempDir(), "partial.jsonl")
	os.WriteFile(partial, []byte(strings.Join(lines[6:], "")), 0o600)
	rep, err = VerifyFile(partial, keys)
	if err != nil || rep.BrokenAt != 0 || rep.First != 7 {
		t.Fatalf("partial: %+v %v", rep, err)
	}
	edited := filepath.Join(t.TempDir(), "edited.jsonl")
	os.WriteFile(edited, []byte(strings.Replace(string(data), `{"i":5}`, `{"i":6}`, 1)), 0o600)
	rep, _ = VerifyFile(edited, keys)
	if rep.BrokenAt != 6 { // event i=5 is record 6: the checkpoint after i=4 is record 5
		t.Fatalf("edit: %+v", rep)
	}
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	os.WriteFile(cut, data[:len(data)-10], 0o600)
	rep, _ = VerifyFile(cut, keys)
	if rep.BrokenAt == 0 || !strings.Contains(rep.Problem, "cut off") {
		t.Fatalf("cut: %+v", rep)
	}
}
