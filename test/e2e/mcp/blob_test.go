package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/identity"
	weirmcp "github.com/weir-gw/weir/internal/mcp"
)

// Azurite's well-known development account.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// startAzurite runs the real Azurite blob service on a free port.
func startAzurite(dir string) (string, func(), error) {
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "..", "tools", "node", "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("azurite not installed at %s (run the deps install): %w", bin, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
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
	return "http://" + addr + "/" + azuriteAccount, stop, nil
}

// customersCSV holds values the masker must catch.
const customersCSV = "id,name,email,card\n" +
	"1,Ada Lovelace,ada@example.com,4111 1111 1111 1111\n" +
	"2,Alan Turing,alan.turing@example.org,5500 0000 0000 0004\n"

// bigLog is a text blob larger than one blob_read answer, with an email
// on every line.
var bigLog = func() string {
	var b strings.Builder
	for i := 0; b.Len() < 150<<10; i++ {
		fmt.Fprintf(&b, "2026-11-27T10:%02d:%02dZ INFO login ok user=user%d@corp.example.com session=%08x\n", i/60%60, i%60, i, i*7919)
	}
	return b.String()
}()

var pngHead = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")

func seedBlobs(ctx context.Context) error {
	for _, c := range []string{"reports", "scratch", "prod-data", "hr-files"} {
		if _, err := env.blobs.CreateContainer(ctx, c, nil); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		name, ct string
		body     []byte
	}{
		{"reports/customers.csv", "text/csv", []byte(customersCSV)},
		// A text blob stored with the SDK's default type: the Blob front
		// end passes application/octet-stream through unmasked.
		{"reports/raw-export.csv", "application/octet-stream", []byte(customersCSV)},
		{"reports/q1/summary.txt", "text/plain", []byte("quarter one was fine\n")},
		{"reports/q2/summary.txt", "text/plain", []byte("quarter two was better\n")},
		{"reports/logo.png", "image/png", append(append([]byte{}, pngHead...), bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)...)},
		{"reports/app.log", "text/plain", []byte(bigLog)},
		{"hr-files/salaries.csv", "text/csv", []byte("name,salary\nada,1\n")},
		{"scratch/keep.txt", "text/plain", []byte("do not delete\n")},
	} {
		c, name, _ := strings.Cut(b.name, "/")
		ct := b.ct
		if _, err := env.blobs.UploadBuffer(ctx, c, name, b.body, &azblob.UploadBufferOptions{HTTPHeaders: &azb.HTTPHeaders{BlobContentType: &ct}}); err != nil {
			return err
		}
	}
	return nil
}

