package blob

import (
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	for _, c := range []struct {
		in, container, blob, err string
	}{
		{"", "", "", ""},
		{"/", "", "", ""},
		{"/reports", "reports", "", ""},
		{"/REPORTS/Q1.csv", "reports", "Q1.csv", ""},
		{"/reports/q1/a.csv", "reports", "q1/a.csv", ""},
		{"/reports/q1%2Fa.csv", "reports", "q1/a.csv", ""}, // the Go SDK's form
		{"/reports/a%20b+c.csv", "reports", "a b+c.csv", ""},
		{"/$root/x", "$root", "x", ""},
		{"/reports/..%2Fscratch", "", "", "dot segments"},
		{"/reports/../scratch/x", "", "", "dot segments"},
		{"/reports/%2e%2e/x", "", "", "dot segments"},
		{"/reports/./x", "", "", "dot segments"},
		{"/../reports/x", "", "", "dot segments"},
		{"/reports//x", "", "", "empty path segments"},
		{"/reports/x%2F%2Fy", "", "", "empty path segments"},
		{"/reports/x/", "", "", "trailing"},
		{"/reports/", "", "", "trailing"},
		{"/reports/q1%252Fa.csv", "", "", "percent-encoded twice"},
		{"/reports%2Fq1/a", "", "", "container name must not be percent-encoded"},
		{"/reports;v=1/x", "", "", "';'"},
		{"/reports/a;b", "", "", "';'"},
		{"/reports/a\\b", "", "", "backslashes"},
		{"/reports/a%5Cb", "", "", "backslashes"},
		{"/reports/a%00b", "", "", "control"},
		{"/reports/a%zz", "", "", "invalid percent-encoding"},
		{"/reports/a%ff", "", "", "UTF-8"},
		{"/re/x", "", "", "invalid container name"},
		{"/re--ports/x", "", "", "invalid container name"},
		{"/-reports/x", "", "", "invalid container name"},
		{"/rep_orts/x", "", "", "invalid container name"},
		{"reports/x", "", "", "must start"},
		{"/reports/" + strings.Repeat("a", 1025), "", "", "longer than 1024"},
	} {
		p, err := CanonicalPath(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: want error with %q, got %v (%+v)", c.in, c.err, err, p)
			}
			continue
		}
		if err != nil || p.Container != c.container || p.Blob != c.blob {
			t.Errorf("%q: got %+v, %v", c.in, p, err)
		}
	}
}

// FuzzCanonicalPath: no panic; an accepted path re-serializes to a path
// that canonicalizes to itself (weir and upstream read the same thing),
// and never holds a dot or empty segment.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/reports/q1%2Fa.csv", "/reports/..%2Fx", "/a%252F", "/reports/a%20b", "/$root/x", "/REPORTS/x/y/z", "/reports/%e2%82%ac"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := CanonicalPath(in)
		if err != nil {
			return
		}
		again, err := CanonicalPath(p.Escaped())
		if err != nil || again != p {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", in, p, p.Escaped(), again, err)
		}
		for _, seg := range strings.Split(p.Blob, "/") {
			if p.Blob != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("%q: segment %q accepted", in, seg)
			}
		}
		if p.Container != strings.ToLower(p.Container) {
			t.Fatalf("container %q not lower-cased", p.Container)
		}
	})
}
