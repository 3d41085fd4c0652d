package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/mask"
	"github.com/weir-gw/weir/internal/pgsql"
)

// clientConn is one agent session: a client connection and its dedicated
// upstream connection (never pooled or shared, so no SET ROLE, temp table or
// prepared statement leaks between agents).
type clientConn struct {
	srv     *Server
	conn    net.Conn // to the client (TLS unless plaintext loopback)
	raw     net.Conn
	session *gateway.Session
	target  *upstreamTarget
	// internal is set for a client inside weir (the MCP front end): its
	// sessions carry that front end's protocol name and claimed context.
	internal *InternalClient
	ctx      context.Context
	cancel   context.CancelFunc

	pid          uint32
	cancelSecret [4]byte
	upPID        uint32
	upSecret     []byte
	upTLS        *tls.Config
	up           net.Conn

	cr   *frameReader // client frames (client goroutine)
	ur   *frameReader // upstream frames (relay goroutine)
	uw   *bufio.Writer
	cwMu sync.Mutex
	cw   *bufio.Writer

	// Owned by the client goroutine.
	stmts       map[string]*prepared // extended-protocol statements by name
	portals     map[string]*portal
	sqlPrepared map[string]*command.Command // SQL-level PREPARE bodies by name
	cursors     map[string]bool             // SQL-level DECLAREd cursors
	// Column-masking plans of SQL PREPAREd statements and DECLAREd
	// cursors, by name (see colmask.go).
	sqlPlans      map[string]*pgsql.MaskPlan
	cursorPlans   map[string]*pgsql.MaskPlan
	skipUntilSync bool
	// cycleMsgs counts extended-protocol messages forwarded since the last
	// Sync; uncertain holds names ("S"+name, "P"+name) changed by a Close,
	// Parse or Bind that followed other messages in its batch: if an
	// earlier message failed, the server skipped the change, so weir must
	// learn that batch's outcome before trusting the name again.
	cycleMsgs int
	uncertain map[string]int64
	deciding  bound // the request being decided (read only for approvals)

	// Shared between the client and relay goroutines.
	mu         sync.Mutex
	cyclesSent int64          // Query and Sync messages forwarded upstream
	cyclesDone int64          // ReadyForQuery messages the relay has seen
	watched    map[int64]bool // cycles whose outcome a name depends on
	failed     map[int64]bool // watched cycles that had an error
	relayGone  bool
	cycleCond  *sync.Cond
	refusals   []refusal
	units      []unit
	expects    []*expect // results and Describes in flight, when columns are masked

	// Owned by the relay goroutine.
	copyBinary bool           // the current COPY TO is in binary format
	masked     mask.Counts    // values masked since the last finished unit
	maskedCols map[string]int // values masked per column rule, likewise
	rowBuf     []byte         // reused for rows rebuilt by column masking
	rec        recording      // rows the agent saw, for replay

	termOnce  sync.Once
	endReason atomic.Pointer[string] // why the session ended, for the audit record
}

func (c *clientConn) setEnd(reason string) { c.endReason.Store(&reason) }

func (c *clientConn) end() string {
	if r := c.endReason.Load(); r != nil {
		return *r
	}
	return "client disconnected"
}

type prepared struct {
	cmds []command.Command
	plan *pgsql.MaskPlan // column masking of its rows; nil: none
	// hidden is the server-side name of a statement under review (see
	// handleParse); "" when the server knows it by the client's name.
	hidden string
}

// portal is a bound statement; bind keeps the Bind body (reused buffer)
// so its parameters can be read when an approval needs them.
type portal struct {
	stmt *prepared
	bind []byte
}

// refusal is a pending replacement of the sentinel's syntax error by
// weir's own error.
type refusal struct {
	cycle int64
	nonce string
	resp  []byte
}

// unit is a forwarded request waiting for its result.
type unit struct {
	cycle  int64
	seq    int64
	start  time.Time
	simple bool
	rows   int64
	done   bool
}

const sentinelPrefix = "weir_refused_"

// Startup parameters forwarded upstream (lower-case). Everything else is
// refused: `options` can set any server setting, `replication` opens a
// replication connection, and an unknown parameter is unknown risk.
var forwardedParams = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "timezone": true,
	"extra_float_digits": true, "intervalstyle": true,
}

// safeEncoding reports whether a client encoding keeps every ASCII byte
// meaning itself. In SJIS, BIG5, GBK, GB18030 and UHC a multi-byte
// character can end in 0x5c (backslash) or hide a quote, so text weir
// parses could be read differently by the server (CVE-2006-2314).
func safeEncoding(enc string) bool {
	switch strings.ToUpper(strings.ReplaceAll(strings.Trim(enc, `'" `), "-", "")) {
	case "UTF8", "UNICODE", "SQL_ASCII":
		return true
	}
	return false
}

