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
	"io/fs"
	"os"
	"path/filepath"
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
//
// Pruning (see prune) replaces the file: it writes the kept tail to
// audit.jsonl.tmp under the same flock and renames it over audit.jsonl. A
// process holding the old file open notices under the lock, before each
// append, that the path now names another file, and re-opens it.
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
	pathStat  syscall.Stat_t

	// Resume point for sequential ReadAudit paging, valid in readFile.
	readSeq    int64
	readOffset int64
	readFile   os.FileInfo
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

func (l *auditLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

func unlockFile(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// lockCurrent takes the exclusive flock on the file l.path names now,
// re-opening it first if a prune renamed another file over it (or it was
// removed). Called with l.mu held; the caller unlocks l.f.
func (l *auditLog) lockCurrent() (os.FileInfo, error) {
	for {
		if err := lockFile(l.f); err != nil {
			return nil, fmt.Errorf("locking audit log: %w", err)
		}
		fi, err := l.f.Stat()
		if err != nil {
			unlockFile(l.f)
			return nil, err
		}
		replaced, err := l.replaced(fi)
		if err != nil || !replaced {
			if err != nil {
				unlockFile(l.f)
			}
			return fi, err
		}
		unlockFile(l.f)
		if err := l.reopen(); err != nil {
			return nil, err
		}
	}
}

// replaced reports whether l.path no longer names the open file fi. It
// runs for every append, hence the raw stat (no allocation).
func (l *auditLog) replaced(fi os.FileInfo) (bool, error) {
	open, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		pfi, err := os.Stat(l.path)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return err == nil && !os.SameFile(fi, pfi), err
	}
	for {
		err := syscall.Stat(l.path, &l.pathStat)
		switch err {
		case nil:
			return l.pathStat.Dev != open.Dev || l.pathStat.Ino != open.Ino, nil
		case syscall.ENOENT:
			return true, nil
		case syscall.EINTR:
			continue
		}
		return false, &fs.PathError{Op: "stat", Path: l.path, Err: err}
	}
}

// refresh re-opens l.path if it names another file than l.f (for reads
// outside the lock). Called with l.mu held.
func (l *auditLog) refresh() error {
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	if replaced, err := l.replaced(fi); err != nil || !replaced {
		return err
	}
	return l.reopen()
}

func (l *auditLog) reopen() error {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("re-opening audit log: %w", err)
	}
	l.f.Close()
	l.use(f)
	return nil
}

// use makes f the log file and forgets what was cached about the old one.
func (l *auditLog) use(f *os.File) {
	l.f = f
	l.knownSize, l.headSeq, l.headHash, l.headKnown = -1, 0, nil, false
	l.readSeq, l.readOffset, l.readFile = 0, 0, nil
}

