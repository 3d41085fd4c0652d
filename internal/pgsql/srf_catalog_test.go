package pgsql

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/weir-gw/weir/internal/testpg"
)

// Every function weir lets through that returns a set must be known as
// set-returning, or its row count would read a masked argument unnoticed.
// The real catalog of a real PostgreSQL says which they are.
func TestSetReturningMatchesCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg, err := testpg.Start(testpg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var names []string
	for n, e := range knownFuncs {
		if e.risks == 0 && !e.write {
			names = append(names, n)
		}
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT proname::text FROM pg_proc WHERE proretset AND proname = ANY($1) ORDER BY 1", names)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("the catalog names no set-returning function: the query is wrong")
	}
	for _, n := range got {
		if !setReturning[n] {
			t.Errorf("%s returns a set but is not in setReturning", n)
		}
	}
	t.Logf("set-returning: %v", slices.Compact(got))
}
