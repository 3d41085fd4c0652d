package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	weirmcp "github.com/weir-gw/weir/internal/mcp"
)

type mcpBearer struct{ token string }

func (b mcpBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// The MCP query tool is a client of the same PostgreSQL front end, so
// column-lineage masking and its refusals (found in review: set-returning
// row counts, names resolved as PostgreSQL resolves them) hold for an MCP
// agent too, in the text table and the structured content alike. The MCP
// server runs over streamable HTTP with the Go SDK's client, on this
// harness's gateway, whose policy masks people.ssn.
func TestMCPQueryUsesLineage(t *testing.T) {
	srv := weirmcp.New(weirmcp.Options{Gateway: env.gw, Auth: env.auth, Postgres: env.srv, Logger: slog.New(slog.DiscardHandler), Version: "e2e"})
	t.Cleanup(srv.Close)
	mux := http.NewServeMux()
	mux.Handle(weirmcp.Path, srv.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: hs.URL + weirmcp.Path, HTTPClient: &http.Client{Transport: mcpBearer{mustToken(t)}}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-lineage", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	query := func(sql string) (string, string, bool) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "query", Arguments: map[string]any{"target": "shop", "sql": sql}})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		var text strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text.WriteString(tc.Text)
			}
		}
		structured, _ := json.Marshal(res.StructuredContent)
		return text.String(), string(structured), res.IsError
	}
	for _, sql := range []string{
		"SELECT id, ssn FROM people WHERE id = 2",
		"SELECT (SELECT ssn FROM orders ssn LIMIT 1) FROM people WHERE id = 2",
		"SELECT (SELECT coalesce FROM (SELECT coalesce(p.ssn)) a) FROM (SELECT 1 AS coalesce) o, people p WHERE p.id = 2",
	} {
		text, structured, isErr := query(sql)
		if isErr || !strings.Contains(structured, "****") && !strings.Contains(structured, "[REDACTED]") {
			t.Errorf("%s: %v %s %s", sql, isErr, text, structured)
		}
		if strings.Contains(text+structured, "123450002") {
			t.Errorf("%s: ssn reached the MCP client: %s %s", sql, text, structured)
		}
	}
	text, structured, isErr := query("SELECT id, (SELECT count(*) FROM generate_series(1, ascii(substr(p.ssn, 9, 1)))) FROM people p")
	if !isErr || !strings.Contains(text, "set-returning") || !strings.Contains(structured, `"rule":"weir"`) {
		t.Errorf("row-count oracle through MCP: %v %s %s", isErr, text, structured)
	}
}
