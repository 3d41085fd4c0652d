// Package blob runs weir's Blob front end end to end: a real Azurite as
// the storage account, the real front end mounted on a loopback HTTP
// server in this process, and real clients (the Go azblob SDK, the az CLI).
package blob

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/proxy/blob"
	"github.com/weir-gw/weir/internal/store"
)

// Azurite's well-known development account.
const (
	account    = "devstoreaccount1"
	accountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var env struct {
	azurite string // http://127.0.0.1:PORT/devstoreaccount1
	direct  *azblob.Client
	cfg     *config.Config
	st      store.Store
	auth    *identity.Authority
	gw      *gateway.Gateway
	h       *blob.Handler
	srv     *httptest.Server
	secret  []byte
	logBuf  *syncBuffer
	dataDir string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const policyYAML = `
policy:
  rules:
    - name: no-credential-minting
      when: '"mints_credential" in command.risks'
      action: deny
      message: "agents may not mint SAS or user delegation keys"
    - name: never-delete
      when: 'command.protocol == "blob" && command.operation in ["DeleteBlob", "DeleteContainer"]'
      action: deny
      message: "deleting blobs is not allowed through weir; ask an operator"
    - name: range-reads-of-reports
      when: 'command.protocol == "blob" && "range" in command.attrs && command.attrs.container == "secret-ranges"'
      action: deny
    - name: review-prod-writes
      when: 'command.kind == "write" && "container" in command.attrs && command.attrs.container.startsWith("prod-")'
      action: review
    - name: scratch-writes
      when: 'command.kind == "write" && "container" in command.attrs && command.attrs.container in ["scratch", "reports", "big"]'
      action: allow
    - name: copies-into-scratch
      when: 'command.kind == "admin" && "copy" in command.risks && command.attrs.container == "scratch"'
      action: allow
    - name: reads
      when: 'command.protocol == "blob" && command.kind == "read"'
      action: allow
`

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "blob e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..", "..")
}

// startAzurite runs the real Azurite blob service on a free port.
func startAzurite(dir string) (string, func(), error) {
	bin := filepath.Join(repoRoot(), "tools", "node", "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("azurite not installed at %s (run the deps install): %w", bin, err)
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port), "--location", dir,
		"--skipApiVersionCheck", "--loose", "--silent")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("azurite did not start: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "http://" + addr + "/" + account, stop, nil
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	var err error
	env.dataDir, err = os.MkdirTemp("", "weir-blob-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(env.dataDir)
	azDir := filepath.Join(env.dataDir, "azurite")
	os.MkdirAll(azDir, 0o700)
	var stopAzurite func()
	env.azurite, stopAzurite, err = startAzurite(azDir)
	if err != nil {
		return 0, err
	}
	defer stopAzurite()
	os.Setenv("E2E_BLOB_KEY", accountKey)
	yml := fmt.Sprintf(`data_dir: %s
listen:
  postgres: 127.0.0.1:0
tls:
  allow_plaintext_loopback: true
targets:
  - name: lake
    kind: azure-blob
    endpoint: %s
    account: %s
    account_key_env: E2E_BLOB_KEY
    copy_sources: [partnerlake]
    labels: {env: prod}
agents:
  - name: ci-bot
    targets: [lake]
    max_ttl: 2h
`+policyYAML, env.dataDir, env.azurite, account)
	env.cfg, err = config.Parse("e2e.yaml", []byte(yml))
	if err != nil {
		return 0, err
	}
	env.st, err = store.OpenSQLite(env.dataDir, false)
	if err != nil {
		return 0, err
	}
	defer env.st.Close()
	env.auth, err = identity.NewAuthority(ctx, env.st)
	if err != nil {
		return 0, err
	}
	aw, err := audit.NewWriter(ctx, env.st)
	if err != nil {
		return 0, err
	}
	defer aw.Close()
	env.logBuf = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(env.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.gw, err = gateway.New(env.cfg, env.st, env.auth, aw, log)
	if err != nil {
		return 0, err
	}
	env.gw.Start(200 * time.Millisecond)
	defer env.gw.Close()
	env.secret, err = blob.LoadSecret(env.dataDir)
	if err != nil {
		return 0, err
	}
	env.h, err = blob.New(blob.Options{Gateway: env.gw, Secret: env.secret, Log: log})
	if err != nil {
		return 0, err
	}
	defer env.h.Close()
	mux := http.NewServeMux()
	mux.Handle(blob.Prefix, env.h)
	env.srv = httptest.NewServer(mux)
	defer env.srv.Close()
	direct := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s", account, accountKey, env.azurite)
	env.direct, err = azblob.NewClientFromConnectionString(direct, nil)
	if err != nil {
		return 0, err
	}
	if err := seed(ctx); err != nil {
		return 0, fmt.Errorf("seeding azurite: %w", err)
	}
	code := m.Run()
	if strings.Contains(env.logBuf.String(), accountKey) {
		fmt.Fprintln(os.Stderr, "FAIL: weir's log contains the upstream account key")
		code = 1
	}
	// Nor may the audit log hold it, and every record must still chain.
	recs, err := env.st.ReadAudit(ctx, 0, 10000000)
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if strings.Contains(string(r.Data), accountKey) {
			fmt.Fprintln(os.Stderr, "FAIL: the audit log contains the upstream account key")
			code = 1
		}
	}
	aw.Close() // flush the results still queued
	if rep, err := audit.Verify(ctx, env.st, env.auth.PublicKeys()); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the audit chain does not verify: %v (%+v)\n", err, rep)
		code = 1
	}
	return code, nil
}