func (c *clientConn) run(startup *pgproto3.StartupMessage) {
	c.cw = bufio.NewWriterSize(c.conn, 32<<10)
	c.cr = newFrameReader(c.conn, c.srv.maxMessage)
	params, unrecognized, err := c.checkStartup(startup)
	if err != nil {
		c.fatalStartup("28000", err.Error())
		return
	}
	if startup.ProtocolVersion != pgproto3.ProtocolVersion30 || len(unrecognized) > 0 {
		c.send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unrecognized})
	}
	c.send(&pgproto3.AuthenticationCleartextPassword{})
	if err := c.flush(); err != nil {
		return
	}
	typ, _, body, err := c.cr.next()
	if err != nil || typ != 'p' {
		if err == nil {
			c.fatalStartup("08P01", "expected a password message")
		}
		return
	}
	token, _, ok := cstring(body)
	if !ok {
		c.fatalStartup("08P01", "malformed password message")
		return
	}
	user, database := params["user"], params["database"]
	claimed := map[string]string{}
	if app := params["application_name"]; app != "" {
		claimed["application_name"] = app
	}
	protocol, clientAddr := "postgres", c.raw.RemoteAddr().String()
	if c.internal != nil {
		protocol, clientAddr = c.internal.Protocol, c.internal.ClientAddr
		for k, v := range c.internal.Claimed {
			claimed[k] = v
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()
	sess, err := c.srv.gw.Authenticate(c.ctx, gateway.AuthRequest{
		Protocol: protocol, Token: token, Target: database, User: user, ClientAddr: clientAddr, Claimed: claimed,
	})
	if err != nil {
		var ae *gateway.AuthError
		msg := "weir could not authenticate this connection"
		if errors.As(err, &ae) {
			msg = ae.Public
		}
		c.fatalStartup("28P01", fmt.Sprintf("password authentication failed for user %q: %s", user, msg))
		return
	}
	c.session = sess
	c.setEnd("client disconnected")
	defer func() { sess.End(c.end()) }()
	c.target = c.srv.upstreams[database]
	if c.target == nil {
		c.fatalStartup("3D000", fmt.Sprintf("target %q is not a PostgreSQL target", database))
		return
	}
	if err := c.connectUpstream(params); err != nil {
		ref := sess.ID
		c.srv.log.Error("upstream connection failed", "session", ref, "target", database, "err", err)
		c.fatalStartup("08006", fmt.Sprintf("weir could not connect to target %q (reference %s); the weir operator can find the cause in weir's log", database, ref))
		c.setEnd("upstream connection failed")
		return
	}
	defer c.up.Close()
	c.srv.register(c)
	defer c.srv.unregister(c)
	rand.Read(c.cancelSecret[:])
	c.send(&pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: c.cancelSecret[:]})
	c.send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := c.flush(); err != nil {
		return
	}
	c.raw.SetDeadline(time.Time{})

	c.cycleCond = sync.NewCond(&c.mu)
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		defer func() {
			c.mu.Lock()
			c.relayGone = true
			c.cycleCond.Broadcast()
			c.mu.Unlock()
		}()
		c.relay()
	}()
	go func() {
		select {
		case <-sess.Done():
			c.setEnd(sess.Reason())
			c.terminate(sess.Reason(), "57P01")
		case <-relayDone:
		}
	}()
	c.serveClient()
	c.terminate("", "")
	<-relayDone
}

func (c *clientConn) checkStartup(m *pgproto3.StartupMessage) (map[string]string, []string, error) {
	params := map[string]string{}
	var unrecognized []string
	for k, v := range m.Parameters {
		lk := strings.ToLower(k)
		switch {
		case lk == "user" || lk == "database":
			params[lk] = v
		case lk == "replication":
			return nil, nil, errors.New("replication connections are not allowed through weir")
		case lk == "options":
			return nil, nil, errors.New(`the startup parameter "options" is not allowed through weir: it can change server settings; use SET statements, which the policy decides on`)
		case strings.HasPrefix(lk, "_pq_."):
			unrecognized = append(unrecognized, k)
		case forwardedParams[lk]:
			if lk == "client_encoding" && !safeEncoding(v) {
				return nil, nil, fmt.Errorf("client_encoding %q is not allowed through weir: use UTF8", v)
			}
			params[lk] = v
		default:
			return nil, nil, fmt.Errorf("startup parameter %q is not supported through weir", k)
		}
	}
	if params["user"] == "" {
		return nil, nil, errors.New("no user name given: use the agent name the weir token was issued to")
	}
	if params["database"] == "" {
		params["database"] = params["user"]
	}
	slices.Sort(unrecognized)
	return params, unrecognized, nil
}

func (c *clientConn) connectUpstream(params map[string]string) error {
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	cfg := c.target.base.Copy()
	pw, err := c.target.cred.Password(ctx)
	if err != nil {
		return err
	}
	cfg.Password = pw
	cfg.RuntimeParams = map[string]string{}
	for k, v := range params {
		if k != "user" && k != "database" {
			cfg.RuntimeParams[k] = v
		}
	}
	app := "weir/" + c.session.Claims.Agent
	if a := params["application_name"]; a != "" {
		app += "/" + a
	}
	cfg.RuntimeParams["application_name"] = app
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return err
	}
	c.up, c.upPID, c.upSecret, c.upTLS = hc.Conn, hc.PID, hc.SecretKey, hc.TLSConfig
	c.ur = newFrameReader(hc.Conn, 1<<30)
	c.uw = bufio.NewWriterSize(hc.Conn, 32<<10)
	c.send(&pgproto3.AuthenticationOk{})
	keys := make([]string, 0, len(hc.ParameterStatuses))
	for k := range hc.ParameterStatuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := hc.ParameterStatuses[k]
		if k == "application_name" && params["application_name"] != "" {
			v = params["application_name"]
		}
		c.send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	return nil
}

