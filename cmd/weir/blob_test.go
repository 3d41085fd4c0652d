package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConnectionStringFormat(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "weir.yaml")
	write := func(listen, plain string) {
		os.WriteFile(cfg, []byte(`data_dir: `+filepath.Join(dir, "data")+`
listen:
  postgres: 127.0.0.1:0
  http: `+listen+`
tls:
  allow_plaintext_loopback: `+plain+`
targets:
  - name: lake
    kind: azure-blob
    endpoint: http://127.0.0.1:10000/devstoreaccount1
    account: devstoreaccount1
    account_key_env: LAKE_KEY
  - name: orders
    kind: postgres
    address: 127.0.0.1:5432
    database: orders
    username: weir_agent
    password_env: ORDERS_PG_PASSWORD
agents:
  - name: ci-bot
    targets: [lake, orders]
    max_ttl: 1h
`), 0o600)
	}
	write("127.0.0.1:8080", "true")
	out, _, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot", "--format", "connection-string", "--target", "lake")
	if err != nil {
		t.Fatal(err)
	}
	out = strings.TrimSpace(out)
	// The account name is the token's id; the token itself is not in it.
	if !strings.HasPrefix(out, "DefaultEndpointsProtocol=http;AccountName=tok_") || strings.Contains(out, "eyJ") || !strings.HasSuffix(out, ";BlobEndpoint=http://127.0.0.1:8080/blob/lake") || !strings.Contains(out, ";AccountKey=") {
		t.Fatalf("connection string %q", out)
	}
	if st, err := os.Stat(filepath.Join(dir, "data", "blob.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("blob.key: %v %v", st, err)
	}
	// Without --target, the token's one azure-blob target is used.
	if out, _, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot", "--format", "connection-string"); err != nil || !strings.Contains(out, "/blob/lake") {
		t.Fatalf("%q %v", out, err)
	}
	if _, _, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot", "--format", "connection-string", "--target", "orders"); err == nil || !strings.Contains(err.Error(), "not an azure-blob target") {
		t.Fatalf("a postgres target: %v", err)
	}
	write("127.0.0.1:8080", "false")
	if out, _, err := weir(t, "token", "issue", "--config", cfg, "--agent", "ci-bot", "--format", "connection-string", "--target", "lake"); err != nil || !strings.Contains(out, "DefaultEndpointsProtocol=https;") || !strings.Contains(out, "https://127.0.0.1:8080/blob/lake") {
		t.Fatalf("TLS: %q %v", out, err)
	}
}