// customersCSV holds the sample customers, with values the masker must catch.
const customersCSV = "id,name,email,card\n" +
	"1,Ada Lovelace,ada@example.com,4111 1111 1111 1111\n" +
	"2,Alan Turing,alan.turing@example.org,5500 0000 0000 0004\n"

func seed(ctx context.Context) error {
	for _, c := range []string{"reports", "scratch", "prod-data", "secret-ranges", "big"} {
		if _, err := env.direct.CreateContainer(ctx, c, nil); err != nil {
			return err
		}
	}
	for name, body := range map[string]string{
		"reports/customers.csv":  customersCSV,
		"reports/q1/summary.txt": "quarter one was fine\n",
		"scratch/keep.txt":       "do not delete\n",
		"secret-ranges/a.txt":    "0123456789abcdef\n",
	} {
		c, b, _ := strings.Cut(name, "/")
		ct := "text/plain"
		if strings.HasSuffix(b, ".csv") {
			ct = "text/csv"
		}
		if _, err := env.direct.UploadBuffer(ctx, c, b, []byte(body), &azblob.UploadBufferOptions{HTTPHeaders: &blobHTTPHeaders{BlobContentType: &ct}}); err != nil {
			return err
		}
	}
	return nil
}

// token issues a weir token for agent.
func token(t testing.TB, agent string, ttl time.Duration) (string, identity.Claims) {
	t.Helper()
	a, _ := env.cfg.Agent(agent)
	tok, c, err := env.auth.Issue(context.Background(), identity.IssueRequest{Agent: agent, Targets: a.Targets, TTL: ttl, IssuedBy: "local:test"})
	if err != nil {
		t.Fatal(err)
	}
	return tok, c
}

// connString is what `weir token issue --format connection-string` prints.
func connString(t testing.TB) (string, identity.Claims) {
	_, c := token(t, "ci-bot", time.Hour)
	return blob.ConnectionString(env.srv.URL+blob.Prefix+"lake", c.ID, env.secret), c
}

// agentClient is the agent's Go SDK client, configured only with weir's
// connection string.
func agentClient(t testing.TB) *azblob.Client {
	t.Helper()
	cs, _ := connString(t)
	c, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