// upstreamCancel sends a CancelRequest for this session's upstream backend.
func (c *clientConn) upstreamCancel(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.target.cfg.Address)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var w io.ReadWriter = conn
	if c.upTLS != nil {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:], 8)
		binary.BigEndian.PutUint32(req[4:], codeSSLRequest)
		if _, err := conn.Write(req[:]); err != nil {
			return err
		}
		var resp [1]byte
		if _, err := io.ReadFull(conn, resp[:]); err != nil {
			return err
		}
		if resp[0] != 'S' {
			return errors.New("upstream refused TLS for the cancel request")
		}
		tc := tls.Client(conn, c.upTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		w = tc
	}
	msg := make([]byte, 12, 12+len(c.upSecret))
	binary.BigEndian.PutUint32(msg[0:], uint32(12+len(c.upSecret)))
	binary.BigEndian.PutUint32(msg[4:], codeCancelRequest)
	binary.BigEndian.PutUint32(msg[8:], c.upPID)
	msg = append(msg, c.upSecret...)
	_, err = w.Write(msg)
	return err
}

func (c *clientConn) send(m pgproto3.BackendMessage) {
	buf, err := m.Encode(nil)
	if err != nil {
		return
	}
	c.cwMu.Lock()
	c.cw.Write(buf)
	c.cwMu.Unlock()
}

func (c *clientConn) flush() error {
	c.cwMu.Lock()
	defer c.cwMu.Unlock()
	return c.cw.Flush()
}

func (c *clientConn) fatalStartup(code, msg string) {
	c.cwMu.Lock()
	defer c.cwMu.Unlock()
	writeFatal(c.cw, code, msg)
	c.cw.Flush()
}

// terminate ends the connection; with a reason, the client is told why.
func (c *clientConn) terminate(reason, code string) {
	c.termOnce.Do(func() {
		if reason != "" {
			c.cwMu.Lock()
			writeFatal(c.cw, code, "terminating connection: "+reason)
			c.cw.Flush()
			c.cwMu.Unlock()
		}
		if c.cancel != nil {
			c.cancel()
		}
		c.conn.Close()
		if c.up != nil {
			c.up.Close()
		}
	})
}

// serveClient reads client messages until the client leaves or breaks
// the protocol.
func (c *clientConn) serveClient() {
	for {
		typ, raw, body, err := c.cr.next()
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				c.protocolViolation(fe.msg)
			}
			return
		}
		if err := c.handle(typ, raw, body); err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				c.protocolViolation(fe.msg)
			} else {
				c.setEnd("upstream write failed")
			}
			return
		}
		if typ == 'X' {
			c.setEnd("client terminated")
			return
		}
		if !c.cr.buffered() {
			if err := c.uw.Flush(); err != nil {
				c.setEnd("upstream write failed")
				return
			}
		}
	}
}

func (c *clientConn) protocolViolation(msg string) {
	c.setEnd("protocol violation: " + msg)
	c.session.Note("protocol_violation", map[string]any{"detail": msg})
	c.terminate(msg, "08P01")
}

func (c *clientConn) handle(typ byte, raw, body []byte) error {
	if c.skipUntilSync {
		switch typ {
		case 'P', 'B', 'E', 'D', 'C', 'H':
			return nil // upstream is skipping them too, after the sentinel's error
		}
	}
	switch typ {
	case 'Q':
		if c.cycleMsgs > 0 || c.skipUntilSync {
			// A Query inside an unfinished extended batch may be skipped
			// by the server (after an error), which would make weir and
			// the server disagree about which answer belongs to what.
			return &frameError{"Query received inside an extended-protocol batch; send Sync first"}
		}
		return c.handleQuery(raw, body)
	case 'P':
		defer func() { c.cycleMsgs++ }()
		return c.handleParse(raw, body)
	case 'B':
		defer func() { c.cycleMsgs++ }()
		return c.handleBind(raw, body)
	case 'E':
		defer func() { c.cycleMsgs++ }()
		return c.handleExecute(raw, body)
	case 'D', 'C':
		defer func() { c.cycleMsgs++ }()
		return c.handleDescribeClose(typ, raw, body)
	case 'S':
		c.skipUntilSync = false
		c.cycleMsgs = 0
		c.mu.Lock()
		c.cyclesSent++
		c.mu.Unlock()
		_, err := c.uw.Write(raw)
		return err
	case 'H', 'd', 'c', 'f':
		// Flush, and COPY FROM STDIN data of a COPY already decided.
		_, err := c.uw.Write(raw)
		return err
	case 'X':
		_, err := c.uw.Write(raw)
		if err == nil {
			err = c.uw.Flush()
		}
		return err
	case 'F':
		v := c.session.Decide(c.ctx, gateway.Request{Via: "function_call", Refusal: "the FunctionCall message is not allowed through weir: it runs a function without SQL that weir could decide on; call the function in a SQL statement instead"})
		return c.refuseSimple(&v)
	default:
		return &frameError{fmt.Sprintf("unexpected message type %q", typ)}
	}
}

