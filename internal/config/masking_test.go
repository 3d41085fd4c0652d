package config

import (
	"os"
	"strings"
	"testing"
)

// policy.masking.columns: selectors are checked at start, with the key.
func TestMaskingColumns(t *testing.T) {
	with := func(masking string) string {
		return strings.Replace(valid, "policy:\n", "policy:\n  masking:\n"+masking, 1)
	}
	cfg, err := Parse("weir.yaml", []byte(with("    columns: [customers.email, public.payments.card_number, \"*.iban\"]\n    allow_equality: true\n    catalog_ttl: 5m\n")))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Policy.Masking
	if len(m.Columns) != 3 || !m.AllowEquality || m.CatalogTTL.Minutes() != 5 {
		t.Fatalf("%+v", m)
	}
	for _, tc := range []struct{ masking, want string }{
		{"    columns: [email]\n", "policy.masking.columns[0]"},
		{"    columns: [a.b.c.d]\n", "want table.column"},
		{"    columns: [\"s.*.c\"]\n", "* stands only for the relation"},
		{"    columns: [\"customers.\\\"Email\\\"\"]\n", "without quotes"},
		{"    columns: [\"customers..x\"]\n", "empty name part"},
		{"    catalog_ttl: 48h\n", "policy.masking.catalog_ttl"},
	} {
		_, err := Parse("weir.yaml", []byte(with(tc.masking)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error mentioning %q", tc.masking, err, tc.want)
		}
	}
}

// The configuration shown in docs/masking.md is valid.
func TestMaskingDocsConfig(t *testing.T) {
	doc, err := os.ReadFile("../../docs/masking.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/masking.md")
	}
	masking := strings.TrimPrefix(block, "policy:\n")
	cfg, err := Parse("weir.yaml", []byte(strings.Replace(valid, "policy:\n", "policy:\n"+masking, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Policy.Masking.Columns) == 0 {
		t.Fatal("the documented columns were not read")
	}
}
