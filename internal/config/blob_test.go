package config

import (
	"strings"
	"testing"
)

const blobBase = `data_dir: /tmp/weir-test
listen:
  postgres: 127.0.0.1:6432
  http: 127.0.0.1:8080
targets:
  - name: lake
    kind: azure-blob
%s
agents:
  - name: ci-bot
    targets: [lake]
    max_ttl: 1h
`

func TestBlobTarget(t *testing.T) {
	good := `    endpoint: http://127.0.0.1:10000/devstoreaccount1
    account: devstoreaccount1
    account_key_env: LAKE_KEY
    copy_sources: [partnerlake]
    labels: {env: prod}`
	cfg, err := Parse("weir.yaml", []byte(strings.Replace(blobBase, "%s", good, 1)))
	if err != nil {
		t.Fatal(err)
	}
	tg, _ := cfg.Target("lake")
	if tg.Auth != "shared-key" || tg.Blob.Account != "devstoreaccount1" || tg.Blob.AccountKeyEnv != "LAKE_KEY" || tg.Blob.CopySources[0] != "partnerlake" {
		t.Fatalf("%+v", tg)
	}
	for _, c := range []struct{ keys, want string }{
		{"    account: devstoreaccount1\n    account_key_env: K", "endpoint: missing"},
		{"    endpoint: ftp://x\n    account: devstoreaccount1\n    account_key_env: K", "must be an http(s) URL"},
		{"    endpoint: https://a.blob.core.windows.net?sig=1\n    account: devstoreaccount1\n    account_key_env: K", "without query"},
		{"    endpoint: https://a.blob.core.windows.net\n    account: Dev_Store\n    account_key_env: K", "account"},
		{"    endpoint: https://a.blob.core.windows.net\n    account: acct1", "account_key_env: missing"},
		{"    endpoint: https://a.blob.core.windows.net\n    account: acct1\n    account_key_env: K\n    copy_sources: [Bad_Name]", "copy_sources[0]"},
		{"    endpoint: https://a.blob.core.windows.net\n    account: acct1\n    account_key_env: K\n    auth: sas", "auth"},
		{"    endpoint: https://a.blob.core.windows.net\n    account: acct1\n    account_key_env: K\n    password_env: P", "belong to postgres targets"},
		{"    endpoint: https://a.blob.core.windows.net\n    account: acct1\n    account_key_env: K\n    account_key: abc", "account_key"},
	} {
		_, err := Parse("weir.yaml", []byte(strings.Replace(blobBase, "%s", c.keys, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "weir.yaml:") {
			t.Errorf("%q: want an error with %q and a position, got %v", c.keys, c.want, err)
		}
	}
}
