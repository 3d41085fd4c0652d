package pgsql

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/command"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/classify/*.sqltest")

// Golden files, one per corpus family: testdata/classify/*.sqltest.
//
// Free text up to the first case is the file's comment. Each case is
//
//	=== name of the case
//	SQL text (every line up to the separator; the last newline is not part of it)
//	----
//	expected JSON: the commands, or {"error": …} when Classify fails
//
// Run `go test ./internal/pgsql -run TestGolden -update` to rewrite the
// expected output after a deliberate change, and review the diff.

const (
	caseMarker = "=== "
	separator  = "----"
)

type goldenCase struct {
	name     string
	sql      string
	expected string
}

type goldenFile struct {
	comment string
	cases   []goldenCase
}

func parseGolden(t *testing.T, data []byte) goldenFile {
	t.Helper()
	var gf goldenFile
	lines := strings.SplitAfter(string(data), "\n")
	i := 0
	var comment strings.Builder
	for ; i < len(lines) && !strings.HasPrefix(lines[i], caseMarker); i++ {
		comment.WriteString(lines[i])
	}
	gf.comment = comment.String()
	for i < len(lines) {
		c := goldenCase{name: strings.TrimSpace(strings.TrimPrefix(lines[i], caseMarker))}
		i++
		var sql strings.Builder
		for ; i < len(lines) && strings.TrimRight(lines[i], "\r\n") != separator; i++ {
			sql.WriteString(lines[i])
		}
		if i == len(lines) {
			t.Fatalf("case %q: no %q separator", c.name, separator)
		}
		i++
		c.sql = strings.TrimSuffix(sql.String(), "\n")
		var exp strings.Builder
		for ; i < len(lines) && !strings.HasPrefix(lines[i], caseMarker); i++ {
			exp.WriteString(lines[i])
		}
		c.expected = strings.TrimSpace(exp.String())
		gf.cases = append(gf.cases, c)
	}
	return gf
}

func (gf goldenFile) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(gf.comment)
	for _, c := range gf.cases {
		b.WriteString(caseMarker + c.name + "\n")
		b.WriteString(c.sql + "\n")
		b.WriteString(separator + "\n")
		b.WriteString(c.expected + "\n\n")
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// goldenCommand is the JSON form of a command in golden files. Protocol is
// always "postgres" and Fingerprint has tests of its own: both are left out
// to keep the files readable.
type goldenCommand struct {
	Verb      string         `json:"verb"`
	Kind      command.Kind   `json:"kind"`
	Text      string         `json:"text"`
	Reads     []string       `json:"reads,omitempty"`
	Writes    []string       `json:"writes,omitempty"`
	Functions []string       `json:"functions,omitempty"`
	Risks     []command.Risk `json:"risks,omitempty"`
	Prepared  string         `json:"prepared,omitempty"`
}

type goldenError struct {
	Error    string `json:"error"`
	Message  string `json:"message,omitempty"`
	Position int    `json:"position,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

func render(t *testing.T, cmds []command.Command, err error) string {
	t.Helper()
	var v any
	var pe *ParseError
	var ce *ClassifyError
	switch {
	case errors.As(err, &pe):
		v = goldenError{Error: "parse", Message: pe.Message, Position: pe.Position}
	case errors.As(err, &ce):
		v = goldenError{Error: "classify", Reason: ce.Reason}
	case err != nil:
		t.Fatalf("unexpected error type %T: %v", err, err)
	default:
		out := make([]goldenCommand, 0, len(cmds))
		for _, c := range cmds {
			if c.Protocol != Protocol {
				t.Errorf("Protocol = %q", c.Protocol)
			}
			out = append(out, goldenCommand{c.Verb, c.Kind, c.Text, c.Reads, c.Writes, c.Functions, c.Risks, c.Prepared})
		}
		v = out
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "classify", "*.sqltest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".sqltest"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			gf := parseGolden(t, data)
			changed := false
			for i := range gf.cases {
				c := &gf.cases[i]
				cmds, err := Classify(c.sql)
				got := render(t, cmds, err)
				if got == c.expected {
					continue
				}
				if *update {
					c.expected, changed = got, true
					continue
				}
				t.Errorf("%s: case %q\nSQL: %q\n--- got\n%s\n--- want\n%s", file, c.name, c.sql, got, c.expected)
			}
			if changed {
				if err := os.WriteFile(file, append(gf.bytes(), '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("updated %s", file)
			}
		})
	}
}
