package pgsql

import (
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
