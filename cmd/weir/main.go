// Command weir is the gateway's CLI. It stays thin: it parses flags and
// calls the packages under internal/.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		// One line, as the CLI contract promises.
		fmt.Fprintln(os.Stderr, "weir: "+strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}
