// Package testpg starts a real, throwaway PostgreSQL server for tests.
//
// Each Start runs initdb into a fresh temporary directory, starts the server on
// a free loopback port and waits until it accepts an authenticated connection.
// Stop shuts it down and removes the directory. Nothing is shared between
// servers, so tests can start as many as they need.
//
// The server:
//   - listens on 127.0.0.1 only (TCP needs the superuser's password, checked
//     with scram-sha-256, so a proxy that logs in with a username/password is
//     really authenticated) and on a unix socket inside its directory (trust);
//   - logs every statement (log_statement=all) to a file that Log returns, so a
//     test can prove that a denied statement never reached the server;
//   - runs with fsync=off and friends: fast, and not crash safe (it is thrown
//     away anyway);
//   - with Options.TLS, has ssl=on with a generated self-signed certificate for
//     127.0.0.1 and localhost (CertFile, usable as sslrootcert).
//
// PostgreSQL refuses to run as root. When the test runs as root, the server is
// run as the "postgres" OS user (which the Debian packages create); its
// directory is made world-traversable and owned by that user.
//
// Binaries are found with FindBin: $PATH first, then
// /usr/lib/postgresql/*/bin, newest version first. scripts/deps.sh installs
// them on a fresh Debian machine.
package testpg

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned (wrapped) by FindBin and Start when the
// PostgreSQL server binaries cannot be found. Run scripts/deps.sh.
var ErrNotInstalled = errors.New("PostgreSQL server binaries not found (install them with scripts/deps.sh)")

// Options tune a server.
type Options struct {
	// Settings are extra postgresql.conf settings (name → value). They are
	// written after the defaults, so they override them.
	Settings map[string]string
	// TLS turns on ssl=on with a generated self-signed certificate.
	TLS bool
}

// Server is one running PostgreSQL server.
type Server struct {
	Host      string // "127.0.0.1"
	Port      int
	Dir       string // data directory (PGDATA)
	Root      string // temporary directory holding Dir, the socket, the log and TLS files
	SocketDir string // unix socket directory (trust authentication)
	SuperUser string // "postgres"
	Password  string // the superuser's password (TCP connections need it)
	Version   string // e.g. "15.18" from `postgres --version`
	CertFile  string // with Options.TLS: the server certificate (self-signed; use as sslrootcert)
	KeyFile   string // with Options.TLS: its private key
	LogFile   string // server log (Log reads it)

	tls      bool
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the postmaster process has exited
	stopOnce sync.Once
}

// Start creates and starts a new server. The caller must call Stop.
func Start(opts Options) (*Server, error) {
	initdb, err := FindBin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := sibling(initdb, "postgres")
	if err != nil {
		return nil, err
	}

	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("testpg: running as root, and PostgreSQL refuses to run as root, but the OS user %q to run it as does not exist (%v); install the Debian postgresql package (scripts/deps.sh creates it) or run the tests as a normal user", "postgres", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	base := os.TempDir()
	if cred != nil || len(base) > 60 {
		// The postgres user must be able to traverse it (a root TMPDIR may
		// not be), and unix socket paths are limited to ~107 bytes.
		base = "/tmp"
	}
	root, err := os.MkdirTemp(base, "testpg-")
	if err != nil {
		return nil, fmt.Errorf("testpg: %w", err)
	}
	s := &Server{
		Host:      "127.0.0.1",
		Root:      root,
		Dir:       filepath.Join(root, "data"),
		SocketDir: filepath.Join(root, "sock"),
		SuperUser: "postgres",
		LogFile:   filepath.Join(root, "server.log"),
		tls:       opts.TLS,
		exited:    make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()

	if err := os.Chmod(root, 0o755); err != nil {
		return nil, fmt.Errorf("testpg: %w", err)
	}
	if err := os.Mkdir(s.SocketDir, 0o755); err != nil {
		return nil, fmt.Errorf("testpg: %w", err)
	}
	s.Password = randomHex(16)
	pwfile := filepath.Join(root, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("testpg: %w", err)
	}
	if opts.TLS {
		s.CertFile = filepath.Join(root, "server.crt")
		s.KeyFile = filepath.Join(root, "server.key")
		if err := writeSelfSigned(s.CertFile, s.KeyFile); err != nil {
			return nil, fmt.Errorf("testpg: generating TLS certificate: %w", err)
		}
	}
	if cred != nil {
		if err := chownAll(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("testpg: %w", err)
		}
	}

	if out, err := s.command(cred, postgres, "--version").CombinedOutput(); err == nil {
		f := strings.Fields(string(out))
		if len(f) > 0 {
			s.Version = f[len(f)-1]
		}
	}

	initCmd := s.command(cred, initdb,
		"-D", s.Dir,
		"-U", s.SuperUser,
		"--pwfile", pwfile,
		"--auth-local", "trust",
		"--auth-host", "scram-sha-256",
		"--encoding", "UTF8",
		"--no-locale",
		"--no-sync",
	)
	if out, err := initCmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testpg: initdb failed: %v\n%s", err, out)
	}
	os.Remove(pwfile)

	if err := s.writeConf(opts); err != nil {
		return nil, err
	}

	// Start the postmaster directly (not through pg_ctl) so that it is our
	// child: it gets SIGQUIT (immediate shutdown) if the test process dies
	// without calling Stop, and its stderr (the log) goes to LogFile.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("testpg: %w", err)
		}
		s.Port = port
		err = s.startPostmaster(cred, postgres)
		if err == nil {
			ok = true
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			break
		}
	}
	return nil, lastErr
}

