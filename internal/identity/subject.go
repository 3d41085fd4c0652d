package identity

import (
	"fmt"

	"github.com/weir-gw/weir/internal/config"
)

// subjectPattern matches a federated token's whole sub claim.
//
// Syntax (documented in docs/identity.md): '*' matches any run of
// characters except ':', '**' matches any run of characters including ':',
// '?' matches one character other than ':', and every other character
// matches itself. There are no character classes and no escapes, so a
// pattern reads the way it looks. ':' is the separator of GitHub Actions
// subjects ("repo:OWNER/REPO:ref:REF", "repo:OWNER/REPO:environment:ENV"),
// so "repo:acme/shop:ref:refs/heads/*" admits every branch of acme/shop but
// "repo:acme/*" never stretches into another claim's part of the subject.
type subjectPattern struct {
	src  string
	toks []subjectTok
}

type tokKind uint8

const (
	tokLit  tokKind = iota
	tokOne          // ?
	tokStar         // *
	tokAny          // **
)

type subjectTok struct {
	kind tokKind
	r    rune
}

// maxSubjectLen bounds the subjects matched at all.
const maxSubjectLen = 2048

func compileSubject(p string) (*subjectPattern, error) {
	if err := config.CheckSubjectPattern(p); err != nil {
		return nil, err
	}
	rs := []rune(p)
	sp := &subjectPattern{src: p}
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '*':
			if i+1 < len(rs) && rs[i+1] == '*' {
				sp.toks = append(sp.toks, subjectTok{kind: tokAny})
				i++
			} else {
				sp.toks = append(sp.toks, subjectTok{kind: tokStar})
			}
		case '?':
			sp.toks = append(sp.toks, subjectTok{kind: tokOne})
		default:
			sp.toks = append(sp.toks, subjectTok{kind: tokLit, r: rs[i]})
		}
	}
	if len(sp.toks) == 0 {
		return nil, fmt.Errorf("empty subject pattern")
	}
	return sp, nil
}

// match reports whether the whole of s matches. It runs in
// O(len(s)·len(pattern)) time whatever the pattern (no backtracking).
func (p *subjectPattern) match(s string) bool {
	if len(s) > maxSubjectLen {
		return false
	}
	subj := []rune(s)
	m := len(p.toks)
	prev := make([]bool, m+1)
	cur := make([]bool, m+1)
	prev[0] = true
	for j := 1; j <= m; j++ {
		k := p.toks[j-1].kind
		prev[j] = prev[j-1] && (k == tokStar || k == tokAny)
	}
	for _, c := range subj {
		cur[0] = false
		for j := 1; j <= m; j++ {
			t := p.toks[j-1]
			switch t.kind {
			case tokLit:
				cur[j] = prev[j-1] && c == t.r
			case tokOne:
				cur[j] = prev[j-1] && c != ':'
			case tokStar:
				cur[j] = cur[j-1] || (prev[j] && c != ':')
			case tokAny:
				cur[j] = cur[j-1] || prev[j]
			}
		}
		prev, cur = cur, prev
	}
	return prev[m]
}
