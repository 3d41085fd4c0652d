package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// TypeCheckpoint marks a signed checkpoint record.
const TypeCheckpoint = "checkpoint"

// Signer signs checkpoints with weir's Ed25519 key.
type Signer interface {
	Sign(msg []byte) (keyID string, sig []byte, err error)
}

// checkpointData is a checkpoint record's data. The signature covers the
// sequence number and hash of the newest record when the checkpoint was
// made, and the previous checkpoint's signature, as CloudTrail digests
// chain to the previous digest: deleting a checkpoint, or everything after
// one, is detectable.
type checkpointData struct {
	SignsSeq      int64     `json:"signs_seq"`
	SignsHash     hexBytes  `json:"signs_hash"`
	PrevSignature hexBytes  `json:"prev_signature,omitempty"`
	KeyID         string    `json:"key_id"`
	Signature     hexBytes  `json:"signature"`
	SignedAt      time.Time `json:"signed_at"`
}

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

func checkpointMessage(seq int64, hash, prevSig []byte) []byte {
	msg := []byte("weir audit checkpoint v1\n")
	msg = strconv.AppendInt(msg, seq, 10)
	msg = append(msg, '\n')
	msg = hex.AppendEncode(msg, hash)
	msg = append(msg, '\n')
	return hex.AppendEncode(msg, prevSig)
}

// Checkpoint signs the current head of the chain and appends the signed
// checkpoint; it also records it in the store, outside the log, so that a
// truncated tail is detected. It does nothing when no record was added
// since the last checkpoint.
func Checkpoint(ctx context.Context, st store.Store, signer Signer, now time.Time) error {
	head, err := st.LastAudit(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var prevSig []byte
	last, err := st.LastCheckpoint(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if head.Seq == last.Seq {
			return nil // nothing new since the last checkpoint
		}
		prevSig = last.Signature
	}
	if head.Type == TypeCheckpoint {
		return nil
	}
	kid, sig, err := signer.Sign(checkpointMessage(head.Seq, head.Hash, prevSig))
	if err != nil {
		return fmt.Errorf("signing checkpoint: %w", err)
	}
	cp := checkpointData{SignsSeq: head.Seq, SignsHash: head.Hash, PrevSignature: prevSig, KeyID: kid, Signature: sig, SignedAt: now.UTC()}
	rec, err := newRecord(&Event{Type: TypeCheckpoint, Time: now, Data: &cp})
	if err != nil {
		return err
	}
	recs := []store.AuditRecord{rec}
	if err := st.AppendAudit(ctx, recs, genesisHash(), Hash); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	return st.SaveCheckpoint(ctx, store.Checkpoint{Seq: recs[0].Seq, Hash: recs[0].Hash, Signature: sig, KeyID: kid, SignedAt: now})
}
