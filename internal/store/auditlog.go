package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// auditLog is the embedded store's audit chain: an append-only file of
// JSON lines, one record per line, in data_dir/audit.jsonl.
//
// Measured first with the records in SQLite: each record cost ~16 µs of
// CPU in the (pure-Go) SQLite engine and the single audit writer saturated
// at ~27k records/s, capping the gateway far below pgbouncer. Appending a
// batch here is one write(2) (plus one fsync with audit.fsync), whatever its
// size. The file is also what `weir audit export` would produce, so a SIEM
// or an offline verifier reads it as is.
//
// Several processes append (the server and CLI commands): every append
// holds an exclusive flock and re-reads the chain head when the file grew
// since this process last wrote, so the chain never forks.
type auditLog struct {
	path  string
	fsync bool

	mu        sync.Mutex
	f         *os.File
	knownSize int64  // file size after our last append or head read
	headSeq   int64  // valid when knownSize matches the file
	headHash  []byte // idem
	headKnown bool
	buf       []byte // reused line buffer

	// Resume point for sequential ReadAudit paging.
	readSeq    int64
	readOffset int64
}

// auditLine is the on-disk form of a record. Hashes are hex; the time is
// RFC 3339 with nanoseconds, which round-trips exactly.
type auditLine struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Type      string          `json:"type"`
	SessionID string          `json:"session_id,omitempty"`
	Agent     string          `json:"agent,omitempty"`
	Target    string          `json:"target,omitempty"`
	Data      json.RawMessage `json:"data"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

func openAuditLog(path string, fsync bool) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return &auditLog{path: path, fsync: fsync, f: f, knownSize: -1}, nil
}

func (l *auditLog) close() error { return l.f.Close() }

func (l *auditLog) lock() error {
	for {
		err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

func (l *auditLog) unlock() { syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN) }

func (l *auditLog) append(recs []AuditRecord, genesis []byte, hash func(*AuditRecord) []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.lock(); err != nil {
		return fmt.Errorf("locking audit log: %w", err)
	}
	defer l.unlock()
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	if !l.headKnown || fi.Size() != l.knownSize {
		if err := l.readHead(fi.Size()); err != nil {
			return err
		}
	}
	seq, prev := l.headSeq, l.headHash
	if seq == 0 {
		prev = genesis
	}
	buf := l.buf[:0]
	for i := range recs {
		r := &recs[i]
		seq++
		r.Seq, r.PrevHash = seq, prev
		r.Hash = hash(r)
		prev = r.Hash
		buf = appendLine(buf, r)
	}
	l.buf = buf
	if cap(l.buf) > 4<<20 {
		l.buf = nil // keep no huge buffer after a huge record
	}
	n, err := l.f.Write(buf)
	if err != nil {
		// A partial line is cut off at the next append (it was never
		// acknowledged, so its command never ran).
		l.headKnown = false
		return fmt.Errorf("writing audit log: %w", err)
	}
	if l.fsync {
		if err := l.f.Sync(); err != nil {
			l.headKnown = false
			return fmt.Errorf("syncing audit log: %w", err)
		}
	}
	l.knownSize = fi.Size() + int64(n)
	l.headSeq, l.headHash, l.headKnown = seq, prev, true
	return nil
}

// readHead finds the last complete record. A partial last line (a crash
// in the middle of a write that was never acknowledged) is cut off.
func (l *auditLog) readHead(size int64) error {
	l.headSeq, l.headHash, l.headKnown = 0, nil, false
	if size == 0 {
		l.knownSize, l.headKnown = 0, true
		return nil
	}
	end, err := l.lastNewline(size)
	if err != nil {
		return err
	}
	if end+1 != size {
		if err := l.f.Truncate(end + 1); err != nil {
			return fmt.Errorf("cutting a partial audit record: %w", err)
		}
		size = end + 1
	}
	if end < 0 {
		l.knownSize, l.headKnown = 0, true
		return nil
	}
	start, err := l.lastNewline(end)
	if err != nil {
		return err
	}
	line := make([]byte, end-start-1)
	if _, err := l.f.ReadAt(line, start+1); err != nil {
		return err
	}
	var rec auditLine
	if err := json.Unmarshal(line, &rec); err != nil {
		return fmt.Errorf("audit log's last record is damaged (run weir audit verify): %w", err)
	}
	h, err := hex.DecodeString(rec.Hash)
	if err != nil {
		return fmt.Errorf("audit log's last record is damaged (run weir audit verify): %w", err)
	}
	l.headSeq, l.headHash, l.headKnown, l.knownSize = rec.Seq, h, true, size
	return nil
}

// lastNewline returns the offset of the last '\n' before off, or -1.
func (l *auditLog) lastNewline(off int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for off > 0 {
		n := int64(len(buf))
		if off < n {
			n = off
		}
		off -= n
		if _, err := l.f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return off + int64(i), nil
		}
	}
	return -1, nil
}

// EncodeAuditLine appends r in its stored form (one JSON line).
func EncodeAuditLine(b []byte, r *AuditRecord) []byte { return appendLine(b, r) }

// appendLine writes a record as one JSON line, the same shape auditLine
// decodes, without reflection: this runs for every command. r.Data comes
// from json.Marshal, so it is compact, valid JSON with no raw newline.
func appendLine(b []byte, r *AuditRecord) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":`...)
	b = appendJSONString(b, r.Type)
	if r.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = appendJSONString(b, r.SessionID)
	}
	if r.Agent != "" {
		b = append(b, `,"agent":`...)
		b = appendJSONString(b, r.Agent)
	}
	if r.Target != "" {
		b = append(b, `,"target":`...)
		b = appendJSONString(b, r.Target)
	}
	b = append(b, `,"data":`...)
	b = append(b, r.Data...)
	b = append(b, `,"prev_hash":"`...)
	b = hex.AppendEncode(b, r.PrevHash)
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, r.Hash)
	return append(b, "\"}\n"...)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // strings always marshal
	return append(b, q...)
}