// stored reads a blob from Azurite directly, behind weir's back.
func stored(t *testing.T, container, name string) (string, string, bool) {
	t.Helper()
	resp, err := env.blobs.DownloadStream(context.Background(), container, name, nil)
	if err != nil {
		return "", "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ct := ""
	if resp.ContentType != nil {
		ct = *resp.ContentType
	}
	return string(b), ct, true
}

// The blob tools are offered to an agent with an azure-blob target, and
// list_targets names them for it.
func TestBlobToolsOffered(t *testing.T) {
	tok, _ := token(t, "lake-bot")
	cs := goClient(t, tok, "e2e-blob")
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if strings.HasPrefix(tl.Name, "blob_") && (len(tl.Description) < 200 || !strings.Contains(tl.Description, "policy")) {
			t.Errorf("tool %s: description too thin for a model: %q", tl.Name, tl.Description)
		}
	}
	slices.Sort(names)
	if want := []string{"approval_status", "blob_list", "blob_read", "blob_write", "list_targets", "query", "request_approval"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	var tl weirmcp.TargetList
	text, _ := call(t, cs, "list_targets", nil, &tl)
	i := slices.IndexFunc(tl.Targets, func(ti weirmcp.TargetInfo) bool { return ti.Name == "lake" })
	if i < 0 || tl.Targets[i].Kind != "azure-blob" || !slices.Contains(tl.Targets[i].Tools, "blob_read") || !strings.Contains(text, "lake (azure-blob") {
		t.Errorf("list_targets: %s", text)
	}
	// An agent without a Blob target does not see them (TestListTools
	// checks ci-bot's exact list); called anyway, they refuse.
	ctok, _ := token(t, "ci-bot")
	var f weirmcp.BlobFailure
	if text, isErr := call(t, goClient(t, ctok, "e2e-noblob"), "blob_list", map[string]any{"target": "lake", "container": "reports"}, &f); !isErr || !strings.Contains(text, "not one of your targets") {
		t.Errorf("blob_list by an agent without the target: %s", text)
	}
	if text, isErr := call(t, cs, "blob_list", map[string]any{"target": "other"}, nil); !isErr || !strings.Contains(text, "azure-blob targets only") {
		t.Errorf("blob_list on a PostgreSQL target: %s", text)
	}
}

func TestBlobList(t *testing.T) {
	tok, _ := token(t, "lake-bot")
	cs := goClient(t, tok, "e2e-blob")
	var l weirmcp.BlobListResult
	if text, isErr := call(t, cs, "blob_list", map[string]any{"target": "lake"}, &l); isErr || !slices.Equal(l.Containers, []string{"hr-files", "prod-data", "reports", "scratch"}) {
		t.Errorf("containers: %s %+v", text, l)
	}
	l = weirmcp.BlobListResult{}
	text, isErr := call(t, cs, "blob_list", map[string]any{"target": "lake", "container": "reports", "delimiter": "/"}, &l)
	var names []string
	for _, b := range l.Blobs {
		names = append(names, b.Name)
	}
	if isErr || !slices.Equal(names, []string{"app.log", "customers.csv", "logo.png", "raw-export.csv"}) || !slices.Equal(l.Prefixes, []string{"q1/", "q2/"}) ||
		l.Blobs[1].Size == nil || *l.Blobs[1].Size != int64(len(customersCSV)) || l.Blobs[1].ContentType != "text/csv" || !strings.Contains(text, "customers.csv") {
		t.Errorf("reports with delimiter: %s %+v", text, l)
	}
	// Capped, with a marker to continue from.
	var seen []string
	marker := ""
	for page := 0; page < 10; page++ {
		l = weirmcp.BlobListResult{}
		args := map[string]any{"target": "lake", "container": "reports", "prefix": "q", "max_results": 1}
		if marker != "" {
			args["marker"] = marker
		}
		text, isErr := call(t, cs, "blob_list", args, &l)
		if isErr || len(l.Blobs) != 1 {
			t.Fatalf("page %d: %s", page, text)
		}
		seen = append(seen, l.Blobs[0].Name)
		if !l.Truncated {
			break
		}
		if !strings.Contains(text, "marker") || l.NextMarker == "" {
			t.Fatalf("page %d has no continuation: %s", page, text)
		}
		marker = l.NextMarker
	}
	if !slices.Equal(seen, []string{"q1/summary.txt", "q2/summary.txt"}) {
		t.Errorf("pages: %v", seen)
	}
	// Refused by the policy, through the front end, with the rule.
	var f weirmcp.BlobFailure
	text, isErr = call(t, cs, "blob_list", map[string]any{"target": "lake", "container": "hr-files"}, &f)
	if !isErr || f.Rule != "blob-no-hr" || f.RuleAction != "deny" || f.Code != "WeirPolicyDenied" || !strings.Contains(text, "the hr-files container is off limits") || !strings.Contains(text, "Next step:") {
		t.Errorf("hr listing: %s %+v", text, f)
	}
	f = weirmcp.BlobFailure{}
	if text, isErr := call(t, cs, "blob_list", map[string]any{"target": "lake", "container": "reports/q1"}, &f); !isErr || !strings.Contains(text, "prefix") {
		t.Errorf("a path as container: %s", text)
	}
	f = weirmcp.BlobFailure{}
	if text, isErr := call(t, cs, "blob_list", map[string]any{"target": "lake", "container": "nope"}, &f); !isErr || f.Code != "ContainerNotFound" || f.Rule != "" {
		t.Errorf("missing container: %s %+v", text, f)
	}
}

func TestBlobReadMasked(t *testing.T) {
	tok, _ := token(t, "lake-bot")
	cs := goClient(t, tok, "e2e-blob")
	raw := []string{"ada@example.com", "alan.turing@example.org", "4111 1111 1111 1111", "5500 0000 0000 0004"}
	for _, name := range []string{"customers.csv", "raw-export.csv"} {
		var r weirmcp.BlobReadResult
		text, isErr := call(t, cs, "blob_read", map[string]any{"target": "lake", "container": "reports", "blob": name}, &r)
		if isErr || r.Binary || r.Truncated || !strings.HasPrefix(r.Text, "id,name,email,card\n1,Ada Lovelace,") || strings.Count(r.Text, "\n") != 3 {
			t.Errorf("%s: %s %+v", name, text, r)
		}
		for _, v := range raw {
			if strings.Contains(text, v) || strings.Contains(r.Text, v) {
				t.Errorf("%s: %q came back unmasked: %s", name, v, text)
			}
		}
		if !strings.Contains(r.Text, "@e*****.com") {
			t.Errorf("%s: no masked email in %q", name, r.Text)
		}
	}
	// Binary content is described, never dumped.
	var r weirmcp.BlobReadResult
	text, isErr := call(t, cs, "blob_read", map[string]any{"target": "lake", "container": "reports", "blob": "logo.png"}, &r)
	if isErr || !r.Binary || r.Text != "" || r.Size == nil || *r.Size != int64(len(pngHead)+4000) || !strings.Contains(text, "image/png") || strings.Contains(text, "IHDR") {
		t.Errorf("binary: %s %+v", text, r)
	}
	// Refused reads name the rule; missing blobs say what Azure said.
	var f weirmcp.BlobFailure
	if text, isErr := call(t, cs, "blob_read", map[string]any{"target": "lake", "container": "hr-files", "blob": "salaries.csv"}, &f); !isErr || f.Rule != "blob-no-hr" || strings.Contains(text, "ada,1") {
		t.Errorf("hr read: %s %+v", text, f)
	}
	f = weirmcp.BlobFailure{}
	if text, isErr := call(t, cs, "blob_read", map[string]any{"target": "lake", "container": "reports", "blob": "nope.csv"}, &f); !isErr || f.Code != "BlobNotFound" || !strings.Contains(f.NextStep, "blob_list") {
		t.Errorf("missing blob: %s %+v", text, f)
	}
	// The Blob front end did it: its session audited the GetBlob, with
	// the masked values counted in the result.
	eventually(t, "the Blob front end's GetBlob and masked result in the audit log", func() bool {
		var sawCmd, sawMasked, sawNote bool
		for _, e := range auditEvents(t) {
			d, _ := e["data"].(map[string]any)
			b, _ := json.Marshal(d)
			switch {
			case e["type"] == "command" && e["target"] == "lake" && strings.Contains(string(b), `"GetBlob"`) && strings.Contains(string(b), "reports/customers.csv"):
				sawCmd = true
			case e["type"] == "result" && e["target"] == "lake" && strings.Contains(string(b), `"email":2`):
				sawMasked = true
			case e["type"] == "session.note" && d["tool"] == "blob_read" && d["blob"] == "customers.csv":
				sawNote = true
			}
		}
		return sawCmd && sawMasked && sawNote
	})
}

// A text larger than one answer is read in pieces with next_offset; the
// pieces join to the whole masked text, and no piece holds a raw email.
func TestBlobReadContinuation(t *testing.T) {
	tok, _ := token(t, "lake-bot")
	cs := goClient(t, tok, "e2e-blob")
	args := map[string]any{"target": "lake", "container": "reports", "blob": "app.log"}
	var whole weirmcp.BlobReadResult
	if text, isErr := call(t, cs, "blob_read", map[string]any{"target": "lake", "container": "reports", "blob": "app.log", "max_bytes": 262144}, &whole); isErr || whole.Truncated {
		t.Fatalf("whole read: %.300s", text)
	}
	var joined strings.Builder
	offset := int64(0)
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("no end after 100 pieces")
		}
		var r weirmcp.BlobReadResult
		args["offset"], args["max_bytes"] = offset, 10000
		text, isErr := call(t, cs, "blob_read", args, &r)
		if isErr || r.Offset != offset || r.Bytes != len(r.Text) || r.Bytes > 10000 {
			t.Fatalf("piece at %d: %.300s", offset, text)
		}
		if strings.Contains(r.Text, "@corp.example.com") {
			t.Fatalf("piece at %d holds a raw email", offset)
		}
		joined.WriteString(r.Text)
		if !r.Truncated {
			break
		}
		if !strings.HasSuffix(r.Text, "\n") || r.NextOffset != offset+int64(r.Bytes) || !strings.Contains(text, fmt.Sprintf("offset %d", r.NextOffset)) {
			t.Fatalf("piece at %d: next %d, text ends %q", offset, r.NextOffset, r.Text[max(0, len(r.Text)-20):])
		}
		offset = r.NextOffset
	}
	if joined.String() != whole.Text || strings.Count(whole.Text, "\n") != strings.Count(bigLog, "\n") {
		t.Errorf("the pieces (%d bytes) do not join to the whole masked text (%d bytes)", joined.Len(), len(whole.Text))
	}
	var r weirmcp.BlobReadResult
	args["offset"] = int64(len(whole.Text)) + 5
	if text, isErr := call(t, cs, "blob_read", args, &r); isErr || r.Text != "" || !strings.Contains(text, "past the end") {
		t.Errorf("offset past the end: %s", text)
	}
}

