package postgres

import (
	"encoding/binary"
	"encoding/hex"
	"unicode/utf8"
)

// recording keeps the result rows the agent saw (after masking) for the
// audit log, within the session's byte budget. It is owned by the relay
// goroutine.
type recording struct {
	budget    int  // bytes left for the whole session
	enabled   bool // recording is configured at all (audit.record_bytes > 0)
	columns   []string
	rows      [][]*string
	truncated bool
}

// reset starts a new request. Column names are kept: an extended-protocol
// statement described once is executed many times without a new
// RowDescription.
func (r *recording) reset() {
	r.rows, r.truncated = nil, false
}

// observe looks at one message going to the client.
func (r *recording) observe(typ byte, raw []byte) {
	body := raw[5:]
	switch typ {
	case 'T':
		r.columns = r.columns[:0]
		if len(body) < 2 {
			return
		}
		n := int(binary.BigEndian.Uint16(body))
		p := body[2:]
		for i := 0; i < n; i++ {
			name, rest, ok := cstring(p)
			if !ok || len(rest) < 18 {
				return
			}
			r.columns = append(r.columns, name)
			p = rest[18:]
		}
	case 'D':
		if r.budget <= 0 {
			r.truncated = r.enabled
			return
		}
		if len(body) < 2 {
			return
		}
		n := int(binary.BigEndian.Uint16(body))
		row := make([]*string, n)
		p := 2
		for i := 0; i < n && p+4 <= len(body); i++ {
			l := int32(binary.BigEndian.Uint32(body[p:]))
			p += 4
			if l < 0 || p+int(l) > len(body) {
				continue
			}
			v := body[p : p+int(l)]
			p += int(l)
			var s string
			if utf8.Valid(v) {
				s = string(v)
			} else {
				s = `\x` + hex.EncodeToString(v) // binary format, as psql shows bytea
			}
			row[i] = &s
		}
		r.budget -= len(body)
		r.rows = append(r.rows, row)
	}
}
