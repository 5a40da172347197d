package rotation

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Scrubber removes tokens from text that quotes a server: a server or proxy
// that echoes the request's Authorization header in an error body would
// otherwise put the token into logs, audit records, state files and errors.
//
// It holds the tokens the process uses or is about to use and replaces each
// of them by its Fingerprint in the forms an echo can take: plain; base64 in
// the standard and URL alphabets, padded or not, also where the token is
// only part of the encoded text, as in the Basic auth header "user:token";
// URL-escaped as a query value or a path segment, with upper- or lowercase
// hex digits; and JSON-escaped. For an InfluxDB 1.x token "user:password"
// the password alone is scrubbed too.
//
// A token is held in one of two ways. Pin holds it until Unpin: the tokens
// the process keeps using (an operator token, a writer's active, candidate
// and previous tokens). Add holds it among the Keep most recently added
// ones: tokens seen in passing (each new one a source offers, each one a
// request carries), of which a long-running process sees one per rotation.
// Bounding them bounds the cost of Scrub, which every error message pays.
//
// The methods are safe for concurrent use. A nil *Scrubber holds no token:
// its methods return their input cleaned but unchanged, so a caller that
// holds no secret may pass nil.
type Scrubber struct {
	// Keep is how many tokens registered with Add are held; the oldest
	// is dropped first. Zero means DefaultScrubberKeep. Set it before the
	// first Add.
	Keep int

	mu sync.Mutex
	// pinned are the tokens held until Unpin (guarded by mu).
	pinned map[string]bool
	// recent are the tokens added, oldest first, none of them pinned
	// (guarded by mu).
	recent []string
	// forms caches each held token's scrub pairs (guarded by mu).
	forms map[string][]scrubPair
	// replacer is rebuilt when the set of held tokens changes (once per
	// new token) so that Scrub, called on every error message, takes no
	// lock.
	replacer atomic.Pointer[strings.Replacer]
}

// DefaultScrubberKeep is how many added (not pinned) tokens a Scrubber
// holds by default: many more than one process has in flight at once (a
// rotation brings one or two), few enough that Scrub stays cheap.
const DefaultScrubberKeep = 64

type scrubPair struct{ form, fingerprint string }

// minScrubForm is the shortest form replaced: shorter strings (the edges of
// a very short password's base64) would match ordinary words by chance.
const minScrubForm = 4

// NewScrubber returns a Scrubber with tokens pinned.
func NewScrubber(tokens ...string) *Scrubber {
	s := &Scrubber{}
	s.Pin(tokens...)
	return s
}

// Add holds tokens among the Keep most recently added, dropping the oldest
// beyond; empty ones are ignored and pinned ones stay pinned. Adding a
// token already held makes it the newest and is cheap, so callers may
// register the token of each request they send.
func (s *Scrubber) Add(tokens ...string) {
	s.change(func() bool {
		added := false
		for _, tok := range tokens {
			if tok == "" || s.pinned[tok] {
				continue
			}
			if i := slices.Index(s.recent, tok); i >= 0 {
				s.recent = append(slices.Delete(s.recent, i, i+1), tok)
				continue
			}
			s.recent = append(s.recent, tok)
			added = true
		}
		return s.trimLocked() || added
	})
}

// Pin holds tokens until Unpin; empty ones are ignored.
func (s *Scrubber) Pin(tokens ...string) {
	s.change(func() bool {
		added := false
		for _, tok := range tokens {
			if tok == "" || s.pinned[tok] {
				continue
			}
			if s.pinned == nil {
				s.pinned = make(map[string]bool)
			}
			s.pinned[tok] = true
			if i := slices.Index(s.recent, tok); i >= 0 {
				s.recent = slices.Delete(s.recent, i, i+1) // held all the same
			} else {
				added = true
			}
		}
		return added
	})
}

// Unpin turns pinned tokens into the newest added ones: a message quoting
// one may still arrive (an answer in flight), so it is dropped only when
// Keep newer ones have been added. Tokens not pinned are ignored.
func (s *Scrubber) Unpin(tokens ...string) {
	s.change(func() bool {
		for _, tok := range tokens {
			if s.pinned[tok] {
				delete(s.pinned, tok)
				s.recent = append(s.recent, tok)
			}
		}
		return s.trimLocked()
	})
}

