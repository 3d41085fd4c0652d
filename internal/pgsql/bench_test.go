package pgsql

import "testing"

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
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.Classify(sql); err != nil {
				b.Fatal(err)
			}
		}
	})
}
