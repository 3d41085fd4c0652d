package mask

import "io"

// Stream masks text that arrives in pieces (an HTTP body, a log tail) and
// writes the masked text to an underlying writer.
//
// Its output is exactly what MaskBytes returns for the whole input, however
// the input is split between Write calls: a secret split across two writes
// is still found. To get there it holds back the undecided tail of the text
// (the longest possible detection plus the context detectors look at, about
// 17 KiB of normalized text) and works through the input in chunks of
// about 64 KiB, so memory stays bounded whatever the input size. Output is
// therefore delayed: call Close to flush the tail.
//
// One pathological case gives up that equality to keep memory bounded:
// when more than 1 MiB of input normalizes to less than the holdback (a
// megabyte of zero-width characters), the buffered text is decided as if
// the input ended there.
//
// A Stream is not safe for concurrent use.
type Stream struct {
	m      *Masker
	w      io.Writer
	buf    []byte // buf[:keep] was written already and is kept as context
	keep   int
	counts Counts
	err    error
	closed bool
	nt     normText
	out    []byte
	spans  []cand

	chunk, hold, back, hardMax int
	next                       int // process when len(buf) reaches this
}

// NewStream returns a Stream that writes the masked text to w. Close
// flushes it; it does not close w.
func (m *Masker) NewStream(w io.Writer) *Stream {
	return m.newStream(w, 64<<10)
}

func (m *Masker) newStream(w io.Writer, chunk int) *Stream {
	return &Stream{
		m:       m,
		w:       w,
		chunk:   chunk,
		hold:    m.lim.span + m.lim.ctx + 64,
		back:    m.lim.ctx + 256,
		hardMax: max(1<<20, 4*chunk),
		next:    chunk,
	}
}

// Write buffers p and writes out whatever part of the text is decided. It
// always consumes all of p; the error is the underlying writer's.
func (s *Stream) Write(p []byte) (int, error) {
	if s.closed {
		return 0, errClosed
	}
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	for len(p) > 0 {
		k := min(max(s.next-len(s.buf), 1), len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) >= s.next {
			s.process(false)
			// Retry only after another chunk, whether or not this round
			// could commit anything.
			s.next = len(s.buf) + s.chunk
			if s.err != nil {
				return n, s.err
			}
		}
	}
	return n, nil
}

// Close decides and writes the rest of the text. It does not close the
// underlying writer.
func (s *Stream) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err == nil {
		s.process(true)
	}
	s.buf = nil
	return s.err
}

// Counts returns what the stream has masked so far (everything after
// Close).
func (s *Stream) Counts() Counts { return s.counts }

// process decides the buffered text up to a commit point and writes it.
func (s *Stream) process(final bool) {
	view := s.buf
	if len(view) == s.keep {
		return
	}
	var nt *normText
	text := view
	if !isASCII(view) && !isNormal(view) {
		nt = &s.nt
		nt.build(view)
		text = nt.text
	}
	minN := s.keep
	if nt != nil {
		minN = nt.textIndex(s.keep)
	}
	spans := s.m.find(text, s.m.set, minN, s.spans[:0])
	s.spans = spans[:0]

	commitN := len(text)
	if !final {
		commitN = len(text) - s.hold
		if commitN <= minN {
			if len(view)-s.keep < s.hardMax {
				return // wait for more text
			}
			commitN = len(text)
		}
		for _, c := range spans {
			if c.start < commitN && c.end > commitN {
				commitN = c.end
			}
		}
	}
	k := 0
	for k < len(spans) && spans[k].start < commitN {
		k++
	}
	commitO := commitN
	if nt != nil {
		commitO = nt.origStart(commitN)
	}
	out, last := s.m.apply(s.out[:0], view, s.keep, commitO, nt, text, spans[:k], &s.counts)
	s.out = out[:0]
	if len(out) > 0 {
		if _, err := s.w.Write(out); err != nil {
			s.err = err
			return
		}
	}
	if final {
		s.keep = len(view)
		return
	}
	// Keep `back` bytes of decided text as context for the next round,
	// starting at a normalization segment boundary.
	lbN := max(commitN-s.back, 0)
	lbO := lbN
	if nt != nil {
		lbO = nt.origStart(lbN)
	}
	lbO = min(lbO, last)
	n := copy(s.buf, s.buf[lbO:])
	s.buf = s.buf[:n]
	s.keep = last - lbO
}
