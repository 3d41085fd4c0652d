// Package postgres is weir's PostgreSQL front end.
//
// It speaks the PostgreSQL wire protocol to unchanged clients (psql, pgx,
// JDBC…) and to the upstream server (Azure Database for PostgreSQL). It
// knows the protocol and nothing else: every statement is classified with
// the real PostgreSQL parser (internal/pgsql) and handed to the gateway,
// which decides and audits; this package only does what the verdict says.
//
// Threat model, in the order a connection meets it:
//   - startup: TLS via SSLRequest, and no byte sent before the handshake
//     completes is ever read as protocol (CVE-2021-23214); cleartext
//     password (the weir token) only inside TLS unless the operator allowed
//     plaintext on a loopback listener; replication, `options` and unknown
//     startup parameters are refused; client encodings where a multi-byte
//     character can hide a quote are refused (CVE-2006-2314);
//   - every frame is length-checked and capped; a bad frame closes the
//     connection with an error and is never re-framed (CVE-2024-27304);
//   - every Query, Parse, Bind, Execute is decided before anything is
//     forwarded; Bind/Execute/Describe of a name weir did not see parsed is
//     refused; FunctionCall, which skips SQL, is refused;
//   - a refusal is delivered by sending the upstream server a statement
//     that cannot parse, and replacing its syntax error with weir's error:
//     the client sees responses in order, an open transaction is aborted as
//     PostgreSQL itself would abort it, and an extended-protocol batch is
//     rolled back whole;
//   - cancel keys are weir's own per session, so a client can cancel only
//     its own query.
package postgres

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/pgsql"
	"github.com/weir-gw/weir/internal/upstream"
)

// Protocol codes of the startup packet.
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102

	maxStartupPacket = 10000 // PostgreSQL's own MAX_STARTUP_PACKET_LENGTH
	startupTimeout   = 30 * time.Second
)

// Server accepts PostgreSQL clients for every postgres target.
type Server struct {
	gw         *gateway.Gateway
	tls        *tls.Config
	plaintext  bool
	maxMessage int
	log        *slog.Logger
	classifier *pgsql.Classifier

	upstreams map[string]*upstreamTarget
	// lin is nil unless policy.masking.columns masks columns by lineage.
	lin *lineage

	mu      sync.Mutex
	cancels map[uint32]*clientConn // by weir's backend pid
	conns   map[*clientConn]struct{}
	ln      net.Listener
	closed  bool
	wg      sync.WaitGroup
}

type upstreamTarget struct {
	cfg  *config.Target
	base *pgconn.Config
	cred upstream.Credential
	cat  *targetCatalog // nil unless columns are masked
}

// NewServer prepares the front end; tlsConfig is required.
func NewServer(gw *gateway.Gateway, tlsConfig *tls.Config, log *slog.Logger) (*Server, error) {
	cfg := gw.Config()
	s := &Server{
		gw: gw, tls: tlsConfig, plaintext: cfg.TLS.AllowPlaintextLoopback, maxMessage: cfg.Limits.MaxMessageBytes, log: log,
		classifier: pgsql.NewClassifier(8192),
		upstreams:  map[string]*upstreamTarget{},
		cancels:    map[uint32]*clientConn{},
		conns:      map[*clientConn]struct{}{},
	}
	if m := cfg.Policy.Masking; len(m.Columns) > 0 {
		rules, err := pgsql.NewMaskRules(m.Columns, m.AllowEquality)
		if err != nil {
			return nil, err
		}
		s.lin = &lineage{rules: rules, ttl: m.CatalogTTL}
		if s.lin.ttl <= 0 {
			s.lin.ttl = defaultCatalogTTL
		}
	}
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		if t.Kind != config.KindPostgres {
			continue
		}
		base, err := upstreamConfig(t)
		if err != nil {
			return nil, err
		}
		cred, err := upstream.ForTarget(t)
		if err != nil {
			return nil, err
		}
		ut := &upstreamTarget{cfg: t, base: base, cred: cred}
		if s.lin != nil {
			ut.cat = &targetCatalog{t: ut, lin: s.lin}
		}
		s.upstreams[t.Name] = ut
	}
	return s, nil
}

func upstreamConfig(t *config.Target) (*pgconn.Config, error) {
	host, port, err := net.SplitHostPort(t.Address)
	if err != nil {
		return nil, fmt.Errorf("target %s: address: %w", t.Name, err)
	}
	// Built from config values only: quoting guards against a database or
	// user name that holds spaces or quotes being read as other settings.
	dsn := fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=%s connect_timeout=10",
		quoteDSN(host), quoteDSN(port), quoteDSN(t.Database), quoteDSN(t.Username), quoteDSN(t.SSLMode))
	if t.SSLRootCert != "" {
		dsn += " sslrootcert=" + quoteDSN(t.SSLRootCert)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	// ParseConfig fills in a fallback list (e.g. sslmode=prefer tries TLS
	// then plain); weir connects exactly as configured.
	cfg.Fallbacks = nil
	return cfg, nil
}

func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// Close stops accepting, ends every session and waits for them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	conns := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.terminate("weir is shutting down", "57P01")
	}
	s.wg.Wait()
}

