package mcp

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// What the MCP front end adds to a statement: the same indexed read
// through MCP (Go SDK client, streamable HTTP on loopback) and through the
// PostgreSQL front end (pgx), both decided, audited, masked and recorded.
//
//	go test -run XXX -bench . -benchtime 3s ./test/e2e/mcp/
func BenchmarkQueryViaMCP(b *testing.B) {
	tok, _ := token(b, "ci-bot")
	cs := goClient(b, tok, "bench")
	args := map[string]any{"target": "shop", "sql": "SELECT id, customer_id, total_cents FROM orders WHERE id = $1", "params": []any{"7"}}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: args})
		if err != nil || res.IsError {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkQueryViaPgx(b *testing.B) {
	tok, _ := token(b, "ci-bot")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://ci-bot:"+tok+"@"+env.pgAddr+"/shop?sslmode=disable")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var id, cust, total int
	b.ResetTimer()
	for b.Loop() {
		if err := conn.QueryRow(ctx, "SELECT id, customer_id, total_cents FROM orders WHERE id = $1", "7").Scan(&id, &cust, &total); err != nil {
			b.Fatal(err)
		}
	}
}
