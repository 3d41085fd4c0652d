package postgres

import (
	"encoding/binary"

	"github.com/weir-gw/weir/internal/mask"
)

// Masking of what the server sends back. Every value that can carry data
// is run through the gateway's masker: result rows (text and binary
// format: a binary value of a text type is its text; other binary values
// are numbers, times and the like, which the detectors cannot match), COPY
// TO data, error and notice fields (a failed cast prints the value, corpus
// M05) and notification payloads. A message is rebuilt only when a value
// changed, so clean traffic is relayed byte for byte.

// errMaskBinaryCopy refuses what cannot be masked without breaking the
// wire: binary COPY rows carry their own length prefixes.
type maskError struct{ msg string }

func (e *maskError) Error() string { return e.msg }

// maskMessage returns the message to send for raw (type typ, body body).
func (c *clientConn) maskMessage(m *mask.Masker, typ byte, raw, body []byte, counts *mask.Counts) ([]byte, error) {
	switch typ {
	case 'D':
		return maskDataRow(m, raw, body, counts)
	case 'E', 'N':
		return maskFields(m, typ, raw, body, counts), nil
	case 'A':
		return maskNotification(m, raw, body, counts), nil
	case 'H':
		if len(body) > 0 {
			c.copyBinary = body[0] == 1
		}
	case 'W':
		return nil, &maskError{"CopyBoth (replication) is not supported through weir"}
	case 'd':
		out, n := m.MaskBytes(body)
		if n.IsZero() {
			return raw, nil
		}
		if c.copyBinary {
			return nil, &maskError{"weir found sensitive values in binary COPY data, which it cannot mask in place; use COPY in text or CSV format"}
		}
		counts.Add(n)
		return buildFrame('d', out), nil
	}
	return raw, nil
}

func buildFrame(typ byte, body []byte) []byte {
	out := make([]byte, 5, 5+len(body))
	out[0] = typ
	binary.BigEndian.PutUint32(out[1:], uint32(4+len(body)))
	return append(out, body...)
}

func maskDataRow(m *mask.Masker, raw, body []byte, counts *mask.Counts) ([]byte, error) {
	if len(body) < 2 {
		return nil, &maskError{"malformed DataRow from the server"}
	}
	n := int(binary.BigEndian.Uint16(body))
	// First pass: find out whether anything changes, without allocating.
	var rebuilt []byte
	p := 2
	for i := 0; i < n; i++ {
		if p+4 > len(body) {
			return nil, &maskError{"malformed DataRow from the server"}
		}
		l := int32(binary.BigEndian.Uint32(body[p:]))
		start := p
		p += 4
		if l < 0 {
			if rebuilt != nil {
				rebuilt = append(rebuilt, body[start:p]...)
			}
			continue
		}
		if p+int(l) > len(body) {
			return nil, &maskError{"malformed DataRow from the server"}
		}
		v := body[p : p+int(l)]
		p += int(l)
		out, c := m.MaskBytes(v)
		if c.IsZero() {
			if rebuilt != nil {
				rebuilt = append(rebuilt, body[start:p]...)
			}
			continue
		}
		counts.Add(c)
		if rebuilt == nil {
			rebuilt = make([]byte, 0, len(raw)+64)
			rebuilt = append(rebuilt, raw[:5+start]...)
		}
		rebuilt = binary.BigEndian.AppendUint32(rebuilt, uint32(len(out)))
		rebuilt = append(rebuilt, out...)
	}
	if rebuilt == nil {
		return raw, nil
	}
	binary.BigEndian.PutUint32(rebuilt[1:], uint32(len(rebuilt)-1))
	return rebuilt, nil
}

// maskFields masks every field of an ErrorResponse/NoticeResponse except
// severity and code.
func maskFields(m *mask.Masker, typ byte, raw, body []byte, counts *mask.Counts) []byte {
	var rebuilt []byte
	p := 0
	for p < len(body) && body[p] != 0 {
		f := body[p]
		v, rest, ok := cstring(body[p+1:])
		if !ok {
			return raw // malformed: the client sees what the server sent; nothing to mask in a broken field
		}
		next := len(body) - len(rest)
		if f == 'S' || f == 'V' || f == 'C' {
			if rebuilt != nil {
				rebuilt = append(rebuilt, body[p:next]...)
			}
			p = next
			continue
		}
		out, c := m.MaskString(v)
		if !c.IsZero() {
			counts.Add(c)
			if rebuilt == nil {
				rebuilt = append(make([]byte, 0, len(raw)+32), raw[:5+p]...)
			}
			rebuilt = append(rebuilt, f)
			rebuilt = append(rebuilt, out...)
			rebuilt = append(rebuilt, 0)
		} else if rebuilt != nil {
			rebuilt = append(rebuilt, body[p:next]...)
		}
		p = next
	}
	if rebuilt == nil {
		return raw
	}
	rebuilt = append(rebuilt, 0)
	binary.BigEndian.PutUint32(rebuilt[1:], uint32(len(rebuilt)-1))
	return rebuilt
}

func maskNotification(m *mask.Masker, raw, body []byte, counts *mask.Counts) []byte {
	if len(body) < 4 {
		return raw
	}
	channel, rest, ok1 := cstring(body[4:])
	payload, _, ok2 := cstring(rest)
	if !ok1 || !ok2 {
		return raw
	}
	ch, c1 := m.MaskString(channel)
	pl, c2 := m.MaskString(payload)
	if c1.IsZero() && c2.IsZero() {
		return raw
	}
	counts.Add(c1)
	counts.Add(c2)
	out := append([]byte(nil), body[:4]...)
	out = append(append(out, ch...), 0)
	out = append(append(out, pl...), 0)
	return buildFrame('A', out)
}
