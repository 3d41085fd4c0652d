package postgres

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/weir-gw/weir/internal/mask"
)

func TestMaskMessages(t *testing.T) {
	m, err := mask.New(mask.Config{Detectors: mask.DetectorNames()})
	if err != nil {
		t.Fatal(err)
	}
	c := &clientConn{}
	enc := func(msg pgproto3.BackendMessage) []byte {
		b, err := msg.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		in, out pgproto3.BackendMessage
		masked  int
	}{
		{"clean row relayed as is", &pgproto3.DataRow{Values: [][]byte{[]byte("42"), nil, []byte("hello")}}, nil, 0},
		{"email in the middle, NULLs kept", &pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, []byte("alice@example.com"), nil}},
			&pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, []byte("a****@e*****.com"), nil}}, 1},
		{"card", &pgproto3.DataRow{Values: [][]byte{[]byte("4242 4242 4242 4242")}}, &pgproto3.DataRow{Values: [][]byte{[]byte("**** **** **** 4242")}}, 1},
		{"error message", &pgproto3.ErrorResponse{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type integer: "alice@example.com"`},
			&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type integer: "a****@e*****.com"`}, 1},
		{"notice detail", &pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "m", Detail: "card 4242424242424242"},
			&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "m", Detail: "card **** **** **** 4242"}, 1},
		{"notification payload", &pgproto3.NotificationResponse{PID: 7, Channel: "c", Payload: "bob@example.org"},
			&pgproto3.NotificationResponse{PID: 7, Channel: "c", Payload: "b****@e*****.org"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := enc(tc.in)
			var counts mask.Counts
			got, err := c.maskMessage(m, raw[0], raw, raw[5:], &counts)
			if err != nil {
				t.Fatal(err)
			}
			want := raw
			if tc.out != nil {
				want = enc(tc.out)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
			if counts.Total() != tc.masked {
				t.Fatalf("counted %d, want %d", counts.Total(), tc.masked)
			}
			if tc.out == nil && &got[0] != &raw[0] {
				t.Fatal("a clean message was copied")
			}
		})
	}
	// Binary COPY data that would need masking is refused, not corrupted.
	c.copyBinary = true
	raw := buildFrame('d', []byte("PGCOPY\nalice@example.com"))
	var counts mask.Counts
	if _, err := c.maskMessage(m, 'd', raw, raw[5:], &counts); err == nil {
		t.Fatal("binary COPY with a secret was relayed")
	}
	// A malformed DataRow is an error, never relayed half-masked.
	bad := []byte{'D', 0, 0, 0, 10, 0, 1, 0, 0, 0, 9}
	if _, err := c.maskMessage(m, 'D', bad, bad[5:], &counts); err == nil {
		t.Fatal("malformed DataRow accepted")
	}
}

func BenchmarkMaskDataRowClean(b *testing.B) {
	m, _ := mask.New(mask.Config{Detectors: mask.DetectorNames()})
	raw, _ := (&pgproto3.DataRow{Values: [][]byte{[]byte("12345"), []byte("2026-11-27 10:00:00+00"), []byte("shipped"), []byte("Customer 42")}}).Encode(nil)
	c := &clientConn{}
	var counts mask.Counts
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		c.maskMessage(m, 'D', raw, raw[5:], &counts)
	}
}
