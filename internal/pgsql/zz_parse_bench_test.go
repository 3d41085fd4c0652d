package pgsql

import (
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
)

func BenchmarkParseOnly(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pg_query.Parse(q.sql)
			}
		})
		b.Run(q.name+"_c", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				parser.ParseToProtobuf(q.sql)
			}
		})
	}
}

func BenchmarkWalkOnly(b *testing.B) {
	for _, q := range benchQueries {
		tree, _ := pg_query.Parse(q.sql)
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := &collector{h: newHash()}
				c.visitFn = c.visit
				c.walk(tree.Stmts[0].Stmt.ProtoReflect(), false)
			}
		})
	}
}
