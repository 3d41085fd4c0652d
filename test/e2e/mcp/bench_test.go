package mcp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/proxy/blob"
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

// What blob_read costs next to the Go SDK reading the same blob through
// the Blob front end (both authenticated, decided, audited and masked):
//
//	go test -run XXX -bench Blob -benchtime 3s ./test/e2e/mcp/
func BenchmarkBlobReadViaMCP(b *testing.B) {
	tok, _ := token(b, "lake-bot")
	cs := goClient(b, tok, "bench")
	args := map[string]any{"target": "lake", "container": "reports", "blob": "customers.csv"}
	ctx := context.Background()
	for b.Loop() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "blob_read", Arguments: args})
		if err != nil || res.IsError {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkBlobReadViaSDK(b *testing.B) {
	_, c := token(b, "lake-bot")
	cli, err := azblob.NewClientFromConnectionString(blob.ConnectionString(env.base+blob.Prefix+"lake", c.ID, env.secret), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		resp, err := cli.DownloadStream(ctx, "reports", "customers.csv", nil)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Contains(body, []byte("Ada Lovelace")) || bytes.Contains(body, []byte("ada@example.com")) {
			b.Fatal(err, string(body))
		}
	}
}

// blob_read streams a text blob from its start (offsets are positions in
// the masked text), so reading near the end of a large blob costs the
// whole blob: 64 KiB at offset 0 and at 7.9 MiB of an 8 MiB log.
func BenchmarkBlobReadOffset(b *testing.B) {
	ctx := context.Background()
	var log bytes.Buffer
	for i := 0; log.Len() < 8<<20; i++ {
		fmt.Fprintf(&log, "2026-11-27T10:00:00Z INFO request %d from user%d@corp.example.com ok\n", i, i%1000)
	}
	ct := "text/plain"
	if _, err := env.blobs.UploadBuffer(ctx, "reports", "bench-8m.log", log.Bytes(), &azblob.UploadBufferOptions{HTTPHeaders: &azb.HTTPHeaders{BlobContentType: &ct}}); err != nil {
		b.Fatal(err)
	}
	tok, _ := token(b, "lake-bot")
	cs := goClient(b, tok, "bench")
	for _, off := range []int64{0, 8<<20 - 100<<10} {
		b.Run(fmt.Sprintf("offset=%d", off), func(b *testing.B) {
			args := map[string]any{"target": "lake", "container": "reports", "blob": "bench-8m.log", "offset": off}
			for b.Loop() {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "blob_read", Arguments: args})
				if err != nil || res.IsError {
					b.Fatal(err, res)
				}
			}
		})
	}
}
