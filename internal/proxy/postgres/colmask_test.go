package postgres

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/weir-gw/weir/internal/mask"
	"github.com/weir-gw/weir/internal/pgsql"
)

func newPartial(t testing.TB) *mask.Masker {
	m, err := mask.New(mask.Config{Detectors: mask.DetectorNames()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func rowDesc(t testing.TB, fields ...pgproto3.FieldDescription) []byte {
	b, err := (&pgproto3.RowDescription{Fields: fields}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b[5:]
}

func decodeRow(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	var dr pgproto3.DataRow
	if err := dr.Decode(raw[5:]); err != nil {
		t.Fatalf("masked row is not a valid DataRow: %v", err)
	}
	return dr.Values
}

// A masked position is replaced whole and type-valid (M07); the others
// keep their bytes (or detector masking).
func TestMaskRowByType(t *testing.T) {
	m := newPartial(t)
	plan := &pgsql.MaskPlan{Columns: []string{"", "people.email", "people.ssn", "people.profile", "people.profile", "people.photo", "people.photo", "people.salary"}, Derived: make([]bool, 8)}
	desc := rowDesc(t,
		pgproto3.FieldDescription{Name: []byte("id"), DataTypeOID: 23, Format: 1},
		pgproto3.FieldDescription{Name: []byte("email"), DataTypeOID: oidText, Format: 0},
		pgproto3.FieldDescription{Name: []byte("ssn"), DataTypeOID: oidVarchar, Format: 1},
		pgproto3.FieldDescription{Name: []byte("profile"), DataTypeOID: oidJSONB, Format: 1},
		pgproto3.FieldDescription{Name: []byte("profile"), DataTypeOID: oidJSON, Format: 0},
		pgproto3.FieldDescription{Name: []byte("photo"), DataTypeOID: oidBytea, Format: 0},
		pgproto3.FieldDescription{Name: []byte("photo"), DataTypeOID: oidBytea, Format: 1},
		pgproto3.FieldDescription{Name: []byte("salary"), DataTypeOID: 23, Format: 0},
	)
	c := &clientConn{}
	h := &expect{plan: plan}
	h.acts = c.actions(m, plan, desc)
	raw, _ := (&pgproto3.DataRow{Values: [][]byte{
		{0, 0, 0, 7}, []byte("alice@example.com"), []byte("123-45-6789"), append([]byte{1}, `{"nick": "al\"ice"}`...),
		[]byte(`{"nick":"alice"}`), []byte(`\x70686f746f`), []byte("photo"), []byte("52000"),
	}}).Encode(nil)
	out, err := c.maskRow(m, raw, raw[5:], h)
	if err != nil {
		t.Fatal(err)
	}
	v := decodeRow(t, out)
	if !bytes.Equal(v[0], []byte{0, 0, 0, 7}) {
		t.Errorf("clean binary int changed: %v", v[0])
	}
	if string(v[1]) != "a****@e*****.com" || string(v[2]) != "1****9" {
		t.Errorf("text forms %q %q", v[1], v[2])
	}
	if v[3][0] != 1 || !strings.HasPrefix(string(v[3][1:]), `"`) || strings.Contains(string(v[3]), "alice") {
		t.Errorf("jsonb %q", v[3])
	}
	if string(v[4]) != `"{****}"` {
		t.Errorf("json %q", v[4])
	}
	if !strings.HasPrefix(string(v[5]), `\x`) || strings.Contains(string(v[5]), "70686f746f") {
		t.Errorf("bytea text %q", v[5])
	}
	if string(v[6]) != "****" {
		t.Errorf("bytea binary %q", v[6])
	}
	if v[7] != nil {
		t.Errorf("a masked int must be NULL, got %q", v[7])
	}
	if c.masked[mask.ColumnRule] != 7 || c.maskedCols["column:people.photo"] != 2 {
		t.Errorf("counts %v %v", c.masked, c.maskedCols)
	}
	// Without a RowDescription only NULL is sure to be valid.
	c2 := &clientConn{}
	out, err = c2.maskRow(m, raw, raw[5:], &expect{plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	v = decodeRow(t, out)
	if v[1] != nil || string(v[0]) != "\x00\x00\x00\x07" {
		t.Errorf("no description: %q", v)
	}
	// A plan of the wrong width masks every column.
	wrong := &expect{plan: &pgsql.MaskPlan{Columns: []string{"x.y"}}}
	wrong.acts = c.actions(m, wrong.plan, desc)
	out, _ = c.maskRow(m, raw, raw[5:], wrong)
	v = decodeRow(t, out)
	if v[0] != nil || string(v[1]) == "alice@example.com" {
		t.Errorf("wrong width: %q", v)
	}
}

func TestFormatNullAndHash(t *testing.T) {
	mn, _ := mask.New(mask.Config{Format: mask.FormatNull})
	if actionFor(mn, oidText, 0) != actNull {
		t.Error("format null must send NULL")
	}
	mh, _ := mask.New(mask.Config{Format: mask.FormatHash, HashKey: bytes.Repeat([]byte{7}, 32)})
	c := &clientConn{}
	h := &expect{plan: &pgsql.MaskPlan{Columns: []string{"t.c"}, Derived: []bool{false}}, acts: []colAction{actText}}
	row := func(v string) []byte { b, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte(v)}}).Encode(nil); return b }
	// maskRow reuses its buffer: keep copies.
	run := func(v string) []byte { out, _ := c.maskRow(mh, row(v), row(v)[5:], h); return bytes.Clone(out) }
	a1, a2, b1 := run("x@y.z"), run("x@y.z"), run("other")
	if !bytes.Equal(a1, a2) || bytes.Equal(a1, b1) || !bytes.Contains(a1, []byte("[hash:")) {
		t.Errorf("hash: %q %q %q", a1, a2, b1)
	}
}

// COPY rows: text and CSV, NULLs kept, escapes decoded, header skipped by
// the caller.
func TestMaskCopyRow(t *testing.T) {
	m := newPartial(t)
	tests := []struct {
		csv      bool
		cols     []string
		in, want string
	}{
		{false, []string{"", "t.e", ""}, "1\talice@example.com\tx\n", "1\ta****@e*****.com\tx\n"},
		{false, []string{"", "t.e"}, "1\t\\N\n", "1\t\\N\n"},
		{false, []string{"t.e"}, "tab\\there\n", "t****e\n"},
		{true, []string{"", "t.e", ""}, "1,\"a,\"\"b\"\"c\",z\n", "1,\"a****c\",z\n"},
		{true, []string{"t.e", ""}, ",\"\"\n", ",\"\"\n"},
		{true, []string{"", "t.e"}, "2,secretvalue\r\n", "2,\"s****e\"\r\n"},
		{false, []string{"t.e"}, "a\tb\n", "[REDACTED]\t[REDACTED]\n"}, // wider than the plan: all masked, and redacted
	}
	for _, tc := range tests {
		c := &clientConn{}
		h := &expect{plan: &pgsql.MaskPlan{Columns: tc.cols, Derived: make([]bool, len(tc.cols)), Copy: &pgsql.CopyPlan{CSV: tc.csv}}}
		out := c.maskCopyRow(m, []byte(tc.in), h)
		if got := string(out[5:]); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWithholdError(t *testing.T) {
	raw, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "22P02", Message: `invalid input syntax for type integer: "123-45-6789"`, Detail: "d", Where: "w"}).Encode(nil)
	out := withholdError(raw, raw[5:])
	var e pgproto3.ErrorResponse
	if err := e.Decode(out[5:]); err != nil {
		t.Fatal(err)
	}
	if e.Code != "22P02" || strings.Contains(e.Message, "6789") || e.Detail != "" || e.Where != "" {
		t.Fatalf("%+v", e)
	}
}

// FuzzCopyRow: any row, any plan: no panic, and a masked CSV row splits
// into as many fields as it came in.
func FuzzCopyRow(f *testing.F) {
	f.Add([]byte("1\talice@example.com\n"), false)
	f.Add([]byte("1,\"a\"\"b\",,\"\"\r\n"), true)
	f.Add([]byte("\"unterminated"), true)
	m := newPartial(f)
	f.Fuzz(func(t *testing.T, row []byte, csv bool) {
		c := &clientConn{}
		h := &expect{plan: &pgsql.MaskPlan{Columns: []string{"", "t.c"}, Derived: []bool{false, false}, Copy: &pgsql.CopyPlan{CSV: csv}}}
		out := c.maskCopyRow(m, row, h)
		if csv {
			in, _ := splitCSV(bytes.TrimRight(row, "\r\n"))
			got, _ := splitCSV(bytes.TrimRight(out[5:], "\r\n"))
			if len(in) != len(got) {
				t.Fatalf("%q → %q: %d fields became %d", row, out[5:], len(in), len(got))
			}
		}
	})
}

func BenchmarkMaskRowColumns(b *testing.B) {
	m := newPartial(b)
	plan := &pgsql.MaskPlan{Columns: []string{"", "", "people.email", ""}, Derived: make([]bool, 4)}
	c := &clientConn{}
	h := &expect{plan: plan, acts: []colAction{actNone, actNone, actText, actNone}}
	raw, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("12345"), []byte("2026-11-27 10:00:00+00"), []byte("alice@example.com"), []byte("Customer 42")}}).Encode(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		c.maskRow(m, raw, raw[5:], h)
	}
}

// A value computed from a masked column is redacted whatever the format:
// partial would keep a character the agent chose, hash a value it chose.
func TestDerivedRedacted(t *testing.T) {
	m := newPartial(t)
	c := &clientConn{}
	h := &expect{plan: &pgsql.MaskPlan{Columns: []string{"t.c", "t.c"}, Derived: []bool{false, true}}, acts: []colAction{actText, actText}}
	raw, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("xxxxx3"), []byte("xxxxx3")}}).Encode(nil)
	out, err := c.maskRow(m, raw, raw[5:], h)
	if err != nil {
		t.Fatal(err)
	}
	v := decodeRow(t, out)
	if string(v[0]) != "x****3" || string(v[1]) != redacted {
		t.Errorf("stored %q, derived %q", v[0], v[1])
	}
	cp := c.maskCopyRow(m, []byte("xxxxx3\txxxxx3\n"), &expect{plan: &pgsql.MaskPlan{Columns: []string{"t.c", "t.c"}, Derived: []bool{false, true}, Copy: &pgsql.CopyPlan{}}})
	if got := string(cp[5:]); got != "x****3\t"+redacted+"\n" {
		t.Errorf("copy: %q", got)
	}
}