// DecodeAuditLine decodes one line of audit.jsonl (or of an export).
func DecodeAuditLine(b []byte) (AuditRecord, error) { return decodeLine(b) }

func decodeLine(b []byte) (AuditRecord, error) {
	var l auditLine
	if err := json.Unmarshal(b, &l); err != nil {
		return AuditRecord{}, err
	}
	prev, err1 := hex.DecodeString(l.PrevHash)
	h, err2 := hex.DecodeString(l.Hash)
	if err1 != nil || err2 != nil {
		return AuditRecord{}, errors.New("bad hash encoding")
	}
	return AuditRecord{Seq: l.Seq, Time: l.Time.UTC(), Type: l.Type, SessionID: l.SessionID, Agent: l.Agent, Target: l.Target,
		Data: []byte(l.Data), PrevHash: prev, Hash: h}, nil
}

// CorruptRecordError reports a line that is not a record at all.
type CorruptRecordError struct {
	Line int64
	Err  error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("audit log line %d is not a valid record: %v", e.Line, e.Err)
}

// read returns up to limit records with Seq > after, in file order. Records
// are returned as stored, without judging the chain: Verify does that.
func (l *auditLog) read(ctx context.Context, after int64, limit int) ([]AuditRecord, error) {
	l.mu.Lock()
	off, lineNo := int64(0), int64(0)
	if after > 0 && after == l.readSeq {
		off = l.readOffset
	}
	l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var out []AuditRecord
	for len(out) < limit {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // a partial last line is not a record yet
		}
		if err != nil {
			return nil, err
		}
		lineNo++
		next := off + int64(len(line))
		rec, derr := decodeLine(line[:len(line)-1])
		if derr != nil {
			return nil, &CorruptRecordError{Line: lineNo, Err: derr}
		}
		if rec.Seq > after || len(out) > 0 {
			out = append(out, rec)
		}
		off = next
	}
	if len(out) > 0 {
		l.mu.Lock()
		l.readSeq, l.readOffset = out[len(out)-1].Seq, off
		l.mu.Unlock()
	}
	return out, nil
}

func (l *auditLog) last() (AuditRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fi, err := l.f.Stat()
	if err != nil {
		return AuditRecord{}, err
	}
	end, err := l.lastNewline(fi.Size())
	if err != nil {
		return AuditRecord{}, err
	}
	if end < 0 {
		return AuditRecord{}, ErrNotFound
	}
	start, err := l.lastNewline(end)
	if err != nil {
		return AuditRecord{}, err
	}
	line := make([]byte, end-start-1)
	if _, err := l.f.ReadAt(line, start+1); err != nil {
		return AuditRecord{}, err
	}
	return decodeLine(line)
}
