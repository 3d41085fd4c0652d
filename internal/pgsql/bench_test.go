package pgsql

import (
	"fmt"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

var benchQueries = []struct{ name, sql string }{
	{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"},
	{"join", `SELECT o.id, o.total, c.name, c.email, p.title, sum(li.qty * li.price) AS amount
FROM orders o
JOIN customers c ON c.id = o.customer_id
JOIN line_items li ON li.order_id = o.id
LEFT JOIN products p ON p.id = li.product_id
WHERE o.created_at >= now() - interval '7 days' AND c.country = 'NL' AND o.status IN ('paid', 'shipped')
GROUP BY o.id, o.total, c.name, c.email, p.title
HAVING sum(li.qty) > 2
ORDER BY amount DESC
LIMIT 50;`},
}

// BenchmarkClassify: go test ./internal/pgsql -run '^$' -bench Classify -benchmem
func BenchmarkClassify(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Classify(q.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cache_hit", func(b *testing.B) {
		c := NewClassifier(1024)
		sql := benchQueries[0].sql
		if _, err := c.Classify(sql); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Classify(sql); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// varyingTexts returns n texts of the shape of sql, the constants of which
// (%d verbs in sql) vary with i, built ahead of time.
func varyingTexts(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		args := make([]any, strings.Count(format, "%d"))
		for j := range args {
			args[j] = i*7 + j
		}
		out[i] = fmt.Sprintf(format, args...)
	}
	return out
}

// varyingQueries are benchQueries with their constants as %d verbs, and
// one whose table name varies: a new shape every time, the shape cache's
// worst case (a scan on top of every full parse).
var varyingQueries = []struct{ name, format string }{
	{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = %d;"},
	{"new_shape", "SELECT abalance FROM pgbench_accounts_%d WHERE aid = 1;"},
	{"join", strings.NewReplacer("'7 days'", "'%d days'", "sum(li.qty) > 2", "sum(li.qty) > %d", "LIMIT 50", "LIMIT %d").Replace(benchQueries[1].sql)},
}

// BenchmarkClassifyVarying: a Classifier asked for 10,000 texts of one
// shape in turn, so that the exact-text cache (1,024 entries) always
// misses. "exact_only" turns the shape cache off; "shape" is a shape-cache
// hit (scan, key, reuse) plus storing the text in the exact-text cache,
// except for new_shape, where it is a miss of both caches.
//
//	go test ./internal/pgsql -run '^$' -bench ClassifyVarying -benchmem
func BenchmarkClassifyVarying(b *testing.B) {
	for _, q := range varyingQueries {
		texts := varyingTexts(q.format, 10000)
		for _, mode := range []string{"exact_only", "shape"} {
			b.Run(q.name+"/"+mode, func(b *testing.B) {
				c := NewClassifier(1024)
				c.noShape = mode == "exact_only"
				if _, err := c.Classify(texts[len(texts)-1]); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := c.Classify(texts[i]); err != nil {
						b.Fatal(err)
					}
					if i++; i == len(texts) {
						i = 0
					}
				}
				if mode == "shape" && q.name != "new_shape" && c.shapeHits.Load() == 0 {
					b.Fatal("no shape hits")
				}
			})
		}
	}
}

// BenchmarkScan is the lexer alone, the floor of a shape-cache hit.
func BenchmarkScan(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			var s shapeScan
			b.ReportAllocs()
			for b.Loop() {
				if !s.scan(q.sql) {
					b.Fatal("scan failed")
				}
			}
		})
	}
}

// BenchmarkParts splits the cost: the parser (C parse + protobuf decode),
// then weir's walk of the decoded tree.
func BenchmarkParts(b *testing.B) {
	for _, q := range benchQueries {
		b.Run("parse/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pg_query.Parse(q.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
		tree, err := pg_query.Parse(q.sql)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("walk/"+q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := classifyTree(q.sql, tree); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