func (s *Server) startPostmaster(cred *syscall.Credential, postgres string) error {
	logf, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testpg: %w", err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, 2)

	cmd := s.command(cred, postgres, "-D", s.Dir, "-p", strconv.Itoa(s.Port))
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.SysProcAttr.Setpgid = true // a ^C in the terminal goes to the test, which then stops us

	// Pdeathsig fires when the *thread* that started the child exits, so
	// start it from a goroutine locked to its thread that lives exactly as
	// long as the child (it waits for it).
	exited := make(chan struct{})
	started := make(chan error, 1)
	var waitErr error
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("testpg: starting postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = exited

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("testpg: postgres exited during startup (%v):\n%s", waitErr, s.logFrom(start))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("testpg: postgres not ready after 60s (last error: %v):\n%s", err, s.logFrom(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logFrom(off int64) string {
	b, _ := os.ReadFile(s.LogFile)
	if off < int64(len(b)) {
		b = b[off:]
	}
	return string(b)
}

// command builds an exec.Cmd that runs as cred (nil: as ourselves) in Root,
// with a C locale.
func (s *Server) command(cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.Root
	env := []string{"LC_ALL=C", "LANG=C", "PATH=" + os.Getenv("PATH"), "TZ=UTC"}
	if cred != nil {
		env = append(env, "HOME="+s.Root, "USER=postgres", "LOGNAME=postgres")
	} else {
		env = append(env, "HOME="+os.Getenv("HOME"))
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if cred != nil {
		cmd.SysProcAttr.Credential = cred
	}
	return cmd
}

func (s *Server) writeConf(opts Options) error {
	var b strings.Builder
	b.WriteString("\n# --- testpg ---\n")
	set := func(k, v string) {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(v, "'", "''"))
	}
	set("listen_addresses", "127.0.0.1")
	set("unix_socket_directories", s.SocketDir)
	set("unix_socket_permissions", "0777")
	set("fsync", "off")
	set("synchronous_commit", "off")
	set("full_page_writes", "off")
	set("password_encryption", "scram-sha-256")
	set("logging_collector", "off")
	set("log_destination", "stderr")
	set("log_statement", "all")
	set("log_line_prefix", "%m [%p] ")
	set("log_timezone", "UTC")
	set("timezone", "UTC")
	set("max_connections", "100")
	set("shared_buffers", "64MB")
	set("dynamic_shared_memory_type", "posix")
	if opts.TLS {
		set("ssl", "on")
		set("ssl_cert_file", s.CertFile)
		set("ssl_key_file", s.KeyFile)
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, opts.Settings[k])
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("testpg: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		return fmt.Errorf("testpg: %w", err)
	}
	return nil
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN is a postgres:// URL for pgx that logs in as the superuser over TCP.
// With Options.TLS it uses sslmode=require, otherwise sslmode=disable.
func (s *Server) DSN(database string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(s.SuperUser, s.Password),
		Host:   s.Addr(),
		Path:   "/" + database,
	}
	q := url.Values{}
	if s.tls {
		q.Set("sslmode", "require")
	} else {
		q.Set("sslmode", "disable")
	}
	q.Set("connect_timeout", "10")
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs sql (one or several statements, simple query protocol) in
// database as the superuser.
func (s *Server) Exec(ctx context.Context, database, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN(database))
	if err != nil {
		return fmt.Errorf("testpg: connect to %q: %w", database, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("testpg: exec in %q: %w", database, err)
	}
	return nil
}

// Log returns the whole server log so far. Every statement that reached the
// server is in it (log_statement=all), each line prefixed with
// "timestamp [pid] ".
func (s *Server) Log() (string, error) {
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		return "", fmt.Errorf("testpg: %w", err)
	}
	return string(b), nil
}

// Stop shuts the server down (fast shutdown, then immediate, then SIGKILL)
// and removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				s.kill()
			}
		}
		if s.Root != "" {
			os.RemoveAll(s.Root)
		}
	})
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
	select {
	case <-s.exited:
		return
	case <-time.After(5 * time.Second):
	}
	// Kill the whole process group (the postmaster and its children).
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

// FindBin finds a PostgreSQL program: in $PATH first, then in
// /usr/lib/postgresql/*/bin, newest major version first.
func FindBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return versionKey(dirs[i]) > versionKey(dirs[j])
	})
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("testpg: %q: %w", name, ErrNotInstalled)
}

// sibling finds name in the same directory as bin (after resolving
// symlinks), so that initdb and postgres come from the same version;
// otherwise falls back to FindBin.
func sibling(bin, name string) (string, error) {
	if real, err := filepath.EvalSymlinks(bin); err == nil {
		p := filepath.Join(filepath.Dir(real), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return FindBin(name)
}

// versionKey turns /usr/lib/postgresql/15/bin into 15000, 9.6 into 9006.
func versionKey(dir string) int {
	v := filepath.Base(filepath.Dir(dir))
	parts := strings.SplitN(v, ".", 2)
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return -1
	}
	minor := 0
	if len(parts) == 2 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major*1000 + minor
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func chownAll(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// writeSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1,
// ::1 and localhost, and its key (mode 0600, as PostgreSQL requires).
func writeSelfSigned(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"weir testpg"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	var cb, kb bytes.Buffer
	pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&kb, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(certFile, cb.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, kb.Bytes(), 0o600)
}