func (l *auditLog) append(recs []AuditRecord, genesis []byte, hash func(*AuditRecord) []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fi, err := l.lockCurrent()
	if err != nil {
		return err
	}
	defer unlockFile(l.f)
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

// lastNewline returns the offset of the last '\n' in l.f before off, or -1.
func (l *auditLog) lastNewline(off int64) (int64, error) { return lastNewline(l.f, off) }

// lastNewline returns the offset of the last '\n' in f before off, or -1.
func lastNewline(f *os.File, off int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for off > 0 {
		n := int64(len(buf))
		if off < n {
			n = off
		}
		off -= n
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
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
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off, lineNo := int64(0), int64(0)
	l.mu.Lock()
	// The cached offset is only good in the file it was found in: a prune
	// replaces the file.
	if after > 0 && after == l.readSeq && l.readFile != nil && os.SameFile(fi, l.readFile) {
		off = l.readOffset
	}
	l.mu.Unlock()
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
		l.readSeq, l.readOffset, l.readFile = out[len(out)-1].Seq, off, fi
		l.mu.Unlock()
	}
	return out, nil
}

func (l *auditLog) last() (AuditRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refresh(); err != nil {
		return AuditRecord{}, err
	}
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

// prune removes the records before firstSeq from the head of the log.
//
// It writes the kept tail to audit.jsonl.tmp, syncs it, renames it over
// audit.jsonl and syncs the directory: a crash leaves either the old file
// or the new one, whole. The syncs are done whatever audit.fsync says: a
// rename without them can leave an empty file.
//
// Appends must not wait for the whole tail to be copied: every command
// waits for its audit record. So the tail is copied and synced first
// without the append lock, up to the last complete line, which no one
// changes any more (a failed append only leaves a partial line after it,
// which is cut). Then, holding the exclusive flock appends take, prune
// copies what was appended meanwhile, syncs, and renames; appends that
// were waiting find the new file (lockCurrent). Pruners take turns on a
// flock of the directory, so that only one writes audit.jsonl.tmp.
func (l *auditLog) prune(ctx context.Context, firstSeq int64, prevHash []byte) (int64, error) {
	dir, err := os.Open(filepath.Dir(l.path))
	if err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	defer dir.Close()
	if err := lockFile(dir); err != nil {
		return 0, fmt.Errorf("pruning the audit log: locking %s: %w", dir.Name(), err)
	}
	defer unlockFile(dir)

	// 1. Without the append lock: find record firstSeq and copy the tail.
	src, err := os.Open(l.path)
	if err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	defer src.Close()
	srcInfo, err := src.Stat()
	if err != nil {
		return 0, err
	}
	end, err := lastNewline(src, srcInfo.Size())
	if err != nil {
		return 0, err
	}
	off, removed, err := findRecord(ctx, src, end+1, firstSeq, prevHash)
	if err != nil || removed == 0 {
		return 0, err
	}
	tmpPath := l.path + ".tmp"
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()
	if _, err := io.Copy(tmp, io.NewSectionReader(src, off, end+1-off)); err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}

	// 2. With it: the records appended meanwhile, then the switch.
	l.mu.Lock()
	defer l.mu.Unlock()
	fi, err := l.lockCurrent()
	if err != nil {
		return 0, err
	}
	old := l.f
	defer func() {
		unlockFile(old)
		if old != l.f {
			old.Close()
		}
	}()
	if !os.SameFile(fi, srcInfo) || fi.Size() < end+1 {
		return 0, errors.New("pruning the audit log: the file was replaced or cut while it was copied")
	}
	end2, err := lastNewline(old, fi.Size())
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(tmp, io.NewSectionReader(old, end+1, end2-end)); err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	if err := os.Rename(tmpPath, l.path); err != nil {
		return 0, fmt.Errorf("pruning the audit log: %w", err)
	}
	// From here on the new file is the log, whatever else fails.
	renamed = true
	l.use(tmp)
	if err := dir.Sync(); err != nil {
		return removed, fmt.Errorf("pruning the audit log: syncing its directory: %w", err)
	}
	return removed, nil
}

// findRecord reads f up to size and returns the offset of record firstSeq
// and how many records come before it; the record must link to prevHash.
func findRecord(ctx context.Context, f *os.File, size, firstSeq int64, prevHash []byte) (off, before int64, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 256<<10)
	for lineNo := int64(1); ; lineNo++ {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return 0, 0, fmt.Errorf("pruning the audit log: record %d is not in it", firstSeq)
		}
		if err != nil {
			return 0, 0, err
		}
		rec, err := decodeLine(line[:len(line)-1])
		if err != nil {
			return 0, 0, &CorruptRecordError{Line: lineNo, Err: err}
		}
		switch {
		case rec.Seq < firstSeq:
			off += int64(len(line))
			before++
		case rec.Seq > firstSeq:
			return 0, 0, fmt.Errorf("pruning the audit log: record %d is not in it (found record %d at line %d)", firstSeq, rec.Seq, lineNo)
		case !bytes.Equal(rec.PrevHash, prevHash):
			return 0, 0, fmt.Errorf("pruning the audit log: record %d does not link to the expected previous hash", firstSeq)
		default:
			return off, before, nil
		}
	}
}