func (c *clientConn) handleQuery(raw, body []byte) error {
	text, rest, ok := cstring(body)
	if !ok || len(rest) != 0 {
		return &frameError{"malformed Query message"}
	}
	req, plans, code := c.classify(text, "query")
	if req.Refusal == "" && len(req.Commands) == 0 {
		// Empty query: nothing runs; the server answers EmptyQueryResponse.
		if c.colMaskOn() {
			c.expectOne(expResult, nil)
		}
		return c.forwardSimple(raw, 0)
	}
	c.deciding = bound{c: c, cmds: req.Commands}
	req.Bound = &c.deciding
	v := c.session.Decide(c.ctx, req)
	if !v.Allowed() {
		if code != "" {
			v.SQLState = code
		}
		return c.refuseSimple(&v)
	}
	if c.colMaskOn() {
		c.mu.Lock()
		for i := range req.Commands {
			var p *pgsql.MaskPlan
			if plans != nil {
				p = plans[i]
			}
			c.expectLocked(expResult, c.resultPlan(&req.Commands[i], p))
		}
		c.mu.Unlock()
		c.keepPlans(req.Commands, plans)
	}
	c.applySQLPrepared(req.Commands)
	return c.forwardSimple(raw, v.Seq)
}

// classify turns SQL text into a gateway request, resolving SQL EXECUTE
// to the body weir saw prepared. code is a SQLSTATE for a refusal that is
// not a policy decision.
func (c *clientConn) classify(text, via string) (gateway.Request, []*pgsql.MaskPlan, string) {
	req, code := c.classifyText(text, via)
	if req.Refusal != "" || !c.colMaskOn() || len(req.Commands) == 0 {
		return req, nil, code
	}
	plans, refusal, code := c.planText(text, req.Commands)
	if refusal != "" {
		if c.session.Precheck(req.Commands).Action == "deny" {
			// The policy refuses it anyway: its message (which rule, what
			// to do instead) is the one the agent should read.
			return req, nil, ""
		}
		req.Refusal = refusal
		return req, nil, code
	}
	req.Commands = markLookups(req.Commands, plans)
	return req, plans, ""
}

// classifyText is classify without column masking.
func (c *clientConn) classifyText(text, via string) (gateway.Request, string) {
	cmds, err := c.srv.classifier.Classify(text)
	if err != nil {
		var pe *pgsql.ParseError
		var ce *pgsql.ClassifyError
		switch {
		case errors.As(err, &pe):
			return gateway.Request{Via: via, Commands: []command.Command{{Protocol: "postgres", Verb: "UNPARSEABLE", Text: text}},
				Refusal: "weir could not parse this SQL (" + pe.Message + "); weir refuses what it cannot parse"}, "42601"
		case errors.As(err, &ce):
			return gateway.Request{Via: via, Commands: []command.Command{{Protocol: "postgres", Verb: "UNCLASSIFIED", Text: text}},
				Refusal: "weir cannot classify this statement (" + ce.Reason + "); weir refuses what it cannot classify"}, "0A000"
		default:
			return gateway.Request{Via: via, Commands: []command.Command{{Protocol: "postgres", Verb: "UNCLASSIFIED", Text: text}},
				Refusal: "weir cannot classify this statement; weir refuses what it cannot classify"}, "0A000"
		}
	}
	cloned := false
	for i := range cmds {
		if refusal := c.checkNames(&cmds[i]); refusal != "" {
			return gateway.Request{Via: via, Commands: cmds, Refusal: refusal}, "42P05"
		}
		if cmds[i].Verb != "EXECUTE" {
			continue
		}
		body := c.sqlPrepared[cmds[i].Prepared]
		if body == nil {
			return gateway.Request{Via: via, Commands: cmds,
				Refusal: fmt.Sprintf("prepared statement %q was not prepared in this session through weir", cmds[i].Prepared)}, "26000"
		}
		if !cloned {
			// cmds may be the classifier's shared cached slice: copy it
			// once before changing anything in it.
			cmds = slices.Clone(cmds)
			cloned = true
		}
		cmds[i] = mergeExecute(&cmds[i], body)
	}
	return gateway.Request{Via: via, Commands: cmds}, ""
}

// checkNames keeps SQL-level names and protocol-level names apart, as
// PostgreSQL has one namespace for prepared statements and one for
// portals/cursors: a SQL PREPARE may not take a name weir knows, and
// FETCH/MOVE may only reach cursors DECLAREd in SQL (never a protocol
// portal, which was decided when it was bound, not when it is fetched).
func (c *clientConn) checkNames(cmd *command.Command) string {
	name := cmd.Prepared
	switch cmd.Verb {
	case "PREPARE":
		if c.stmts[name] != nil || c.sqlPrepared[name] != nil {
			return fmt.Sprintf("prepared statement %q exists or existed in this session; weir does not reuse a name (it cannot tell whether a DEALLOCATE took effect on the server), so use another name", name)
		}
		if strings.HasPrefix(name, hiddenPrefix) {
			return fmt.Sprintf("statement names starting with %q are reserved by weir", hiddenPrefix)
		}
	case "DECLARE":
		if c.portals[name] != nil || c.cursors[name] {
			return fmt.Sprintf("cursor %q exists or existed in this session; weir does not reuse a name (it cannot tell whether a CLOSE took effect on the server), so use another name", name)
		}
	case "FETCH", "MOVE":
		if !c.cursors[name] {
			return fmt.Sprintf("%s refused: cursor %q was not DECLAREd in SQL in this session through weir", cmd.Verb, name)
		}
	}
	return ""
}

