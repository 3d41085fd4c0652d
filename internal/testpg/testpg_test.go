package testpg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// start skips the test when PostgreSQL is not installed on a developer's
// machine, but fails on CI (CI=true), where scripts/deps.sh must have
// installed it.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func TestStartExecLogStop(t *testing.T) {
	s := start(t, Options{Settings: map[string]string{"work_mem": "7MB"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := s.Exec(ctx, "postgres", "CREATE DATABASE shop"); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("testpg_marker_%d", time.Now().UnixNano())
	if err := s.Exec(ctx, "shop", "CREATE TABLE t(id int, v text); INSERT INTO t VALUES (1, '"+marker+"')"); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, s.DSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	var v, workMem string
	if err := conn.QueryRow(ctx, "SELECT v, current_setting('work_mem') FROM t WHERE id = $1", 1).Scan(&v, &workMem); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if v != marker {
		t.Fatalf("got %q, want %q", v, marker)
	}
	if workMem != "7MB" {
		t.Fatalf("Options.Settings not applied: work_mem = %q", workMem)
	}

	log, err := s.Log()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "statement: CREATE TABLE t(id int, v text); INSERT INTO t VALUES (1, '"+marker+"')") {
		t.Fatalf("log does not contain the statement; log:\n%s", log)
	}
	if strings.Contains(log, "never_sent_statement") {
		t.Fatal("log contains a statement that was never sent")
	}

	// TCP needs the real password.
	u, _ := url.Parse(s.DSN("shop"))
	u.User = url.UserPassword(s.SuperUser, "wrong")
	if c, err := pgx.Connect(ctx, u.String()); err == nil {
		c.Close(ctx)
		t.Fatal("connected with a wrong password")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: unexpected error %v", err)
	}

	// The unix socket trusts local users.
	sock := fmt.Sprintf("host=%s port=%d user=%s dbname=shop", s.SocketDir, s.Port, s.SuperUser)
	c, err := pgx.Connect(ctx, sock)
	if err != nil {
		t.Fatalf("unix socket: %v", err)
	}
	c.Close(ctx)

	root, addr := s.Root, s.Addr()
	s.Stop()
	s.Stop() // idempotent
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after Stop (err=%v)", root, err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	defer ccancel()
	if c, err := pgx.Connect(cctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable"); err == nil {
		c.Close(ctx)
		t.Fatal("server still accepts connections after Stop")
	}
}

func TestTLS(t *testing.T) {
	s := start(t, Options{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// verify-full against the generated certificate.
	u, _ := url.Parse(s.DSN("postgres"))
	q := u.Query()
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", s.CertFile)
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	if !ssl {
		t.Fatal("connection is not encrypted")
	}
}

func TestFindBin(t *testing.T) {
	if _, err := FindBin("no-such-postgres-program"); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("got %v, want ErrNotInstalled", err)
	}
	if versionKey("/usr/lib/postgresql/15/bin") <= versionKey("/usr/lib/postgresql/9.6/bin") {
		t.Fatal("version order")
	}
}
