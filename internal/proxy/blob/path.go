package blob

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Path is a request path after weir's one canonicalization: the container
// (lower-cased: Azure container names are case-insensitive) and the blob
// name (case-sensitive, decoded). Every decision is on this form and the
// upstream path is re-serialized from it, so weir and Azure cannot read
// the same bytes differently.
type Path struct {
	Container string
	Blob      string
}

// Resource is the canonical resource name rules see: "container/blob",
// "container", or "" for the account.
func (p Path) Resource() string {
	if p.Blob == "" {
		return p.Container
	}
	return p.Container + "/" + p.Blob
}

// Escaped is the path re-serialized for upstream: each blob name segment
// escaped on its own, so a '/' in the name is a literal separator and
// nothing else in it can be read as one.
func (p Path) Escaped() string {
	if p.Container == "" {
		return "/"
	}
	s := "/" + p.Container
	if p.Blob != "" {
		segs := strings.Split(p.Blob, "/")
		for i, seg := range segs {
			segs[i] = url.PathEscape(seg)
		}
		s += "/" + strings.Join(segs, "/")
	}
	return s
}

// PathError is a refused path; its text says what to change.
type PathError struct{ msg string }

func (e *PathError) Error() string { return e.msg }

func pathErr(msg string) error { return &PathError{msg} }

const maxBlobName = 1024

// CanonicalPath parses the escaped path below the target's prefix (""
// or "/" for the account, "/container", "/container/blob/name").
//
// Refused: dot segments, empty segments ("//"), backslashes, ';',
// control characters, a '%' in the container, double encoding (a name
// that still holds %XX after decoding once), invalid escapes or UTF-8,
// and container names Azure would not accept. One encoded slash is
// tolerated inside the blob name only, because the Go SDK escapes the
// whole name (reports/q1.csv is sent as reports%2Fq1.csv) and Azure reads
// it as '/': the name is decoded once, checked as segments, and sent on
// with literal slashes, so what weir decided is what Azure addresses.
func CanonicalPath(escaped string) (Path, error) {
	if escaped == "" || escaped == "/" {
		return Path{}, nil
	}
	if escaped[0] != '/' {
		return Path{}, pathErr("the path must start with '/'")
	}
	rest := escaped[1:]
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '\\':
			return Path{}, pathErr("backslashes are not allowed in blob paths")
		case c == ';':
			return Path{}, pathErr("';' is not allowed in blob paths")
		case c < 0x20 || c == 0x7f:
			return Path{}, pathErr("control characters are not allowed in blob paths")
		case c == '?' || c == '#':
			return Path{}, pathErr("'?' and '#' are not allowed in blob paths")
		}
	}
	container, blobPart, hasBlob := strings.Cut(rest, "/")
	if strings.Contains(container, "%") {
		return Path{}, pathErr("the container name must not be percent-encoded")
	}
	if !validContainer(container) {
		if container == "." || container == ".." {
			return Path{}, pathErr("dot segments ('.', '..') are not allowed in blob paths")
		}
		return Path{}, pathErr("invalid container name " + quote(container) + ": use 3-63 lower-case letters, digits and single hyphens ($root, $web and $logs too)")
	}
	p := Path{Container: strings.ToLower(container)}
	if !hasBlob {
		return p, nil
	}
	if blobPart == "" {
		return Path{}, pathErr("the blob name is empty (trailing '/'): name a blob, or drop the '/' for the container")
	}
	name, err := url.PathUnescape(blobPart)
	if err != nil {
		return Path{}, pathErr("the blob name has an invalid percent-encoding")
	}
	if !utf8.ValidString(name) {
		return Path{}, pathErr("the blob name is not valid UTF-8")
	}
	if hasEscape(name) {
		return Path{}, pathErr("the blob name is percent-encoded twice (it still holds %XX after decoding); encode it once")
	}
	if len(name) > maxBlobName {
		return Path{}, pathErr("the blob name is longer than 1024 characters")
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return Path{}, pathErr("empty path segments ('//', a leading or trailing '/') are not allowed in blob names")
		case ".", "..":
			return Path{}, pathErr("dot segments ('.', '..') are not allowed in blob paths")
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '\\' || r == ';' {
			return Path{}, pathErr("control characters, backslashes and ';' are not allowed in blob names")
		}
	}
	p.Blob = name
	return p, nil
}

func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && ishex(s[i+1]) && ishex(s[i+2]) {
			return true
		}
	}
	return false
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validContainer follows Azure's naming rules. Upper case is accepted and
// lower-cased, as Azure itself compares container names.
func validContainer(s string) bool {
	switch strings.ToLower(s) {
	case "$root", "$web", "$logs":
		return true
	}
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(s)-1 || s[i-1] == '-' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return "\"" + strings.ToValidUTF8(s, "?") + "\""
}

var errNoTarget = errors.New("no target")
