package postgres

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/mask"
	"github.com/weir-gw/weir/internal/pgsql"
)

// Column masking on the wire. A statement's plan (lineage.go) says which
// output positions are masked; the plan follows the statement through
// Parse/Bind/Execute, SQL PREPARE/EXECUTE and DECLARE/FETCH. The relay
// must know which plan the rows it sees belong to, so when columns are
// masked the client side queues one expectation per response that
// matters, in the order the server answers:
//
//   - a result (each statement of a simple Query, each Execute): its rows,
//     ended by CommandComplete, EmptyQueryResponse or PortalSuspended;
//   - a Describe of the client's: answered by RowDescription or NoData;
//   - a Describe weir adds before an Execute of a masked plan, to learn the
//     columns' types and formats (the client may never have asked): its
//     answer is consumed, not forwarded.
//
// An ErrorResponse ends every expectation of its cycle (the server skips
// the rest of the Query, or of the batch up to Sync); ReadyForQuery ends
// whatever is left of the cycle. A row that arrives when no result is
// expected fails the session closed.
//
// A masked value is replaced whole, type-valid: text types (also in binary
// format, which is the same bytes) get the format's rendering; json and
// jsonb a JSON string of it; bytea its bytes; every other type (numbers,
// arrays, records…) NULL, as does format null. The text of an error raised
// by a statement that reads a masked column is withheld (a failed cast
// prints the value, corpus M05); its SQLSTATE stays.

type expectKind uint8

const (
	expResult expectKind = iota
	expDescribe
	expSwallow
)

type expect struct {
	cycle int64
	kind  expectKind
	plan  *pgsql.MaskPlan
	// acts is the action per column, from the RowDescription.
	acts     []colAction
	copyRows int
}

type colAction uint8

const (
	actNone colAction = iota
	actText
	actJSON
	actJSONB // binary jsonb: a version byte, then JSON text
	actByteaText
	actByteaBinary
	actNull
)

// Type OIDs (pg_type.dat) whose values weir can replace with text.
const (
	oidBytea   = 17
	oidName    = 19
	oidText    = 25
	oidJSON    = 114
	oidUnknown = 705
	oidBpchar  = 1042
	oidVarchar = 1043
	oidJSONB   = 3802
)

func actionFor(m *mask.Masker, oid uint32, format int16) colAction {
	if m.Format() == mask.FormatNull {
		return actNull
	}
	switch oid {
	case oidText, oidVarchar, oidBpchar, oidName, oidUnknown:
		return actText
	case oidJSON:
		return actJSON
	case oidJSONB:
		if format == 1 {
			return actJSONB
		}
		return actJSON
	case oidBytea:
		if format == 1 {
			return actByteaBinary
		}
		return actByteaText
	}
	return actNull
}

// colMaskOn reports whether this session masks columns by lineage.
func (c *clientConn) colMaskOn() bool { return c.target != nil && c.target.cat != nil }

// planText returns the masking plan of each command of text (nil entries
// where nothing is masked), or a refusal.
func (c *clientConn) planText(text string, cmds []command.Command) ([]*pgsql.MaskPlan, string, string) {
	plans, err := c.target.cat.planFor(c.ctx, text)
	if err != nil {
		var le *pgsql.LineageError
		switch {
		case errors.As(err, &le):
			return nil, "weir refuses this statement: " + le.Reason, "42501"
		case errors.Is(err, errCatalog):
			c.srv.log.Error("reading the catalog for column masking failed", "session", c.session.ID, "target", c.target.cfg.Name, "err", err)
			return nil, errCatalog.Error(), "58000"
		}
		return nil, "weir cannot follow the column lineage of this statement (" + err.Error() + "); weir refuses what it cannot follow", "0A000"
	}
	if plans == nil {
		return nil, "", ""
	}
	if len(plans) != len(cmds) {
		return nil, "weir could not match this text's statements to their masking plans; weir refuses it", "0A000"
	}
	out := make([]*pgsql.MaskPlan, len(plans))
	for i := range plans {
		if plans[i].Masked() || plans[i].Touches || plans[i].Lookup {
			out[i] = &plans[i]
		}
	}
	return out, "", ""
}

// markLookups adds RiskMaskedLookup to commands whose plans use an
// allowed equality lookup, copying the (shared) slice first.
func markLookups(cmds []command.Command, plans []*pgsql.MaskPlan) []command.Command {
	cloned := false
	for i, p := range plans {
		if p == nil || !p.Lookup || i >= len(cmds) {
			continue
		}
		if !cloned {
			cmds = slices.Clone(cmds)
			cloned = true
		}
		cmds[i].Risks = append(slices.Clone(cmds[i].Risks), command.RiskMaskedLookup)
	}
	return cmds
}

