package blob

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	weirblob "github.com/weir-gw/weir/internal/proxy/blob"
)

// "Review any write to prod-* containers": with async approval, the write
// is refused with a request id, an approver grants it, and the same write
// sent again runs once.
func TestReviewedWriteRunsOnceApproved(t *testing.T) {
	ctx := context.Background()
	cfg := *env.cfg
	cfg.Policy.Rules = append([]config.Rule(nil), env.cfg.Policy.Rules...)
	for i := range cfg.Policy.Rules {
		if cfg.Policy.Rules[i].Action == "review" {
			cfg.Policy.Rules[i].Mode = "async"
		}
	}
	cfg.Approvals.Timeout = 5 * time.Second
	cfg.Approvals.GrantTTL = time.Minute
	cfg.Approvals.AsyncTimeout = time.Hour
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	aw, err := audit.NewWriter(ctx, env.st)
	if err != nil {
		t.Fatal(err)
	}
	defer aw.Close()
	gw, err := gateway.New(&cfg, env.st, env.auth, aw, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, _, err := approval.FromConfig(&cfg, env.st, aw.Append, log)
	if err != nil {
		t.Fatal(err)
	}
	gw.SetApprovals(svc)
	h, err := weirblob.New(weirblob.Options{Gateway: gw, Secret: env.secret, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle(weirblob.Prefix, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, claims := token(t, "ci-bot", time.Hour)
	c, err := azblob.NewClientFromConnectionString(weirblob.ConnectionString(srv.URL+weirblob.Prefix+"lake", claims.ID, env.secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	upload := func(body string) error {
		_, err := c.UploadBuffer(ctx, "prod-data", "approved.txt", []byte(body), nil)
		return err
	}
	err = upload("v1 content\n")
	if re := respErr(t, err); re.ErrorCode != weirblob.CodeReview || !strings.Contains(err.Error(), "weir approvals approve") {
		t.Fatalf("want a pending approval, got %v", err)
	}
	if exists(t, "prod-data", "approved.txt") {
		t.Fatal("the write under review ran")
	}
	views, err := svc.List(ctx, "pending", 10)
	if err != nil || len(views) == 0 || !strings.Contains(strings.Join(views[0].Statements, " "), "PUT /prod-data/approved.txt (11 bytes") {
		t.Fatalf("pending approvals %+v %v", views, err)
	}
	if _, err := svc.Approve(ctx, views[0].ID, approval.Approver{Name: "alice", Role: identity.RoleApprover}, "checked"); err != nil {
		t.Fatal(err)
	}
	// A different upload (another length) is not what was approved.
	if err := upload("something else entirely\n"); err == nil {
		t.Fatal("the grant covered a different upload")
	}
	if err := upload("v1 content\n"); err != nil {
		t.Fatalf("the approved write: %v", err)
	}
	if !exists(t, "prod-data", "approved.txt") {
		t.Fatal("the approved write did not land")
	}
	// The grant is used up.
	if err := upload("v1 content\n"); err == nil {
		t.Fatal("one approval ran the write twice")
	}
}
