// Package secscan finds tokens where they must never be: log lines,
// errors, metrics, audit records and any file a test run leaves behind.
//
// Tests register every token they create (or let a Server report the ones
// it issued) and scan everything the code under test produced. A hit names
// where the token was found and its fingerprint, never the token, so the
// scanner's own report cannot leak it. Besides the token itself it looks for
// the forms a careless encoder or an echoing server would produce: URL
// query and path escaping, with upper- or lowercase hex; standard and
// URL-safe base64, padded or not, also where the token is only part of the
// encoded text (the Basic auth header "user:token"); and JSON string
// escaping. The forms are derived
// here independently of rotation.Scrubber, which tests check with this.
package secscan

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// Hit is one token found in one place.
type Hit struct {
	Where       string // the name given to Scan, or a file path
	Fingerprint string // rotation.Fingerprint of the token
	Form        string // "plain", "url", "path", "base64", "base64url", "base64raw", "base64urlraw", "base64in", "base64urlin" or "json"
	Offset      int
}

func (h Hit) String() string {
	return fmt.Sprintf("%s: token %s (%s form) at byte %d", h.Where, h.Fingerprint, h.Form, h.Offset)
}

// Scanner holds the registered tokens. The zero value is ready; it is safe
// for concurrent use.
type Scanner struct {
	mu     sync.Mutex
	tokens map[string]struct{}
}

// MinLen is the shortest token registered: shorter strings would match by
// chance (test tokens are random and much longer).
const MinLen = 8

// Add registers tokens; empty and too-short ones are ignored.
func (s *Scanner) Add(tokens ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = make(map[string]struct{})
	}
	for _, t := range tokens {
		if len(t) >= MinLen {
			s.tokens[t] = struct{}{}
		}
	}
}

// AddServer registers every token the test server lists now, the
// operator's included. The server forgets deleted authorizations, so tests
// that delete tokens must also Add each token when they create it (or call
// AddServer before deleting).
func (s *Scanner) AddServer(srv *influxv2.Server) {
	for _, a := range srv.Authorizations() {
		s.Add(a.Token)
	}
	if srv.Edition() != "" {
		for _, t := range srv.V3Tokens() {
			s.Add(t.Token)
		}
	}
	s.Add(srv.OperatorToken())
}

// Len is the number of registered tokens.
func (s *Scanner) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

func (s *Scanner) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for t := range s.tokens {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func forms(tok string) [][2]string {
	js, _ := json.Marshal(tok)
	out := [][2]string{
		{"plain", tok},
		{"url", url.QueryEscape(tok)},
		{"path", url.PathEscape(tok)},
		{"base64", base64.StdEncoding.EncodeToString([]byte(tok))},
		{"base64url", base64.URLEncoding.EncodeToString([]byte(tok))},
		{"base64raw", base64.RawStdEncoding.EncodeToString([]byte(tok))},
		{"base64urlraw", base64.RawURLEncoding.EncodeToString([]byte(tok))},
		{"json", string(js[1 : len(js)-1])},
		// Escapes are case-insensitive: %2f is as good as %2F.
		{"url", lowerEscapes(url.QueryEscape(tok))},
		{"path", lowerEscapes(url.PathEscape(tok))},
	}
	// Inside a longer encoded text the token starts at byte offset 1 or 2
	// of a 3-byte group (offset 0 is the plain encoding above): the groups
	// that lie wholly within the token encode to the same 4 characters
	// whatever surrounds them.
	for shift := 1; shift <= 2; shift++ {
		groups := (shift + len(tok)) / 3
		if groups < 3 {
			continue
		}
		b := append(make([]byte, shift), tok...)
		out = append(out,
			[2]string{"base64in", base64.StdEncoding.EncodeToString(b)[4 : 4*groups]},
			[2]string{"base64urlin", base64.URLEncoding.EncodeToString(b)[4 : 4*groups]})
	}
	// Drop repeated forms (the path and query escapes of most tokens are
	// equal, and equal to the plain one), so a hit is reported once.
	seen := map[string]bool{}
	uniq := out[:0]
	for _, f := range out {
		if !seen[f[1]] {
			seen[f[1]] = true
			uniq = append(uniq, f)
		}
	}
	return uniq
}

// lowerEscapes writes the hex digits of s's percent escapes in lower case.
func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c - 'A' + 'a'
	}
	return c
}

// Scan looks for every registered token in data.
func (s *Scanner) Scan(where string, data []byte) []Hit {
	text := string(data)
	var hits []Hit
	for _, tok := range s.snapshot() {
		for _, f := range forms(tok) {
			if i := strings.Index(text, f[1]); i >= 0 {
				hits = append(hits, Hit{Where: where, Fingerprint: rotation.Fingerprint(tok), Form: f[0], Offset: i})
			}
		}
	}
	return hits
}

// ScanFile scans one file.
func (s *Scanner) ScanFile(path string) ([]Hit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return s.Scan(path, b), nil
}

// ScanTree scans every regular file under root, skipping the files for
// which skip returns true (token files, which hold a token by design).
// It returns the hits and the number of files scanned.
func (s *Scanner) ScanTree(root string, skip func(path string) bool) ([]Hit, int, error) {
	var hits []Hit
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || (skip != nil && skip(path)) {
			return nil
		}
		h, err := s.ScanFile(path)
		if err != nil {
			return err
		}
		files++
		hits = append(hits, h...)
		return nil
	})
	return hits, files, err
}

// Check fails tb for every registered token found in data.
func (s *Scanner) Check(tb testing.TB, where string, data []byte) {
	tb.Helper()
	for _, h := range s.Scan(where, data) {
		tb.Errorf("secret leak: %s", h)
	}
}