// resultPlan is the plan of the rows a command itself returns: DECLARE
// and PREPARE return none (their plans are kept by name), EXECUTE and
// FETCH return those of the statement or cursor they name.
func (c *clientConn) resultPlan(cmd *command.Command, p *pgsql.MaskPlan) *pgsql.MaskPlan {
	switch cmd.Verb {
	case "DECLARE", "PREPARE", "MOVE":
		return nil
	case "EXECUTE":
		return c.sqlPlans[cmd.Prepared]
	case "FETCH":
		return c.cursorPlans[cmd.Prepared]
	}
	return p
}

// keepPlans records the plans of SQL PREPARE and DECLARE of an allowed
// request, so EXECUTE and FETCH mask what their statements would.
func (c *clientConn) keepPlans(cmds []command.Command, plans []*pgsql.MaskPlan) {
	for i := range cmds {
		var p *pgsql.MaskPlan
		if i < len(plans) {
			p = plans[i]
		}
		cmd := &cmds[i]
		switch {
		case cmd.Verb == "PREPARE":
			if c.sqlPlans == nil {
				c.sqlPlans = map[string]*pgsql.MaskPlan{}
			}
			c.sqlPlans[cmd.Prepared] = p
		case cmd.Verb == "DECLARE":
			if c.cursorPlans == nil {
				c.cursorPlans = map[string]*pgsql.MaskPlan{}
			}
			c.cursorPlans[cmd.Prepared] = p
		}
		// DEALLOCATE, CLOSE and DISCARD forget nothing: weir cannot tell
		// whether the server ran them (SELECT 1/0; DEALLOCATE p skips
		// it), and a plan forgotten for a statement the server still
		// holds would let a later PREPARE of that name (which the server
		// refuses) leave EXECUTE with a clean plan for the masked
		// statement. The names stay taken (checkNames).
	}
}

// expectLocked queues an expectation; c.mu is held.
func (c *clientConn) expectLocked(kind expectKind, plan *pgsql.MaskPlan) {
	c.expects = append(c.expects, &expect{cycle: c.cyclesSent, kind: kind, plan: plan})
}

func (c *clientConn) expectOne(kind expectKind, plan *pgsql.MaskPlan) {
	c.mu.Lock()
	c.expectLocked(kind, plan)
	c.mu.Unlock()
}

// describePortal is a Describe of a portal, built for injection.
func describePortal(name string) []byte {
	buf, _ := (&pgproto3.Describe{ObjectType: 'P', Name: name}).Encode(nil)
	return buf
}

// head returns the first expectation of cycle, or nil.
func (c *clientConn) head(cycle int64) *expect {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.expects) > 0 && c.expects[0].cycle == cycle {
		return c.expects[0]
	}
	return nil
}

func (c *clientConn) popExpect() {
	c.mu.Lock()
	if len(c.expects) > 0 {
		c.expects[0] = nil
		c.expects = c.expects[1:]
	}
	c.mu.Unlock()
}

// dropExpects ends every expectation of cycles up to cycle.
func (c *clientConn) dropExpects(cycle int64) {
	c.mu.Lock()
	i := 0
	for i < len(c.expects) && c.expects[i].cycle <= cycle {
		c.expects[i] = nil
		i++
	}
	c.expects = c.expects[i:]
	c.mu.Unlock()
}

