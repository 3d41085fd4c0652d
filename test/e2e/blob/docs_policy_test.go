package blob

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	weirblob "github.com/weir-gw/weir/internal/proxy/blob"
	"github.com/weir-gw/weir/internal/store"
)

// docsWeir runs the front end with the config of docs/blob.md as a user
// would copy it (only the endpoint and data_dir point at this test's
// Azurite and a temporary directory), and returns an agent client for it.
// extraRules are appended to the page's rules, or replace its policy when
// they start with "policy:".
func docsWeir(t *testing.T, extraRules string) *azblob.Client {
	t.Helper()
	ctx := context.Background()
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "blob.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```yaml\n")
	yml, _, _ := strings.Cut(rest, "```")
	dir := t.TempDir()
	lines := strings.Split(yml, "\n")
	for i, l := range lines {
		switch k := strings.TrimSpace(l); {
		case strings.HasPrefix(k, "data_dir:"):
			lines[i] = "data_dir: " + dir
		case strings.HasPrefix(k, "endpoint:"):
			lines[i] = "    endpoint: " + env.azurite
		case strings.HasPrefix(k, "account_key_env:"):
			lines[i] = "    account_key_env: E2E_BLOB_KEY"
		}
	}
	yml = strings.TrimRight(strings.Join(lines, "\n"), "\n") + "\n" + extraRules
	if strings.HasPrefix(extraRules, "policy:") {
		// a policy of the test's own in place of the page's
		head, _, _ := strings.Cut(yml, "\npolicy:\n")
		yml = head + "\n" + extraRules
	}
	cfg, err := config.Parse("docs/blob.md", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auth, err := identity.NewAuthority(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	aw, err := audit.NewWriter(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(aw.Close)
	gw, err := gateway.New(cfg, st, auth, aw, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := weirblob.LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := weirblob.New(weirblob.Options{Gateway: gw, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	mux := http.NewServeMux()
	mux.Handle(weirblob.Prefix, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, c, err := auth.Issue(ctx, identity.IssueRequest{Agent: "ci-bot", Targets: []string{"lake"}, TTL: time.Hour, IssuedBy: "local:test"})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := azblob.NewClientFromConnectionString(weirblob.ConnectionString(srv.URL+weirblob.Prefix+"lake", c.ID, secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Under the documented policy an agent may read reports/ (masked) and
// write scratch/. A server-side copy into scratch/ reads its source without
// weir seeing the bytes: it must not open a container the agent may not
// read, nor give it an unmasked copy of one it may only read masked (the
// copy's Content-Type, which decides masking, is the writer's to set).
func TestDocsPolicyCopyIsNotAReadAroundPolicy(t *testing.T) {
	ctx := context.Background()
	if _, err := env.direct.CreateContainer(ctx, "payroll", nil); err != nil && !strings.Contains(err.Error(), "ContainerAlreadyExists") {
		t.Fatal(err)
	}
	_, err := env.direct.UploadBuffer(ctx, "payroll", "salaries.csv", []byte(customersCSV), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/csv")}})
	if err != nil {
		t.Fatal(err)
	}
	// The documented rules, plus the natural next one: the agent may read
	// what it wrote to its scratch area.
	agent := docsWeir(t, `    - name: read-scratch
      when: 'command.kind == "read" && command.reads.all(r, r.startsWith("scratch/"))'
      action: allow
`)
	// The documented policy does what it says for plain reads.
	if _, err := agent.DownloadStream(ctx, "payroll", "salaries.csv", nil); err == nil {
		t.Fatal("the documented policy let the agent read payroll/")
	}
	for _, src := range []string{"payroll/salaries.csv", "reports/customers.csv"} {
		dst := agent.ServiceClient().NewContainerClient("scratch").NewBlobClient("loot-" + strings.ReplaceAll(src, "/", "-"))
		_, err := dst.StartCopyFromURL(ctx, env.azurite+"/"+src, nil)
		if err == nil {
			// Give the copy time to land, then try to read it unmasked.
			time.Sleep(500 * time.Millisecond)
			dst.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")}, nil)
			got := ""
			if resp, err := dst.DownloadStream(ctx, nil); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = string(b)
			} else {
				got = err.Error()
			}
			t.Fatalf("the documented policy let the agent copy %s into scratch/; read back: %q", src, got)
		}
		if !strings.Contains(err.Error(), "WeirPolicyDenied") && !strings.Contains(err.Error(), "WeirApprovalRequired") {
			t.Fatalf("copy of %s: %v", src, err)
		}
	}
	// A copy within scratch/ stays allowed.
	if _, err := agent.ServiceClient().NewContainerClient("scratch").NewBlobClient("keep-copy.txt").StartCopyFromURL(ctx, env.azurite+"/scratch/keep.txt", nil); err != nil {
		t.Fatalf("a copy within scratch/: %v", err)
	}
}

// The README demo's policy (scripts/demo.sh) allows every write under
// scratch/ and every read. A copy is not just a write: Azure reads the
// source where weir masks nothing, and the writer sets the Content-Type
// that decides masking. Under those rules an agent copied
// reports/customers.csv into scratch/, set application/octet-stream and
// downloaded e-mails and card numbers in clear. A copy is therefore an admin
// command, which a rule granting writes does not grant.
func TestWriteRulesDoNotGrantCopies(t *testing.T) {
	ctx := context.Background()
	agent := docsWeir(t, `policy:
  rules:
    - name: no-ddl
      when: 'command.kind == "ddl" || command.kind == "admin"'
      action: deny
    - name: blob-no-delete
      when: 'command.protocol == "blob" && command.verb.startsWith("Delete")'
      action: deny
    - name: blob-write-scratch
      when: 'command.protocol == "blob" && command.writes && command.written.all(w, w.startsWith("scratch/"))'
      action: allow
    - name: reads
      when: 'command.kind in ["read", "transaction"]'
      action: allow
`)
	dst := agent.ServiceClient().NewContainerClient("scratch").NewBlobClient("demo-loot.csv")
	_, err := dst.StartCopyFromURL(ctx, env.azurite+"/reports/customers.csv", nil)
	if err == nil {
		time.Sleep(500 * time.Millisecond)
		dst.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")}, nil)
		got := ""
		if resp, err := dst.DownloadStream(ctx, nil); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
		}
		t.Fatalf("a rule granting writes let the agent copy reports/customers.csv; read back: %q", got)
	}
	if !strings.Contains(err.Error(), "no-ddl") {
		t.Fatalf("copy: %v", err)
	}
	// Writes of the agent's own bytes stay writes.
	if _, err := agent.UploadBuffer(ctx, "scratch", "own.txt", []byte("mine"), nil); err != nil {
		t.Fatalf("a plain upload to scratch/: %v", err)
	}
}

// An account-wide read (Find Blobs by Tags lists the names and tags of
// blobs in every container) reads the whole account, not nothing: a rule
// allowing reads under reports/ must not allow it.
func TestDocsPolicyAccountWideReads(t *testing.T) {
	ctx := context.Background()
	if _, err := env.direct.CreateContainer(ctx, "payroll", nil); err != nil && !strings.Contains(err.Error(), "ContainerAlreadyExists") {
		t.Fatal(err)
	}
	_, err := env.direct.UploadBuffer(ctx, "payroll", "ceo-bonus-2026.csv", []byte("x"), &azblob.UploadBufferOptions{
		Tags: map[string]string{"dept": "payroll"}})
	if err != nil {
		t.Fatal(err)
	}
	agent := docsWeir(t, "")
	resp, err := agent.ServiceClient().FilterBlobs(ctx, `"dept"='payroll'`, nil)
	if err == nil {
		var names []string
		for _, b := range resp.Blobs {
			names = append(names, *b.ContainerName+"/"+*b.Name)
		}
		t.Fatalf("the documented policy let the agent search the whole account: %v", names)
	}
	if !strings.Contains(err.Error(), "WeirPolicyDenied") {
		t.Fatalf("got %v", err)
	}
	// Listing the blobs of reports/ stays allowed.
	pager := agent.NewListBlobsFlatPager("reports", nil)
	if _, err := pager.NextPage(ctx); err != nil {
		t.Fatalf("listing reports/: %v", err)
	}
}
