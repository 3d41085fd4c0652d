package pgsql

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestDev(t *testing.T) {
	for _, q := range strings.Split(os.Getenv("Q"), "\n") {
		cmds, err := Classify(q)
		if err != nil {
			fmt.Printf("%q => ERR %T %v\n", q, err, err)
			continue
		}
		for _, c := range cmds {
			c.Protocol = ""
			b, _ := json.Marshal(c)
			fmt.Printf("%q => %s\n", q, b)
		}
	}
}
