package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

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
	return st, filepath.Join(dir, "audit.jsonl")
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
	rep, err := Verify(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BrokenAt != 0 || rep.Records != 411 {
		t.Fatalf("report %+v, want 411 intact records", rep)
	}
}

// Each kind of tampering with the stored log is detected and located.
func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(lines []string) []string
		at     int64
		reason string
	}{
		{"edited data", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"decision":"deny"`, `"decision":"allow"`, 1)
			return l
		}, 3, "modified"},
		{"edited type", func(l []string) []string { l[3] = strings.Replace(l[3], `"type":"command"`, `"type":"x"`, 1); return l }, 4, "modified"},
		{"deleted record", func(l []string) []string { return append(l[:1], l[2:]...) }, 2, "missing"},
		{"deleted head", func(l []string) []string { return l[1:] }, 1, "missing"},
		{"reordered", func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, 2, "missing"},
		{"inserted", func(l []string) []string { return append(l[:3], append([]string{l[2]}, l[3:]...)...) }, 4, "missing"},
		{"renumbered after delete", func(l []string) []string {
			out := append([]string{}, l[0])
			for i, line := range l[2:] {
				out = append(out, strings.Replace(line, fmt.Sprintf(`"seq":%d`, i+3), fmt.Sprintf(`"seq":%d`, i+2), 1))
			}
			return out
		}, 2, "does not follow"},
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
			if rep, _ := Verify(ctx, st, nil); rep.BrokenAt != 0 || rep.Records != 5 {
				t.Fatalf("intact chain reported %+v", rep)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			lines = tc.edit(lines)
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(ctx, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.BrokenAt != tc.at || !strings.Contains(rep.Problem, tc.reason) {
				t.Fatalf("got %+v, want break at %d mentioning %q", rep, tc.at, tc.reason)
			}
		})
	}
}

// A record cut off by a crash mid-write was never acknowledged (its command
// never ran); the next append drops it and the chain stays intact.
func TestPartialTailIsCutOff(t *testing.T) {
	st, path := newStore(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := AppendOne(ctx, st, Event{Type: TypeCommand, Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":4,"time":"2026-`)
	f.Close()
	// A fresh process (the CLI) appends.
	st2, err := store.OpenSQLite(filepath.Dir(path), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if err := AppendOne(ctx, st2, Event{Type: TypeCommand, Data: "after crash"}); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, st2, nil)
	if err != nil || rep.BrokenAt != 0 || rep.Records != 4 {
		t.Fatalf("report %+v err %v", rep, err)
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

func BenchmarkAppendSerial(b *testing.B) {
	st, _ := newStore(b)
	ctx := context.Background()
	w, err := NewWriter(ctx, st)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ev := Event{Type: TypeCommand, SessionID: "s_bench", Agent: "bench", Target: "bench", Data: map[string]any{"seq": 1, "decision": "allow", "rule": "reads",
		"commands": []map[string]any{{"verb": "SELECT", "text": "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"}}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Append(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendFsync is the same with audit.fsync: every batch is
// fsynced before the commands in it may run.
func BenchmarkAppendFsync(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			st, err := store.OpenSQLite(b.TempDir(), true)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			w, err := NewWriter(ctx, st)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			ev := Event{Type: TypeCommand, SessionID: "s_bench", Agent: "bench", Target: "bench", Data: map[string]any{"seq": 1, "decision": "allow"}}
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.Append(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