func (s *Server) handle(raw net.Conn) {
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(startupTimeout))
	conn, startup, err := s.startup(raw)
	if err != nil {
		if !errors.Is(err, errHandled) {
			s.log.Debug("startup failed", "client", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	if conn != raw {
		defer conn.Close()
	}
	cc := &clientConn{srv: s, conn: conn, raw: raw}
	cc.run(startup)
}

// InternalClient describes a client inside weir itself that speaks the
// PostgreSQL protocol to this front end over an in-process connection (the
// MCP server's query tool). Its statements take the very same path as
// psql's (classification, policy, approval, audit, masking); only the
// session's protocol name and claimed context differ.
type InternalClient struct {
	Protocol   string            // e.g. "mcp"
	ClientAddr string            // the real client's address, for the audit log
	Claimed    map[string]string // e.g. the MCP client's name and version
}

// ServeInternal serves one in-process connection (net.Pipe) from an
// InternalClient until it closes. No TLS is negotiated: the bytes never
// leave the process. The client still authenticates with a weir token.
func (s *Server) ServeInternal(conn net.Conn, ic InternalClient) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(startupTimeout))
	var startup *pgproto3.StartupMessage
	for startup == nil {
		body, err := readStartupPacket(conn)
		if err != nil {
			return
		}
		code := binary.BigEndian.Uint32(body)
		switch {
		case code == codeSSLRequest || code == codeGSSENCRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return
			}
		case code == pgproto3.ProtocolVersion30:
			msg := &pgproto3.StartupMessage{}
			if err := msg.Decode(body); err != nil {
				writeFatal(conn, "08P01", "malformed startup packet")
				return
			}
			startup = msg
		default:
			writeFatal(conn, "0A000", "an internal client speaks protocol 3.0 without cancel requests")
			return
		}
	}
	cc := &clientConn{srv: s, conn: conn, raw: conn, internal: &ic}
	cc.run(startup)
}

var errHandled = errors.New("handled")

// startup handles SSLRequest / GSSENCRequest / CancelRequest and returns the
// (possibly TLS) connection and the StartupMessage.
func (s *Server) startup(raw net.Conn) (net.Conn, *pgproto3.StartupMessage, error) {
	conn := raw
	isTLS := false
	for {
		body, err := readStartupPacket(conn)
		if err != nil {
			if fe, ok := err.(*frameError); ok {
				writeFatal(conn, "08P01", fe.msg)
			}
			return nil, nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case codeSSLRequest:
			if isTLS {
				writeFatal(conn, "08P01", "SSLRequest received twice")
				return nil, nil, errHandled
			}
			if _, err := raw.Write([]byte{'S'}); err != nil {
				return nil, nil, err
			}
			// The packet was read with exact-size reads from the socket, so
			// nothing the client pipelined after SSLRequest sits in a
			// buffer of ours: such bytes reach the TLS handshake, which
			// rejects them.
			tc := tls.Server(raw, s.tls)
			if err := tc.Handshake(); err != nil {
				return nil, nil, fmt.Errorf("TLS handshake: %w", err)
			}
			conn, isTLS = tc, true
		case codeGSSENCRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, nil, err
			}
		case codeCancelRequest:
			s.cancel(body)
			return nil, nil, errHandled
		default:
			if code>>16 != 3 {
				writeFatal(conn, "0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: weir speaks protocol 3.0", code>>16, code&0xffff))
				return nil, nil, errHandled
			}
			msg := &pgproto3.StartupMessage{}
			// Decode accepts 3.0 and 3.2; for any other 3.x, decode as 3.0
			// and negotiate down below.
			binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
			if err := msg.Decode(body); err != nil {
				writeFatal(conn, "08P01", "malformed startup packet")
				return nil, nil, errHandled
			}
			msg.ProtocolVersion = code
			if !isTLS && !(s.plaintext && isLoopback(raw)) {
				writeFatal(conn, "28000", "weir requires TLS: connect with sslmode=require (the password is your weir token)")
				return nil, nil, errHandled
			}
			return conn, msg, nil
		}
	}
}

func isLoopback(c net.Conn) bool {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// readStartupPacket reads one length-prefixed startup packet with exact
// reads (no read-ahead).
func readStartupPacket(c net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > maxStartupPacket {
		return nil, &frameError{fmt.Sprintf("invalid startup packet length %d", n)}
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, err
	}
	return body, nil
}

func writeFatal(w io.Writer, code, msg string) {
	buf, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	w.Write(buf)
}

// cancel forwards a CancelRequest to the upstream server of the session
// that owns the key, and to nobody otherwise (as PostgreSQL, silently).
func (s *Server) cancel(body []byte) {
	if len(body) < 12 {
		return
	}
	pid := binary.BigEndian.Uint32(body[4:8])
	secret := body[8:]
	s.mu.Lock()
	cc := s.cancels[pid]
	s.mu.Unlock()
	if cc == nil || subtle.ConstantTimeCompare(secret, cc.cancelSecret[:]) != 1 {
		s.log.Info("cancel request with unknown key refused", "pid", pid)
		return
	}
	cc.session.Note("cancel", map[string]any{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cc.upstreamCancel(ctx); err != nil {
		s.log.Warn("forwarding cancel request", "session", cc.session.ID, "err", err)
	}
}

func (s *Server) register(cc *clientConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[cc] = struct{}{}
	for {
		pid := rand.Uint32() & 0x7fffffff
		if pid != 0 && s.cancels[pid] == nil {
			cc.pid = pid
			s.cancels[pid] = cc
			return
		}
	}
}

func (s *Server) unregister(cc *clientConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, cc)
	if s.cancels[cc.pid] == cc {
		delete(s.cancels, cc.pid)
	}
}
