package blob

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/policy"
)

// The config in docs/blob.md loads, and its policy says what the page says.
func TestDocsConfig(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "blob.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```yaml\n")
	yml, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/blob.md has no yaml block")
	}
	cfg, err := config.Parse("docs/blob.md", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.CompileFile(cfg.Path, cfg.Policy.Rules)
	if err != nil {
		t.Fatal(err)
	}
	in := &policy.Input{Agent: policy.Agent{Name: "ci-bot"}, Target: policy.Target{Name: "lake", Kind: "azure-blob", Labels: map[string]string{"env": "prod"}}}
	cmd := func(op string, kind command.Kind, container, blob string) command.Command {
		c := command.Command{Protocol: "blob", Verb: op, Operation: op, Kind: kind, Attrs: map[string]string{"container": container}}
		res := container
		if blob != "" {
			res += "/" + blob
			c.Attrs["blob"] = blob
		}
		if kind == command.KindRead {
			c.Reads = []string{res}
		} else {
			c.Writes = []string{res}
		}
		return c
	}
	for _, c := range []struct {
		c    command.Command
		want policy.Action
		rule string
	}{
		{cmd("GetBlob", command.KindRead, "reports", "customers.csv"), policy.Allow, "read-reports"},
		{cmd("ListBlobs", command.KindRead, "reports", ""), policy.Allow, "read-reports"},
		{cmd("GetBlob", command.KindRead, "hr", "salaries.csv"), policy.Deny, policy.DefaultRule},
		{cmd("PutBlob", command.KindWrite, "scratch", "x"), policy.Allow, "scratch-writes"},
		{cmd("PutBlob", command.KindWrite, "reports", "x"), policy.Deny, policy.DefaultRule},
		{cmd("DeleteBlob", command.KindWrite, "scratch", "x"), policy.Deny, "never-delete"},
		{cmd("PutBlob", command.KindWrite, "prod-data", "x"), policy.Review, "review-prod-writes"},
		{command.Command{Protocol: "blob", Verb: "GetUserDelegationKey", Operation: "GetUserDelegationKey", Kind: command.KindAdmin, Risks: []command.Risk{"mints_credential"}}, policy.Deny, "no-credential-minting"},
	} {
		d := eng.Decide(in, []command.Command{c.c})
		if d.Action != c.want || d.Rule != c.rule {
			t.Errorf("%s %v: got %s by %q, want %s by %q", c.c.Operation, c.c.Writes, d.Action, d.Rule, c.want, c.rule)
		}
	}
}