// mergeExecute gives an EXECUTE the classification of the statement it runs,
// plus whatever its arguments call.
func mergeExecute(exec, body *command.Command) command.Command {
	m := *exec
	m.Kind = body.Kind
	m.Reads = append(slices.Clone(body.Reads), exec.Reads...)
	m.Writes = append(slices.Clone(body.Writes), exec.Writes...)
	m.Functions = append(slices.Clone(body.Functions), exec.Functions...)
	m.Risks = append(slices.Clone(body.Risks), exec.Risks...)
	return m
}

// applySQLPrepared tracks SQL-level PREPARE/DEALLOCATE/DISCARD of an
// allowed request so EXECUTE can be resolved.
func (c *clientConn) applySQLPrepared(cmds []command.Command) {
	for i := range cmds {
		cmd := &cmds[i]
		switch {
		case cmd.Verb == "PREPARE":
			if c.sqlPrepared == nil {
				c.sqlPrepared = map[string]*command.Command{}
			}
			body := *cmd
			c.sqlPrepared[cmd.Prepared] = &body
		case cmd.Verb == "DECLARE":
			if c.cursors == nil {
				c.cursors = map[string]bool{}
			}
			c.cursors[cmd.Prepared] = true
		}
		// DEALLOCATE, CLOSE and DISCARD release nothing here: see
		// keepPlans (the server may not have run them).
	}
}

func (c *clientConn) forwardSimple(raw []byte, seq int64) error {
	c.mu.Lock()
	if seq != 0 {
		c.units = append(c.units, unit{cycle: c.cyclesSent, seq: seq, start: time.Now(), simple: true})
	}
	c.cyclesSent++
	c.mu.Unlock()
	_, err := c.uw.Write(raw)
	return err
}

func (c *clientConn) handleParse(raw, body []byte) error {
	name, rest, ok := cstring(body)
	if !ok {
		return &frameError{"malformed Parse message"}
	}
	text, _, ok := cstring(rest)
	if !ok {
		return &frameError{"malformed Parse message"}
	}
	req, plans, code := c.classify(text, "parse")
	var plan *pgsql.MaskPlan
	if len(plans) > 0 {
		plan = plans[0]
	}
	// Parse runs nothing, so an allowed Parse is not audited here; its
	// executions are, at Execute. A refused one is audited now.
	if req.Refusal == "" {
		// PostgreSQL refuses a Parse of a named statement that exists;
		// weir refuses it first, so its map can never disagree with the
		// server's about what a name means.
		// A Parse of the unnamed statement at the start of a batch
		// replaces it for certain (the server drops the old one first).
		if name == "" && c.cycleMsgs == 0 {
			delete(c.uncertain, "S")
		} else if ok, err := c.settled("S" + name); err != nil {
			return err
		} else if !ok {
			return c.refuseUnsettled("prepared statement", name)
		}
		if name != "" && (c.stmts[name] != nil || c.sqlPrepared[name] != nil) {
			req.Refusal = fmt.Sprintf("prepared statement %q already exists in this session; Close it or use another name", name)
			code = "42P05"
		} else if strings.HasPrefix(name, hiddenPrefix) {
			req.Refusal = fmt.Sprintf("statement names starting with %q are reserved by weir", hiddenPrefix)
			code = "42P05"
		} else if d := c.session.Precheck(req.Commands); d.Allowed() {
			c.storeStatement(name, req.Commands, "", plan)
			_, err := c.uw.Write(raw)
			return err
		} else if d.Action == "review" && c.srv.gw.ApprovalsEnabled() {
			// Decided at Execute, with its parameters. Until then the
			// server holds it under a name only weir knows, so nothing
			// but weir's own Bind (after the decision at Execute) can
			// reach it: not a re-Parse, a SQL EXECUTE or a FETCH.
			hidden := hiddenPrefix + newNonce()
			c.storeStatement(name, req.Commands, hidden, plan)
			_, err := c.uw.Write(renameFirst('P', body, name, hidden))
			return err
		}
	}
	// Rules are fixed at start, so Decide reaches the precheck's verdict
	// and records it.
	v := c.session.Decide(c.ctx, req)
	if code != "" {
		v.SQLState = code
	}
	return c.refuseExtended(&v)
}

// changed records that name's meaning changed in the current batch: if
// other messages came before it in the batch, the change is uncertain
// until the batch's outcome is known.
func (c *clientConn) changed(key string) {
	if c.cycleMsgs == 0 {
		delete(c.uncertain, key)
		return
	}
	if c.uncertain == nil {
		c.uncertain = map[string]int64{}
	}
	c.uncertain[key] = c.cyclesSent
	c.mu.Lock()
	if c.watched == nil {
		c.watched, c.failed = map[int64]bool{}, map[int64]bool{}
	}
	c.watched[c.cyclesSent] = true
	c.mu.Unlock()
}