// change runs update with s.mu held and rebuilds the replacer when update
// reports that the set of tokens held changed. A nil s holds nothing.
func (s *Scrubber) change(update func() (changed bool)) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if update() {
		s.rebuildLocked()
	}
}

// trimLocked drops the oldest added tokens beyond Keep and reports whether
// it dropped any. s.mu is held.
func (s *Scrubber) trimLocked() bool {
	keep := cmp.Or(s.Keep, DefaultScrubberKeep)
	if len(s.recent) <= keep {
		return false
	}
	drop := len(s.recent) - keep
	for _, tok := range s.recent[:drop] {
		delete(s.forms, tok)
	}
	s.recent = slices.Delete(s.recent, 0, drop)
	return true
}

// rebuildLocked builds the replacer for the tokens held. s.mu is held.
func (s *Scrubber) rebuildLocked() {
	if s.forms == nil {
		s.forms = make(map[string][]scrubPair)
	}
	var pairs []scrubPair
	for _, tok := range slices.Concat(slices.Collect(maps.Keys(s.pinned)), s.recent) {
		p, ok := s.forms[tok]
		if !ok {
			p = tokenPairs(tok)
			s.forms[tok] = p
		}
		pairs = append(pairs, p...)
	}
	// strings.Replacer tries the old strings in argument order at each
	// position: longest first, so that a padded base64 form wins over its
	// unpadded core and a whole token over its password part.
	slices.SortStableFunc(pairs, func(a, b scrubPair) int { return cmp.Compare(len(b.form), len(a.form)) })
	args := make([]string, 0, 2*len(pairs))
	seen := make(map[string]bool, len(pairs))
	for _, p := range pairs {
		if !seen[p.form] {
			seen[p.form] = true
			args = append(args, p.form, p.fingerprint)
		}
	}
	if len(args) == 0 {
		s.replacer.Store(nil)
		return
	}
	s.replacer.Store(strings.NewReplacer(args...))
}

// tokenPairs lists the forms of tok to replace, each with tok's fingerprint.
func tokenPairs(tok string) []scrubPair {
	fp := Fingerprint(tok)
	secrets := []string{tok}
	if _, pass, ok := strings.Cut(tok, ":"); ok && len(pass) >= minScrubForm {
		// InfluxDB 1.x "user:password": an echoed statement such as
		// CREATE USER quotes the password alone.
		secrets = append(secrets, pass)
	}
	var pairs []scrubPair
	for _, secret := range secrets {
		for _, f := range scrubForms(secret) {
			pairs = append(pairs, scrubPair{form: f, fingerprint: fp})
		}
	}
	return pairs
}

// AddCredential adds c's token; nil is ignored.
func (s *Scrubber) AddCredential(c *Credential) {
	if c != nil {
		s.Add(c.Token())
	}
}

// AddAuthorization adds the secrets of an Authorization header value that
// did not come from a Credential (a header set by hand in a writer's
// configuration): the value, its credentials after the scheme ("Token x",
// "Bearer x") and, for "Basic", the decoded "user:password".
func (s *Scrubber) AddAuthorization(value string) {
	value = strings.TrimSpace(value)
	secrets := []string{value}
	if scheme, cred, ok := strings.Cut(value, " "); ok {
		cred = strings.TrimSpace(cred)
		secrets = append(secrets, cred)
		if strings.EqualFold(scheme, "basic") {
			if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
				secrets = append(secrets, string(raw))
			}
		}
	}
	s.Add(secrets...)
}

// scrubForms lists the ways secret can appear in an echoed request.
func scrubForms(secret string) []string {
	js, _ := json.Marshal(secret)
	forms := []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		string(js[1 : len(js)-1]),
		// JSON encoders that escape '/' (PHP's, Java's).
		strings.ReplaceAll(string(js[1:len(js)-1]), "/", `\/`),
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(secret)), enc.WithPadding(base64.NoPadding).EncodeToString([]byte(secret)))
		forms = append(forms, base64Cores(enc, secret)...)
	}
	out := forms[:0]
	for _, f := range forms {
		if len(f) >= minScrubForm {
			out = append(out, f)
		}
	}
	// The same forms with their escapes' hex digits in upper case, which
	// is what Scrub turns a text's escapes into when it has lowercase ones.
	for _, f := range out {
		if u, ok := upperEscapes(f); ok {
			out = append(out, u)
		}
	}
	return out
}

