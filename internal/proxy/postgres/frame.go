package postgres

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// frameReader reads PostgreSQL protocol frames (type byte, int32 length
// including itself, body) without decoding them, so allowed traffic is
// relayed byte for byte. A frame's body is valid only until the next read.
type frameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// frameError is a framing violation: the stream cannot be resynchronised
// and the connection must be closed.
type frameError struct{ msg string }

func (e *frameError) Error() string { return e.msg }

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 32<<10), max: max}
}

// next returns the frame type, the whole raw frame (header included) and
// the body, which aliases raw.
func (f *frameReader) next() (typ byte, raw, body []byte, err error) {
	hdr, err := f.r.Peek(5)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, nil, err
	}
	typ = hdr[0]
	n := int64(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return 0, nil, nil, &frameError{fmt.Sprintf("invalid message length %d", n)}
	}
	if n > int64(f.max) {
		return 0, nil, nil, &frameError{fmt.Sprintf("message of %d bytes exceeds weir's limit of %d bytes (limits.max_message_bytes)", n, f.max)}
	}
	total := int(n) + 1
	if cap(f.buf) < total {
		f.buf = make([]byte, total, max(total, 8<<10))
	}
	raw = f.buf[:total]
	if _, err := io.ReadFull(f.r, raw); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, nil, err
	}
	// Do not keep a huge buffer alive for the rest of the session.
	if cap(f.buf) > 1<<20 {
		f.buf = nil
	}
	return typ, raw, raw[5:], nil
}

// buffered reports whether more input is already buffered, so writers can
// delay a flush until a batch of messages has been handled.
func (f *frameReader) buffered() bool { return f.r.Buffered() > 0 }

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}
