package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The recording keeps rows while the session's budget lasts, then only
// marks results as truncated; with recording off it marks nothing.
func TestRecordingBudget(t *testing.T) {
	enc := func(m pgproto3.BackendMessage) []byte { b, _ := m.Encode(nil); return b }
	row := enc(&pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, {0xff, 0x00}}})
	desc := enc(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("id")}, {Name: []byte("note")}, {Name: []byte("blob")}}})

	r := recording{budget: len(row) - 5, enabled: true} // room for exactly one row
	r.observe('T', desc)
	r.observe('D', row)
	r.observe('D', row)
	if len(r.rows) != 1 || !r.truncated || len(r.columns) != 3 || r.columns[2] != "blob" {
		t.Fatalf("rows %d truncated %v columns %v", len(r.rows), r.truncated, r.columns)
	}
	if got := r.rows[0]; *got[0] != "1" || got[1] != nil || *got[2] != `\xff00` {
		t.Fatalf("row %q %v %q", *got[0], got[1], *got[2])
	}
	r.reset()
	if r.rows != nil || r.truncated || len(r.columns) != 3 {
		t.Fatal("reset must drop rows and keep column names")
	}
	off := recording{}
	off.observe('D', row)
	if off.truncated || off.rows != nil {
		t.Fatal("recording off marked a result")
	}
}