// lineageMessage applies column masking to one server message. skip: the
// message is weir's own (an injected Describe's answer) and is not
// forwarded; done: the message's values were masked here (detectors
// included) and need no further masking.
func (c *clientConn) lineageMessage(m *mask.Masker, typ byte, raw, body []byte, cycle int64, refusal bool) (out []byte, skip, done bool, err error) {
	switch typ {
	case 'T', 'n':
		h := c.head(cycle)
		if h == nil {
			return raw, false, false, nil
		}
		switch h.kind {
		case expDescribe:
			c.popExpect()
		case expSwallow:
			c.popExpect()
			if next := c.head(cycle); next != nil && next.kind == expResult && typ == 'T' {
				next.acts = c.actions(m, next.plan, body)
			}
			return nil, true, false, nil
		case expResult:
			if typ == 'T' {
				h.acts = c.actions(m, h.plan, body)
			}
		}
	case 'D':
		h := c.head(cycle)
		if h == nil || h.kind != expResult {
			return nil, false, false, &maskError{"weir lost track of which statement a result row belongs to, so it cannot tell which columns to mask; the session is closed"}
		}
		if !h.plan.Masked() {
			return raw, false, false, nil
		}
		out, err := c.maskRow(m, raw, body, h)
		return out, false, true, err
	case 'd':
		h := c.head(cycle)
		if h == nil || h.kind != expResult || !h.plan.Masked() || h.plan.Copy == nil {
			if h != nil && h.plan.Masked() {
				return nil, false, false, &maskError{"weir cannot mask this COPY data by column; the session is closed"}
			}
			return raw, false, false, nil
		}
		h.copyRows++
		if h.plan.Copy.Header && h.copyRows == 1 {
			return raw, false, false, nil
		}
		out := c.maskCopyRow(m, body, h)
		return out, false, true, nil
	case 'C', 'I', 's':
		if h := c.head(cycle); h != nil && h.kind == expResult {
			c.popExpect()
		}
	case 'E':
		withheld := false
		if h := c.head(cycle); h != nil && !refusal && h.plan != nil && h.plan.Touches {
			raw, withheld = withholdError(raw, body), true
		}
		c.dropExpects(cycle)
		return raw, false, withheld, nil
	case 'N':
		// A notice can print a masked value as well as an error can
		// (to_tsquery echoes a lexeme-free input: translate(ssn, '01234',
		// E' \t\n\r\f') spelt its digits in whitespace).
		if h := c.head(cycle); h != nil && h.plan != nil && h.plan.Touches {
			return withholdError(raw, body), false, true, nil
		}
	case 'Z':
		c.dropExpects(cycle)
	}
	return raw, false, false, nil
}

// actions reads a RowDescription into per-column actions for plan.
func (c *clientConn) actions(m *mask.Masker, plan *pgsql.MaskPlan, body []byte) []colAction {
	if !plan.Masked() || len(body) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(body))
	acts := make([]colAction, n)
	p := body[2:]
	for i := 0; i < n; i++ {
		_, rest, ok := cstring(p)
		if !ok || len(rest) < 18 {
			for j := range acts {
				acts[j] = actNull // malformed: mask everything
			}
			return acts
		}
		oid := binary.BigEndian.Uint32(rest[6:])
		format := int16(binary.BigEndian.Uint16(rest[16:]))
		p = rest[18:]
		// A plan of another width than the result (a resolver bug, or
		// a statement changed under it) masks every column.
		if len(plan.Columns) != n || plan.Columns[i] != "" {
			acts[i] = actionFor(m, oid, format)
		}
	}
	return acts
}

// columnKey names a masked position for the audit counts.
func columnKey(plan *pgsql.MaskPlan, i int) string {
	if i < len(plan.Columns) && plan.Columns[i] != "" {
		return "column:" + plan.Columns[i]
	}
	for _, s := range plan.Columns {
		if s != "" {
			return "column:" + s
		}
	}
	return "column:?"
}

// maskRow rebuilds a DataRow: masked positions replaced, the others run
// through the detectors.
func (c *clientConn) maskRow(m *mask.Masker, raw, body []byte, h *expect) ([]byte, error) {
	if len(body) < 2 {
		return nil, &maskError{"malformed DataRow from the server"}
	}
	n := int(binary.BigEndian.Uint16(body))
	// The relay copies the message into its writer before reading the
	// next one, so one buffer serves every row.
	out := append(c.rowBuf[:0], raw[:7]...)
	p := 2
	for i := 0; i < n; i++ {
		if p+4 > len(body) {
			return nil, &maskError{"malformed DataRow from the server"}
		}
		l := int32(binary.BigEndian.Uint32(body[p:]))
		p += 4
		var v []byte
		if l >= 0 {
			if p+int(l) > len(body) {
				return nil, &maskError{"malformed DataRow from the server"}
			}
			v = body[p : p+int(l)]
			p += int(l)
		}
		act := actNone
		switch {
		case h.acts != nil && i < len(h.acts):
			act = h.acts[i]
		case h.acts == nil && (len(h.plan.Columns) != n || h.plan.Columns[i] != ""):
			act = actNull // no RowDescription: nothing but NULL is sure to be valid
		}
		if l < 0 {
			out = binary.BigEndian.AppendUint32(out, uint32(0xffffffff))
			continue
		}
		if act == actNone {
			mv, cnt := v, mask.Counts{}
			if m != nil {
				mv, cnt = m.MaskBytes(v)
			}
			c.masked.Add(cnt)
			out = binary.BigEndian.AppendUint32(out, uint32(len(mv)))
			out = append(out, mv...)
			continue
		}
		c.countColumn(columnKey(h.plan, i))
		at := len(out)
		out = append(out, 0, 0, 0, 0)
		var null bool
		out, null = renderMasked(m, out, act, v, derivedAt(h.plan, i, n), &c.masked)
		if null {
			out = out[:at]
			out = binary.BigEndian.AppendUint32(out, uint32(0xffffffff))
			continue
		}
		binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	}
	binary.BigEndian.PutUint32(out[1:], uint32(len(out)-1))
	c.rowBuf = out
	return out, nil
}

