package mask

import (
	"strings"
	"testing"
)

func TestLooksText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"id,email\n1,a@b.c\r\n", true},
		{"tab\tseparated\fform feed", true},
		{"héllo wörld ✓", true},
		{"cut rune at the end \xe2\x9c", true},
		{"\x89PNG\r\n\x1a\n\x00\x00", false},
		{"latin-1 caf\xe9 au lait", false},
		{"nul\x00inside", false},
		{strings.Repeat("\x01", 10) + strings.Repeat("a", 90), false},
		{"\x1b[31mred\x1b[0m " + strings.Repeat("log line ", 50), true},
	} {
		if got := LooksText([]byte(tc.in)); got != tc.want {
			t.Errorf("LooksText(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
