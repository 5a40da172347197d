package rotation

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
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
// It holds every token the process has used or is about to use (register
// each one with Add as it appears) and replaces each of them by its
// Fingerprint in the forms an echo can take: plain; base64 in the standard
// and URL alphabets, padded or not, also where the token is only part of
// the encoded text, as in the Basic auth header "user:token"; URL-escaped
// as a query value or a path segment; and JSON-escaped. For an InfluxDB 1.x
// token "user:password" the password alone is scrubbed too.
//
// The methods are safe for concurrent use. A nil *Scrubber holds no token:
// its methods return their input cleaned but unchanged, so a caller that
// holds no secret may pass nil.
type Scrubber struct {
	mu      sync.Mutex
	secrets map[string]bool
	pairs   []scrubPair
	// replacer is rebuilt on each Add (rare: once per token) so that Scrub,
	// called on every error message, takes no lock.
	replacer atomic.Pointer[strings.Replacer]
}

type scrubPair struct{ form, fingerprint string }

// minScrubForm is the shortest form replaced: shorter strings (the edges of
// a very short password's base64) would match ordinary words by chance.
const minScrubForm = 4

// NewScrubber returns a Scrubber holding tokens.
func NewScrubber(tokens ...string) *Scrubber {
	s := &Scrubber{}
	s.Add(tokens...)
	return s
}

// Add registers tokens; empty ones and those already held are ignored. It
// is cheap for a token already held, so callers may register the token of
// each request they send.
func (s *Scrubber) Add(tokens ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, tok := range tokens {
		if tok == "" || s.secrets[tok] {
			continue
		}
		if s.secrets == nil {
			s.secrets = make(map[string]bool)
		}
		s.secrets[tok] = true
		changed = true
		fp := Fingerprint(tok)
		secrets := []string{tok}
		if _, pass, ok := strings.Cut(tok, ":"); ok && len(pass) >= minScrubForm {
			// InfluxDB 1.x "user:password": an echoed statement such as
			// CREATE USER quotes the password alone.
			secrets = append(secrets, pass)
		}
		for _, secret := range secrets {
			for _, f := range scrubForms(secret) {
				s.pairs = append(s.pairs, scrubPair{form: f, fingerprint: fp})
			}
		}
	}
	if !changed {
		return
	}
	// strings.Replacer tries the old strings in argument order at each
	// position: longest first, so that a padded base64 form wins over its
	// unpadded core and a whole token over its password part.
	slices.SortStableFunc(s.pairs, func(a, b scrubPair) int { return cmp.Compare(len(b.form), len(a.form)) })
	args := make([]string, 0, 2*len(s.pairs))
	seen := make(map[string]bool, len(s.pairs))
	for _, p := range s.pairs {
		if !seen[p.form] {
			seen[p.form] = true
			args = append(args, p.form, p.fingerprint)
		}
	}
	s.replacer.Store(strings.NewReplacer(args...))
}

// AddCredential registers c's token; nil is ignored.
func (s *Scrubber) AddCredential(c *Credential) {
	if c != nil {
		s.Add(c.Token())
	}
}

// scrubForms lists the ways secret can appear in an echoed request.
func scrubForms(secret string) []string {
	js, _ := json.Marshal(secret)
	forms := []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		string(js[1 : len(js)-1]),
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
	return r.Replace(text)
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