func (c *clientConn) countColumn(key string) {
	if c.maskedCols == nil {
		c.maskedCols = map[string]int{}
	}
	c.maskedCols[key]++
}

// renderMasked appends the masked form of v for act; null reports that
// the value must be sent as NULL instead.
// redacted replaces a derived masked value: it keeps nothing of the value.
const redacted = "[REDACTED]"

// derivedAt reports whether position i of a result of n columns holds a
// value computed from a masked column (pgsql.MaskPlan.Derived); a plan of
// another width says nothing, so every position counts as derived.
func derivedAt(plan *pgsql.MaskPlan, i, n int) bool {
	return len(plan.Columns) != n || i >= len(plan.Derived) || plan.Derived[i]
}

// maskedText renders a masked value as text: the format's rendering of a
// stored value, or redacted for a derived one. partial keeps characters
// and hash is stable per value, and the agent chooses what a derived value
// holds: lpad(substr(ssn, 3, 1), 6, 'x') came back as x****3 under
// partial, and CASE WHEN false THEN ssn ELSE '3' END hashes a known guess.
func maskedText(m *mask.Masker, dst, v []byte, derived bool) ([]byte, mask.Counts) {
	if derived {
		var cnt mask.Counts
		cnt[mask.ColumnRule] = 1
		return append(dst, redacted...), cnt
	}
	return m.AppendMaskedValue(dst, v)
}

func renderMasked(m *mask.Masker, dst []byte, act colAction, v []byte, derived bool, counts *mask.Counts) ([]byte, bool) {
	var cnt mask.Counts
	switch act {
	case actNull:
		cnt[mask.ColumnRule] = 1
		counts.Add(cnt)
		return dst, true
	case actText:
		dst, cnt = maskedText(m, dst, v, derived)
	case actJSON, actJSONB:
		if act == actJSONB {
			dst = append(dst, 1)
			if len(v) > 0 {
				v = v[1:]
			}
		}
		var mv []byte
		mv, cnt = maskedText(m, nil, v, derived)
		dst = appendJSONString(dst, mv)
	case actByteaText:
		var mv []byte
		mv, cnt = maskedText(m, nil, v, derived)
		dst = append(dst, `\x`...)
		dst = hex.AppendEncode(dst, mv)
	case actByteaBinary:
		dst, cnt = maskedText(m, dst, v, derived)
	}
	counts.Add(cnt)
	return dst, false
}

func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, b := range s {
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b < 0x20:
			dst = fmt.Appendf(dst, `\u%04x`, b)
		default:
			dst = append(dst, b)
		}
	}
	return append(dst, '"')
}

// maskCopyRow masks the masked columns of one COPY … TO STDOUT row (text
// or CSV format, default delimiter and quote; the plan refused others).
// The server sends one row per CopyData message.
func (c *clientConn) maskCopyRow(m *mask.Masker, body []byte, h *expect) []byte {
	row := body
	eol := ""
	switch {
	case len(row) >= 2 && row[len(row)-2] == '\r' && row[len(row)-1] == '\n':
		row, eol = row[:len(row)-2], "\r\n"
	case len(row) >= 1 && row[len(row)-1] == '\n':
		row, eol = row[:len(row)-1], "\n"
	}
	csv := h.plan.Copy.CSV
	var fields [][]byte
	var quoted []bool
	if csv {
		fields, quoted = splitCSV(row)
	} else {
		fields = splitTab(row)
	}
	n := len(fields)
	out := append(c.rowBuf[:0], 'd', 0, 0, 0, 0)
	for i, f := range fields {
		if i > 0 {
			if csv {
				out = append(out, ',')
			} else {
				out = append(out, '\t')
			}
		}
		maskedPos := len(h.plan.Columns) != n || h.plan.Columns[i] != ""
		isNull := (!csv && string(f) == `\N`) || (csv && len(f) == 0 && !quoted[i])
		if !maskedPos || isNull {
			if csv {
				out = appendCSVField(out, f, quoted[i], m, &c.masked)
			} else {
				mv, cnt := m.MaskBytes(f)
				c.masked.Add(cnt)
				out = append(out, mv...)
			}
			continue
		}
		c.countColumn(columnKey(h.plan, i))
		if m.Format() == mask.FormatNull {
			var cnt mask.Counts
			cnt[mask.ColumnRule] = 1
			c.masked.Add(cnt)
			if !csv {
				out = append(out, `\N`...)
			}
			continue
		}
		v := f
		if !csv {
			v = unescapeCopy(f)
		}
		mv, cnt := maskedText(m, nil, v, derivedAt(h.plan, i, n))
		c.masked.Add(cnt)
		if csv {
			out = appendCSVField(out, mv, true, nil, nil)
		} else {
			out = appendEscapedCopy(out, mv)
		}
	}
	out = append(out, eol...)
	binary.BigEndian.PutUint32(out[1:], uint32(len(out)-1))
	c.rowBuf = out
	return out
}

