package pgsql

import (
	"fmt"
	"os"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func TestDump(t *testing.T) {
	for _, q := range []string{os.Getenv("Q")} {
		j, err := pg_query.ParseToJSON(q)
		if err != nil {
			fmt.Printf("ERR %#v\n", err)
			continue
		}
		fmt.Println(j)
	}
}
