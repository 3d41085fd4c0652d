package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func frame(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
	return append(b, body...)
}

func TestFrameReader(t *testing.T) {
	q, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	tests := []struct {
		name    string
		in      []byte
		frames  int
		wantErr string
	}{
		{"one query", q, 1, ""},
		{"two frames", append(append([]byte{}, q...), q...), 2, ""},
		{"empty body", frame('S', nil), 1, ""},
		{"length 0", []byte{'Q', 0, 0, 0, 0}, 0, "invalid message length 0"},
		{"length 3", []byte{'Q', 0, 0, 0, 3}, 0, "invalid message length 3"},
		{"over cap", []byte{'Q', 0, 2, 0, 0}, 0, "exceeds weir's limit"},
		{"max uint32", []byte{'Q', 0xff, 0xff, 0xff, 0xff}, 0, "exceeds weir's limit"},
		{"truncated body", q[:len(q)-1], 0, io.ErrUnexpectedEOF.Error()},
		{"truncated header", q[:3], 0, io.ErrUnexpectedEOF.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tc.in), 1<<16)
			n := 0
			for {
				_, _, _, err := fr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if tc.wantErr == "" || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr)) {
						t.Fatalf("err %v, want %q", err, tc.wantErr)
					}
					return
				}
				n++
			}
			if tc.wantErr != "" || n != tc.frames {
				t.Fatalf("read %d frames without error, want %d / %q", n, tc.frames, tc.wantErr)
			}
		})
	}
}

// The split-read matrix: a stream of frames cut at every byte position
// yields the same frames.
func TestFrameReaderSplitReads(t *testing.T) {
	var stream []byte
	for _, m := range []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1; SELECT 2"}, &pgproto3.Parse{Name: "s", Query: "SELECT $1"}, &pgproto3.Sync{}} {
		b, _ := m.Encode(nil)
		stream = append(stream, b...)
	}
	for cut := 0; cut <= len(stream); cut++ {
		r := io.MultiReader(bytes.NewReader(stream[:cut]), bytes.NewReader(stream[cut:]))
		fr := newFrameReader(oneByteAtATime{r}, 1<<16)
		var types []byte
		for {
			typ, _, _, err := fr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			types = append(types, typ)
		}
		if string(types) != "QPS" {
			t.Fatalf("cut %d: frames %q", cut, types)
		}
	}
}

type oneByteAtATime struct{ r io.Reader }

func (o oneByteAtATime) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func FuzzFrameReader(f *testing.F) {
	q, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
	f.Add(q)
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'Q', 0, 0, 0, 4, 'X', 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 12
		fr := newFrameReader(bytes.NewReader(in), max)
		consumed := 0
		for {
			typ, raw, body, err := fr.next()
			if err != nil {
				var fe *frameError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &fe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(raw) > max+1 || raw[0] != typ || len(body) != len(raw)-5 {
				t.Fatalf("bad frame: type %q raw %d body %d", typ, len(raw), len(body))
			}
			if !bytes.Equal(raw, in[consumed:consumed+len(raw)]) {
				t.Fatal("frame is not the input's bytes")
			}
			consumed += len(raw)
		}
	})
}

func TestHelpers(t *testing.T) {
	for tag, want := range map[string]int64{"SELECT 5": 5, "INSERT 0 7": 7, "UPDATE 3": 3, "BEGIN": 0, "COPY 12": 12} {
		if got := rowsOf(append([]byte(tag), 0)); got != want {
			t.Errorf("rowsOf(%q) = %d", tag, got)
		}
	}
	e, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error at or near \"weir_refused_ab\""}).Encode(nil)
	if code, msg := errorFields(e[5:]); code != "42601" || msg != `syntax error at or near "weir_refused_ab"` {
		t.Errorf("errorFields: %q %q", code, msg)
	}
	for enc, ok := range map[string]bool{"UTF8": true, "utf-8": true, "'UTF8'": true, "SQL_ASCII": true, "unicode": true, "SJIS": false, "BIG5": false, "GBK": false, "LATIN1": false, "": false} {
		if safeEncoding(enc) != ok {
			t.Errorf("safeEncoding(%q) != %v", enc, ok)
		}
	}
}