func splitTab(row []byte) [][]byte {
	var out [][]byte
	for {
		i := indexByte(row, '\t')
		if i < 0 {
			return append(out, row)
		}
		out = append(out, row[:i])
		row = row[i+1:]
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// splitCSV splits one CSV row (quote '"', escape '"'), returning the
// unquoted field values and whether each was quoted.
func splitCSV(row []byte) ([][]byte, []bool) {
	var fields [][]byte
	var quoted []bool
	i := 0
	for {
		var f []byte
		q := false
		if i < len(row) && row[i] == '"' {
			q = true
			i++
			for i < len(row) {
				if row[i] == '"' {
					if i+1 < len(row) && row[i+1] == '"' {
						f = append(f, '"')
						i += 2
						continue
					}
					i++
					break
				}
				f = append(f, row[i])
				i++
			}
			for i < len(row) && row[i] != ',' {
				f = append(f, row[i])
				i++
			}
		} else {
			start := i
			for i < len(row) && row[i] != ',' {
				i++
			}
			f = row[start:i]
		}
		fields = append(fields, f)
		quoted = append(quoted, q)
		if i >= len(row) {
			return fields, quoted
		}
		i++ // the comma
	}
}

// appendCSVField writes a field, quoted when it was or must be; m, when
// set, runs the detectors over it first.
func appendCSVField(dst, f []byte, quote bool, m *mask.Masker, counts *mask.Counts) []byte {
	if m != nil {
		mv, cnt := m.MaskBytes(f)
		counts.Add(cnt)
		f = mv
	}
	if !quote {
		for _, b := range f {
			if b == ',' || b == '"' || b == '\n' || b == '\r' {
				quote = true
				break
			}
		}
	}
	if !quote {
		return append(dst, f...)
	}
	dst = append(dst, '"')
	for _, b := range f {
		if b == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, b)
	}
	return append(dst, '"')
}

// unescapeCopy decodes the backslash escapes of a COPY text field that
// matter for masking (the value a hash is computed over).
func unescapeCopy(f []byte) []byte {
	if indexByte(f, '\\') < 0 {
		return f
	}
	out := make([]byte, 0, len(f))
	for i := 0; i < len(f); i++ {
		if f[i] != '\\' || i+1 == len(f) {
			out = append(out, f[i])
			continue
		}
		i++
		switch f[i] {
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		default:
			out = append(out, f[i])
		}
	}
	return out
}

func appendEscapedCopy(dst, v []byte) []byte {
	for _, b := range v {
		switch b {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// withholdError keeps an ErrorResponse's severity, code and position and
// replaces its text: the statement reads a masked column, and error texts
// print values.
func withholdError(raw, body []byte) []byte {
	notice := len(raw) > 0 && raw[0] == 'N'
	e := pgproto3.ErrorResponse{}
	p := 0
	for p < len(body) && body[p] != 0 {
		f := body[p]
		v, rest, ok := cstring(body[p+1:])
		if !ok {
			break
		}
		switch f {
		case 'S':
			e.Severity = v
		case 'V':
			e.SeverityUnlocalized = v
		case 'C':
			e.Code = v
		}
		p = len(body) - len(rest)
	}
	if e.Code == "" {
		e.Code = "XX000" // malformed: keep nothing of it
	}
	e.Message = "weir withheld the text of this error: the statement reads a masked column, and error texts can show its values (the SQLSTATE is the server's)"
	var buf []byte
	var err error
	if notice {
		e.Message = "weir withheld the text of this notice: the statement reads a masked column, and notice texts can show its values"
		nr := pgproto3.NoticeResponse(e)
		buf, err = nr.Encode(nil)
	} else {
		buf, err = e.Encode(nil)
	}
	if err != nil {
		// Encoding a message built here cannot fail; if it did, nothing
		// of the original may pass.
		return nil
	}
	return buf
}