// base64Cores returns, for each of the three alignments secret can have
// inside a longer encoded text ("user:" + token in a Basic auth header),
// the run of base64 characters that depends on secret's bytes alone. The
// one or two characters at each end that mix in a neighbouring byte tell
// at most a few bits of the secret.
func base64Cores(enc *base64.Encoding, secret string) []string {
	var cores []string
	for shift := range 3 {
		padded := make([]byte, shift+len(secret))
		copy(padded[shift:], secret)
		text := enc.WithPadding(base64.NoPadding).EncodeToString(padded)
		// Character i encodes bits [6i, 6i+6) of padded; keep those within
		// the secret's bits [8·shift, 8·(shift+len)).
		first := (8*shift + 5) / 6
		end := 8 * (shift + len(secret)) / 6
		if end > first {
			cores = append(cores, text[first:end])
		}
	}
	return cores
}

// Scrub replaces every registered token in text by its fingerprint.
func (s *Scrubber) Scrub(text string) string {
	if s == nil {
		return text
	}
	r := s.replacer.Load()
	if r == nil {
		return text
	}
	out := r.Replace(text)
	// Escapes are case-insensitive: an echo may write %2f and \u002F where
	// the forms have %2F and \u002f. Such a text is scrubbed again with its
	// escapes in upper case, which the forms also have; it is returned so
	// only when that found a token, to leave other text as it was.
	if upper, ok := upperEscapes(text); ok {
		if scrubbed := r.Replace(upper); scrubbed != upper {
			return scrubbed
		}
	}
	return out
}

// upperEscapes returns text with the hex digits of its percent escapes
// (%2f) and JSON escapes (\u002f) in upper case, and whether that changed
// anything.
func upperEscapes(text string) (string, bool) {
	if !strings.ContainsAny(text, "%\\") {
		return text, false
	}
	var b []byte
	upper := func(i int) {
		if c := text[i]; 'a' <= c && c <= 'f' {
			if b == nil {
				b = []byte(text)
			}
			b[i] = c - 'a' + 'A'
		}
	}
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '%' && hexDigits(text, i+1, 2):
			upper(i + 1)
			upper(i + 2)
			i += 2
		case text[i] == '\\' && i+1 < len(text) && text[i+1] == 'u' && hexDigits(text, i+2, 4):
			for j := i + 2; j < i+6; j++ {
				upper(j)
			}
			i += 5
		}
	}
	if b == nil {
		return text, false
	}
	return string(b), true
}

// hexDigits reports whether text has n hex digits from i.
func hexDigits(text string, i, n int) bool {
	if i+n > len(text) {
		return false
	}
	for _, c := range []byte(text[i : i+n]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ServerMessage extracts a readable message from an error body: the
// InfluxDB 2.x shape {"code","message"}, the 1.x and 3.x shape {"error"}
// or, for anything else (HTML from a proxy, truncated JSON), the text
// itself; on one line, cut to a few hundred bytes, and with every
// registered token scrubbed: before the cut (which must not leave a token's
// prefix behind) and again after control characters are removed (which
// could join the pieces of one). It is the one way the project quotes a
// server.
func (s *Scrubber) ServerMessage(body []byte) string {
	text := s.Scrub(serverText(body))
	return truncateMessage(s.Scrub(normalizeMessage(text)))
}

// Classify is the package function Classify with the message scrubbed:
// writers that hold tokens call this one.
func (s *Scrubber) Classify(status int, header http.Header, body []byte) Decision {
	if status >= 200 && status < 300 {
		return classify(status, header, "")
	}
	return classify(status, header, s.ServerMessage(body))
}

// RedactURL returns raw with the password of its userinfo replaced by
// "xxxxx", for configuration errors and reports that name a server: a URL
// such as https://user:password@host may be configured. A URL that parses
// is shown as url.URL.Redacted shows it (the form net/http's own errors
// mask it in); one that does not parse has everything between the first
// ':' after "://" and the last '@' replaced, which may hide more than the
// password but never less. Quote the result, never the url.Parse error,
// which repeats the URL in full.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	at := strings.LastIndexByte(rest, '@')
	colon := strings.IndexByte(rest, ':')
	if at < 0 || colon < 0 || colon > at {
		return raw
	}
	return raw[:i+3] + rest[:colon+1] + "xxxxx" + rest[at:]
}

// URLParseError is the reason url.Parse gave for refusing raw, without the
// URL it quotes (see RedactURL).
func URLParseError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