// settled reports whether name can be trusted: it was not changed after
// other messages of an earlier batch, or that batch had no error. It may
// wait for the server to finish that batch.
func (c *clientConn) settled(key string) (bool, error) {
	cyc, ok := c.uncertain[key]
	if !ok || cyc >= c.cyclesSent {
		return true, nil // not uncertain, or changed in this very batch (the server skips the rest of a failed batch)
	}
	if err := c.uw.Flush(); err != nil {
		return false, err
	}
	c.mu.Lock()
	for c.cyclesDone <= cyc && !c.relayGone {
		c.cycleCond.Wait()
	}
	failed := c.failed[cyc] || c.cyclesDone <= cyc
	c.mu.Unlock()
	if !failed {
		delete(c.uncertain, key)
	}
	return !failed, nil
}

func (c *clientConn) refuseUnsettled(what, name string) error {
	v := c.session.Decide(c.ctx, gateway.Request{Via: "extended",
		Refusal: fmt.Sprintf("weir cannot be sure what %s %q refers to: the batch that changed it failed, so the server may have skipped the change; prepare it under a new name", what, name)})
	v.SQLState = "26000"
	return c.refuseExtended(&v)
}

func (c *clientConn) storeStatement(name string, cmds []command.Command, hidden string, plan *pgsql.MaskPlan) {
	if c.stmts[name] != nil {
		c.changed("S" + name) // the unnamed statement being replaced
	}
	if c.stmts == nil {
		c.stmts = map[string]*prepared{}
		c.portals = map[string]*portal{}
	}
	c.stmts[name] = &prepared{cmds: cmds, hidden: hidden, plan: plan}
}

// hiddenPrefix names statements under review on the server; clients may
// not use it.
const hiddenPrefix = "weir_review_"

// renameFirst rebuilds a message whose body starts with skip (a cstring,
// for Bind the portal name) or directly with the statement name, with
// the statement name replaced.
func renameFirst(typ byte, body []byte, old, new string) []byte {
	out := make([]byte, 5, 5+len(body)+len(new))
	out[0] = typ
	out = append(out, new...)
	out = append(out, body[len(old):]...)
	binary.BigEndian.PutUint32(out[1:], uint32(len(out)-1))
	return out
}

// renameBind rebuilds a Bind with its statement name replaced.
func renameBind(body []byte, portal, old, new string) []byte {
	out := make([]byte, 5, 5+len(body)+len(new))
	out[0] = 'B'
	out = append(out, portal...)
	out = append(out, 0)
	out = append(out, new...)
	out = append(out, body[len(portal)+1+len(old):]...)
	binary.BigEndian.PutUint32(out[1:], uint32(len(out)-1))
	return out
}

func (c *clientConn) handleBind(raw, body []byte) error {
	portalName, rest, ok := cstring(body)
	if !ok {
		return &frameError{"malformed Bind message"}
	}
	stmt, _, ok := cstring(rest)
	if !ok {
		return &frameError{"malformed Bind message"}
	}
	if portalName == "" && c.cycleMsgs == 0 {
		delete(c.uncertain, "P") // replacing the unnamed portal at the start of a batch is certain
	}
	for _, k := range [][2]string{{"S" + stmt, "prepared statement"}, {"P" + portalName, "portal"}} {
		if ok, err := c.settled(k[0]); err != nil {
			return err
		} else if !ok {
			return c.refuseUnsettled(k[1], k[0][1:])
		}
	}
	p := c.stmts[stmt]
	if p == nil {
		return c.refuseUnknown("Bind", "prepared statement", stmt)
	}
	if portalName != "" && c.portals[portalName] != nil {
		return c.refuseUnknown("Bind", "portal (it already exists; Close it first)", portalName)
	}
	if c.cursors[portalName] {
		return c.refuseUnknown("Bind", "portal (a SQL cursor has that name)", portalName)
	}
	pt := c.portals[portalName]
	if pt == nil {
		pt = &portal{}
		c.portals[portalName] = pt
	} else {
		c.changed("P" + portalName) // the unnamed portal being replaced
	}
	pt.stmt = p
	pt.bind = append(pt.bind[:0], body...)
	if p.hidden != "" {
		raw = renameBind(body, portalName, stmt, p.hidden)
	}
	_, err := c.uw.Write(raw)
	return err
}