func TestBlobWrite(t *testing.T) {
	ctx := context.Background()
	tok, _ := token(t, "lake-bot")
	cs := goClient(t, tok, "e2e-blob")
	name := fmt.Sprintf("agent/notes-%d.md", time.Now().UnixNano())
	content := "# findings\nrevenue is up; see reports/q2\n"
	var w weirmcp.BlobWriteResult
	args := map[string]any{"target": "lake", "container": "scratch", "blob": name, "content": content, "content_type": "text/markdown"}
	if text, isErr := call(t, cs, "blob_write", args, &w); isErr || w.Bytes != len(content) || w.ETag == "" {
		t.Fatalf("allowed write: %s %+v", text, w)
	}
	if got, ct, ok := stored(t, "scratch", name); !ok || got != content || ct != "text/markdown" {
		t.Errorf("stored %q (%s), want %q", got, ct, content)
	}
	// An existing blob is kept unless overwrite is asked for.
	args["content"] = "replaced\n"
	var f weirmcp.BlobFailure
	if text, isErr := call(t, cs, "blob_write", args, &f); !isErr || f.Code != "BlobAlreadyExists" || !strings.Contains(f.NextStep, "overwrite") {
		t.Errorf("write over an existing blob: %s %+v", text, f)
	}
	if got, _, _ := stored(t, "scratch", name); got != content {
		t.Errorf("the existing blob changed: %q", got)
	}
	args["overwrite"] = true
	if text, isErr := call(t, cs, "blob_write", args, nil); isErr {
		t.Errorf("overwrite: %s", text)
	}
	if got, _, _ := stored(t, "scratch", name); got != "replaced\n" {
		t.Errorf("after overwrite: %q", got)
	}
	// Outside the allowed prefix: denied, with the rule, and nothing written.
	for _, c := range []struct{ container, blob string }{{"reports", "agent-notes.txt"}, {"scratch", "notes.txt"}} {
		f = weirmcp.BlobFailure{}
		text, isErr := call(t, cs, "blob_write", map[string]any{"target": "lake", "container": c.container, "blob": c.blob, "content": "x"}, &f)
		if !isErr || f.Rule != "blob-writes-elsewhere" || f.Code != "WeirPolicyDenied" || !strings.Contains(text, "agents write only under scratch/agent/") || !strings.Contains(f.NextStep, "do not retry") {
			t.Errorf("forbidden write to %s/%s: %s %+v", c.container, c.blob, text, f)
		}
		if _, _, ok := stored(t, c.container, c.blob); ok {
			t.Errorf("the forbidden write reached the storage account: %s/%s", c.container, c.blob)
		}
	}
	// A write to prod-* needs a person: the error gives the approval id;
	// once approved, the same write runs once.
	prod := map[string]any{"target": "lake", "container": "prod-data", "blob": "fix.json", "content": `{"fixed":true}`, "content_type": "application/json"}
	f = weirmcp.BlobFailure{}
	text, isErr := call(t, cs, "blob_write", prod, &f)
	if !isErr || f.Rule != "blob-prod-writes" || f.RuleAction != "review" || f.Code != "WeirApprovalRequired" || f.ApprovalRequestID == 0 || !strings.Contains(f.NextStep, "approval_status") {
		t.Fatalf("write under review: %s %+v", text, f)
	}
	if _, _, ok := stored(t, "prod-data", "fix.json"); ok {
		t.Fatal("the write under review reached the storage account")
	}
	if _, err := env.approvals.Approve(ctx, f.ApprovalRequestID, approval.Approver{Name: "alice", Role: identity.RoleApprover}, "ok"); err != nil {
		t.Fatal(err)
	}
	var st weirmcp.ApprovalState
	if text, isErr := call(t, cs, "approval_status", map[string]any{"id": f.ApprovalRequestID}, &st); isErr || st.Status != "approved" {
		t.Fatalf("approval_status: %s", text)
	}
	// Other content is not what was approved.
	other := map[string]any{"target": "lake", "container": "prod-data", "blob": "fix.json", "content": `{"fixed":false}`, "content_type": "application/json"}
	if _, isErr := call(t, cs, "blob_write", other, nil); !isErr {
		t.Error("the grant applied to other content")
	}
	if text, isErr := call(t, cs, "blob_write", prod, nil); isErr {
		t.Fatalf("approved write: %s", text)
	}
	if got, _, ok := stored(t, "prod-data", "fix.json"); !ok || got != `{"fixed":true}` {
		t.Errorf("approved write stored %q", got)
	}
}

