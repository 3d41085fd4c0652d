package config

import (
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