func (c *clientConn) handleExecute(raw, body []byte) error {
	portalName, _, ok := cstring(body)
	if !ok {
		return &frameError{"malformed Execute message"}
	}
	if ok, err := c.settled("P" + portalName); err != nil {
		return err
	} else if !ok {
		return c.refuseUnsettled("portal", portalName)
	}
	pt := c.portals[portalName]
	if pt == nil {
		return c.refuseUnknown("Execute", "portal", portalName)
	}
	p := pt.stmt
	if len(p.cmds) == 0 {
		if c.colMaskOn() {
			c.expectOne(expResult, nil)
		}
		_, err := c.uw.Write(raw)
		return err
	}
	c.deciding = bound{c: c, cmds: p.cmds, bind: pt.bind}
	v := c.session.Decide(c.ctx, gateway.Request{Commands: p.cmds, Via: "execute", Bound: &c.deciding})
	if !v.Allowed() {
		return c.refuseExtended(&v)
	}
	var plan *pgsql.MaskPlan
	if c.colMaskOn() {
		plan = c.resultPlan(&p.cmds[0], p.plan)
		c.keepPlans(p.cmds, []*pgsql.MaskPlan{p.plan})
	}
	c.applySQLPrepared(p.cmds)
	c.mu.Lock()
	c.units = append(c.units, unit{cycle: c.cyclesSent, seq: v.Seq, start: time.Now()})
	if c.colMaskOn() {
		if plan.Masked() {
			// The rows' types and formats decide how a masked value is
			// replaced; the client may not have asked for them.
			c.expectLocked(expSwallow, nil)
		}
		c.expectLocked(expResult, plan)
	}
	c.mu.Unlock()
	if plan.Masked() {
		if _, err := c.uw.Write(describePortal(portalName)); err != nil {
			return err
		}
	}
	_, err := c.uw.Write(raw)
	return err
}

func (c *clientConn) handleDescribeClose(typ byte, raw, body []byte) error {
	if len(body) < 2 {
		return &frameError{"malformed Describe/Close message"}
	}
	kind := body[0]
	name, _, ok := cstring(body[1:])
	if !ok || (kind != 'S' && kind != 'P') {
		return &frameError{"malformed Describe/Close message"}
	}
	key := string(kind) + name
	what := "prepared statement"
	if kind == 'P' {
		what = "portal"
	}
	if ok, err := c.settled(key); err != nil {
		return err
	} else if !ok {
		return c.refuseUnsettled(what, name)
	}
	known := c.stmts[name] != nil
	if kind == 'P' {
		known = c.portals[name] != nil
	}
	if typ == 'D' && !known {
		return c.refuseUnknown("Describe", what, name)
	}
	if typ == 'D' && c.colMaskOn() {
		c.expectOne(expDescribe, nil)
	}
	if kind == 'S' && known && c.stmts[name].hidden != "" {
		// body = kind byte, then the name
		nb := append([]byte{'S'}, renameFirst(typ, body[1:], name, c.stmts[name].hidden)[5:]...)
		raw = buildFrame(typ, nb)
	}
	if typ == 'C' {
		if known {
			c.changed(key)
		}
		if kind == 'P' {
			delete(c.portals, name)
		} else {
			delete(c.stmts, name)
		}
	}
	_, err := c.uw.Write(raw)
	return err
}

func (c *clientConn) refuseUnknown(msg, what, name string) error {
	v := c.session.Decide(c.ctx, gateway.Request{Via: strings.ToLower(msg),
		Refusal: fmt.Sprintf("%s of %s %q refused: weir did not see it prepared in this session", msg, what, name)})
	v.SQLState = "26000"
	return c.refuseExtended(&v)
}

func newNonce() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *clientConn) refusalResponse(v *gateway.Verdict) []byte {
	code := v.SQLState
	if code == "" {
		code = "42501"
	}
	buf, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: v.Public,
		Hint: "weir session " + c.session.ID + ", command " + strconv.FormatInt(v.Seq, 10)}).Encode(nil)
	return buf
}

// refuseSimple answers a simple-protocol message with weir's error, in
// order, by having the server fail a statement that cannot parse.
func (c *clientConn) refuseSimple(v *gateway.Verdict) error {
	nonce := newNonce()
	c.mu.Lock()
	c.refusals = append(c.refusals, refusal{cycle: c.cyclesSent, nonce: nonce, resp: c.refusalResponse(v)})
	c.cyclesSent++
	c.mu.Unlock()
	buf, _ := (&pgproto3.Query{String: sentinelPrefix + nonce}).Encode(nil)
	_, err := c.uw.Write(buf)
	return err
}

// refuseExtended does the same inside an extended-protocol batch: the
// server fails the sentinel Parse, rolls back the batch and skips to Sync,
// and so does weir.
func (c *clientConn) refuseExtended(v *gateway.Verdict) error {
	nonce := newNonce()
	c.mu.Lock()
	c.refusals = append(c.refusals, refusal{cycle: c.cyclesSent, nonce: nonce, resp: c.refusalResponse(v)})
	c.mu.Unlock()
	delete(c.stmts, "") // the sentinel replaces the unnamed statement upstream
	buf, _ := (&pgproto3.Parse{Query: sentinelPrefix + nonce}).Encode(nil)
	c.skipUntilSync = true
	_, err := c.uw.Write(buf)
	return err
}