// The TypeScript SDK sees the blob tools, a masked read and a refusal.
func TestBlobTypeScriptClient(t *testing.T) {
	sdk := filepath.Join(repoRoot(t), "tools", "node", "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm")
	tok, _ := token(t, "lake-bot")
	out, outb := runNode(t, sdk, tok, []map[string]any{
		{"name": "blob_read", "arguments": map[string]any{"target": "lake", "container": "reports", "blob": "customers.csv"}},
		{"name": "blob_write", "arguments": map[string]any{"target": "lake", "container": "reports", "blob": "x.txt", "content": "x"}},
	})
	if !slices.Contains(out.Tools, "blob_read") || strings.Contains(string(outb), "ada@example.com") {
		t.Fatalf("TypeScript client saw %s", outb)
	}
	var r weirmcp.BlobReadResult
	json.Unmarshal(out.Calls[0].Structured, &r)
	if c := out.Calls[0]; c.IsError || !strings.Contains(r.Text, "Ada Lovelace") || !strings.Contains(c.Text, "@e*****.com") {
		t.Errorf("blob_read: %+v", c)
	}
	var f weirmcp.BlobFailure
	json.Unmarshal(out.Calls[1].Structured, &f)
	if c := out.Calls[1]; !c.IsError || f.Rule != "blob-writes-elsewhere" || !strings.Contains(c.Text, "blob-writes-elsewhere") {
		t.Errorf("blob_write refused: %+v %+v", c, f)
	}
}
