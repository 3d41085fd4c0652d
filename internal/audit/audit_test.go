package audit

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/weir-gw/weir/internal/store"
)

func newStore(t testing.TB) (*store.SQLite, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, filepath.Join(dir, "weir.db")
}

func TestWriterChainsConcurrentAppends(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	w, err := NewWriter(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := w.Append(ctx, Event{Type: TypeCommand, SessionID: fmt.Sprint("s", g), Data: map[string]int{"i": i}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// A second process (the CLI) appending at the same time must not fork the chain.
	for i := 0; i < 10; i++ {
		if err := AppendOne(ctx, st, Event{Type: TypeTokenIssued, Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	w.Enqueue(Event{Type: TypeResult, Data: "last"})
	w.Close()
	rep, err := Verify(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BrokenAt != 0 || rep.Records != 411 {
		t.Fatalf("report %+v, want 411 intact records", rep)
	}
}

// Each kind of tampering with the store file is detected and located.
func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		sql    string
		at     int64
		reason string
	}{
		{"edited data", `UPDATE audit SET data = '{"decision":"allow"}' WHERE seq = 3`, 3, "modified"},
		{"edited type", `UPDATE audit SET type = 'x' WHERE seq = 4`, 4, "modified"},
		{"deleted record", `DELETE FROM audit WHERE seq = 2`, 2, "missing"},
		{"deleted head", `DELETE FROM audit WHERE seq = 1`, 1, "missing"},
		{"reordered", `UPDATE audit SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END WHERE seq IN (2, 3)`, 2, "does not follow"},
		{"inserted", `UPDATE audit SET seq = seq + 1 WHERE seq >= 3; INSERT INTO audit SELECT 3, time, type, session_id, agent, target, data, prev_hash, hash FROM audit WHERE seq = 2`, 3, "does not follow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, path := newStore(t)
			ctx := context.Background()
			for i := 0; i < 5; i++ {
				if err := AppendOne(ctx, st, Event{Type: TypeCommand, SessionID: "s1", Data: map[string]any{"i": i, "decision": "deny"}}); err != nil {
					t.Fatal(err)
				}
			}
			if rep, _ := Verify(ctx, st); rep.BrokenAt != 0 || rep.Records != 5 {
				t.Fatalf("intact chain reported %+v", rep)
			}
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "inserted" || tc.name == "reordered" {
				// seq is the primary key: shift through negative values to avoid collisions.
				tc.sql = strings.NewReplacer("seq = seq + 1 WHERE seq >= 3", "seq = -(seq + 1) WHERE seq >= 3").Replace(tc.sql)
				if tc.name == "inserted" {
					tc.sql += `; UPDATE audit SET seq = -seq WHERE seq < 0`
				} else {
					tc.sql = `UPDATE audit SET seq = -seq WHERE seq IN (2,3); UPDATE audit SET seq = 3 WHERE seq = -2; UPDATE audit SET seq = 2 WHERE seq = -3`
				}
			}
			if _, err := db.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			db.Close()
			rep, err := Verify(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if rep.BrokenAt != tc.at || !strings.Contains(rep.Problem, tc.reason) {
				t.Fatalf("got %+v, want break at %d mentioning %q", rep, tc.at, tc.reason)
			}
		})
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	st, _ := newStore(b)
	ctx := context.Background()
	w, err := NewWriter(ctx, st)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ev := Event{Type: TypeCommand, SessionID: "s_bench", Agent: "bench", Target: "bench", Data: map[string]any{"seq": 1, "decision": "allow", "rule": "reads",
		"commands": []map[string]any{{"verb": "SELECT", "text": "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"}}}}
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := w.Append(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