// relay copies the server's messages to the client, substituting refusals
// and recording results.
func (c *clientConn) relay() {
	var cycle int64
	var cycleErr string
	masker := c.srv.gw.Masker()
	colMask := c.colMaskOn()
	if colMask && masker == nil {
		c.terminate("column masking is configured but the gateway has no masker", "XX000")
		return
	}
	c.rec.budget = c.srv.gw.RecordBudget()
	c.rec.enabled = c.rec.budget > 0
	for {
		typ, raw, body, err := c.ur.next()
		if err != nil {
			c.cwMu.Lock()
			c.cw.Flush()
			c.cwMu.Unlock()
			c.terminate("lost the connection to the upstream server", "08006")
			return
		}
		out := raw
		cur, refused := cycle, false
		switch typ {
		case 'E':
			code, msg := errorFields(body)
			c.mu.Lock()
			if len(c.refusals) > 0 && c.refusals[0].cycle == cycle && code == "42601" && strings.Contains(msg, c.refusals[0].nonce) {
				out = c.refusals[0].resp
				c.refusals = c.refusals[1:]
				refused = true
			} else if cycleErr == "" {
				cycleErr = code
			}
			c.mu.Unlock()
		case 'C':
			c.commandComplete(cycle, body)
		case 'I', 's':
			c.finishExtended(cycle, 0)
		case 'Z':
			c.readyForQuery(cycle, cycleErr)
			cycle++
			cycleErr = ""
		case 'S':
			name, rest, _ := cstring(body)
			val, _, _ := cstring(rest)
			if name == "client_encoding" && !safeEncoding(val) {
				c.setEnd("client_encoding changed to " + val)
				c.terminate(fmt.Sprintf("client_encoding %q is not allowed through weir", val), "0A000")
				return
			}
		}
		done := false
		if colMask {
			var skip bool
			var lerr error
			out, skip, done, lerr = c.lineageMessage(masker, typ, out, body, cur, refused)
			if lerr != nil {
				c.setEnd(lerr.Error())
				c.terminate(lerr.Error(), "0A000")
				return
			}
			if skip {
				continue
			}
		}
		if masker != nil && !done {
			var merr error
			if out, merr = c.maskMessage(masker, typ, out, body, &c.masked); merr != nil {
				c.setEnd(merr.Error())
				c.terminate(merr.Error(), "0A000")
				return
			}
		}
		// Rows are recorded while the session's budget lasts; after that
		// a row only marks its result as truncated (no parsing).
		if typ == 'D' || (typ == 'T' && c.rec.budget > 0) {
			c.rec.observe(typ, out)
		}
		c.cwMu.Lock()
		_, werr := c.cw.Write(out)
		if werr == nil && !c.ur.buffered() {
			werr = c.cw.Flush()
		}
		c.cwMu.Unlock()
		if werr != nil {
			c.terminate("", "")
			return
		}
	}
}

// errorFields extracts the SQLSTATE and message of an ErrorResponse.
func errorFields(body []byte) (code, msg string) {
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			return
		}
		switch f {
		case 'C':
			code = v
		case 'M':
			msg = v
		}
		body = rest
	}
	return
}

// rowsOf reads the row count from a CommandComplete tag ("SELECT 5",
// "INSERT 0 5", "UPDATE 3").
func rowsOf(body []byte) int64 {
	tag, _, _ := cstring(body)
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseInt(tag[i+1:], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func (c *clientConn) commandComplete(cycle int64, body []byte) {
	rows := rowsOf(body)
	c.mu.Lock()
	for i := range c.units {
		u := &c.units[i]
		if u.cycle != cycle || u.done {
			continue
		}
		u.rows += rows
		if !u.simple {
			c.finishLocked(u, "")
		}
		break
	}
	c.mu.Unlock()
}

func (c *clientConn) finishExtended(cycle int64, rows int64) {
	c.mu.Lock()
	for i := range c.units {
		u := &c.units[i]
		if u.cycle == cycle && !u.done && !u.simple {
			u.rows += rows
			c.finishLocked(u, "")
			break
		}
	}
	c.mu.Unlock()
}

func (c *clientConn) finishLocked(u *unit, errCode string) {
	u.done = true
	c.session.Result(gateway.Result{Seq: u.seq, Rows: u.rows, Duration: time.Since(u.start), Error: errCode, Masked: c.masked,
		MaskedColumns: c.maskedCols, Columns: c.rec.columns, Seen: c.rec.rows, RowsTruncated: c.rec.truncated})
	c.masked = mask.Counts{}
	c.maskedCols = nil
	c.rec.reset()
}

// readyForQuery closes a cycle: units not finished yet failed (the first)
// or were skipped by the server after an error.
func (c *clientConn) readyForQuery(cycle int64, cycleErr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watched[cycle] {
		delete(c.watched, cycle)
		if cycleErr != "" {
			c.failed[cycle] = true
		}
	}
	c.cyclesDone = cycle + 1
	c.cycleCond.Broadcast()
	blamed := false
	keep := c.units[:0]
	for i := range c.units {
		u := c.units[i]
		if u.cycle > cycle {
			keep = append(keep, u)
			continue
		}
		if u.done {
			continue
		}
		switch {
		case u.simple && cycleErr == "":
			c.finishLocked(&u, "")
		case !blamed && cycleErr != "":
			blamed = true
			c.finishLocked(&u, cycleErr)
		default:
			u.done = true
			c.session.Result(gateway.Result{Seq: u.seq, Skipped: true, Error: cycleErr})
		}
	}
	c.units = keep
	for len(c.refusals) > 0 && c.refusals[0].cycle <= cycle {
		c.refusals = c.refusals[1:]
	}
}
